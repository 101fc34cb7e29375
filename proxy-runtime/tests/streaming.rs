//! Response bodies stream: a piece the origin sends reaches the client while the origin
//! still holds the rest back, for every pair of client side {HTTP/1.1, h2c} and origin
//! side {HTTP/1.1 chunked, h2c}. Each origin here sends `first`, then waits until the
//! test's client has received it before sending `second` and the end; a proxy that
//! kept the first piece back until more arrived (or until the end) would stall the
//! exchange, and the test fails naming the piece that never came.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use proxy_runtime::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How long a piece may take to arrive before it counts as held back (generous: the
/// proxy has nothing else to do, so it arrives at once unless it is held).
const PIECE_WAIT: Duration = Duration::from_secs(10);

/// The origin's protocol.
#[derive(Debug, Clone, Copy)]
enum Up {
    H1Chunked,
    H2c,
}

/// The client's protocol.
#[derive(Debug, Clone, Copy)]
enum Down {
    H1,
    H2c,
}

/// A proxy to one origin.
struct Fixed(HttpPeer);

impl ProxyHttp for Fixed {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<HttpPeer> {
        Ok(self.0.clone())
    }
}

/// An origin that answers one request with `first\n`, waits for `go`, then sends
/// `second\n` and ends the body.
async fn start_origin(up: Up, go: Arc<Notify>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        match up {
            Up::H1Chunked => h1_origin(sock, &go).await,
            Up::H2c => h2_origin(sock, &go).await,
        }
    });
    addr
}

async fn h1_origin(mut sock: TcpStream, go: &Notify) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(sock.read(&mut byte).await.unwrap(), 1, "request head cut");
        head.push(byte[0]);
    }
    sock.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n")
        .await
        .unwrap();
    go.notified().await;
    sock.write_all(b"7\r\nsecond\n\r\n0\r\n\r\n").await.unwrap();
    // Keep the connection open until the proxy is done with it.
    let _ = sock.read(&mut byte).await;
}

async fn h2_origin(sock: TcpStream, go: &Notify) {
    let mut conn = h2::server::handshake(sock).await.unwrap();
    let (_req, mut respond) = conn.accept().await.unwrap().unwrap();
    // The connection must be polled for frames to move.
    let driver = tokio::spawn(async move { while conn.accept().await.is_some() {} });
    let response = http::Response::builder().status(200).body(()).unwrap();
    let mut send = respond.send_response(response, false).unwrap();
    send.send_data(Bytes::from_static(b"first\n"), false)
        .unwrap();
    go.notified().await;
    send.send_data(Bytes::from_static(b"second\n"), true)
        .unwrap();
    // Let the frames go out before the connection is dropped.
    tokio::time::sleep(Duration::from_millis(200)).await;
    driver.abort();
}

/// Wait for `what`, failing with a clear message if it never comes.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PIECE_WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} never reached the client: the proxy held it back"))
}

/// The client's side: the first piece must arrive before the origin is let go on.
async fn h1_client(addr: SocketAddr, go: &Notify) {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    within("`first`", async {
        while !got.windows(6).any(|w| w == b"first\n") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "the proxy closed the connection: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    go.notify_one();
    within("`second` and the end", async {
        while !got.ends_with(b"0\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "the proxy closed the connection: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("second\n"), "{text}");
}

async fn h2_client(addr: SocketAddr, go: &Notify) {
    let sock = TcpStream::connect(addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(sock).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("http://test/stream").body(()).unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    let response = within("the response head", response).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut got = Vec::new();
    within("`first`", async {
        while !got.ends_with(b"first\n") {
            let data = body.data().await.expect("body ended early").unwrap();
            let _ = body.flow_control().release_capacity(data.len());
            got.extend_from_slice(&data);
        }
    })
    .await;
    go.notify_one();
    within("`second` and the end", async {
        while let Some(data) = body.data().await {
            let data = data.unwrap();
            let _ = body.flow_control().release_capacity(data.len());
            got.extend_from_slice(&data);
        }
    })
    .await;
    assert_eq!(got, b"first\nsecond\n");
}

async fn streams(up: Up, down: Down) {
    let go = Arc::new(Notify::new());
    let origin = start_origin(up, go.clone()).await;
    let mut peer = HttpPeer::new(origin, false, "").unwrap();
    peer.options.h2 = matches!(up, Up::H2c);
    let (addr, _proxy) = start_proxy(Fixed(peer), |b| b).await;
    match down {
        Down::H1 => h1_client(addr, &go).await,
        Down::H2c => h2_client(addr, &go).await,
    }
}

#[tokio::test]
async fn h1_client_h1_origin_streams() {
    streams(Up::H1Chunked, Down::H1).await;
}

#[tokio::test]
async fn h1_client_h2c_origin_streams() {
    streams(Up::H2c, Down::H1).await;
}

#[tokio::test]
async fn h2c_client_h1_origin_streams() {
    streams(Up::H1Chunked, Down::H2c).await;
}

#[tokio::test]
async fn h2c_client_h2c_origin_streams() {
    streams(Up::H2c, Down::H2c).await;
}
