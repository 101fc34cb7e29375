//! Test support: origins that describe the requests they receive, a way to serve a
//! DSL-declared proxy on a loopback port, and a small HTTP/1.1 client.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proxy_runtime::prelude::*;
use proxy_runtime::proxy::HttpProxy;
use proxy_runtime::server::{ConnectionTracker, ListenAddr, Listener, ShutdownWatch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An origin that answers every request with a description of it:
/// `origin=NAME`, `method=...`, `path=...`, then `name: value` per header, then
/// `body=<n bytes>`.
pub struct Describe {
    pub name: &'static str,
}

impl ProxyHttp for Describe {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<HttpPeer> {
        Err(Error::internal("origin only"))
    }

    async fn request_filter(&self, session: &mut Session, _c: &mut ()) -> Result<bool> {
        let mut body = 0;
        while let Some(b) = session.read_request_body().await? {
            body += b.len();
        }
        let req = session.req_header();
        let mut text = format!(
            "origin={}\nmethod={}\npath={}\n",
            self.name,
            req.method,
            req.path_and_query()
        );
        for (n, v) in req.headers() {
            text.push_str(&format!("{n}: {}\n", v.to_str().unwrap_or("?")));
        }
        text.push_str(&format!("body={body}\n"));
        let mut resp = ResponseHeader::build(200, None)?;
        resp.insert_header("content-length", text.len().to_string())?;
        resp.insert_header("x-origin", self.name)?;
        resp.insert_header("x-remove-me", "1")?;
        session.write_response_header(resp, false).await?;
        session
            .write_response_body(Some(Bytes::from(text)), true)
            .await?;
        Ok(true)
    }
}

/// Serve a service built by a declaration's `service()` on a loopback port.
pub async fn serve_service<P: ProxyHttp>(service: HttpProxyService<P>) -> SocketAddr {
    serve(service.proxy().clone()).await
}

/// Serve `proxy` on a loopback port; returns the address.
pub async fn serve<P: ProxyHttp>(proxy: Arc<HttpProxy<P>>) -> SocketAddr {
    let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".into()))
        .await
        .unwrap();
    let addr = *listener.local_addr().unwrap().as_inet().unwrap();
    tokio::spawn(proxy_runtime::server::HttpProxyService::serve_listener(
        proxy,
        listener,
        ShutdownWatch::never(),
        Arc::new(ConnectionTracker::default()),
    ));
    addr
}

/// Start a describing origin; returns its address as `ip:port`.
pub async fn origin(name: &'static str) -> String {
    let proxy = HttpProxy::new(Describe { name }, Default::default(), Default::default());
    serve(Arc::new(proxy)).await.to_string()
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A `name=value` / `name: value` line of a describing origin's body.
    pub fn line(&self, prefix: &str) -> Option<&str> {
        self.body.lines().find_map(|l| l.strip_prefix(prefix))
    }
}

/// Send one request (raw head lines after the request line) and read the response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str("Host: test.local\r\n");
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("response within 10 s")
        .unwrap();
    parse_reply(&raw, method == "HEAD")
}

fn parse_reply(raw: &[u8], head_only: bool) -> Reply {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if head_only {
        String::new()
    } else if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.split(';').next().unwrap(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}
