//! Bodies stream both ways, for every pair of client side {HTTP/1.1, h2c} and origin
//! side {HTTP/1.1, h2c}:
//!
//! - downloads (and from a custom transport, an in-process handler, too): each origin
//!   here sends `first`, then waits until the test's client has received it before
//!   sending `second` and the end;
//! - uploads: each client sends `first` as the start of a body of unknown length, then
//!   waits until the origin has received it before sending `second` and the end.
//!
//! A proxy that kept a piece back until more arrived (or until the end) would stall
//! the exchange, and the test fails naming the piece that never came.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use proxy_runtime::prelude::*;
use proxy_runtime::protocols::custom::in_process::{
    InProcess, InProcessRequest, InProcessResponse,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How long a piece may take to arrive before it counts as held back (generous: the
/// proxy has nothing else to do, so it arrives at once unless it is held).
const PIECE_WAIT: Duration = Duration::from_secs(10);

/// The origin's protocol.
#[derive(Debug, Clone, Copy)]
enum Up {
    H1,
    H2c,
    /// A custom transport: an in-process handler streaming its response.
    InProcess,
}

/// The client's protocol.
#[derive(Debug, Clone, Copy)]
enum Down {
    H1,
    H2c,
}

/// A proxy to one origin; with `pause`, its body filter asks for a long pause after the
/// piece holding `first` (as a rate limiter would).
struct Fixed(HttpPeer, bool);

impl ProxyHttp for Fixed {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<HttpPeer> {
        Ok(self.0.clone())
    }
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut (),
    ) -> Result<Option<Duration>> {
        let first = body.as_ref().is_some_and(|b| b.starts_with(b"first"));
        Ok((self.1 && first).then_some(Duration::from_secs(3600)))
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
            Up::H1 => h1_origin(sock, &go).await,
            Up::H2c => h2_origin(sock, &go).await,
            Up::InProcess => unreachable!("no socket for an in-process origin"),
        }
    });
    addr
}

/// A custom-transport origin: an in-process handler that streams `first\n`, waits for
/// `go`, then streams `second\n` and ends.
fn in_process_peer(go: Arc<Notify>) -> HttpPeer {
    let handler = move |_req: InProcessRequest| {
        let go = go.clone();
        async move {
            let head = ResponseHeader::new(http::StatusCode::OK, 0);
            let (response, mut writer) = InProcessResponse::streaming(head);
            tokio::spawn(async move {
                writer.send("first\n").await.unwrap();
                go.notified().await;
                writer.send("second\n").await.unwrap();
                writer.finish().await.unwrap();
            });
            Ok(response)
        }
    };
    HttpPeer::custom("app.internal", Arc::new(InProcess::new(handler)))
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

/// Read from `sock` into `got` until it holds `mark` (at its end, with `at_end`).
async fn read_until(sock: &mut TcpStream, got: &mut Vec<u8>, mark: &[u8], at_end: bool) {
    let mut buf = [0u8; 4096];
    let done = |got: &[u8]| {
        if at_end {
            got.ends_with(mark)
        } else {
            got.windows(mark.len()).any(|w| w == mark)
        }
    };
    while !done(got) {
        let n = sock.read(&mut buf).await.unwrap();
        assert!(n > 0, "the peer closed the connection: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Wait for `what`, failing with a clear message if it never comes.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PIECE_WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} never arrived: the proxy held it back"))
}

/// The client's side: the first piece must arrive before the origin is let go on.
async fn h1_client(addr: SocketAddr, go: &Notify) {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    within("`first`", async {
        read_until(&mut sock, &mut got, b"first\n", false).await;
    })
    .await;
    go.notify_one();
    within("`second` and the end", async {
        read_until(&mut sock, &mut got, b"0\r\n\r\n", true).await;
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

/// The body filter pauses after `first`: the pause delays what comes next, so `first`
/// must reach the client before it (the test ends before the pause would).
async fn paced_piece_goes_before_the_pause(down: Down) {
    let go = Arc::new(Notify::new());
    let origin = start_origin(Up::H1, go.clone()).await;
    let peer = HttpPeer::new(origin, false, "").unwrap();
    let (addr, _proxy) = start_proxy(Fixed(peer, true), |b| b).await;
    match down {
        Down::H1 => {
            let mut sock = TcpStream::connect(addr).await.unwrap();
            sock.write_all(b"GET /stream HTTP/1.1\r\nHost: test\r\n\r\n")
                .await
                .unwrap();
            let mut got = Vec::new();
            within("`first`", async {
                read_until(&mut sock, &mut got, b"first\n", false).await;
            })
            .await;
        }
        Down::H2c => {
            let sock = TcpStream::connect(addr).await.unwrap();
            let (mut client, conn) = h2::client::handshake(sock).await.unwrap();
            tokio::spawn(conn);
            let req = http::Request::get("http://test/stream").body(()).unwrap();
            let (response, _) = client.send_request(req, true).unwrap();
            let response = within("the response head", response).await.unwrap();
            let mut body = response.into_body();
            let data = within("`first`", body.data()).await.unwrap().unwrap();
            assert_eq!(&data[..], b"first\n");
        }
    }
}

#[tokio::test]
async fn h1_client_gets_a_paced_piece_before_the_pause() {
    paced_piece_goes_before_the_pause(Down::H1).await;
}

#[tokio::test]
async fn h2c_client_gets_a_paced_piece_before_the_pause() {
    paced_piece_goes_before_the_pause(Down::H2c).await;
}

async fn streams(up: Up, down: Down) {
    let go = Arc::new(Notify::new());
    let peer = if let Up::InProcess = up {
        in_process_peer(go.clone())
    } else {
        let origin = start_origin(up, go.clone()).await;
        let mut peer = HttpPeer::new(origin, false, "").unwrap();
        peer.options.h2 = matches!(up, Up::H2c);
        peer
    };
    let (addr, _proxy) = start_proxy(Fixed(peer, false), |b| b).await;
    match down {
        Down::H1 => h1_client(addr, &go).await,
        Down::H2c => h2_client(addr, &go).await,
    }
}

#[tokio::test]
async fn h1_client_h1_origin_streams() {
    streams(Up::H1, Down::H1).await;
}

#[tokio::test]
async fn h1_client_h2c_origin_streams() {
    streams(Up::H2c, Down::H1).await;
}

#[tokio::test]
async fn h2c_client_h1_origin_streams() {
    streams(Up::H1, Down::H2c).await;
}

#[tokio::test]
async fn h2c_client_h2c_origin_streams() {
    streams(Up::H2c, Down::H2c).await;
}

#[tokio::test]
async fn h1_client_custom_transport_streams() {
    streams(Up::InProcess, Down::H1).await;
}

#[tokio::test]
async fn h2c_client_custom_transport_streams() {
    streams(Up::InProcess, Down::H2c).await;
}

/// An origin that reads a request body until `first\n` arrived, tells the test (`got`),
/// reads the rest, and answers `200` with the whole body it read.
async fn start_upload_origin(up: Up, got: Arc<Notify>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        match up {
            Up::H1 => h1_upload_origin(sock, &got).await,
            Up::H2c => h2_upload_origin(sock, &got).await,
            Up::InProcess => unreachable!("uploads are checked with socket origins"),
        }
    });
    addr
}

async fn h1_upload_origin(mut sock: TcpStream, got: &Notify) {
    // The raw bytes (head and chunked framing included) are enough to spot the pieces.
    let mut raw = Vec::new();
    read_until(&mut sock, &mut raw, b"first\n", false).await;
    got.notify_one();
    read_until(&mut sock, &mut raw, b"0\r\n\r\n", true).await;
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(text.contains("second\n"), "{text}");
    sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .await
        .unwrap();
    let _ = sock.read(&mut [0u8; 64]).await;
}

async fn h2_upload_origin(sock: TcpStream, got: &Notify) {
    let mut conn = h2::server::handshake(sock).await.unwrap();
    let (req, mut respond) = conn.accept().await.unwrap().unwrap();
    let driver = tokio::spawn(async move { while conn.accept().await.is_some() {} });
    let mut body = req.into_body();
    let mut read = Vec::new();
    while !read.ends_with(b"first\n") {
        let data = body
            .data()
            .await
            .expect("request body ended early")
            .unwrap();
        let _ = body.flow_control().release_capacity(data.len());
        read.extend_from_slice(&data);
    }
    got.notify_one();
    while let Some(data) = body.data().await {
        let data = data.unwrap();
        let _ = body.flow_control().release_capacity(data.len());
        read.extend_from_slice(&data);
    }
    assert_eq!(read, b"first\nsecond\n");
    let response = http::Response::builder().status(200).body(()).unwrap();
    let mut send = respond.send_response(response, false).unwrap();
    send.send_data(Bytes::from_static(b"ok"), true).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    driver.abort();
}

async fn h1_uploader(addr: SocketAddr, got: &Notify) {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(
        b"POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n",
    )
    .await
    .unwrap();
    within("the upload's `first` (at the origin)", got.notified()).await;
    sock.write_all(b"7\r\nsecond\n\r\n0\r\n\r\n").await.unwrap();
    let mut got_back = Vec::new();
    within("the response", async {
        read_until(&mut sock, &mut got_back, b"ok", false).await;
    })
    .await;
    assert!(got_back.starts_with(b"HTTP/1.1 200"));
}

async fn h2_uploader(addr: SocketAddr, got: &Notify) {
    let sock = TcpStream::connect(addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(sock).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::post("http://test/upload").body(()).unwrap();
    let (response, mut send) = client.send_request(req, false).unwrap();
    send.send_data(Bytes::from_static(b"first\n"), false)
        .unwrap();
    within("the upload's `first` (at the origin)", got.notified()).await;
    send.send_data(Bytes::from_static(b"second\n"), true)
        .unwrap();
    let response = within("the response head", response).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut read = Vec::new();
    while let Some(data) = within("the response body", body.data()).await {
        read.extend_from_slice(&data.unwrap());
    }
    assert_eq!(read, b"ok");
}

async fn uploads_stream(up: Up, down: Down) {
    let got = Arc::new(Notify::new());
    let origin = start_upload_origin(up, got.clone()).await;
    let mut peer = HttpPeer::new(origin, false, "").unwrap();
    peer.options.h2 = matches!(up, Up::H2c);
    let (addr, _proxy) = start_proxy(Fixed(peer, false), |b| b).await;
    match down {
        Down::H1 => h1_uploader(addr, &got).await,
        Down::H2c => h2_uploader(addr, &got).await,
    }
}

#[tokio::test]
async fn h1_upload_to_h1_origin_streams() {
    uploads_stream(Up::H1, Down::H1).await;
}

#[tokio::test]
async fn h1_upload_to_h2c_origin_streams() {
    uploads_stream(Up::H2c, Down::H1).await;
}

#[tokio::test]
async fn h2c_upload_to_h1_origin_streams() {
    uploads_stream(Up::H1, Down::H2c).await;
}

#[tokio::test]
async fn h2c_upload_to_h2c_origin_streams() {
    uploads_stream(Up::H2c, Down::H2c).await;
}
