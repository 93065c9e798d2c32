//! Small readers of the incoming request shared by the circuit handlers: headers, the host and
//! port the client addressed, and the clock the freshness checks use.

use actix_web::HttpRequest;

/// Requests older (or further in the future) than this are stale, milliseconds.
pub const FRESHNESS_MS: i64 = 5 * 60 * 1000;

/// A header as text (absent or not visible ASCII: `None`).
pub fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The `Host` the client addressed (the URI authority for HTTP/2).
pub fn host(req: &HttpRequest) -> Option<String> {
    header(req, "host")
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
}

/// Splits `host[:port]` (IPv6 in brackets); the port is 443 when absent.
pub fn host_and_port(host: &str) -> Option<(String, u16)> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        (format!("[{inside}]"), after.strip_prefix(':'))
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name.to_owned(), Some(port)),
            None => (host.to_owned(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 443,
    };
    Some((name.to_ascii_lowercase(), port))
}

/// The path and query exactly as sent.
pub fn path_and_query(req: &HttpRequest) -> String {
    req.uri()
        .path_and_query()
        .map_or_else(|| req.path().to_owned(), |pq| pq.as_str().to_owned())
}

/// Now, milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Now, seconds since the epoch.
pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Whether a timestamp (ms) is within [`FRESHNESS_MS`] of now, either side.
pub fn fresh_ms(ts_ms: i64) -> bool {
    now_ms().abs_diff(ts_ms) <= FRESHNESS_MS.unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_split_with_the_default_port() {
        assert_eq!(
            host_and_port("Api.Example.com"),
            Some(("api.example.com".into(), 443))
        );
        assert_eq!(
            host_and_port("127.0.0.1:8543"),
            Some(("127.0.0.1".into(), 8543))
        );
        assert_eq!(host_and_port("[::1]:9"), Some(("[::1]".into(), 9)));
        assert_eq!(host_and_port("h:x"), None);
    }

    #[test]
    fn freshness_is_five_minutes_either_side() {
        let now = now_ms();
        assert!(fresh_ms(now - 60_000));
        assert!(fresh_ms(now + 60_000));
        assert!(!fresh_ms(now - 6 * 60_000));
        assert!(!fresh_ms(now + 6 * 60_000));
    }
}
