//! Secrets kept out of messages: every error, log line and response that
//! names a database or Redis URL names it through [`url`].

/// `url` with its password replaced by `***` (`postgres://mcp:***@db/logs`),
/// including a `password=` query parameter.
pub fn url(url: &str) -> String {
    let mut out = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].find(':') {
            Some(colon) => format!("{}:***{}", &url[..scheme + 3 + colon], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    };
    if let Some(query) = out.find('?') {
        let (base, params) = out.split_at(query + 1);
        let params: Vec<String> = params
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => param.to_string(),
            })
            .collect();
        out = format!("{base}{}", params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_show() {
        assert_eq!(super::url("redis://:s3cret@cache:6379/0"), "redis://:***@cache:6379/0");
        assert_eq!(super::url("postgres://mcp:p@ss@db/logs"), "postgres://mcp:***@db/logs");
        assert_eq!(super::url("postgres://db/logs?user=mcp&password=x"), "postgres://db/logs?user=mcp&password=***");
        assert_eq!(super::url("redis://cache:6379"), "redis://cache:6379");
    }
}
