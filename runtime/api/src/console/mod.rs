//! The web console at `/ui/`: server-rendered HTML for security teams
//! and operators, readable with script off. Every page reads and changes
//! through the API's own handlers with the caller its session's token
//! names, so the console can show or do nothing the token could not do
//! through `/v1`.

mod agents;
mod anomalies;
mod assets;
mod chart;
mod deliveries;
mod models;
mod page;
mod runs;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;

pub(crate) use session::Sessions;

use crate::{ApiError, ApiState};

/// A form that carries nothing but its CSRF token.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// A form's fields, or a page saying why the body could not be read (too
/// large, not a form) rather than a CSRF refusal it is not.
pub(crate) fn read_form<T>(form: Result<Form<T>, axum::extract::rejection::FormRejection>) -> Result<T, ConsoleError> {
    form.map(|Form(fields)| fields)
        .map_err(|rejection| ConsoleError::Api(ApiError::new(rejection.status(), "bad_form", rejection.body_text())))
}

/// Why a console request did not get its page.
#[derive(Debug)]
pub(crate) enum ConsoleError {
    /// No live session: to the sign-in page.
    SignIn,
    /// The sign-in form was refused, with why.
    SignInFailed(String),
    /// What the API answered, shown as a page with its status.
    Api(ApiError),
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        ConsoleError::Api(error)
    }
}

fn error_title(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "Not understood",
        StatusCode::CONFLICT => "Not possible now",
        _ => "Something went wrong",
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::SignIn => Redirect::to("/ui/sign-in").into_response(),
            ConsoleError::SignInFailed(why) => (StatusCode::UNAUTHORIZED, why).into_response(),
            ConsoleError::Api(error) => {
                let body = html! {
                    p.error role="alert" { (page::visible(&error.detail)) }
                    p { a href="/ui/anomalies" { "Back to the anomalies" } }
                };
                let mut response =
                    (error.status, page::page(error_title(error.status), None, page::ERROR_SECTION, None, body))
                        .into_response();
                if let Some(seconds) = error.retry_after_s
                    && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
                {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
        }
    }
}

/// `GET /ui/sign-in`
async fn sign_in_page(headers: HeaderMap) -> Response {
    sign_in_form(&headers, StatusCode::OK, None)
}

fn sign_in_form(headers: &HeaderMap, status: StatusCode, problem: Option<&str>) -> Response {
    let (secret, cookie) = session::sign_in_secret(headers);
    let body = html! {
        @if let Some(problem) = problem { p.error role="alert" { (page::visible(problem)) } }
        form.sign-in method="post" action="/ui/sign-in" {
            input type="hidden" name="csrf" value=(secret);
            label {
                "API token"
                input type="password" name="token" required autocomplete="current-password" spellcheck="false" aria-describedby="token-hint";
            }
            p.hint #token-hint { "A token of your tenant (mcp_…), as " code { "mcp tokens create" } " or a tenant admin gave it. It stays on the server; the browser keeps only a session cookie." }
            button type="submit" { "Sign in" }
        }
    };
    let mut response = (status, page::page("Sign in", None, "", None, body)).into_response();
    if let Ok(value) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /ui/sign-in`
async fn sign_in(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    form: Result<Form<session::SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = match read_form(form) {
        Ok(form) => form,
        Err(refused) => return refused.into_response(),
    };
    match session::sign_in(&state, &headers, form).await {
        Ok(response) => response,
        Err(ConsoleError::SignInFailed(why)) => sign_in_form(&headers, StatusCode::UNAUTHORIZED, Some(&why)),
        Err(other) => other.into_response(),
    }
}

/// `POST /ui/sign-out`: needs the session's CSRF token, so another site
/// cannot sign a user out either.
async fn sign_out(
    State(state): State<Arc<ApiState>>,
    viewer: Result<session::Viewer, ConsoleError>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ConsoleError> {
    if let Ok(viewer) = viewer {
        viewer.check_csrf(&read_form(form)?.csrf)?;
    }
    Ok(session::sign_out(&state, &headers))
}

/// `GET /ui/`: the anomalies, or the sign-in page.
async fn home(viewer: Result<session::Viewer, ConsoleError>) -> Redirect {
    match viewer {
        Ok(_) => Redirect::to("/ui/anomalies"),
        Err(_) => Redirect::to("/ui/sign-in"),
    }
}

/// Any other path under `/ui/`.
async fn not_found() -> ConsoleError {
    ConsoleError::Api(ApiError::not_found("the console has no such page"))
}

/// Headers every console answer carries: pages hold a tenant's data, so
/// nothing caches them, frames them, or leaks their address onwards; and
/// nothing but the console's own files may run or style them.
async fn protect(request: Request, next: Next) -> Response {
    // The API's bound on a request target, so a long query is answered
    // with a page rather than read into filters.
    let mut response = if request.uri().to_string().len() > crate::contract::MAX_URI_BYTES {
        ConsoleError::Api(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the address is over {} bytes; use fewer or shorter filters", crate::contract::MAX_URI_BYTES),
        ))
        .into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The console's routes, all under `/ui`.
pub(crate) fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(home))
        .route("/ui/sign-in", get(sign_in_page).post(sign_in))
        .route("/ui/sign-out", post(sign_out))
        .route("/ui/anomalies", get(anomalies::list))
        .route("/ui/anomalies/{id}", get(anomalies::detail))
        .route("/ui/agents", get(agents::list))
        .route("/ui/agents/{name}/{action}", post(agents::set_enabled))
        .route("/ui/runs", get(runs::list).post(runs::start))
        .route("/ui/runs/live", get(runs::live))
        .route("/ui/runs/{id}/cancel", post(runs::cancel))
        .route("/ui/models", get(models::list))
        .route("/ui/models/{agent}/activate", post(models::activate))
        .route("/ui/models/{agent}/rollback", post(models::rollback))
        .route("/ui/exports", get(deliveries::exports))
        .route("/ui/exports/{id}/download", get(deliveries::download))
        .route("/ui/notifications", get(deliveries::notifications))
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/ui/{*rest}", get(not_found).post(not_found))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::from_fn(protect))
        .with_state(state)
}
