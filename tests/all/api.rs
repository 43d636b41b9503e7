//! The REST control plane, driven in process: authentication and roles,
//! problem details, keyset pages, runs, models, the OpenAPI document, and
//! tenants that cannot see each other.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mcp_api::{self, ApiState, Role};
use mcp_engine::config::McpConfig;
use mcp_engine::models::ModelManager;
use mcp_engine::pipeline::{self, RunSpec};
use mcp_fixtures::BUNDLED_SCHEMAS;
use mcp_storage::jobstatus::SharedCache;
use mcp_storage::schema::SchemaFiles;
use mcp_storage::source::{LogSource, SqliteLogSource};
use mcp_storage::store::AnomalyStore;
use serde_json::Value;
use tower::ServiceExt;

use crate::common::{bundled_registry, sandbox};

pub(crate) struct Api {
    _dir: tempfile::TempDir,
    router: axum::Router,
    /// What the `metrics_listen` address serves.
    metrics: axum::Router,
    runtime: tokio::runtime::Runtime,
    /// The server's state, for what the host does on its own (retention).
    pub(crate) state: Arc<ApiState>,
    /// Tokens by (tenant, role).
    tokens: std::collections::HashMap<(&'static str, Role), String>,
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    request_id: Option<String>,
    content_type: String,
}

/// Two tenants, each with firewall logs run through the agent, and a model
/// store copied from the shipped one.
fn api() -> anyhow::Result<Api> {
    api_with_cache(SharedCache::open(None, "", Default::default())?)
}

fn api_with_cache(cache: SharedCache) -> anyhow::Result<Api> {
    api_configured(cache, &["alpha", "beta"], |_, _| Ok(()))
}

/// As [`api`], for `tenants` (each with a token of every role), with
/// `prepare` changing the config and adding to the data before the server
/// starts.
/// The schema of the proxy fixture's log type.
pub(crate) const PROXY_SCHEMA: &str = "log_type: proxy\nversion: 1\nfields:\n  - { name: url, type: text, required: true }\n  - { name: status, type: integer, required: true }\n";

/// The deployment's own tokens' tenant.
pub(crate) const DEPLOYMENT: &str = mcp_storage::control::DEPLOYMENT_TENANT;

pub(crate) fn api_configured(
    cache: SharedCache,
    tenants: &[&'static str],
    prepare: impl FnOnce(&mut McpConfig, &SqliteLogSource) -> anyhow::Result<()>,
) -> anyhow::Result<Api> {
    let dir = tempfile::tempdir()?;
    let models_dir = dir.path().join("models");
    for agent in ["dns", "firewall", "wifi"] {
        for version in std::fs::read_dir(Path::new(mcp_fixtures::BUNDLED_MODELS).join(agent))? {
            let from = version?.path();
            let to = models_dir.join(agent).join(from.file_name().unwrap_or_default());
            std::fs::create_dir_all(&to)?;
            for file in ["model.onnx", "metadata.json"] {
                std::fs::copy(from.join(file), to.join(file))?;
            }
        }
    }
    let mut config = McpConfig {
        data_dir: dir.path().join("data"),
        models_dir: Some(models_dir),
        schema_dir: Some(BUNDLED_SCHEMAS.into()),
        max_upload_bytes: 4 << 20,
        // Alpha's admin tokens are the deployment's admin.
        tenant: "alpha".into(),
        ..McpConfig::default()
    };
    std::fs::create_dir_all(&config.data_dir)?;
    let registry = Arc::new(bundled_registry(sandbox())?);
    let source = SqliteLogSource::open(&config.logs_db(), Arc::new(SchemaFiles::new(Path::new(BUNDLED_SCHEMAS))))?;
    let mut store = AnomalyStore::open(&config.anomalies_db())?;
    for (tenant, seed) in [("alpha", 1), ("beta", 2)] {
        source.append(tenant, "firewall", &mcp_synth::to_rows(&mcp_synth::generate("firewall", seed, 3_000)?))?;
        let mut instance = pipeline::instance_for(&registry, "firewall", tenant, Default::default(), None)?;
        let spec = RunSpec {
            tenant,
            agent: "firewall",
            log_source: "embedded",
            batch_size: 500,
            replay_ms: 0,
            up_to_id: None,
            follow: None,
        };
        pipeline::run(&registry, &mut instance, &source, &mut store, &spec)?;
    }
    // The bundled log types and `proxy`, which the proxy fixture reads.
    let schemas = config.data_dir.join("schemas");
    std::fs::create_dir_all(&schemas)?;
    for entry in std::fs::read_dir(BUNDLED_SCHEMAS)? {
        let path = entry?.path();
        std::fs::copy(&path, schemas.join(path.file_name().unwrap_or_default()))?;
    }
    std::fs::write(schemas.join("proxy.yaml"), PROXY_SCHEMA)?;
    config.schema_dir = Some(schemas);
    prepare(&mut config, &source)?;
    let control = config.control_store()?;
    let mut tokens = std::collections::HashMap::new();
    for tenant in tenants.iter().copied() {
        for role in [Role::ReadOnly, Role::TenantAdmin, Role::Admin] {
            tokens.insert((tenant, role), control.create_token(tenant, role)?);
        }
    }
    for role in [Role::ReadOnly, Role::DeploymentAdmin] {
        tokens.insert((DEPLOYMENT, role), control.create_token(DEPLOYMENT, role)?);
    }
    let models = Arc::new(ModelManager::open(
        config.models_dir.as_deref().unwrap_or(Path::new(".")),
        &config.data_dir.join("models.db"),
    )?);
    let state = Arc::new(ApiState::new(config, control, registry, models, Arc::new(cache))?);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    Ok(Api {
        _dir: dir,
        metrics: mcp_api::metrics_router(state.clone()),
        router: mcp_api::router(state.clone()),
        state,
        runtime,
        tokens,
    })
}

impl Api {
    pub(crate) fn token(&self, tenant: &'static str, role: Role) -> &str {
        self.tokens.get(&(tenant, role)).map_or("", String::as_str)
    }

    /// Serves the router on a free loopback port until the test ends, for
    /// a client outside the process (a browser).
    pub(crate) fn serve_on_loopback(&self) -> anyhow::Result<std::net::SocketAddr> {
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let address = listener.local_addr()?;
            tokio::spawn(async move { axum::serve(listener, router).await });
            Ok(address)
        })
    }

    /// Signs in to the console with `token` as a browser would (the sign-in
    /// form's CSRF cookie, then the form): the session's cookie.
    pub(crate) fn console_session(&self, token: &str) -> anyhow::Result<String> {
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let cookie_of = |response: &axum::response::Response, name: &str| -> Option<String> {
                response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
                    let pair = v.split(';').next()?.trim();
                    pair.strip_prefix(&format!("{name}=")).filter(|value| !value.is_empty()).map(str::to_string)
                })
            };
            let form = router.clone().oneshot(Request::get("/ui/sign-in").body(Body::empty())?).await?;
            let csrf = cookie_of(&form, "mcp_sign_in").ok_or_else(|| anyhow::anyhow!("no sign-in cookie"))?;
            let body = format!("token={token}&csrf={csrf}");
            let signed = router
                .oneshot(
                    Request::post("/ui/sign-in")
                        .header("content-type", "application/x-www-form-urlencoded")
                        .header("cookie", format!("mcp_sign_in={csrf}"))
                        .body(Body::from(body))?,
                )
                .await?;
            let session = cookie_of(&signed, "mcp_session")
                .ok_or_else(|| anyhow::anyhow!("signing in answered {} without a session", signed.status()))?;
            Ok(format!("mcp_session={session}"))
        })
    }

    /// A GET with request headers of its own (a console session's cookie):
    /// the status and the body as text.
    pub(crate) fn get_with(&self, uri: &str, headers: &[(&str, &str)]) -> anyhow::Result<(StatusCode, String)> {
        let mut request = Request::builder().method("GET").uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::empty())?;
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let response = router.oneshot(request).await?;
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await?;
            Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
        })
    }

    pub(crate) fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> anyhow::Result<Reply> {
        let content_type = body.map(|_| "application/json");
        self.send(method, uri, token, content_type, body.map(|b| b.as_bytes().to_vec()))
    }

    pub(crate) fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Reply> {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(body.map_or_else(Body::empty, Body::from))?;
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let response = router.oneshot(request).await?;
            let status = response.status();
            let request_id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
            let content_type =
                response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await?;
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
            Ok(Reply { status, body, request_id, content_type })
        })
    }

    /// A GET's status, headers and raw body (a download).
    pub(crate) fn download(
        &self,
        uri: &str,
        token: &str,
    ) -> anyhow::Result<(StatusCode, axum::http::HeaderMap, Vec<u8>)> {
        self.download_with(uri, token, &[])
    }

    /// A GET of raw bytes with extra request headers (`Range`, `If-Range`).
    pub(crate) fn download_with(
        &self,
        uri: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(StatusCode, axum::http::HeaderMap, Vec<u8>)> {
        let mut request = Request::builder().method("GET").uri(uri).header("authorization", format!("Bearer {token}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::empty())?;
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let response = router.oneshot(request).await?;
            let (status, headers) = (response.status(), response.headers().clone());
            let bytes = axum::body::to_bytes(response.into_body(), 256 << 20).await?;
            Ok((status, headers, bytes.to_vec()))
        })
    }

    /// A GET, with no token, of what the `metrics_listen` address serves.
    pub(crate) fn metrics_address(&self, uri: &str) -> anyhow::Result<(StatusCode, String)> {
        let request = Request::builder().method("GET").uri(uri).body(Body::empty())?;
        let router = self.metrics.clone();
        self.runtime.block_on(async move {
            let response = router.oneshot(request).await?;
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
            Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
        })
    }

    /// The status of a request built by hand.
    fn raw(&self, request: Request<Body>) -> anyhow::Result<StatusCode> {
        let router = self.router.clone();
        self.runtime.block_on(async move { Ok(router.oneshot(request).await?.status()) })
    }

    pub(crate) fn get(&self, uri: &str, token: &str) -> anyhow::Result<Reply> {
        self.call("GET", uri, Some(token), None)
    }

    /// Delivers the notifications due now, as the server's worker would.
    pub(crate) fn deliver(&self) -> anyhow::Result<usize> {
        let deliverer = self.state.deliverer.clone();
        Ok(self.runtime.block_on(async move { deliverer.drain().await })?)
    }
}

pub(crate) fn problem(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["code"], code, "{}", reply.body);
    assert_eq!(reply.body["status"], status.as_u16());
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(!detail.is_empty() && !detail.contains("/work/") && !detail.contains("panicked"), "{detail}");
    assert!(reply.request_id.is_some(), "every response carries x-request-id");
}

#[test]
fn tokens_and_roles_are_enforced() -> anyhow::Result<()> {
    let api = api()?;
    // The scheme is case-insensitive.
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let token = api.token("alpha", Role::ReadOnly).to_string();
        let request = axum::http::Request::builder()
            .uri("/v1/agents")
            .header("authorization", format!("{scheme} {token}"))
            .body(axum::body::Body::empty())?;
        let status = api.raw(request)?;
        assert_eq!(status, StatusCode::OK, "scheme {scheme}");
    }
    problem(&api.call("GET", "/v1/anomalies", None, None)?, StatusCode::UNAUTHORIZED, "unauthorized");
    problem(&api.call("GET", "/v1/anomalies", Some("mcp_forged"), None)?, StatusCode::UNAUTHORIZED, "unauthorized");
    let read_only = api.token("alpha", Role::ReadOnly);
    assert_eq!(api.get("/v1/anomalies", read_only)?.status, StatusCode::OK);
    let start = api.call("POST", "/v1/runs", Some(read_only), Some(r#"{"agent":"firewall"}"#))?;
    problem(&start, StatusCode::FORBIDDEN, "forbidden");
    let activate = api.call("POST", "/v1/models/dns/2/activate", Some(api.token("alpha", Role::TenantAdmin)), None)?;
    problem(&activate, StatusCode::FORBIDDEN, "forbidden");
    // A tenant's admin changes no deployment model; the deployment admin
    // changes no tenant's resources.
    let activate = api.call("POST", "/v1/models/dns/2/activate", Some(api.token("alpha", Role::Admin)), None)?;
    problem(&activate, StatusCode::FORBIDDEN, "forbidden");
    let deployment = api.token(DEPLOYMENT, Role::DeploymentAdmin);
    let activate = api.call("POST", "/v1/models/dns/2/activate", Some(deployment), None)?;
    assert_eq!(activate.status, StatusCode::OK, "{}", activate.body);
    problem(
        &api.call("POST", "/v1/runs", Some(deployment), Some(r#"{"agent":"dns"}"#))?,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let audit = api.get("/v1/audit", api.token("beta", Role::TenantAdmin))?;
    assert!(
        audit.body["items"].as_array().into_iter().flatten().any(|e| e["action"] == "model.activate"),
        "every tenant's trail records a change of the deployment's models: {}",
        audit.body
    );
    assert_eq!(api.call("GET", "/healthz", None, None)?.status, StatusCode::OK, "health needs no token");
    Ok(())
}

#[test]
fn anomalies_page_by_cursor_without_gaps_or_repeats() -> anyhow::Result<()> {
    let api = api()?;
    let token = api.token("alpha", Role::ReadOnly);
    for sort in ["time", "score"] {
        let mut seen = Vec::new();
        let mut keys = Vec::new();
        let mut uri = format!("/v1/anomalies?limit=7&sort={sort}");
        loop {
            let page = api.get(&uri, token)?;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            for item in page.body["items"].as_array().into_iter().flatten() {
                seen.push(item["id"].as_i64().unwrap_or_default());
                keys.push(if sort == "time" { item["log_ts_ms"].as_f64() } else { item["score"].as_f64() });
            }
            match page.body["next_cursor"].as_str() {
                Some(cursor) => uri = format!("/v1/anomalies?limit=7&sort={sort}&cursor={cursor}"),
                None => break,
            }
        }
        let all = api.get("/v1/anomalies?limit=1000", token)?;
        let total = all.body["items"].as_array().map_or(0, Vec::len);
        assert!(total > 7, "the fixture should need several pages, has {total}");
        let mut unique = seen.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!((seen.len(), unique.len()), (total, total), "{sort}: every anomaly once");
        assert!(keys.windows(2).all(|w| w[0] >= w[1]), "{sort}: descending");
    }
    let filtered = api.get("/v1/anomalies?label=port_scan&min_score=0.5&limit=1000", token)?;
    let items = filtered.body["items"].as_array().cloned().unwrap_or_default();
    assert!(!items.is_empty() && items.iter().all(|a| a["label"] == "port_scan"), "{}", filtered.body);
    let one = &items[0];
    let by_id = api.get(&format!("/v1/anomalies/{}", one["id"]), token)?;
    assert_eq!(by_id.body["agent_sha256"], one["agent_sha256"]);
    assert!(by_id.body["entry_fields"].as_str().is_some_and(|f| f.contains("dst_port")), "provenance and the entry");
    problem(&api.get("/v1/anomalies?cursor=garbage", token)?, StatusCode::BAD_REQUEST, "bad_request");
    problem(&api.get("/v1/anomalies?severity=urgent", token)?, StatusCode::BAD_REQUEST, "bad_request");
    problem(&api.get("/v1/anomalies?limit=0", token)?, StatusCode::BAD_REQUEST, "bad_request");
    problem(&api.get("/v1/anomalies?nosuch=1", token)?, StatusCode::BAD_REQUEST, "bad_request");
    problem(&api.get("/v1/anomalies/notanumber", token)?, StatusCode::BAD_REQUEST, "bad_request");
    problem(&api.get("/v1/nothing/here", token)?, StatusCode::NOT_FOUND, "not_found");
    Ok(())
}

#[test]
fn tenants_see_nothing_of_each_other() -> anyhow::Result<()> {
    let api = api()?;
    let alpha = api.token("alpha", Role::TenantAdmin);
    let beta = api.token("beta", Role::Admin);
    let ids = |token: &str| -> anyhow::Result<Vec<i64>> {
        let page = api.get("/v1/anomalies?limit=1000", token)?;
        Ok(page.body["items"].as_array().into_iter().flatten().filter_map(|a| a["id"].as_i64()).collect())
    };
    let (alpha_ids, beta_ids) = (ids(alpha)?, ids(beta)?);
    assert!(!alpha_ids.is_empty() && !beta_ids.is_empty());
    assert!(alpha_ids.iter().all(|id| !beta_ids.contains(id)), "no anomaly listed for both");
    for id in &alpha_ids {
        problem(&api.get(&format!("/v1/anomalies/{id}"), beta)?, StatusCode::NOT_FOUND, "not_found");
    }
    // Filters naming alpha's agent or sources find nothing of alpha's for beta.
    let filtered = api.get("/v1/anomalies?agent=firewall&limit=1000", beta)?;
    let found: Vec<i64> =
        filtered.body["items"].as_array().into_iter().flatten().filter_map(|a| a["id"].as_i64()).collect();
    assert!(found.iter().all(|id| beta_ids.contains(id)));

    let run = api.call("POST", "/v1/runs", Some(alpha), Some(r#"{"agent":"firewall"}"#))?;
    assert_eq!(run.status, StatusCode::ACCEPTED, "{}", run.body);
    let run_id = run.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(api.get(&format!("/v1/runs/{run_id}"), alpha)?.status, StatusCode::OK);
    problem(&api.get(&format!("/v1/runs/{run_id}"), beta)?, StatusCode::NOT_FOUND, "not_found");
    problem(
        &api.call("POST", &format!("/v1/runs/{run_id}/cancel"), Some(beta), None)?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let listed = api.get("/v1/runs", beta)?;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(0), "beta lists none of alpha's runs");
    Ok(())
}

#[test]
fn runs_start_report_and_refuse_bad_bodies() -> anyhow::Result<()> {
    let api = api()?;
    let token = api.token("alpha", Role::TenantAdmin);
    problem(&api.call("POST", "/v1/runs", Some(token), Some("{not json"))?, StatusCode::BAD_REQUEST, "bad_request");
    problem(
        &api.call("POST", "/v1/runs", Some(token), Some(r#"{"agent":"nobody"}"#))?,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    problem(
        &api.call("POST", "/v1/runs", Some(token), Some(r#"{"agent":"dns","extra":1}"#))?,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    let run = api.call("POST", "/v1/runs", Some(token), Some(r#"{"agent":"dns"}"#))?;
    assert_eq!(run.status, StatusCode::ACCEPTED, "{}", run.body);
    let id = run.body["id"].as_str().unwrap_or_default().to_string();
    let mut state = String::new();
    for _ in 0..200 {
        state = api.get(&format!("/v1/runs/{id}"), token)?.body["state"].as_str().unwrap_or_default().to_string();
        if state != "running" && state != "queued" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(state, "completed");
    problem(&api.call("POST", &format!("/v1/runs/{id}/cancel"), Some(token), None)?, StatusCode::CONFLICT, "conflict");
    Ok(())
}

#[test]
fn every_error_is_a_problem_and_no_endpoint_takes_an_unknown_parameter() -> anyhow::Result<()> {
    let api = api()?;
    let token = api.token("alpha", Role::TenantAdmin);
    for uri in [
        "/v1/agents?limt=5",
        "/v1/agents/dns?limt=5",
        "/v1/config?limt=5",
        "/v1/audit?limt=5",
        "/v1/models?limt=5",
        "/v1/runs?limt=5",
        "/v1/anomalies?limt=5",
        "/v1/budgets?limt=5",
        "/v1/tokens?limt=5",
        "/v1/anomalies?limit=5&%6Cimt=5",
    ] {
        let reply = api.get(uri, token)?;
        problem(&reply, StatusCode::BAD_REQUEST, "bad_request");
        assert!(
            reply.body["detail"].as_str().unwrap_or_default().contains("unknown query parameter"),
            "{uri}: {}",
            reply.body
        );
    }
    assert_eq!(api.get("/v1/runs?limit=5", token)?.status, StatusCode::OK, "declared parameters pass");
    // What axum and hyper refuse before any handler is a problem too.
    problem(
        &api.call("DELETE", "/v1/config", Some(token), None)?,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    let long = format!("/v1/anomalies?source={}", "a".repeat(9_000));
    problem(&api.get(&long, token)?, StatusCode::URI_TOO_LONG, "uri_too_long");
    problem(&api.get("/v1/agents/%FF%FE", token)?, StatusCode::BAD_REQUEST, "bad_request");
    problem(&api.get("/v1/anomalies/not-a-number", token)?, StatusCode::BAD_REQUEST, "bad_request");
    let deployment = api.token(DEPLOYMENT, Role::DeploymentAdmin);
    let huge = model_parts(&vec![0u8; 5 << 20], "{}");
    let over = api.send(
        "POST",
        "/v1/models/dns/9",
        Some(deployment),
        Some("multipart/form-data; boundary=XBOUNDARY"),
        Some(huge),
    )?;
    problem(&over, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    problem(&api.call("POST", "/v1/runs", Some(token), Some(r#"["dns"]"#))?, StatusCode::BAD_REQUEST, "bad_request");
    let twice = api.call("POST", "/v1/runs", Some(token), Some(r#"{"agent":"dns","agent":"wifi"}"#))?;
    problem(&twice, StatusCode::BAD_REQUEST, "bad_request");
    assert!(twice.body["detail"].as_str().unwrap_or_default().contains("twice"), "{}", twice.body);
    Ok(())
}

#[test]
fn runs_are_listed_by_page_and_filter() -> anyhow::Result<()> {
    let api = api()?;
    let token = api.token("alpha", Role::TenantAdmin);
    let mut ids = Vec::new();
    for agent in ["dns", "wifi", "firewall", "dns"] {
        // One run per agent at a time: wait for each to end.
        let run = api.call("POST", "/v1/runs", Some(token), Some(&format!("{{\"agent\":\"{agent}\"}}")))?;
        assert_eq!(run.status, StatusCode::ACCEPTED, "{}", run.body);
        let id = run.body["id"].as_str().unwrap_or_default().to_string();
        for _ in 0..500 {
            let state = api.get(&format!("/v1/runs/{id}"), token)?.body["state"].clone();
            if state != "running" && state != "queued" {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        ids.push(id);
    }
    let page = |query: &str| api.get(&format!("/v1/runs{query}"), token);
    let listed = |reply: &crate::api::Reply| -> Vec<String> {
        reply.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["id"].as_str().map(String::from))
            .collect()
    };
    let all = page("")?;
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed(&all), newest_first);
    let first = page("?limit=3")?;
    assert_eq!(listed(&first), newest_first[..3]);
    let cursor = first.body["next_cursor"].as_str().unwrap_or_default().to_string();
    let second = page(&format!("?limit=3&cursor={cursor}"))?;
    assert_eq!(listed(&second), newest_first[3..]);
    assert!(second.body["next_cursor"].is_null(), "{}", second.body);
    let dns = page("?agent=dns&state=completed")?;
    assert_eq!(listed(&dns), [ids[3].clone(), ids[0].clone()]);
    assert!(listed(&page("?state=failed")?).is_empty());
    assert!(listed(&page("?cursor=run-0-0")?).is_empty(), "a cursor older than every run ends the list");
    for bad in ["?limit=0", "?limit=501", "?state=sleeping", "?colour=red"] {
        problem(&page(bad)?, StatusCode::BAD_REQUEST, "bad_request");
    }
    Ok(())
}

#[test]
fn models_are_listed_activated_and_rolled_back() -> anyhow::Result<()> {
    let api = api()?;
    let admin = api.token(DEPLOYMENT, Role::DeploymentAdmin);
    let listed = api.get("/v1/models", admin)?;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(3), "{}", listed.body);
    problem(&api.call("POST", "/v1/models/dns/9/activate", Some(admin), None)?, StatusCode::NOT_FOUND, "not_found");
    problem(&api.call("POST", "/v1/models/dns/rollback", Some(admin), None)?, StatusCode::CONFLICT, "conflict");
    problem(
        &api.call("DELETE", "/v1/budgets", Some(admin), None)?,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    // Another tenant's admin token does not change the deployment's models.
    let other_admin = api.token("beta", Role::Admin);
    for uri in ["/v1/models/dns/2/activate", "/v1/models/dns/rollback", "/v1/models/reload"] {
        problem(&api.call("POST", uri, Some(other_admin), None)?, StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(api.call("POST", "/v1/models/dns/2/activate", Some(admin), None)?.status, StatusCode::OK);
    let agent = api.get("/v1/agents/dns", admin)?;
    assert_eq!(agent.body["active_model"], "2");
    problem(&api.get("/v1/agents/nobody", admin)?, StatusCode::NOT_FOUND, "not_found");
    Ok(())
}

#[test]
fn the_openapi_document_names_every_endpoint() -> anyhow::Result<()> {
    let api = api()?;
    let document = api.call("GET", "/openapi.json", None, None)?;
    assert_eq!(document.status, StatusCode::OK);
    assert!(document.body["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let paths = document.body["paths"].as_object().cloned().unwrap_or_default();
    for path in [
        "/healthz",
        "/readyz",
        "/v1/agents",
        "/v1/agents/{name}",
        "/v1/anomalies",
        "/v1/anomalies/{id}",
        "/v1/models",
        "/v1/models/{agent}/{version}/activate",
        "/v1/models/{agent}/rollback",
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/cancel",
        "/v1/agents/{name}/enable",
        "/v1/agents/{name}/disable",
        "/v1/agents/{name}/reload",
        "/v1/config",
        "/v1/audit",
        "/v1/models/{agent}/{version}",
        "/v1/models/reload",
        "/v1/nodes",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the document");
    }
    for (path, item) in &paths {
        for (method, operation) in item.as_object().into_iter().flatten() {
            assert!(operation["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}: no responses");
        }
    }
    assert!(document.body["components"]["securitySchemes"]["bearer"].is_object());
    // /docs works offline: the page and Redoc come from this server.
    let docs = api.call("GET", "/docs", None, None)?;
    assert_eq!(docs.status, StatusCode::OK);
    let script = api.call("GET", "/docs/redoc.standalone.js", None, None)?;
    assert_eq!(script.status, StatusCode::OK);
    // /metrics names every tenant: a token of the deployment's tenant only.
    problem(&api.call("GET", "/metrics", None, None)?, StatusCode::UNAUTHORIZED, "unauthorized");
    problem(&api.get("/metrics", api.token("beta", Role::Admin))?, StatusCode::FORBIDDEN, "forbidden");
    problem(&api.get("/metrics", api.token("alpha", Role::Admin))?, StatusCode::FORBIDDEN, "forbidden");
    api.call("BREW", "/v1/agents", Some(api.token("alpha", Role::ReadOnly)), None)?;
    let metrics = api.get("/metrics", api.token(DEPLOYMENT, Role::ReadOnly))?;
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(text.contains("mcp_api_requests_total"), "{}", metrics.body);
    assert!(!text.contains("BREW") && text.contains("method=\"other\""), "made-up methods are one label: {text}");
    // The metrics address serves /metrics with no token, and nothing else.
    let (status, open) = api.metrics_address("/metrics")?;
    assert_eq!(status, StatusCode::OK);
    assert!(open.contains("mcp_runs_waiting"), "{open}");
    assert_eq!(api.metrics_address("/v1/agents")?.0, StatusCode::NOT_FOUND);
    let ready = api.call("GET", "/readyz", None, None)?;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    Ok(())
}

#[test]
fn agents_are_uploaded_per_tenant_enabled_disabled_and_deleted() -> anyhow::Result<()> {
    // A deployment with the bundled log types only, until proxy's is added.
    let mut schemas = std::path::PathBuf::new();
    let api = api_configured(SharedCache::open(None, "", Default::default())?, &["alpha", "beta"], |config, _| {
        schemas = config.data_dir.join("schemas");
        std::fs::remove_file(schemas.join("proxy.yaml"))?;
        Ok(())
    })?;
    let alpha = api.token("alpha", Role::TenantAdmin);
    let beta = api.token("beta", Role::TenantAdmin);
    let wasm = std::fs::read(mcp_fixtures::PROXY)?;
    let upload = |token: &str, bytes: Vec<u8>| {
        api.send("POST", "/v1/agents", Some(token), Some("application/wasm"), Some(bytes))
    };

    problem(&upload(api.token("alpha", Role::ReadOnly), wasm.clone())?, StatusCode::FORBIDDEN, "forbidden");
    problem(&upload(alpha, b"not a component".to_vec())?, StatusCode::UNPROCESSABLE_ENTITY, "invalid_component");
    problem(&upload(alpha, vec![0u8; 5 << 20])?, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    problem(&upload(alpha, Vec::new())?, StatusCode::BAD_REQUEST, "bad_request");
    let bundled = std::fs::read(Path::new(mcp_fixtures::AGENTS_DIR).join("dns.wasm"))?;
    problem(&upload(alpha, bundled)?, StatusCode::CONFLICT, "conflict");

    // An agent of a log type no schema file describes would run over nothing.
    let unknown = upload(alpha, wasm.clone())?;
    problem(&unknown, StatusCode::UNPROCESSABLE_ENTITY, "unknown_log_type");
    assert!(unknown.body["detail"].as_str().unwrap_or_default().contains("'proxy'"), "{}", unknown.body);
    std::fs::write(schemas.join("proxy.yaml"), PROXY_SCHEMA)?;
    let created = upload(alpha, wasm)?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!((created.body["name"].as_str(), created.body["bundled"].as_bool()), (Some("proxy"), Some(false)));
    assert_eq!(created.body["origin"], "upload", "{}", created.body);
    // Only what the binary ships is bundled.
    let shipped = api.get("/v1/agents/dns", alpha)?;
    assert_eq!((shipped.body["bundled"].as_bool(), shipped.body["origin"].as_str()), (Some(true), Some("bundled")));
    let names = |token: &str| -> anyhow::Result<Vec<String>> {
        let listed = api.get("/v1/agents", token)?;
        Ok(listed
            .body
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["name"].as_str().map(str::to_string))
            .collect())
    };
    assert!(names(alpha)?.contains(&"proxy".to_string()));
    assert!(!names(beta)?.contains(&"proxy".to_string()), "beta does not see alpha's upload");
    problem(&api.get("/v1/agents/proxy", beta)?, StatusCode::NOT_FOUND, "not_found");
    for action in ["enable", "disable", "reload"] {
        let uri = format!("/v1/agents/proxy/{action}");
        problem(&api.call("POST", &uri, Some(beta), None)?, StatusCode::NOT_FOUND, "not_found");
    }
    problem(&api.call("DELETE", "/v1/agents/proxy", Some(beta), None)?, StatusCode::NOT_FOUND, "not_found");

    let disabled = api.call("POST", "/v1/agents/firewall/disable", Some(alpha), None)?;
    assert_eq!(disabled.body["enabled"], false, "{}", disabled.body);
    let run = api.call("POST", "/v1/runs", Some(alpha), Some(r#"{"agent":"firewall"}"#))?;
    problem(&run, StatusCode::CONFLICT, "conflict");
    let beta_view = api.get("/v1/agents/firewall", beta)?;
    assert_eq!(beta_view.body["enabled"], true, "disabling is per tenant");
    assert_eq!(api.call("POST", "/v1/agents/firewall/enable", Some(alpha), None)?.body["enabled"], true);

    let reloaded = api.call("POST", "/v1/agents/proxy/reload", Some(alpha), None)?;
    assert_eq!(reloaded.status, StatusCode::OK, "{}", reloaded.body);
    problem(&api.call("POST", "/v1/agents/dns/reload", Some(alpha), None)?, StatusCode::CONFLICT, "conflict");
    problem(&api.call("DELETE", "/v1/agents/dns", Some(alpha), None)?, StatusCode::CONFLICT, "conflict");
    assert_eq!(api.call("DELETE", "/v1/agents/proxy", Some(alpha), None)?.status, StatusCode::NO_CONTENT);
    problem(&api.get("/v1/agents/proxy", alpha)?, StatusCode::NOT_FOUND, "not_found");
    Ok(())
}

#[test]
fn settings_change_live_validated_and_audited() -> anyhow::Result<()> {
    let api = api()?;
    let alpha = api.token("alpha", Role::TenantAdmin);
    let change = |body: &str| api.call("PATCH", "/v1/config", Some(alpha), Some(body));
    problem(&change(r#"{"batch_size":0}"#)?, StatusCode::BAD_REQUEST, "bad_request");
    problem(&change(r#"{"batch_size":99}"#)?, StatusCode::BAD_REQUEST, "bad_request");
    let invalid = StatusCode::UNPROCESSABLE_ENTITY;
    problem(&change(r#"{"agents":{"dns":{"detection":"magic"}}}"#)?, invalid, "invalid_setting");
    problem(&change(r#"{"agents":{"dns":{"model_threshold":"2"}}}"#)?, invalid, "invalid_setting");
    problem(&change(r#"{"agents":{"nobody":{"x":"1"}}}"#)?, invalid, "invalid_setting");
    problem(&change(r#"{"colour":"blue"}"#)?, StatusCode::BAD_REQUEST, "bad_request");
    let read_only = api.call("PATCH", "/v1/config", Some(api.token("alpha", Role::ReadOnly)), Some("{}"))?;
    problem(&read_only, StatusCode::FORBIDDEN, "forbidden");
    let changed = change(r#"{"batch_size":250,"agents":{"dns":{"detection":"rules"}}}"#)?;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["batch_size"], 250);
    assert_eq!(changed.body["agents"]["dns"]["detection"], "rules");
    let beta = api.get("/v1/config", api.token("beta", Role::ReadOnly))?;
    assert_eq!(beta.body["batch_size"], 1000, "another tenant's settings are its own");
    let audit = api.get("/v1/audit", alpha)?;
    let entries = audit.body["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "one entry per change request: {}", audit.body);
    let detail: serde_json::Value = serde_json::from_str(entries[0]["detail"].as_str().unwrap_or_default())?;
    assert_eq!(detail, serde_json::json!({"batch_size": "250", "agents.dns.detection": "rules"}));
    assert_eq!(api.get("/v1/audit", api.token("beta", Role::TenantAdmin))?.body["items"], serde_json::json!([]));

    // Numbers and booleans are settings too, read as text.
    let typed = change(r#"{"agents":{"dns":{"model_threshold":0.25,"custom":true}}}"#)?;
    assert_eq!(typed.body["agents"]["dns"]["model_threshold"], "0.25", "{}", typed.body);
    assert_eq!(typed.body["agents"]["dns"]["custom"], "true", "{}", typed.body);
    change(r#"{"agents":{"dns":{"model_threshold":null,"custom":null}}}"#)?;
    // Null deletes a setting; a body that is not an object is refused.
    let deleted = change(r#"{"agents":{"dns":{"detection":null}}}"#)?;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(deleted.body["agents"]["dns"].is_null(), "{}", deleted.body);
    problem(&change("[null,null]")?, StatusCode::BAD_REQUEST, "bad_request");
    // One request names at most 100 settings; a tenant keeps at most 1,000.
    let many = |from: usize, count: usize| {
        let keys: serde_json::Map<String, serde_json::Value> =
            (from..from + count).map(|n| (format!("k{n}"), serde_json::json!("v"))).collect();
        serde_json::json!({ "agents": { "dns": keys } }).to_string()
    };
    problem(&change(&many(0, 101))?, StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting");
    // batch_size is one of them.
    for chunk in 0..10 {
        assert_eq!(change(&many(chunk * 100, if chunk == 9 { 99 } else { 100 }))?.status, StatusCode::OK);
    }
    let over = change(&many(999, 1))?;
    problem(&over, StatusCode::UNPROCESSABLE_ENTITY, "invalid_setting");
    assert!(over.body["detail"].as_str().unwrap_or_default().contains("at most 1000"), "{}", over.body);
    // The trail pages: eleven changes so far, five at a time.
    let first = api.get("/v1/audit?limit=5", alpha)?;
    assert_eq!(first.body["items"].as_array().map(Vec::len), Some(5));
    let cursor = first.body["next_cursor"].as_str().unwrap_or_default().to_string();
    let second = api.get(&format!("/v1/audit?limit=5&cursor={cursor}"), alpha)?;
    let (newest_second, oldest_first) = (&second.body["items"][0]["id"], &first.body["items"][4]["id"]);
    assert!(newest_second.as_i64() < oldest_first.as_i64(), "{} then {}", first.body, second.body);
    for bad in ["?limit=0", "?limit=1001", "?cursor=abc", "?colour=red"] {
        problem(&api.get(&format!("/v1/audit{bad}"), alpha)?, StatusCode::BAD_REQUEST, "bad_request");
    }
    Ok(())
}

/// A model upload's body: parts `model` and `metadata`, boundary XBOUNDARY.
pub(crate) fn model_parts(model: &[u8], metadata: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, bytes) in [("model", model), ("metadata", metadata.as_bytes())] {
        body.extend_from_slice(
            format!("--XBOUNDARY\r\ncontent-disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--XBOUNDARY--\r\n");
    body
}

#[test]
fn models_are_uploaded_as_multipart_and_checked() -> anyhow::Result<()> {
    let api = api()?;
    let admin = api.token(DEPLOYMENT, Role::DeploymentAdmin);
    let shipped = Path::new(mcp_fixtures::BUNDLED_MODELS).join("dns/2");
    let onnx = std::fs::read(shipped.join("model.onnx"))?;
    let mut metadata: Value = serde_json::from_str(&std::fs::read_to_string(shipped.join("metadata.json"))?)?;
    metadata["version"] = "3".into();
    let multipart = model_parts;
    let post = |token: &str, body: Vec<u8>| {
        api.send("POST", "/v1/models/dns/3", Some(token), Some("multipart/form-data; boundary=XBOUNDARY"), Some(body))
    };
    let text = metadata.to_string();
    problem(&post(api.token("alpha", Role::TenantAdmin), multipart(&onnx, &text))?, StatusCode::FORBIDDEN, "forbidden");
    problem(&post(admin, multipart(b"garbage", &text))?, StatusCode::UNPROCESSABLE_ENTITY, "model_refused");
    // Models serve bundled agents; hidden version names are refused.
    let to = |uri: &str| {
        api.send(
            "POST",
            uri,
            Some(admin),
            Some("multipart/form-data; boundary=XBOUNDARY"),
            Some(multipart(&onnx, &text)),
        )
    };
    problem(&to("/v1/models/nosuchagent/2")?, StatusCode::NOT_FOUND, "not_found");
    problem(&to("/v1/models/dns/.hidden")?, StatusCode::BAD_REQUEST, "bad_request");
    let created = post(admin, multipart(&onnx, &text))?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["family"], "logistic-regression");
    let reload = api.call("POST", "/v1/models/reload", Some(admin), None)?;
    assert_eq!(reload.status, StatusCode::OK, "{}", reload.body);
    let activated = api.call("POST", "/v1/models/dns/3/activate", Some(admin), None)?;
    assert_eq!(activated.status, StatusCode::OK, "{}", activated.body);
    assert_eq!(api.call("POST", "/v1/models/dns/rollback", Some(admin), None)?.body["version"], "2");
    Ok(())
}

#[test]
fn readiness_names_what_is_not_reachable() -> anyhow::Result<()> {
    // Nothing listens on port 1: the job store is down, the rest is up.
    let retry = mcp_storage::source::RetryPolicy { max_attempts: 1, base_delay_ms: 1, max_delay_ms: 1 };
    let url = "redis://:hunter2-secret@127.0.0.1:1/0";
    let api = api_with_cache(SharedCache::open(Some(url), "mcp-test:", retry)?)?;
    let ready = api.call("GET", "/readyz", None, None)?;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.body);
    // Open to anyone: it names what is down, never how to reach it.
    assert!(!ready.body.to_string().contains("hunter2") && !ready.body.to_string().contains(":1/0"), "{}", ready.body);
    let failing: Vec<&str> = ready.body["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["ok"] == false)
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(failing, ["cache"]);
    assert_eq!(api.call("GET", "/healthz", None, None)?.status, StatusCode::OK, "alive all the same");
    let runs = api.get("/v1/runs", api.token("alpha", Role::ReadOnly))?;
    problem(&runs, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(!runs.body.to_string().contains("hunter2"), "{}", runs.body);
    let started =
        api.call("POST", "/v1/runs", Some(api.token("alpha", Role::TenantAdmin)), Some(r#"{"agent":"dns"}"#))?;
    assert!(!started.body.to_string().contains("hunter2"), "{}", started.body);
    Ok(())
}

#[test]
fn a_shadow_run_compares_a_candidate_over_the_tenants_own_history_and_stores_nothing() -> anyhow::Result<()> {
    let api = api()?;
    let (alpha, beta) = (api.token("alpha", Role::TenantAdmin), api.token("beta", Role::TenantAdmin));
    let firewall = std::fs::read(Path::new(mcp_fixtures::AGENTS_DIR).join("firewall.wasm"))?;
    let stored_before = api.get("/v1/anomalies?agent=firewall&limit=1000", alpha)?.body["items"].clone();
    let shadow = |token: &str, agent: &str, query: &str, bytes: Vec<u8>| {
        api.send(
            "POST",
            &format!("/v1/agents/{agent}/shadow{query}"),
            Some(token),
            Some("application/wasm"),
            Some(bytes),
        )
    };

    // The same build finds the same entries: no difference, over beta's
    // 3,000 rows alone.
    let same = shadow(beta, "firewall", "?examples=2", firewall.clone())?;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    let betas = mcp_synth::generate("firewall", 2, 3_000)?.len();
    assert_eq!(same.body["entries"].as_u64(), Some(betas as u64), "{}", same.body);
    assert_eq!(
        (same.body["only_candidate"].as_u64(), same.body["only_active"].as_u64()),
        (Some(0), Some(0)),
        "{}",
        same.body
    );
    assert!(same.body["both"].as_u64().is_some_and(|b| b > 0) && same.body["both"] == same.body["active"]["flagged"]);
    let bounded = shadow(alpha, "firewall", "?max_rows=500", firewall.clone())?;
    assert_eq!((bounded.body["entries"].as_u64(), bounded.body["truncated"].as_bool()), (Some(500), Some(true)));

    // Nothing stored, whatever the candidate found.
    let stored_after = api.get("/v1/anomalies?agent=firewall&limit=1000", alpha)?.body["items"].clone();
    assert_eq!(stored_before, stored_after);

    // What cannot be compared is refused, and named.
    let dns = std::fs::read(Path::new(mcp_fixtures::AGENTS_DIR).join("dns.wasm"))?;
    let other_type = shadow(alpha, "firewall", "", dns)?;
    problem(&other_type, StatusCode::UNPROCESSABLE_ENTITY, "invalid_component");
    assert!(other_type.body["detail"].as_str().unwrap_or_default().contains("reads 'dns' logs"), "{}", other_type.body);
    problem(
        &shadow(alpha, "firewall", "", b"not wasm".to_vec())?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_component",
    );
    problem(&shadow(alpha, "nosuch", "", firewall.clone())?, StatusCode::NOT_FOUND, "not_found");
    problem(&shadow(alpha, "firewall", "?max_rows=0", firewall.clone())?, StatusCode::BAD_REQUEST, "bad_request");
    problem(&shadow(alpha, "firewall", "?colour=red", firewall.clone())?, StatusCode::BAD_REQUEST, "bad_request");
    let read_only = shadow(api.token("alpha", Role::ReadOnly), "firewall", "", firewall)?;
    assert_eq!(read_only.status, StatusCode::FORBIDDEN, "{}", read_only.body);
    Ok(())
}

#[test]
fn a_shadow_candidate_gets_the_tenants_settings_and_models_and_its_faults_are_named() -> anyhow::Result<()> {
    let api = api_configured(SharedCache::open(None, "", Default::default())?, &["alpha"], |config, source| {
        let secret = toml::Value::String("operator-only".into());
        config.agents.insert("wifi".into(), [("secret".to_string(), secret)].into_iter().collect());
        source.append("alpha", "wifi", &mcp_synth::to_rows(&mcp_synth::generate("wifi", 1, 200)?))?;
        Ok(())
    })?;
    let alpha = api.token("alpha", Role::TenantAdmin);
    let hostile = std::fs::read(mcp_fixtures::HOSTILE)?;
    let shadow_as = |mode: &str| -> anyhow::Result<Reply> {
        let body = format!(r#"{{"agents":{{"wifi":{{"mode":"{mode}"}}}}}}"#);
        let set = api.call("PATCH", "/v1/config", Some(alpha), Some(&body))?;
        assert_eq!(set.status, StatusCode::OK, "{}", set.body);
        api.send("POST", "/v1/agents/wifi/shadow", Some(alpha), Some("application/wasm"), Some(hostile.clone()))
    };
    // The candidate is the tenant's code: the operator's settings for the
    // bundled agent and the deployment's model stay out of its reach.
    let seen = shadow_as("settings-seen")?;
    problem(&seen, StatusCode::UNPROCESSABLE_ENTITY, "agent_fault");
    let detail = seen.body["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("the candidate (hostile) failed") && detail.contains("hidden value absent"), "{detail}");
    let model = shadow_as("other-model")?;
    problem(&model, StatusCode::UNPROCESSABLE_ENTITY, "agent_fault");
    assert!(!model.body["detail"].as_str().unwrap_or_default().contains("loaded wifi"), "{}", model.body);
    // (Not `problem`: its detail names the agent's panic, which that helper
    // takes for the server's.)
    let panicked = shadow_as("panic")?;
    assert_eq!(
        (panicked.status, panicked.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("agent_fault"))
    );
    // A range that selects nothing is a mistake, not an empty answer.
    let wifi = std::fs::read(Path::new(mcp_fixtures::AGENTS_DIR).join("wifi.wasm"))?;
    let reversed = api.send(
        "POST",
        "/v1/agents/wifi/shadow?since=2000&until=1000",
        Some(alpha),
        Some("application/wasm"),
        Some(wifi),
    )?;
    problem(&reversed, StatusCode::UNPROCESSABLE_ENTITY, "invalid_filter");
    Ok(())
}
