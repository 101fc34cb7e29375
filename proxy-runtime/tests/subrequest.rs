//! Subrequests from inside a session: an auth phase asks an auth service through the
//! proxy's own pipeline before forwarding.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proxy_runtime::prelude::*;
use proxy_runtime::server::{ConnectionTracker, ListenAddr, Listener, ShutdownWatch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An origin answering `status` with `body` to every request, counting them.
async fn origin(status: u16, body: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        h.fetch_add(1, Ordering::SeqCst);
                        // The auth origin says who asked: the subrequest carries the
                        // client's credentials.
                        let who = head
                            .lines()
                            .find_map(|l| l.strip_prefix("authorization: "))
                            .unwrap_or("-");
                        let text = format!("{body} {who}");
                        let resp = format!(
                            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n{text}",
                            text.len()
                        );
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, hits)
}

/// `/auth` goes to the auth service, everything else to the app — after the auth
/// service said yes.
struct Gate {
    app: SocketAddr,
    auth: SocketAddr,
}

impl ProxyHttp for Gate {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if session.is_subrequest() {
            return Ok(false);
        }
        let mut check = RequestHeader::build(Method::GET, "/auth", Version::HTTP_11)?;
        check.insert_header("host", "auth.internal")?;
        if let Some(token) = session.req_header().header("authorization").cloned() {
            check.insert_header("authorization", token)?;
        }
        let answer = session.subrequest(check, Vec::new(), 4096).await?;
        let status = answer.header.as_ref().map_or(502, |h| h.status.as_u16());
        let reply = match status {
            200 => return Ok(false),
            401 | 403 => status,
            _ => 503, // the auth service failed: say the service is unavailable
        };
        session.respond_error(reply).await?;
        Ok(true)
    }

    async fn upstream_peer(&self, session: &mut Session, _c: &mut ()) -> Result<HttpPeer> {
        let to = if session.req_header().path() == "/auth" {
            self.auth
        } else {
            self.app
        };
        let mut peer = HttpPeer::new(to, false, "")?;
        peer.options.connect_timeout = Duration::from_secs(2);
        Ok(peer)
    }
}

async fn proxy(app: SocketAddr, auth: SocketAddr) -> SocketAddr {
    let service = HttpProxyServiceBuilder::new(Gate { app, auth })
        .max_retries(0)
        .build();
    let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".into()))
        .await
        .unwrap();
    let addr = *listener.local_addr().unwrap().as_inet().unwrap();
    tokio::spawn(HttpProxyService::serve_listener(
        service.proxy().clone(),
        listener,
        ShutdownWatch::never(),
        Arc::new(ConnectionTracker::default()),
    ));
    addr
}

async fn get(addr: SocketAddr, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: {t}\r\n"));
    s.write_all(
        format!("GET /app HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("an answer within 10 s: a dead auth service must not hang the request")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

#[tokio::test]
async fn an_allowed_request_reaches_the_app() {
    let (app, app_hits) = origin(200, "app").await;
    let (auth, auth_hits) = origin(200, "ok").await;
    let addr = proxy(app, auth).await;
    let (status, body) = get(addr, Some("Bearer good")).await;
    assert_eq!((status, body.as_str()), (200, "app Bearer good"));
    assert_eq!(auth_hits.load(Ordering::SeqCst), 1);
    assert_eq!(app_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_401_from_the_auth_service_stops_the_request() {
    let (app, app_hits) = origin(200, "app").await;
    let (auth, auth_hits) = origin(401, "no").await;
    let addr = proxy(app, auth).await;
    let (status, _) = get(addr, Some("Bearer bad")).await;
    assert_eq!(status, 401);
    assert_eq!(auth_hits.load(Ordering::SeqCst), 1);
    assert_eq!(app_hits.load(Ordering::SeqCst), 0, "the app never saw it");
}

#[tokio::test]
async fn a_dead_auth_service_gives_503_without_hanging() {
    let (app, app_hits) = origin(200, "app").await;
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let addr = proxy(app, dead).await;
    let (status, _) = get(addr, None).await;
    assert_eq!(status, 503);
    assert_eq!(app_hits.load(Ordering::SeqCst), 0);
}
