//! HTTP/2 request fields on their way to an origin (RFC 9113 §8.2–8.3): what the `h2`
//! crate lets through but the proxy must reject (the stream is reset with
//! `PROTOCOL_ERROR` and nothing reaches the origin), what it must rewrite for HTTP/1.1
//! origins (one `Host` that is `:authority`, cookies joined, one `Content-Length`),
//! interim (1xx) responses from an HTTP/2 origin relayed to the client, and a 204 that
//! ends with its HEADERS frame.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use proxy_runtime::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy to one origin.
struct Fixed(HttpPeer);

impl ProxyHttp for Fixed {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<HttpPeer> {
        Ok(self.0.clone())
    }
}

/// An HTTP/1.1 origin that records each request head (as text) and answers `200 ok`.
async fn recording_origin() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                    buf.drain(..end + 4);
                    // Bodies here are small and sent with a length: skip them.
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    while buf.len() < len {
                        let n = sock.read(&mut chunk).await.unwrap();
                        assert!(n > 0);
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    buf.drain(..len);
                    seen.lock().unwrap().push(head);
                    if sock
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, heads)
}

/// An h2c client connection to `addr`.
async fn h2_client(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let sock = TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(sock).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Send `req` (with `body`, if any) and return the status, or the reset's reason.
async fn exchange(
    client: &mut h2::client::SendRequest<Bytes>,
    req: http::Request<()>,
    body: Option<&'static [u8]>,
) -> std::result::Result<u16, h2::Reason> {
    let mut client = client.clone().ready().await.unwrap();
    let (response, mut send) = client.send_request(req, body.is_none()).unwrap();
    if let Some(b) = body {
        send.send_data(Bytes::from_static(b), true).unwrap();
    }
    let outcome = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("no answer in time");
    match outcome {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(e.reason().expect("a stream reset")),
    }
}

async fn setup() -> (
    h2::client::SendRequest<Bytes>,
    Arc<Mutex<Vec<String>>>,
    ProxyHandle<Fixed>,
) {
    let (origin, heads) = recording_origin().await;
    let (addr, proxy) = start_proxy(Fixed(HttpPeer::new(origin, false, "").unwrap()), |b| b).await;
    (h2_client(addr).await, heads, proxy)
}

fn get(authority: &str) -> http::request::Builder {
    http::Request::get(format!("http://{authority}/x"))
}

#[tokio::test]
async fn malformed_fields_reset_the_stream_and_reach_no_origin() {
    let (mut client, heads, _proxy) = setup().await;
    let cases: Vec<(&str, http::Request<()>)> = vec![
        (
            "Host naming another target than :authority",
            get("a.test").header("host", "b.test").body(()).unwrap(),
        ),
        (
            "userinfo in :authority",
            get("user@a.test").body(()).unwrap(),
        ),
        (
            "a value with leading whitespace",
            get("a.test").header("x-a", " padded").body(()).unwrap(),
        ),
        (
            "a value with trailing whitespace",
            get("a.test").header("x-a", "padded\t").body(()).unwrap(),
        ),
    ];
    for (what, req) in cases {
        let got = exchange(&mut client, req, None).await;
        assert_eq!(got, Err(h2::Reason::PROTOCOL_ERROR), "{what}");
    }
    // CONNECT is refused as over HTTP/1: no tunnels from a reverse proxy.
    let connect = http::Request::builder()
        .method("CONNECT")
        .uri("a.test:443")
        .body(())
        .unwrap();
    assert_eq!(exchange(&mut client, connect, None).await, Ok(405));
    // The connection is still fine, and only the valid request reached the origin.
    let ok = get("a.test").body(()).unwrap();
    assert_eq!(exchange(&mut client, ok, None).await, Ok(200));
    assert_eq!(
        heads.lock().unwrap().len(),
        1,
        "{:?}",
        heads.lock().unwrap()
    );
}

#[tokio::test]
async fn an_http1_origin_gets_one_host_one_cookie_and_one_length() {
    let (mut client, heads, _proxy) = setup().await;
    let req = http::Request::post("http://a.test/x")
        // The same target in another case: allowed, and Host is :authority.
        .header("host", "A.TEST")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("cookie", "c=3")
        .header("content-length", "3")
        .header("content-length", "3")
        .body(())
        .unwrap();
    assert_eq!(exchange(&mut client, req, Some(b"abc")).await, Ok(200));
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    let lines: Vec<&str> = head.lines().collect();
    let count = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("host:"), 1, "{head}");
    assert!(lines.contains(&"host: a.test"), "{head}");
    assert_eq!(count("cookie:"), 1, "{head}");
    assert!(lines.contains(&"cookie: a=1; b=2; c=3"), "{head}");
    assert_eq!(count("content-length:"), 1, "{head}");
    assert!(lines.contains(&"content-length: 3"), "{head}");
}

#[tokio::test]
async fn interim_responses_from_an_h2_origin_reach_an_http1_client() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(sock).await.unwrap();
        let (_req, mut respond) = conn.accept().await.unwrap().unwrap();
        let driver = tokio::spawn(async move { while conn.accept().await.is_some() {} });
        let hints = http::Response::builder()
            .status(103)
            .header("link", "</style.css>; rel=preload")
            .body(())
            .unwrap();
        respond.send_informational(hints).unwrap();
        let done = http::Response::builder()
            .status(200)
            .header("content-length", "2")
            .body(())
            .unwrap();
        let mut send = respond.send_response(done, false).unwrap();
        send.send_data(Bytes::from_static(b"ok"), true).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        driver.abort();
    });
    let mut peer = HttpPeer::new(origin, false, "").unwrap();
    peer.options.h2 = true;
    let (addr, _proxy) = start_proxy(Fixed(peer), |b| b).await;
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !got.ends_with(b"ok") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("no complete response in time");
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 103 "), "{text}");
    assert!(text.contains("link: </style.css>; rel=preload"), "{text}");
    assert!(text.contains("http/1.1 200 ok"), "{text}");
}

#[tokio::test]
async fn a_204_ends_on_its_headers_frame_without_content_length() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await.unwrap();
        sock.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        let _ = sock.read(&mut buf).await;
    });
    let (addr, _proxy) = start_proxy(Fixed(HttpPeer::new(origin, false, "").unwrap()), |b| b).await;
    let mut client = h2_client(addr).await;
    let (response, _) = client
        .send_request(get("a.test").body(()).unwrap(), true)
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.headers().get("content-length").is_none());
    assert!(
        response.body().is_end_stream(),
        "the stream must end with the HEADERS frame"
    );
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_its_idle_timeout() {
    let (origin, _heads) = recording_origin().await;
    let mut opts = proxy_runtime::proxy::ProxyOptions::default();
    opts.h2.idle_timeout = Duration::from_millis(200);
    let (addr, _proxy) = start_proxy(Fixed(HttpPeer::new(origin, false, "").unwrap()), |b| {
        b.proxy_options(opts)
    })
    .await;
    let sock = TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(sock).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let (response, _) = client
        .send_request(get("a.test").body(()).unwrap(), true)
        .unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    // A stream refused at once (malformed) does not count as activity either.
    let mut client = client.ready().await.unwrap();
    let bad = get("a.test").header("host", "b.test").body(()).unwrap();
    let (response, _) = client.send_request(bad, true).unwrap();
    assert!(response.await.is_err());
    // No stream open any more: after the idle timeout the proxy says GOAWAY and the
    // connection ends (the bound here is only a safety net).
    tokio::time::timeout(Duration::from_secs(20), conn)
        .await
        .expect("the idle connection was never closed")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_client_resetting_the_streams_it_opened_is_cut_off() {
    // An origin that takes requests and never answers: every stream stays in flight
    // until the client resets it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    let (addr, _proxy) = start_proxy(Fixed(HttpPeer::new(origin, false, "").unwrap()), |b| b).await;
    let sock = TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(sock).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client;
    let mut sent = 0;
    for i in 0..300 {
        let Ok(ready) = client.clone().ready().await else {
            break;
        };
        client = ready;
        let Ok((_response, mut stream)) =
            client.send_request(get("a.test").body(()).unwrap(), false)
        else {
            break;
        };
        sent += 1;
        // Wait until the proxy took the stream on (its request reached the origin),
        // then cancel it: a reset the h2 crate's own guard does not see.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while seen.load(std::sync::atomic::Ordering::SeqCst) <= i
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        stream.send_reset(h2::Reason::CANCEL);
    }
    let ended = tokio::time::timeout(Duration::from_secs(20), conn)
        .await
        .expect("the connection was never closed")
        .unwrap();
    let e = ended.expect_err("the connection ended cleanly");
    assert_eq!(e.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{e}");
    assert!(sent < 300, "all 300 streams were accepted");
}
