//! The console's stylesheet and script, compiled into the binary: the
//! console needs no file beside `mcp`, and nothing is fetched from outside.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: [(&str, &str, &str); 2] = [
    ("console.css", "text/css; charset=utf-8", include_str!("assets/console.css")),
    ("console.js", "text/javascript; charset=utf-8", include_str!("assets/console.js")),
];

/// `GET /ui/assets/{file}`
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let Some((_, content_type, text)) = FILES.iter().find(|(name, _, _)| *name == file) else {
        return super::not_found().await.into_response();
    };
    let mut response = (StatusCode::OK, *text).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The files change only with the binary; an hour keeps a new one's
    // look from waiting long.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    response
}
