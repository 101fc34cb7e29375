//! Shared pieces of the example binaries: logging set-up, an embedded demo origin, and
//! parsing of addresses and durations given on the command line.

use std::net::ToSocketAddrs;
use std::time::Duration;

use proxy_runtime::prelude::*;
use proxy_runtime::protocols::SocketAddress;

/// Log to stderr; `RUST_LOG` overrides the default level (`info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Resolve `host:port`, `ip:port` or `unix:/path` once, at start-up.
pub fn resolve_upstream(addr: &str) -> std::result::Result<SocketAddress, String> {
    if let Some(path) = addr.strip_prefix("unix:") {
        return Ok(SocketAddress::Unix(path.into()));
    }
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve upstream {addr:?}: {e}"))?
        .next()
        .map(SocketAddress::Inet)
        .ok_or_else(|| format!("upstream {addr:?} resolves to no address"))
}

/// Parse a duration in seconds (`"1.5"` → 1.5 s) for command-line flags.
pub fn parse_seconds(s: &str) -> std::result::Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a valid number of seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A tiny origin server: every request is answered locally by `request_filter` with a
/// text page describing the request. It is a [`ProxyHttp`] that never proxies, which
/// is all an origin for demos needs.
pub struct DemoOrigin {
    /// A name shown in the page (to tell several origins apart).
    pub name: String,
}

impl ProxyHttp for DemoOrigin {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<HttpPeer> {
        Err(Error::explain(
            ErrorKind::NoUpstream,
            ErrorSource::Internal,
            "the demo origin answers everything itself",
        ))
    }

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        // Read (and count) the request body so the connection can be reused.
        let mut body_len = 0usize;
        while let Some(chunk) = session.read_request_body().await? {
            body_len += chunk.len();
        }
        let req = session.req_header();
        let mut page = format!(
            "hello from {}\n{} {} {:?}\n",
            self.name,
            req.method,
            req.path_and_query(),
            req.version
        );
        for (name, value) in req.header_fields() {
            page.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        page.push_str(&format!("(request body: {body_len} bytes)\n"));
        let mut resp = ResponseHeader::build(200, Some(3))?;
        resp.insert_header("Content-Type", "text/plain; charset=utf-8")?;
        resp.insert_header("Content-Length", page.len().to_string())?;
        resp.insert_header("X-Origin", self.name.clone())?;
        let head_only = req.method == Method::HEAD;
        session.write_response_header(resp, head_only).await?;
        if !head_only {
            session
                .write_response_body(Some(Bytes::from(page)), true)
                .await?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_seconds("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("x").is_err());
    }

    #[test]
    fn upstreams_resolve() {
        assert_eq!(
            resolve_upstream("127.0.0.1:80").unwrap().to_string(),
            "127.0.0.1:80"
        );
        assert_eq!(
            resolve_upstream("unix:/tmp/x").unwrap().to_string(),
            "unix:/tmp/x"
        );
        assert!(resolve_upstream("no-port").is_err());
    }
}
