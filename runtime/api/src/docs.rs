//! `/docs`: the OpenAPI document rendered by Redoc, served from the copy
//! vendored in `assets/redoc` (see its README): no CDN, no web fonts, so
//! the page works on a network with no way out.

use axum::http::header;
use axum::response::{Html, IntoResponse};

/// Redoc's standalone bundle, as published on npm (redoc@2.5.2).
pub const REDOC_JS: &[u8] = include_bytes!("../assets/redoc/redoc.standalone.js");

/// The page: the bundle and the document, both from this server.
const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MCP control plane</title>
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/docs/redoc.standalone.js"></script>
</body>
</html>
"#;

pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

pub async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC_JS,
    )
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    #[test]
    fn the_vendored_bundle_is_the_published_one() {
        // As recorded in assets/redoc/README.md: a changed file is a changed
        // dependency, to be reviewed like one.
        let digest = hex::encode(Sha256::digest(super::REDOC_JS));
        assert_eq!(digest, "6beb5aea23b71d09122ee35de8f326e38aec050e774f3bfba1f34e5c36608986");
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        assert!(!super::PAGE.contains("http"), "{}", super::PAGE);
    }
}
