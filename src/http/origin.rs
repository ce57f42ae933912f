//! Which web pages may open the signaling socket. A browser always sends
//! `Origin`; a page on another site gets refused unless its origin is in
//! `server.allowed_origins`. The server's own pages (Origin matching the
//! Host the request was sent to) are always allowed. Clients that send no
//! Origin are not browsers and cannot be abused by a page, so they pass.

/// True if a WebSocket request from `origin` to `host` may proceed.
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let own_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((own_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pages_listed_origins_and_non_browsers_pass() {
        let allowed = vec!["https://school.example.org".to_string()];
        let host = Some("127.0.0.1:8080");
        assert!(origin_allowed(None, host, &allowed));
        assert!(origin_allowed(
            Some("http://127.0.0.1:8080"),
            host,
            &allowed
        ));
        assert!(origin_allowed(
            Some("https://school.example.org"),
            host,
            &allowed
        ));
        assert!(origin_allowed(
            Some("https://SCHOOL.example.org/"),
            host,
            &allowed
        ));
        assert!(!origin_allowed(
            Some("https://evil.example.com"),
            host,
            &allowed
        ));
        assert!(!origin_allowed(
            Some("http://127.0.0.1:9999"),
            host,
            &allowed
        ));
        assert!(!origin_allowed(Some("null"), host, &allowed));
        assert!(!origin_allowed(Some("http://127.0.0.1:8080"), None, &[]));
    }
}
