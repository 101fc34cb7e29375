//! The third proxy loop: requests carried by a custom transport instead of HTTP on a
//! socket. A real client talks HTTP/1.1 to the proxy over loopback; behind it, either
//! an in-process handler (`InProcess`) or an origin speaking the length-prefixed
//! framing over TCP or a Unix socket (`FramedTransport`). Each test asserts what the
//! client observes, what the upstream saw, and which phases ran — and, for broken
//! upstreams, that the outcome matches an HTTP/1 origin failing the same way
//! (`origin_faults.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use proxy_runtime::bytes::BytesMut;
use proxy_runtime::prelude::*;
use proxy_runtime::protocols::custom::framed::{
    FrameKind, FrameReader, FrameWriter, FramedLimits, FramedTransport, decode_request_head,
    encode_response_head, encode_trailers,
};
use proxy_runtime::protocols::custom::in_process::{
    InProcess, InProcessRequest, InProcessResponse,
};
use proxy_runtime::protocols::custom::{BoxFuture, CustomExchange, CustomTransport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::task::JoinHandle;
use tokio::time::timeout;

// ---------------------------------------------------------------------------------------
// Checksums and test data
// ---------------------------------------------------------------------------------------

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a, continued from `hash`.
fn fnv(mut hash: u64, data: &[u8]) -> u64 {
    for &b in data {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// `n` pseudo-random bytes (xorshift), different for each `seed`.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------
// The proxy under test
// ---------------------------------------------------------------------------------------

/// Sends everything to one custom peer and records its phase calls.
struct CustomProxy {
    peer: HttpPeer,
    /// `error_while_proxy` makes every error retryable (a user's policy).
    retry_proxy_errors: bool,
    peer_calls: AtomicUsize,
    fail_to_connect_calls: AtomicUsize,
    connected: Mutex<Vec<bool>>,
    errors: Mutex<Vec<Option<String>>>,
}

impl CustomProxy {
    fn new(peer: HttpPeer) -> Self {
        CustomProxy {
            peer,
            retry_proxy_errors: false,
            peer_calls: AtomicUsize::new(0),
            fail_to_connect_calls: AtomicUsize::new(0),
            connected: Mutex::new(Vec::new()),
            errors: Mutex::new(Vec::new()),
        }
    }

    fn peer_calls(&self) -> usize {
        self.peer_calls.load(Ordering::SeqCst)
    }

    fn fail_to_connect_calls(&self) -> usize {
        self.fail_to_connect_calls.load(Ordering::SeqCst)
    }

    fn connections(&self) -> Vec<bool> {
        lock(&self.connected).clone()
    }

    fn errors(&self) -> Vec<Option<String>> {
        lock(&self.errors).clone()
    }
}

impl ProxyHttp for CustomProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _ctx: &mut ()) -> Result<HttpPeer> {
        self.peer_calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.peer.clone())
    }

    async fn upstream_request_filter(
        &self,
        _s: &mut Session,
        req: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        req.insert_header("X-Phase", "upstream_request_filter")
    }

    async fn response_filter(
        &self,
        _s: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        resp.insert_header("X-Proxy", "custom")
    }

    async fn connected_to_upstream(
        &self,
        _s: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _ctx: &mut (),
    ) -> Result<()> {
        lock(&self.connected).push(reused);
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _s: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut (),
        e: Box<Error>,
    ) -> Box<Error> {
        self.fail_to_connect_calls.fetch_add(1, Ordering::SeqCst);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        _s: &mut Session,
        e: Box<Error>,
        _ctx: &mut (),
        _reused: bool,
    ) -> Box<Error> {
        let e = e.more_context(format_args!("peer: {peer}"));
        if self.retry_proxy_errors {
            e.with_retry(RetryType::Decided(true))
        } else {
            e
        }
    }

    async fn logging(&self, _s: &mut Session, e: Option<&Error>, _ctx: &mut ()) {
        lock(&self.errors).push(e.map(ToString::to_string));
    }
}

/// Wait until the proxy has logged `n` requests.
async fn logged(proxy: &ProxyHandle<CustomProxy>, n: usize) -> Vec<Option<String>> {
    wait_until("logging", || proxy.app().errors().len() == n).await;
    proxy.app().errors()
}

// ---------------------------------------------------------------------------------------
// A client that sends and receives at the same time (for bodies larger than the
// socket buffers, echoed back as they arrive)
// ---------------------------------------------------------------------------------------

/// What [`duplex_post`] saw.
struct Echoed {
    status: u16,
    content_length: Option<u64>,
    len: u64,
    fnv: u64,
}

/// POST `body` to `path` while reading the (`Content-Length`-framed) response.
async fn duplex_post(addr: SocketAddr, path: &str, body: Arc<Vec<u8>>) -> Echoed {
    let sock = TcpStream::connect(addr).await.unwrap();
    sock.set_nodelay(true).unwrap();
    let (mut rd, mut wr) = sock.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let writer: JoinHandle<()> = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await.unwrap();
        for piece in body.chunks(100_000) {
            wr.write_all(piece).await.unwrap();
        }
        // Keep the write half open: closing it would end the client connection.
        std::future::pending::<()>().await;
    });
    let read = async {
        let mut buf = BytesMut::new();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                rd.read_buf(&mut buf).await.unwrap() > 0,
                "closed in the head"
            );
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let rest = buf.split_off(end);
        let status = head[9..12].parse().unwrap();
        let content_length = head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        });
        let want = content_length.unwrap_or(0);
        let mut len = rest.len() as u64;
        let mut hash = fnv(FNV_OFFSET, &rest);
        let mut chunk = vec![0u8; 64 * 1024];
        while len < want {
            let n = rd.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the response ended after {len} of {want} bytes");
            len += n as u64;
            hash = fnv(hash, &chunk[..n]);
        }
        Echoed {
            status,
            content_length,
            len,
            fnv: hash,
        }
    };
    let echoed = timeout(SAFETY * 3, read).await.expect("duplex response");
    writer.abort();
    echoed
}

// ---------------------------------------------------------------------------------------
// The in-process upstream
// ---------------------------------------------------------------------------------------

fn query_n(req: &RequestHeader) -> usize {
    req.uri
        .query()
        .and_then(|q| q.strip_prefix("n="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The in-process application, by path:
///
/// | path | answer |
/// |---|---|
/// | `/echo-head` | the request head as received, as text; hop-by-hop headers on the response |
/// | `/upload` | `LEN FNV` of the request body |
/// | `/echo` | the body streamed back, `Content-Length` as in the request |
/// | `/download?n=N` | N pattern bytes, streamed without a length (chunked to the client) |
/// | `/trailers` | `ok`, `X-Got-Trailer` = the request's `X-Req-Sum` trailer, trailer `X-Checksum` |
/// | `/fail` | an error |
/// | `/early-hints` | `103` with `Link`, then `200 final` |
/// | `/break-mid-body` | `Content-Length: 1000000`, 10000 pattern bytes, then the writer is dropped |
/// | anything else | `METHOD path` (a `GET`-style answer, also to `HEAD`) |
async fn app(mut req: InProcessRequest) -> Result<InProcessResponse> {
    let path = req.head.path().to_string();
    match path.as_str() {
        "/echo-head" => {
            let mut text = BytesMut::new();
            req.head.write_h1(&mut text);
            let mut head = ResponseHeader::build(200, None)?;
            head.insert_header("Connection", "X-Internal")?;
            head.insert_header("X-Internal", "secret")?;
            head.insert_header("Keep-Alive", "timeout=5")?;
            head.insert_header("Proxy-Connection", "keep-alive")?;
            head.insert_header("X-Kept", "yes")?;
            Ok(InProcessResponse::new(head, text.freeze()))
        }
        "/upload" => {
            let body = req.body.read_to_end(4 << 20).await?;
            Ok(InProcessResponse::text(
                200,
                format!("{} {:016x}", body.len(), fnv(FNV_OFFSET, &body)),
            ))
        }
        "/echo" => {
            let mut head = ResponseHeader::build(200, None)?;
            if let Some(cl) = req.head.header("content-length") {
                head.insert_header("Content-Length", cl.clone())?;
            }
            let (resp, mut writer) = InProcessResponse::streaming(head);
            tokio::spawn(async move {
                while let Ok(Some(chunk)) = req.body.next_chunk().await {
                    if writer.send(chunk).await.is_err() {
                        return;
                    }
                }
                let _ = writer.finish().await;
            });
            Ok(resp)
        }
        "/download" => {
            let n = query_n(&req.head);
            let (resp, mut writer) =
                InProcessResponse::streaming(ResponseHeader::build(200, None)?);
            tokio::spawn(async move {
                let mut sent = 0;
                while sent < n {
                    let len = (n - sent).min(16 * 1024);
                    let piece = Bytes::copy_from_slice(pattern_at(sent as u64, len));
                    if writer.send(piece).await.is_err() {
                        return;
                    }
                    sent += len;
                }
                let _ = writer.finish().await;
            });
            Ok(resp)
        }
        "/trailers" => {
            let body = req.body.read_to_end(1 << 20).await?;
            let got = req
                .body
                .trailers()
                .and_then(|t| t.get("x-req-sum"))
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_string();
            let mut trailers = HeaderMap::new();
            trailers.insert(
                "x-checksum",
                HeaderValue::from_str(&format!("{:016x}", fnv(FNV_OFFSET, &body))).unwrap(),
            );
            let mut resp = InProcessResponse::text(200, "ok").with_trailers(trailers);
            resp.head_mut().insert_header("X-Got-Trailer", got)?;
            resp.head_mut().remove_header("content-length");
            Ok(resp)
        }
        "/fail" => Err(Error::explain(
            ErrorKind::Internal,
            ErrorSource::Internal,
            "the handler failed on purpose",
        )),
        "/early-hints" => {
            let mut hints = ResponseHeader::build(103, None)?;
            hints.insert_header("Link", "</style.css>; rel=preload")?;
            Ok(InProcessResponse::text(200, "final").with_interim(hints))
        }
        "/break-mid-body" => {
            let mut head = ResponseHeader::build(200, None)?;
            head.insert_header("Content-Length", "1000000")?;
            let (resp, mut writer) = InProcessResponse::streaming(head);
            tokio::spawn(async move {
                let _ = writer
                    .send(Bytes::copy_from_slice(pattern_at(0, 10_000)))
                    .await;
                drop(writer); // broken: never finished
            });
            Ok(resp)
        }
        _ => Ok(InProcessResponse::text(
            200,
            format!("{} {}", req.head.method, path),
        )),
    }
}

fn in_process_peer() -> HttpPeer {
    HttpPeer::custom("app.internal", Arc::new(InProcess::new(app)))
}

async fn in_process_proxy(max_retries: u32) -> (SocketAddr, ProxyHandle<CustomProxy>) {
    start_proxy(CustomProxy::new(in_process_peer()), |b| {
        b.max_retries(max_retries)
    })
    .await
}

#[tokio::test]
async fn in_process_headers_cross_both_ways_without_hop_by_hop_ones() {
    let (addr, proxy) = in_process_proxy(2).await;
    let mut c = Client::connect(addr).await;
    c.send(
        "GET /echo-head?x=1 HTTP/1.1\r\nHost: test\r\nConnection: keep-alive, X-Secret\r\n\
         X-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n\
         X-Request-ID: abc\r\n\r\n",
    )
    .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    let seen = r.text();
    assert!(
        seen.starts_with("GET /echo-head?x=1 HTTP/1.1\r\n"),
        "{seen}"
    );
    assert!(seen.contains("\r\nHost: test\r\n"), "{seen}");
    assert!(
        seen.contains("\r\nX-Request-ID: abc\r\n"),
        "spelling kept: {seen}"
    );
    assert!(
        seen.contains("\r\nX-Phase: upstream_request_filter\r\n"),
        "{seen}"
    );
    for gone in ["X-Secret", "Keep-Alive", "Proxy-Connection", "Connection"] {
        assert!(!seen.contains(&format!("\r\n{gone}:")), "{gone} in {seen}");
    }
    assert_eq!(r.header("x-kept"), Some("yes"));
    assert_eq!(r.header("x-proxy"), Some("custom"), "response_filter ran");
    for gone in ["x-internal", "keep-alive", "proxy-connection"] {
        assert!(r.header(gone).is_none(), "{gone} in {}", r.head.raw);
    }
    assert!(r.header("connection").is_none(), "{}", r.head.raw);
    // The client connection stays usable.
    c.send("GET /again HTTP/1.1\r\nHost: test\r\n\r\n").await;
    assert_eq!(c.read_response().await.text(), "GET /again");
    assert_eq!(proxy.app().connections(), [false, false]);
}

#[tokio::test]
async fn in_process_request_and_response_bodies_of_every_size_stream_through() {
    let (addr, _proxy) = in_process_proxy(2).await;
    let mut c = Client::connect(addr).await;
    c.send("POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_eq!(
        c.read_response().await.text(),
        format!("0 {FNV_OFFSET:016x}")
    );
    c.send("POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        .await;
    assert_eq!(
        c.read_response().await.text(),
        format!("5 {:016x}", fnv(FNV_OFFSET, b"hello"))
    );
    let r = get(addr, "/no-body").await;
    assert_eq!((r.status(), r.text().as_str()), (200, "GET /no-body"));

    // 1 MiB each way at the same time: echoed while it is uploaded.
    let body = Arc::new(noise(1 << 20, 7));
    let want = fnv(FNV_OFFSET, &body);
    let e = duplex_post(addr, "/echo", body).await;
    assert_eq!(e.status, 200);
    assert_eq!(e.content_length, Some(1 << 20));
    assert_eq!((e.len, e.fnv), (1 << 20, want));

    // 1 MiB streamed down without a length: chunked to the client.
    let mut c = Client::connect(addr).await;
    c.send("GET /download?n=1048576 HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let r = c.read_response_opts(false, false).await;
    assert_eq!(r.framing, Framing::Chunked);
    assert!(r.complete);
    assert_eq!(r.digest.len, 1 << 20);
    assert!(r.digest.pattern_ok);
}

#[tokio::test]
async fn in_process_trailers_cross_both_ways() {
    let (addr, _proxy) = in_process_proxy(2).await;
    let r = request(
        addr,
        "POST /trailers HTTP/1.1\r\nHost: test\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\r\n\
         7\r\npayload\r\n0\r\nX-Req-Sum: 42\r\n\r\n",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.header("x-got-trailer"),
        Some("42"),
        "request trailers arrive"
    );
    assert_eq!(r.framing, Framing::Chunked);
    assert_eq!(r.text(), "ok");
    let sum = format!("{:016x}", fnv(FNV_OFFSET, b"payload"));
    assert!(
        r.trailers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("x-checksum") && *v == sum),
        "{:?}",
        r.trailers
    );
}

#[tokio::test]
async fn in_process_handler_error_is_a_502_and_not_retried() {
    let (addr, proxy) = in_process_proxy(2).await;
    let mut c = Client::connect(addr).await;
    c.send("GET /fail HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.head.status_line, "HTTP/1.1 502 Bad Gateway");
    assert_eq!(
        proxy.app().peer_calls(),
        1,
        "a handler error is not retried"
    );
    let errors = logged(&proxy, 1).await;
    let e = errors[0].as_deref().unwrap();
    assert!(
        e.contains("the handler failed on purpose") && e.contains("in-process handler"),
        "{e}"
    );
    assert!(e.contains("custom://app.internal"), "{e}");
    // The 502 left the client's connection open for its next request.
    c.send("GET /after HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(c.read_response().await.text(), "GET /after");
    assert!(c.is_closed().await);
}

/// A transport whose first `failures` opens fail (a tunnel that is not up yet).
#[derive(Debug)]
struct FlakyOpen {
    failures: AtomicUsize,
    inner: Arc<dyn CustomTransport>,
}

impl CustomTransport for FlakyOpen {
    fn open<'a>(&'a self, peer: &'a HttpPeer) -> BoxFuture<'a, Result<CustomExchange>> {
        Box::pin(async move {
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                self.failures.store(left - 1, Ordering::SeqCst);
                return Err(Error::internal("the tunnel is not up yet"));
            }
            self.inner.open(peer).await
        })
    }
}

fn flaky_peer(failures: usize) -> HttpPeer {
    let t = FlakyOpen {
        failures: AtomicUsize::new(failures),
        inner: Arc::new(InProcess::new(app)),
    };
    HttpPeer::custom("flaky", Arc::new(t))
}

#[tokio::test]
async fn in_process_open_errors_are_connect_errors_and_are_retried() {
    let (addr, proxy) = start_proxy(CustomProxy::new(flaky_peer(1)), |b| b).await;
    let r = request(
        addr,
        "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text(),
        format!("5 {:016x}", fnv(FNV_OFFSET, b"hello")),
        "the body is replayed on the second try"
    );
    let app = proxy.app();
    assert_eq!(app.fail_to_connect_calls(), 1);
    assert_eq!(app.peer_calls(), 2);
    assert_eq!(
        app.connections(),
        [false],
        "connected once, after the retry"
    );
    assert_eq!(logged(&proxy, 1).await, [None]);

    let (addr, proxy) = start_proxy(CustomProxy::new(flaky_peer(10)), |b| b.max_retries(1)).await;
    let r = get(addr, "/x").await;
    assert_eq!(r.status(), 502);
    assert_eq!(proxy.app().fail_to_connect_calls(), 2, "two tries");
    let errors = logged(&proxy, 1).await;
    let e = errors[0].as_deref().unwrap();
    assert!(
        e.contains("ConnectError") && e.contains("the tunnel is not up yet"),
        "{e}"
    );
}

#[tokio::test]
async fn in_process_head_request_gets_the_head_without_the_body() {
    let (addr, _proxy) = in_process_proxy(2).await;
    let mut c = Client::connect(addr).await;
    c.send("HEAD /page HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let r = c.read_head_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.header("content-length"),
        Some("10"),
        "the handler answered `HEAD /page` with a body; only its length goes out"
    );
    // Had a body been sent, it would be read as the next response's head.
    c.send("GET /page HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.text(), "GET /page");
}

#[tokio::test]
async fn in_process_interim_heads_reach_the_client_before_the_final_one() {
    let (addr, _proxy) = in_process_proxy(2).await;
    let mut c = Client::connect(addr).await;
    c.send("GET /early-hints HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let hints = c.read_head().await;
    assert_eq!(hints.status, 103);
    assert_eq!(hints.header("link"), Some("</style.css>; rel=preload"));
    let r = c.read_response().await;
    assert_eq!((r.status(), r.text().as_str()), (200, "final"));
}

#[tokio::test]
async fn in_process_response_broken_mid_body_truncates_and_closes() {
    let (addr, proxy) = in_process_proxy(2).await;
    let mut c = Client::connect(addr).await;
    c.send("GET /break-mid-body HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let r = c.read_response_opts(false, false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.framing, Framing::Length(1_000_000));
    assert!(!r.complete, "the body must end short");
    assert_eq!(r.digest.len, 10_000, "everything produced is relayed");
    assert!(r.digest.pattern_ok);
    assert_eq!(proxy.app().peer_calls(), 1);
    assert!(logged(&proxy, 1).await[0].is_some());
    assert_eq!(get(addr, "/after").await.text(), "GET /after");
}

// ---------------------------------------------------------------------------------------
// The framed upstream
// ---------------------------------------------------------------------------------------

/// One request as the framed origin received it.
#[derive(Debug, Clone)]
struct Seen {
    conn: usize,
    seq: usize,
    method: String,
    path: String,
    body_len: u64,
    body_fnv: u64,
    complete: bool,
}

#[derive(Default)]
struct FramedState {
    accepts: AtomicUsize,
    requests: Mutex<Vec<Seen>>,
    /// `/close-before-head-once` already closed once.
    closed_once: AtomicBool,
}

/// An origin speaking the framing, answering by path:
///
/// | path | answer |
/// |---|---|
/// | `/echo` | head at once (with the request's `Content-Length`), then every body frame back as it arrives |
/// | `/trailers` | `ok`, trailers: the request's, plus `x-checksum` of the body |
/// | `/close-before-head` | reads the request, closes without answering |
/// | `/close-before-head-once` | the same the first time, then answers like anything else |
/// | `/close-if-reused` | closes unanswered when it is not the first request of its connection |
/// | `/mid-body` | `Content-Length: 1000000`, 10000 pattern bytes, close |
/// | `/mid-body-chunked` | no length, `first`, close |
/// | `/garbage` | bytes that are not frames, close |
/// | `/bad-head` | a `HEAD` frame that is not a response head |
/// | `/error-frame` | an `ERROR` frame |
/// | `/stall` | never answers |
/// | anything else | `METHOD path` |
struct FramedOrigin {
    state: Arc<FramedState>,
    task: JoinHandle<()>,
}

impl Drop for FramedOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FramedOrigin {
    async fn tcp() -> (FramedOrigin, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FramedState::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let conn = st.accepts.fetch_add(1, Ordering::SeqCst) + 1;
                let (r, w) = sock.into_split();
                tokio::spawn(serve_framed(st.clone(), conn, r, w));
            }
        });
        (FramedOrigin { state, task }, addr)
    }

    async fn unix(path: PathBuf) -> FramedOrigin {
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let state = Arc::new(FramedState::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let conn = st.accepts.fetch_add(1, Ordering::SeqCst) + 1;
                let (r, w) = sock.into_split();
                tokio::spawn(serve_framed(st.clone(), conn, r, w));
            }
        });
        FramedOrigin { state, task }
    }

    fn accepts(&self) -> usize {
        self.state.accepts.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<Seen> {
        lock(&self.state.requests).clone()
    }
}

fn response_head(status: u16, headers: &[(&str, &str)]) -> Bytes {
    let mut head = ResponseHeader::build(status, None).unwrap();
    for (n, v) in headers {
        head.append_header(n.to_string(), *v).unwrap();
    }
    encode_response_head(&head)
}

/// Serve exchanges on one connection until it closes.
async fn serve_framed<R, W>(state: Arc<FramedState>, conn: usize, r: R, w: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let limits = FramedLimits::default();
    let mut reader = FrameReader::new(r, limits);
    let mut writer = FrameWriter::new(w);
    let mut seq = 0;
    loop {
        let head = match reader.read_frame().await {
            Ok(Some(f)) if f.kind == FrameKind::Head => {
                match decode_request_head(&f.payload, &limits) {
                    Ok(h) => h,
                    Err(_) => return,
                }
            }
            _ => return,
        };
        seq += 1;
        let path = head.path().to_string();
        if path == "/close-if-reused" && seq > 1 {
            return;
        }
        let echo = path == "/echo";
        if echo {
            let cl = head.header_str("content-length").unwrap_or("0").to_string();
            writer.queue(
                FrameKind::Head,
                &response_head(200, &[("Content-Length", &cl)]),
            );
            if writer.flush().await.is_err() {
                return;
            }
        }
        // The request body (echoed at once on `/echo`).
        let mut body_len = 0u64;
        let mut body_fnv = FNV_OFFSET;
        let mut trailers = Vec::new();
        let complete = loop {
            match reader.read_frame().await {
                Ok(Some(f)) => match f.kind {
                    FrameKind::Body => {
                        body_len += f.payload.len() as u64;
                        body_fnv = fnv(body_fnv, &f.payload);
                        if echo
                            && (writer.write_body(&f.payload).await.is_err()
                                || writer.flush().await.is_err())
                        {
                            return;
                        }
                    }
                    FrameKind::Trailers => trailers = f.payload.to_vec(),
                    FrameKind::End => break true,
                    _ => break false,
                },
                _ => break false,
            }
        };
        lock(&state.requests).push(Seen {
            conn,
            seq,
            method: head.method.to_string(),
            path: path.clone(),
            body_len,
            body_fnv,
            complete,
        });
        if !complete {
            return;
        }
        match path.as_str() {
            "/echo" => writer.queue(FrameKind::End, &[]),
            "/trailers" => {
                writer.queue(FrameKind::Head, &response_head(200, &[]));
                writer.queue(FrameKind::Body, b"ok");
                let mut t = trailers;
                if t.is_empty() {
                    t = b"\r\n".to_vec();
                }
                t.truncate(t.len() - 2); // the empty line, re-added below
                let mut extra = HeaderMap::new();
                extra.insert(
                    "x-checksum",
                    HeaderValue::from_str(&format!("{body_fnv:016x}")).unwrap(),
                );
                t.extend_from_slice(&encode_trailers(&extra));
                writer.queue(FrameKind::Trailers, &t);
                writer.queue(FrameKind::End, &[]);
            }
            "/close-before-head" => return,
            "/close-before-head-once" if !state.closed_once.swap(true, Ordering::SeqCst) => {
                return;
            }
            "/mid-body" => {
                writer.queue(
                    FrameKind::Head,
                    &response_head(200, &[("Content-Length", "1000000")]),
                );
                let _ = writer.write_body(pattern_at(0, 10_000)).await;
                let _ = writer.flush().await;
                return;
            }
            "/mid-body-chunked" => {
                writer.queue(FrameKind::Head, &response_head(200, &[]));
                writer.queue(FrameKind::Body, b"first");
                let _ = writer.flush().await;
                return;
            }
            "/garbage" => {
                let mut raw = writer.into_inner();
                let _ = raw.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
                return;
            }
            "/bad-head" => {
                let _ = writer
                    .write_frame(FrameKind::Head, b"SSH-2.0-OpenSSH\r\n\r\n")
                    .await;
                return;
            }
            "/error-frame" => {
                let _ = writer.write_frame(FrameKind::Error, b"out of coffee").await;
                return;
            }
            "/stall" => {
                let _ = reader.read_frame().await; // until the proxy gives up
                return;
            }
            _ => {
                let text = format!("{} {path}", head.method);
                let len = text.len().to_string();
                writer.queue(
                    FrameKind::Head,
                    &response_head(200, &[("Content-Length", &len), ("X-Origin", "framed")]),
                );
                writer.queue(FrameKind::Body, text.as_bytes());
                writer.queue(FrameKind::End, &[]);
            }
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
}

async fn framed_proxy(
    max_retries: u32,
    tweak: impl FnOnce(&mut CustomProxy),
) -> (FramedOrigin, SocketAddr, ProxyHandle<CustomProxy>) {
    let (origin, origin_addr) = FramedOrigin::tcp().await;
    let peer = HttpPeer::custom("framed", Arc::new(FramedTransport::tcp(origin_addr)));
    let mut app = CustomProxy::new(peer);
    tweak(&mut app);
    let (addr, proxy) = start_proxy(app, |b| b.max_retries(max_retries)).await;
    (origin, addr, proxy)
}

#[tokio::test]
async fn framed_round_trips_bodies_of_1_byte_64k_and_10mb_with_matching_checksums() {
    let (origin, addr, _proxy) = framed_proxy(2, |_| {}).await;
    for (i, n) in [1usize, 64 * 1024, 10_000_000].into_iter().enumerate() {
        let body = Arc::new(noise(n, i as u64 + 1));
        let sent = fnv(FNV_OFFSET, &body);
        let e = duplex_post(addr, "/echo", body).await;
        assert_eq!(e.status, 200, "{n} bytes");
        assert_eq!(e.content_length, Some(n as u64));
        let seen = origin.requests().pop().unwrap();
        assert!(seen.complete);
        assert_eq!(
            (seen.body_len, seen.body_fnv),
            (n as u64, sent),
            "what the origin received, {n} bytes"
        );
        assert_eq!(
            (e.len, e.fnv),
            (n as u64, sent),
            "what came back, {n} bytes"
        );
    }
}

#[tokio::test]
async fn framed_transport_serves_over_a_unix_socket() {
    let path = std::env::temp_dir().join(format!("framed-origin-{}.sock", std::process::id()));
    let origin = FramedOrigin::unix(path.clone()).await;
    let peer = HttpPeer::custom("framed-unix", Arc::new(FramedTransport::unix(&path)));
    let (addr, _proxy) = start_proxy(CustomProxy::new(peer), |b| b).await;
    let r = request(
        addr,
        "PUT /over-unix HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc",
    )
    .await;
    assert_eq!((r.status(), r.text().as_str()), (200, "PUT /over-unix"));
    assert_eq!(r.header("x-origin"), Some("framed"));
    let seen = origin.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (
            seen[0].method.as_str(),
            seen[0].path.as_str(),
            seen[0].body_len
        ),
        ("PUT", "/over-unix", 3)
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn framed_trailers_cross_both_ways() {
    let (_origin, addr, _proxy) = framed_proxy(2, |_| {}).await;
    let r = request(
        addr,
        "POST /trailers HTTP/1.1\r\nHost: test\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\r\n\
         7\r\npayload\r\n0\r\nX-Req-Sum: 42\r\n\r\n",
    )
    .await;
    assert_eq!((r.status(), r.text().as_str()), (200, "ok"));
    let sum = format!("{:016x}", fnv(FNV_OFFSET, b"payload"));
    let has = |name: &str, value: &str| {
        r.trailers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(name) && v == value)
    };
    assert!(has("x-req-sum", "42"), "{:?}", r.trailers);
    assert!(has("x-checksum", &sum), "{:?}", r.trailers);
}

#[tokio::test]
async fn framed_connections_are_pooled_and_reused() {
    let (origin, addr, proxy) = framed_proxy(2, |_| {}).await;
    let mut c = Client::connect(addr).await;
    for i in 0..3 {
        c.send(format!("GET /n{i} HTTP/1.1\r\nHost: test\r\n\r\n"))
            .await;
        assert_eq!(c.read_response().await.text(), format!("GET /n{i}"));
    }
    assert_eq!(origin.accepts(), 1, "one connection carried every exchange");
    assert_eq!(proxy.app().connections(), [false, true, true]);
    let seqs: Vec<usize> = origin.requests().iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[tokio::test]
async fn framed_get_on_a_pooled_connection_the_origin_closes_is_retried_transparently() {
    let (origin, addr, proxy) = framed_proxy(2, |_| {}).await;
    let mut c = Client::connect(addr).await;
    for _ in 0..2 {
        c.send("GET /close-if-reused HTTP/1.1\r\nHost: test\r\n\r\n")
            .await;
        assert_eq!(c.read_response().await.status(), 200);
    }
    assert_eq!(proxy.app().connections(), [false, true, false]);
    assert_eq!(origin.accepts(), 2);
    let seen: Vec<(usize, usize)> = origin.requests().iter().map(|s| (s.conn, s.seq)).collect();
    assert_eq!(
        seen,
        [(1, 1), (2, 1)],
        "the reused connection closed unanswered"
    );
}

#[tokio::test]
async fn framed_post_on_a_pooled_connection_the_origin_closes_is_not_replayed() {
    let (origin, addr, proxy) = framed_proxy(2, |_| {}).await;
    assert_eq!(get(addr, "/close-if-reused").await.status(), 200);
    let r = request(
        addr,
        "POST /close-if-reused HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!(
        r.status(),
        502,
        "the origin may have acted on a non-idempotent request"
    );
    assert_eq!(proxy.app().connections(), [false, true]);
    assert_eq!(origin.accepts(), 1);
}

#[tokio::test]
async fn framed_origin_closing_before_the_response_head_is_a_502_not_retried_on_a_fresh_connection()
{
    let (origin, addr, proxy) = framed_proxy(2, |_| {}).await;
    let mut c = Client::connect(addr).await;
    c.send("GET /close-before-head HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.head.status_line, "HTTP/1.1 502 Bad Gateway");
    assert_eq!(origin.requests().len(), 1);
    assert_eq!(proxy.app().peer_calls(), 1, "as with HTTP/1: no retry");
    let errors = logged(&proxy, 1).await;
    let e = errors[0].as_deref().unwrap();
    assert!(
        e.contains("ConnectionClosed") && e.contains("before responding"),
        "{e}"
    );
    // The 502 left the client's connection open for its next request.
    c.send("GET /after HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(c.read_response().await.text(), "GET /after");
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn framed_origin_closing_before_the_response_head_is_retried_when_the_policy_allows() {
    let (origin, addr, proxy) = framed_proxy(2, |p| p.retry_proxy_errors = true).await;
    let r = request(
        addr,
        "POST /close-before-head-once HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\nbody",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "POST /close-before-head-once");
    assert_eq!(proxy.app().peer_calls(), 2);
    assert_eq!(proxy.app().connections(), [false, false]);
    let seen = origin.requests();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter().all(|s| s.body_len == 4 && s.complete),
        "the body is replayed: {seen:?}"
    );
    assert_eq!(logged(&proxy, 1).await, [None]);
}

#[tokio::test]
async fn framed_origin_breaking_mid_body_truncates_and_closes() {
    let (_origin, addr, proxy) = framed_proxy(2, |_| {}).await;
    // As `origin_closing_in_the_middle_of_the_body_truncates_and_closes` for HTTP/1.
    let mut c = Client::connect(addr).await;
    c.send("GET /mid-body HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let r = c.read_response_opts(false, false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.framing, Framing::Length(1_000_000));
    assert!(!r.complete, "the body must end short");
    assert_eq!(
        r.digest.len, 10_000,
        "everything the origin sent is relayed"
    );
    assert!(r.digest.pattern_ok);

    // Without a length: the client's chunked body never gets its last chunk.
    let mut c = Client::connect(addr).await;
    c.send("GET /mid-body-chunked HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.framing, Framing::Chunked);
    assert!(!r.complete, "a truncated body must not be completed");
    assert_eq!(r.text(), "first");
    assert!(c.is_closed().await);

    let errors = logged(&proxy, 2).await;
    assert!(
        errors
            .iter()
            .all(|e| e.as_deref().is_some_and(|e| e.contains("in the middle"))),
        "{errors:?}"
    );
    assert_eq!(proxy.app().peer_calls(), 2, "nothing is retried mid-body");
    assert_eq!(get(addr, "/after").await.text(), "GET /after");
}

#[tokio::test]
async fn framed_origin_speaking_garbage_or_giving_up_is_a_502() {
    let (_origin, addr, proxy) = framed_proxy(2, |_| {}).await;
    for path in ["/garbage", "/bad-head", "/error-frame"] {
        let r = get(addr, path).await;
        assert_eq!(r.status(), 502, "{path}");
        assert!(
            !r.text().contains("SSH"),
            "{path}: nothing of it reaches the client"
        );
    }
    let errors = logged(&proxy, 3).await;
    let errors: Vec<&str> = errors.iter().map(|e| e.as_deref().unwrap()).collect();
    assert!(errors[0].contains("unknown frame type 83"), "{}", errors[0]);
    assert!(
        errors[1].contains("InvalidUpstreamResponse"),
        "{}",
        errors[1]
    );
    assert!(errors[2].contains("out of coffee"), "{}", errors[2]);
    assert_eq!(proxy.app().peer_calls(), 3, "none of these is retried");
}

#[tokio::test]
async fn framed_origin_stalling_past_the_read_timeout_is_a_504() {
    let (_origin, addr, proxy) = framed_proxy(2, |p| {
        p.peer.options.read_timeout = Duration::from_millis(300);
    })
    .await;
    let r = get(addr, "/stall").await;
    assert_eq!(r.head.status_line, "HTTP/1.1 504 Gateway Timeout");
    assert_eq!(proxy.app().peer_calls(), 1, "a timeout is not retried");
    let errors = logged(&proxy, 1).await;
    assert!(errors[0].as_deref().unwrap().contains("ReadTimedout"));
}

#[tokio::test]
async fn framed_connect_failure_goes_through_fail_to_connect() {
    let dead = closed_port().await;
    let peer = HttpPeer::custom("down", Arc::new(FramedTransport::tcp(dead)));
    let (addr, proxy) = start_proxy(CustomProxy::new(peer), |b| b.max_retries(2)).await;
    let r = get(addr, "/x").await;
    assert_eq!(r.status(), 502);
    assert_eq!(proxy.app().fail_to_connect_calls(), 3, "one per try");
    let errors = logged(&proxy, 1).await;
    assert!(
        errors[0].as_deref().unwrap().contains("ConnectRefused"),
        "{errors:?}"
    );
}
