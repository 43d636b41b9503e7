//! Tenants and tokens as resources through the API: tenant admins manage
//! their own tokens, the deployment's admin manages tenants, and a revoked
//! token or a disabled or deleted tenant stops working at once.

use axum::http::StatusCode;
use mcp_api::Role;
use serde_json::json;

use crate::api::{api_configured, problem};

#[test]
fn tenant_admins_list_create_and_revoke_their_own_tokens() -> anyhow::Result<()> {
    let api = api_configured(
        mcp_storage::jobstatus::SharedCache::open(None, "", Default::default())?,
        &["alpha", "beta"],
        |_, _| Ok(()),
    )?;
    let admin = api.token("beta", Role::TenantAdmin);
    let made = api.call("POST", "/v1/tokens", Some(admin), Some(r#"{"name":"ci reader","role":"read_only"}"#))?;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let (id, secret) = (made.body["id"].as_i64().unwrap_or(0), made.body["token"].as_str().unwrap_or("").to_string());
    assert!(secret.starts_with("mcp_") && secret.len() == 68, "{}", made.body);
    assert_eq!(api.get("/v1/agents", &secret)?.status, StatusCode::OK, "the new token works");
    let listed = api.get("/v1/tokens", admin)?;
    let mine = listed.body.as_array().cloned().unwrap_or_default();
    let entry = mine.iter().find(|t| t["id"] == id).cloned().unwrap_or_default();
    assert_eq!(
        (entry["name"].as_str(), entry["role"].as_str()),
        (Some("ci reader"), Some("read_only")),
        "{}",
        listed.body
    );
    assert!(entry["last_used_ms"].is_i64(), "last use recorded: {entry}");
    assert!(!listed.body.to_string().contains("mcp_"), "no secret is listed: {}", listed.body);

    // Read-only tokens cannot manage tokens; a tenant admin cannot mint admin.
    problem(&api.get("/v1/tokens", &secret)?, StatusCode::FORBIDDEN, "forbidden");
    let admin_token = api.call("POST", "/v1/tokens", Some(admin), Some(r#"{"name":"x","role":"admin"}"#))?;
    problem(&admin_token, StatusCode::FORBIDDEN, "forbidden");
    for bad in [r#"{"name":"","role":"read_only"}"#, r#"{"name":"x","role":"root"}"#, r#"{"name":"x"}"#] {
        problem(&api.call("POST", "/v1/tokens", Some(admin), Some(bad))?, StatusCode::BAD_REQUEST, "bad_request");
    }
    // Another tenant's token ids answer like missing ones.
    let other = api.token("alpha", Role::TenantAdmin);
    problem(&api.call("DELETE", &format!("/v1/tokens/{id}"), Some(other), None)?, StatusCode::NOT_FOUND, "not_found");
    // Revoked: refused at once.
    assert_eq!(api.call("DELETE", &format!("/v1/tokens/{id}"), Some(admin), None)?.status, StatusCode::NO_CONTENT);
    problem(&api.get("/v1/agents", &secret)?, StatusCode::UNAUTHORIZED, "unauthorized");
    let audit = api.get("/v1/audit", admin)?.body.to_string();
    assert!(audit.contains("token.create") && audit.contains("token.revoke"), "{audit}");
    Ok(())
}

#[test]
fn the_deployment_admin_manages_tenants_and_a_disabled_or_deleted_one_stops() -> anyhow::Result<()> {
    let api = api_configured(
        mcp_storage::jobstatus::SharedCache::open(None, "", Default::default())?,
        &["alpha", "beta"],
        |_, _| Ok(()),
    )?;
    let root = api.token(crate::api::DEPLOYMENT, Role::DeploymentAdmin);
    let other_admin = api.token("beta", Role::Admin);
    problem(&api.get("/v1/tenants", other_admin)?, StatusCode::FORBIDDEN, "forbidden");
    let made = api.call("POST", "/v1/tenants", Some(root), Some(r#"{"name":"gamma"}"#))?;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    // A new tenant comes with its first admin token, shown once.
    let gamma_admin = made.body["admin_token"]["token"].as_str().unwrap_or_default().to_string();
    assert_eq!(made.body["admin_token"]["role"], "admin", "{}", made.body);
    assert_eq!(api.get("/v1/tokens", &gamma_admin)?.status, StatusCode::OK);
    // A tenant_admin does not revoke its tenant's admin tokens.
    let made_ta = api.call("POST", "/v1/tokens", Some(&gamma_admin), Some(r#"{"name":"ta","role":"tenant_admin"}"#))?;
    let gamma_ta = made_ta.body["token"].as_str().unwrap_or_default().to_string();
    let admin_id = made.body["admin_token"]["id"].as_i64().unwrap_or_default();
    problem(
        &api.call("DELETE", &format!("/v1/tokens/{admin_id}"), Some(&gamma_ta), None)?,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_eq!(api.get("/v1/tokens", &gamma_admin)?.status, StatusCode::OK, "the admin token still works");
    problem(
        &api.call("POST", "/v1/tenants", Some(root), Some(r#"{"name":"gamma"}"#))?,
        StatusCode::CONFLICT,
        "conflict",
    );
    problem(
        &api.call("POST", "/v1/tenants", Some(root), Some(r#"{"name":"../x"}"#))?,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    let names: Vec<String> = api
        .get("/v1/tenants", root)?
        .body
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);

    // Beta disabled: every token of beta stops at once, alpha goes on.
    let beta = api.token("beta", Role::TenantAdmin);
    assert_eq!(api.get("/v1/agents", beta)?.status, StatusCode::OK);
    let disabled = api.call("POST", "/v1/tenants/beta/disable", Some(root), None)?;
    assert!(disabled.body["disabled_ms"].is_i64(), "{}", disabled.body);
    problem(&api.get("/v1/agents", beta)?, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(api.get("/v1/agents", api.token("alpha", Role::ReadOnly))?.status, StatusCode::OK);
    problem(&api.call("POST", "/v1/tenants/alpha/disable", Some(root), None)?, StatusCode::CONFLICT, "conflict");
    assert_eq!(api.call("POST", "/v1/tenants/beta/enable", Some(root), None)?.status, StatusCode::OK);
    assert_eq!(api.get("/v1/agents", beta)?.status, StatusCode::OK, "enabled again");

    // Beta deleted: its upload goes, its tokens answer 401 (not a 500 on the next upload).
    let proxy = std::fs::read(mcp_fixtures::PROXY)?;
    let uploaded = api.send("POST", "/v1/agents", Some(beta), Some("application/wasm"), Some(proxy.clone()))?;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    assert_eq!(api.call("DELETE", "/v1/tenants/beta", Some(root), None)?.status, StatusCode::NO_CONTENT);
    problem(
        &api.send("POST", "/v1/agents", Some(beta), Some("application/wasm"), Some(proxy))?,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    problem(&api.call("DELETE", "/v1/tenants/beta", Some(root), None)?, StatusCode::NOT_FOUND, "not_found");
    // A deleted tenant's logs, anomalies and trail stay under its name: the
    // name is not given again.
    let again = api.call("POST", "/v1/tenants", Some(root), Some(r#"{"name":"beta"}"#))?;
    problem(&again, StatusCode::CONFLICT, "conflict");
    assert!(again.body["detail"].as_str().unwrap_or_default().contains("was deleted"), "{}", again.body);
    problem(&api.call("DELETE", "/v1/tenants/alpha", Some(root), None)?, StatusCode::CONFLICT, "conflict");
    let audit = api.get("/v1/audit", root)?.body.to_string();
    assert!(!audit.contains("tenant.delete"), "beta's audit is beta's: {audit}");
    let listed = api.get("/v1/tenants", root)?.body;
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    assert_eq!(listed[1]["name"], json!("gamma"), "{listed}");
    Ok(())
}
