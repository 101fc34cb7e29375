//! Shared helpers of the integration tests: a scriptable test origin, a test
//! [`ProxyHttp`] that counts its phase calls, a way to start the proxy in-process on a
//! loopback port, and a small raw HTTP/1.1 client.
//!
//! Everything runs over real loopback sockets. Every wait is bounded by [`SAFETY`] so a
//! hung test fails with a message instead of hanging; none of these bounds is a timing
//! assertion.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use proxy_runtime::bytes::{Buf, BytesMut};
use proxy_runtime::prelude::*;
use proxy_runtime::proxy::HttpProxy;
use proxy_runtime::server::{ConnectionTracker, ListenAddr, Listener, ShutdownWatch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// The bound on any single wait in a test: exceeded means the test hangs, and fails.
pub const SAFETY: Duration = Duration::from_secs(10);

/// Request bodies the origin keeps (beyond this, only length and pattern check).
const ORIGIN_BODY_KEEP: usize = 1 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------
// Test data: a deterministic byte pattern, checked without hashing or buffering.
// ---------------------------------------------------------------------------------------

const PATTERN_PERIOD: usize = 251;
const PATTERN_BLOCK: usize = 64 * 1024;

fn pattern_buf() -> &'static [u8] {
    static BUF: OnceLock<Vec<u8>> = OnceLock::new();
    BUF.get_or_init(|| {
        (0..PATTERN_BLOCK + PATTERN_PERIOD)
            .map(|i| (i % PATTERN_PERIOD) as u8)
            .collect()
    })
}

/// `len` (≤ 64 KiB) bytes of the test pattern starting at absolute `offset`
/// (byte `i` of a pattern body is `i % 251`).
pub fn pattern_at(offset: u64, len: usize) -> &'static [u8] {
    assert!(len <= PATTERN_BLOCK);
    let start = (offset % PATTERN_PERIOD as u64) as usize;
    &pattern_buf()[start..start + len]
}

/// Length and pattern check of a body seen piece by piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    /// Bytes seen.
    pub len: u64,
    /// Every byte so far matched the test pattern at its offset.
    pub pattern_ok: bool,
}

impl Default for Digest {
    fn default() -> Self {
        Digest {
            len: 0,
            pattern_ok: true,
        }
    }
}

impl Digest {
    /// Account for the next piece of the body.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = data.len().min(PATTERN_BLOCK);
            if self.pattern_ok && data[..n] != *pattern_at(self.len, n) {
                self.pattern_ok = false;
            }
            self.len += n as u64;
            data = &data[n..];
        }
    }
}

/// `n` bytes of the pattern as one vector (for small bodies).
pub fn pattern_vec(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % PATTERN_PERIOD) as u8).collect()
}

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

/// Wait until `cond` holds (polling), or fail the test after [`SAFETY`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + SAFETY;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {SAFETY:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A loopback address where nothing listens (connections are refused).
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// The peak resident set size of this process, in KiB (`VmHWM`).
pub fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parse `Name: value` lines (after the start line) into pairs.
fn parse_fields(lines: &[&str]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.to_string(), v.trim().to_string()))
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn has_token(fields: &[(String, String)], name: &str, token: &str) -> bool {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A buffered socket for the test's own HTTP code (origin and client).
struct RawConn {
    sock: TcpStream,
    buf: BytesMut,
    eof: bool,
}

impl RawConn {
    fn new(sock: TcpStream) -> Self {
        RawConn {
            sock,
            buf: BytesMut::with_capacity(16 * 1024),
            eof: false,
        }
    }

    /// Read once more; `Ok(0)` at EOF.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        if self.buf.capacity() - self.buf.len() < 8 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = self.sock.read_buf(&mut self.buf).await?;
        if n == 0 {
            self.eof = true;
        }
        Ok(n)
    }

    /// The bytes up to and including the next `\r\n\r\n`; `None` at a clean EOF before
    /// any byte; `Err` on EOF in the middle or an I/O error.
    async fn read_head(&mut self, limit: usize) -> io::Result<Option<String>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                let head = self.buf.split_to(i + 4);
                return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
            }
            if self.buf.len() > limit {
                return Err(io::Error::other("head too large"));
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    /// One CRLF-terminated line, without the CRLF.
    async fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = self.buf.split_to(i + 2);
                return Ok(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            if self.buf.len() > 64 * 1024 {
                return Err(io::Error::other("line too long"));
            }
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Stream exactly `n` bytes into `sink` (fewer if the connection ends: `Err`).
    async fn read_exact_into(
        &mut self,
        mut n: u64,
        sink: &mut (dyn FnMut(&[u8]) + Send),
    ) -> io::Result<()> {
        while n > 0 {
            if self.buf.is_empty() && self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let take = (self.buf.len() as u64).min(n) as usize;
            sink(&self.buf[..take]);
            self.buf.advance(take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Stream everything until EOF into `sink`.
    async fn read_to_eof_into(&mut self, sink: &mut (dyn FnMut(&[u8]) + Send)) -> io::Result<()> {
        loop {
            if !self.buf.is_empty() {
                sink(&self.buf);
                self.buf.clear();
            }
            if self.fill().await? == 0 {
                return Ok(());
            }
        }
    }

    /// A chunked body into `sink`; returns the trailer fields.
    async fn read_chunked_into(
        &mut self,
        sink: &mut (dyn FnMut(&[u8]) + Send),
    ) -> io::Result<Vec<(String, String)>> {
        loop {
            let line = self.read_line().await?;
            let size_str = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_str, 16)
                .map_err(|_| io::Error::other(format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                let mut trailers = Vec::new();
                loop {
                    let l = self.read_line().await?;
                    if l.is_empty() {
                        return Ok(trailers);
                    }
                    trailers.extend(parse_fields(&[l.as_str()]));
                }
            }
            self.read_exact_into(size, sink).await?;
            if !self.read_line().await?.is_empty() {
                return Err(io::Error::other("chunk data not followed by CRLF"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The test origin
// ---------------------------------------------------------------------------------------

/// One request as the origin received it.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Which accepted connection (1-based) carried it.
    pub conn: usize,
    /// Its position on that connection (1-based).
    pub seq: usize,
    /// The raw request head.
    pub head: String,
    /// Method, target and version from the request line.
    pub method: String,
    /// The request target.
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Header fields in order, as sent.
    pub headers: Vec<(String, String)>,
    /// The body (the first MiB of it).
    pub body: Vec<u8>,
    /// Length and pattern check of the whole body.
    pub digest: Digest,
    /// The body was received to its end (its framing completed).
    pub body_complete: bool,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
}

impl Recorded {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        field(&self.headers, name)
    }

    /// Whether header `name` is present.
    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

#[derive(Default)]
struct OriginState {
    accepts: AtomicUsize,
    closed: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
    gate: Notify,
}

/// A scriptable HTTP/1.1 origin on a loopback port.
///
/// It records every connection it accepts and every request head and body it receives,
/// and answers by path:
///
/// | path | behaviour |
/// |---|---|
/// | anything else (e.g. `/echo`) | 200, `Content-Length`, body = the request body, or `METHOD target` when there is none; headers `X-Origin-Conn`, `X-Origin-Seq` |
/// | `/sink` | 200 with `len=N pattern_ok=B` describing the request body (not stored) |
/// | `/chunked` | 200 chunked in three chunks, with trailers `X-Checksum`, `X-Trailer-Two` |
/// | `/big?n=N` | 200 with `Content-Length: N` and N pattern bytes, streamed |
/// | `/big-chunked?n=N` | 200 chunked with N pattern bytes, streamed |
/// | `/close-delimited` | 200 without length; body ends when the origin closes |
/// | `/status?code=C` | status C (204 and 304 without body; 304 carries `Content-Length: 1234`) |
/// | `/hop` | 200 carrying hop-by-hop headers (and one named by `Connection`) |
/// | `/reset-before-head` | reads the request, then resets the connection |
/// | `/reset-mid-body` | `Content-Length: 1000000`, 10000 bytes, waits for [`Origin::open_gate`], resets |
/// | `/reset-mid-chunked` | chunked, two chunks, waits for [`Origin::open_gate`], resets |
/// | `/truncate` | `Content-Length: 1000000`, 10000 bytes, then a clean close |
/// | `/garbage` | answers bytes that are not HTTP, then closes |
/// | `/stall` | reads the request and never answers (until the peer closes) |
/// | `/no-answer` | reads the whole request, then closes without answering |
/// | `/idle-close` | answers (keep-alive), then closes the idle connection |
/// | `/close-if-reused` | answers the first request of a connection; on a later one, reads the whole request and closes without answering |
/// | `/bad-length` | answers with two different `Content-Length` values |
/// | `/extra-bytes` | answers `ok` followed by bytes nobody asked for (a second response) |
/// | `/cl-and-te` | answers with both `Content-Length: 3` and a chunked body `hello` |
/// | `/te-gzip` | answers with `Transfer-Encoding: gzip`, close-delimited |
/// | `/te-gzip-chunked` | answers with `Transfer-Encoding: gzip, chunked` |
/// | `/http10-chunked` | answers `HTTP/1.0` with `Transfer-Encoding: chunked`, then closes |
/// | `/buggy-head` | answers with a 5-byte body, even to HEAD |
/// | `/buggy-204` | answers 204 with `Content-Length: 5` and a body |
/// | `/early-hints` | answers `103 Early Hints`, then 200 `final` |
/// | `/upload-denied` | answers 403 before reading the body, then closes |
/// | `/ws` | with `Upgrade`: 101 and `welcome` in the same write, then echoes raw bytes until EOF; without: 200 |
/// | `/ws-refuse` | answers 200 (not 101) even to an upgrade request |
/// | `/force-101` | always answers 101 (and `welcome`), then echoes raw bytes |
///
/// `Expect: 100-continue` is answered with `100 Continue` before the body is read
/// (except on `/upload-denied`). `HEAD` requests get the head of the GET answer.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<OriginState>,
    task: JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// Start an origin on `127.0.0.1:0`.
    pub async fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(OriginState::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let conn = st.accepts.fetch_add(1, Ordering::SeqCst) + 1;
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve_origin_conn(&st, sock, conn).await;
                    st.closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Origin { addr, state, task }
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.state.accepts.load(Ordering::SeqCst)
    }

    /// Connections whose handling has ended (closed by either side).
    pub fn closed(&self) -> usize {
        self.state.closed.load(Ordering::SeqCst)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// Let a `/reset-mid-*` answer proceed to its reset.
    pub fn open_gate(&self) {
        self.state.gate.notify_one();
    }

    /// Wait until every accepted connection has been closed.
    pub async fn wait_all_closed(&self) {
        wait_until("the origin's connections to close", || {
            self.closed() == self.accepts()
        })
        .await;
    }
}

fn query_param(target: &str, key: &str) -> Option<u64> {
    let q = target.split_once('?')?.1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

async fn write_pattern(sock: &mut TcpStream, n: u64, chunked: bool) -> io::Result<()> {
    let mut sent = 0u64;
    while sent < n {
        let len = (n - sent).min(PATTERN_BLOCK as u64) as usize;
        let data = pattern_at(sent, len);
        if chunked {
            sock.write_all(format!("{len:x}\r\n").as_bytes()).await?;
            sock.write_all(data).await?;
            sock.write_all(b"\r\n").await?;
        } else {
            sock.write_all(data).await?;
        }
        sent += len as u64;
    }
    if chunked {
        sock.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

/// Reset the connection (RST instead of FIN).
fn reset(c: RawConn) {
    let _ = c.sock.set_zero_linger();
    drop(c);
}

async fn serve_origin_conn(st: &OriginState, sock: TcpStream, conn: usize) -> io::Result<()> {
    let mut c = RawConn::new(sock);
    let mut seq = 0;
    loop {
        let Some(head) = c.read_head(1 << 20).await? else {
            return Ok(());
        };
        seq += 1;
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.splitn(3, ' ');
        let (method, target, version) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let headers = parse_fields(&lines.collect::<Vec<_>>());
        let idx = {
            let mut reqs = lock(&st.requests);
            reqs.push(Recorded {
                conn,
                seq,
                head: head.clone(),
                method: method.clone(),
                target: target.clone(),
                version,
                headers: headers.clone(),
                ..Recorded::default()
            });
            reqs.len() - 1
        };
        let path = target.split('?').next().unwrap_or("").to_string();
        let is_head = method == "HEAD";

        // Answered before (and without) reading the body.
        if path == "/upload-denied" {
            c.sock
                .write_all(
                    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\nConnection: close\r\n\r\ndenied",
                )
                .await?;
            c.sock.shutdown().await?;
            let _ = c.read_to_eof_into(&mut |_| {}).await;
            return Ok(());
        }
        if has_token(&headers, "expect", "100-continue") {
            c.sock.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }

        // The request body, streamed into the record.
        let chunked = has_token(&headers, "transfer-encoding", "chunked");
        let length: Option<u64> = field(&headers, "content-length").and_then(|v| v.parse().ok());
        let mut sink = |data: &[u8]| {
            let mut reqs = lock(&st.requests);
            let r = &mut reqs[idx];
            r.digest.update(data);
            let room = ORIGIN_BODY_KEEP.saturating_sub(r.body.len());
            r.body.extend_from_slice(&data[..data.len().min(room)]);
        };
        let trailers = if chunked {
            c.read_chunked_into(&mut sink).await?
        } else {
            if let Some(n) = length {
                c.read_exact_into(n, &mut sink).await?;
            }
            Vec::new()
        };
        let (body, digest) = {
            let mut reqs = lock(&st.requests);
            let r = &mut reqs[idx];
            r.body_complete = true;
            r.trailers = trailers;
            (r.body.clone(), r.digest)
        };
        let upgrade_asked = field(&headers, "upgrade").is_some();

        match path.as_str() {
            "/close-if-reused" if seq > 1 => return Ok(()),
            "/extra-bytes" => {
                c.sock
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")
                    .await?;
            }
            "/cl-and-te" => {
                c.sock
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                    .await?;
            }
            "/te-gzip" => {
                c.sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08\x00coded",
                    )
                    .await?;
                c.sock.shutdown().await?;
                return Ok(());
            }
            "/te-gzip-chunked" => {
                c.sock
                    .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n9\r\n\x1f\x8b\x08\x00coded\r\n0\r\n\r\n")
                    .await?;
            }
            "/http10-chunked" => {
                c.sock
                    .write_all(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
                    .await?;
                c.sock.shutdown().await?;
                return Ok(());
            }
            "/buggy-head" => {
                // A body even for HEAD.
                c.sock
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                    .await?;
            }
            "/buggy-204" => {
                c.sock
                    .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello")
                    .await?;
            }
            "/early-hints" => {
                c.sock
                    .write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
                    .await?;
            }
            "/no-reason" => {
                // A status line without a reason phrase (RFC 9112 §4 allows it) and a
                // field with an empty value.
                c.sock
                    .write_all(b"HTTP/1.1 200\r\nX-Empty:\r\nContent-Length: 2\r\n\r\nok")
                    .await?;
            }
            "/interim-flood" => {
                // Far more interim heads than any real origin sends.
                let mut heads = Vec::new();
                for _ in 0..40 {
                    heads.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n");
                }
                heads.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal");
                c.sock.write_all(&heads).await?;
            }
            "/interim-with-length" => {
                // An interim head without a reason, carrying a Content-Length it must
                // not have (RFC 9110 §8.6), then the final response.
                c.sock
                    .write_all(b"HTTP/1.1 103\r\nLink: </a.css>\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
                    .await?;
            }
            "/bad-length" => {
                c.sock
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                    )
                    .await?;
            }
            "/sink" => {
                let text = format!("len={} pattern_ok={}", digest.len, digest.pattern_ok);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                    text.len()
                );
                c.sock.write_all(resp.as_bytes()).await?;
            }
            "/chunked" => {
                let mut resp = String::from(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum, X-Trailer-Two\r\n\r\n",
                );
                if !is_head {
                    resp.push_str("6\r\nhello \r\n8\r\nchunked \r\n5\r\nworld\r\n0\r\nX-Checksum: abc123\r\nX-Trailer-Two: 2\r\n\r\n");
                }
                c.sock.write_all(resp.as_bytes()).await?;
            }
            "/big" | "/big-chunked" => {
                let n = query_param(&target, "n").unwrap_or(0);
                let chunked = path == "/big-chunked";
                let framing = if chunked {
                    "Transfer-Encoding: chunked".to_string()
                } else {
                    format!("Content-Length: {n}")
                };
                c.sock
                    .write_all(format!("HTTP/1.1 200 OK\r\n{framing}\r\n\r\n").as_bytes())
                    .await?;
                if !is_head {
                    write_pattern(&mut c.sock, n, chunked).await?;
                }
            }
            "/close-delimited" => {
                c.sock
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                    .await?;
                if !is_head {
                    c.sock.write_all(b"close-delimited ").await?;
                    c.sock.write_all(b"body").await?;
                }
                c.sock.shutdown().await?;
                return Ok(());
            }
            "/status" => {
                let code = query_param(&target, "code").unwrap_or(200);
                let resp = match code {
                    204 => "HTTP/1.1 204 No Content\r\nX-Origin: yes\r\n\r\n".to_string(),
                    304 => {
                        "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 1234\r\n\r\n"
                            .to_string()
                    }
                    _ => format!("HTTP/1.1 {code} Whatever\r\nContent-Length: 6\r\n\r\nstatus"),
                };
                c.sock.write_all(resp.as_bytes()).await?;
            }
            "/hop" => {
                let mut resp = String::from(
                    "HTTP/1.1 200 OK\r\nConnection: X-Origin-Private\r\nX-Origin-Private: secret\r\n\
                     Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTrailer: X-Nothing\r\n\
                     Upgrade: foo/1\r\nX-Kept: yes\r\nContent-Length: 3\r\n\r\n",
                );
                if !is_head {
                    resp.push_str("hop");
                }
                c.sock.write_all(resp.as_bytes()).await?;
            }
            "/reset-before-head" => {
                reset(c);
                return Ok(());
            }
            "/reset-mid-body" | "/reset-mid-chunked" | "/truncate" => {
                if path == "/reset-mid-chunked" {
                    c.sock
                        .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .await?;
                    c.sock.write_all(b"5\r\nfirst\r\n6\r\nsecond\r\n").await?;
                } else {
                    c.sock
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
                        .await?;
                    c.sock.write_all(pattern_at(0, 10_000)).await?;
                }
                if path == "/truncate" {
                    c.sock.shutdown().await?;
                    return Ok(());
                }
                let _ = timeout(SAFETY, st.gate.notified()).await;
                reset(c);
                return Ok(());
            }
            "/garbage" => {
                c.sock
                    .write_all(b"SSH-2.0-OpenSSH_9.2\r\nthis is not http at all\r\n\r\n")
                    .await?;
                c.sock.shutdown().await?;
                return Ok(());
            }
            "/stall" => {
                let _ = timeout(SAFETY * 3, c.read_to_eof_into(&mut |_| {})).await;
                return Ok(());
            }
            "/no-answer" => return Ok(()),
            "/ws" | "/force-101" if upgrade_asked || path == "/force-101" => {
                c.sock
                    .write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Origin: ws\r\n\r\nwelcome",
                    )
                    .await?;
                // Raw echo until the peer closes, then close too.
                loop {
                    if !c.buf.is_empty() {
                        let data = c.buf.split();
                        c.sock.write_all(&data).await?;
                    }
                    if c.fill().await? == 0 {
                        break;
                    }
                }
                c.sock.shutdown().await?;
                return Ok(());
            }
            _ => {
                let body = if body.is_empty() {
                    format!("{method} {target}").into_bytes()
                } else {
                    body
                };
                let mut resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Origin-Conn: {conn}\r\nX-Origin-Seq: {seq}\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                if !is_head {
                    resp.extend_from_slice(&body);
                }
                c.sock.write_all(&resp).await?;
                if path == "/idle-close" {
                    c.sock.shutdown().await?;
                    return Ok(());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The test proxy
// ---------------------------------------------------------------------------------------

/// One call of the `logging` phase.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// The request path.
    pub path: String,
    /// The status of the response written to the client, if any.
    pub status: Option<u16>,
    /// The error the request failed with, if any.
    pub error: Option<String>,
    /// Response body bytes sent to the client.
    pub sent: u64,
    /// Of those, the bytes relayed socket to socket in the kernel.
    pub spliced: u64,
}

/// A [`ProxyHttp`] that sends everything to one origin (after an optional list of
/// first peers, one per try), and counts its phase calls. Paths starting with `/deny`
/// are answered 403 by `request_filter` without reading the request body.
pub struct TestProxy {
    /// Where requests go once `first_peers` is used up.
    pub default_peer: Mutex<SocketAddr>,
    /// Peers handed out first, one per `upstream_peer` call.
    pub first_peers: Mutex<VecDeque<SocketAddr>>,
    /// The peer read timeout to configure (`None`: the default).
    pub read_timeout: Option<Duration>,
    /// What `response_body_passthrough` answers (default `true`, as a proxy declared
    /// with the DSL and no body filter: the engine splices large bodies).
    pub passthrough: bool,
    /// `upstream_peer` calls.
    pub upstream_peer_calls: AtomicUsize,
    /// `fail_to_connect` calls.
    pub fail_to_connect_calls: AtomicUsize,
    /// `reused` of every `connected_to_upstream` call.
    pub connected: Mutex<Vec<bool>>,
    /// `logging` calls.
    pub logging_calls: AtomicUsize,
    /// What every `logging` call saw.
    pub logged: Mutex<Vec<LogEntry>>,
}

impl TestProxy {
    /// A proxy to `origin`.
    pub fn new(origin: SocketAddr) -> Self {
        TestProxy {
            default_peer: Mutex::new(origin),
            first_peers: Mutex::new(VecDeque::new()),
            read_timeout: None,
            passthrough: true,
            upstream_peer_calls: AtomicUsize::new(0),
            fail_to_connect_calls: AtomicUsize::new(0),
            connected: Mutex::new(Vec::new()),
            logging_calls: AtomicUsize::new(0),
            logged: Mutex::new(Vec::new()),
        }
    }

    /// With this peer read timeout.
    pub fn with_read_timeout(mut self, d: Duration) -> Self {
        self.read_timeout = Some(d);
        self
    }

    /// Answering `false` to `response_body_passthrough`: every body through user space.
    pub fn without_body_passthrough(mut self) -> Self {
        self.passthrough = false;
        self
    }

    /// With these peers tried first (one per try).
    pub fn with_first_peers(self, peers: impl IntoIterator<Item = SocketAddr>) -> Self {
        lock(&self.first_peers).extend(peers);
        self
    }

    /// Send later requests to `addr`.
    pub fn set_default_peer(&self, addr: SocketAddr) {
        *lock(&self.default_peer) = addr;
    }

    /// `upstream_peer` calls so far.
    pub fn peer_calls(&self) -> usize {
        self.upstream_peer_calls.load(Ordering::SeqCst)
    }

    /// `logging` calls so far.
    pub fn log_calls(&self) -> usize {
        self.logging_calls.load(Ordering::SeqCst)
    }

    /// A copy of the logging entries.
    pub fn log(&self) -> Vec<LogEntry> {
        lock(&self.logged).clone()
    }

    /// The `reused` flags of every upstream connection used.
    pub fn connections(&self) -> Vec<bool> {
        lock(&self.connected).clone()
    }
}

impl ProxyHttp for TestProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<HttpPeer> {
        self.upstream_peer_calls.fetch_add(1, Ordering::SeqCst);
        let addr = lock(&self.first_peers)
            .pop_front()
            .unwrap_or_else(|| *lock(&self.default_peer));
        let mut peer = HttpPeer::new(addr, false, "")?;
        if let Some(d) = self.read_timeout {
            peer.options.read_timeout = d;
        }
        Ok(peer)
    }

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        // `/deny...` is answered by the proxy itself, without reading any request body.
        if session.req_header().path().starts_with("/deny") {
            session.respond_error(403).await?;
            return Ok(true);
        }
        Ok(false)
    }

    fn response_body_passthrough(&self, _session: &Session, _ctx: &()) -> bool {
        self.passthrough
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        _ctx: &mut (),
    ) -> Result<()> {
        lock(&self.connected).push(reused);
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut (),
        e: Box<Error>,
    ) -> Box<Error> {
        self.fail_to_connect_calls.fetch_add(1, Ordering::SeqCst);
        e
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, _ctx: &mut ()) {
        let entry = LogEntry {
            path: session.req_header().path().to_string(),
            status: session.response_written().map(|r| r.status.as_u16()),
            error: e.map(ToString::to_string),
            sent: session.body_bytes_sent(),
            spliced: session.body_bytes_spliced(),
        };
        lock(&self.logged).push(entry);
        self.logging_calls.fetch_add(1, Ordering::SeqCst);
    }
}

/// A proxy running in the test's runtime; stops when dropped.
pub struct ProxyHandle<P> {
    /// The engine (its `inner` is the user's proxy).
    pub proxy: Arc<HttpProxy<P>>,
    task: JoinHandle<()>,
}

impl<P> ProxyHandle<P> {
    /// The user's proxy.
    pub fn app(&self) -> &P {
        &self.proxy.inner
    }
}

impl<P> Drop for ProxyHandle<P> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve `proxy` on a fresh loopback port, with the builder changed by `tweak`.
pub async fn start_proxy<P: ProxyHttp>(
    proxy: P,
    tweak: impl FnOnce(HttpProxyServiceBuilder<P>) -> HttpProxyServiceBuilder<P>,
) -> (SocketAddr, ProxyHandle<P>) {
    let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".into()))
        .await
        .unwrap();
    let addr = *listener.local_addr().unwrap().as_inet().unwrap();
    let service = tweak(HttpProxyServiceBuilder::new(proxy)).build();
    let engine = service.proxy().clone();
    let task = tokio::spawn(HttpProxyService::serve_listener(
        engine.clone(),
        listener,
        ShutdownWatch::never(),
        Arc::new(ConnectionTracker::default()),
    ));
    (
        addr,
        ProxyHandle {
            proxy: engine,
            task,
        },
    )
}

/// An origin and a default [`TestProxy`] in front of it.
pub async fn origin_and_proxy() -> (Origin, SocketAddr, ProxyHandle<TestProxy>) {
    let origin = Origin::start().await;
    let (addr, handle) = start_proxy(TestProxy::new(origin.addr), |b| b).await;
    (origin, addr, handle)
}

// ---------------------------------------------------------------------------------------
// The raw client
// ---------------------------------------------------------------------------------------

/// A response head as the client received it.
#[derive(Debug, Clone)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The version from the status line.
    pub version: String,
    /// The status line.
    pub status_line: String,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
    /// The raw head.
    pub raw: String,
}

impl Head {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        field(&self.headers, name)
    }

    /// Whether header `name` is present.
    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// Whether header `name` lists `token`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        has_token(&self.headers, name, token)
    }
}

/// How a response body was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length`.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the connection closed.
    Close,
}

/// A complete (or truncated) response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The head.
    pub head: Head,
    /// The body (when kept).
    pub body: Vec<u8>,
    /// Length and pattern check of the body.
    pub digest: Digest,
    /// Trailer fields (chunked).
    pub trailers: Vec<(String, String)>,
    /// How the body was delimited.
    pub framing: Framing,
    /// The body ended as its framing says (not cut short by the connection ending).
    pub complete: bool,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw HTTP/1.x client on one TCP connection.
pub struct Client {
    conn: RawConn,
}

impl Client {
    /// Connect to `addr`.
    pub async fn connect(addr: SocketAddr) -> Client {
        let sock = timeout(SAFETY, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        sock.set_nodelay(true).unwrap();
        Client {
            conn: RawConn::new(sock),
        }
    }

    /// Send raw bytes. Errors (the proxy may already have closed) are returned.
    pub async fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        timeout(SAFETY, self.conn.sock.write_all(bytes))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "send timed out"))?
    }

    /// Send raw bytes; failing to is a test failure.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.try_send(bytes.as_ref())
            .await
            .expect("sending to the proxy failed");
    }

    /// Close the sending side (FIN).
    pub async fn shutdown_write(&mut self) {
        let _ = self.conn.sock.shutdown().await;
    }

    /// Read the next response head, interim (1xx) ones included. `None` if the
    /// connection ended (or was reset) before a complete head.
    pub async fn try_read_head(&mut self) -> Option<Head> {
        let raw = timeout(SAFETY, self.conn.read_head(1 << 20))
            .await
            .expect("timed out waiting for a response head")
            .ok()??;
        let mut lines = raw.split("\r\n");
        let status_line = lines.next().unwrap_or("").to_string();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_string();
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = parse_fields(&lines.collect::<Vec<_>>());
        Some(Head {
            status,
            version,
            status_line,
            headers,
            raw,
        })
    }

    /// Read the next response head; its absence is a test failure.
    pub async fn read_head(&mut self) -> Head {
        self.try_read_head()
            .await
            .expect("the connection ended before a response head")
    }

    /// Read the body that follows `head` (`head_request`: it answers a HEAD request).
    /// `keep`: store the body bytes (else only length and pattern check).
    pub async fn read_body(&mut self, head: Head, head_request: bool, keep: bool) -> Response {
        let te_chunked = head.has_token("transfer-encoding", "chunked");
        let length = head.header("content-length").and_then(|v| v.parse().ok());
        let framing = if head_request
            || (100..200).contains(&head.status)
            || head.status == 204
            || head.status == 304
        {
            Framing::None
        } else if te_chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::Close
        };
        let mut body = Vec::new();
        let mut digest = Digest::default();
        let mut sink = |d: &[u8]| {
            digest.update(d);
            if keep {
                body.extend_from_slice(d);
            }
        };
        let mut trailers = Vec::new();
        let conn = &mut self.conn;
        let complete = timeout(SAFETY, async {
            match framing {
                Framing::None => true,
                Framing::Length(n) => conn.read_exact_into(n, &mut sink).await.is_ok(),
                Framing::Chunked => match conn.read_chunked_into(&mut sink).await {
                    Ok(t) => {
                        trailers = t;
                        true
                    }
                    Err(_) => false,
                },
                Framing::Close => conn.read_to_eof_into(&mut sink).await.is_ok(),
            }
        })
        .await
        .expect("timed out reading a response body");
        Response {
            head,
            body,
            digest,
            trailers,
            framing,
            complete,
        }
    }

    /// Read one final response (skipping interim 1xx ones) with its body.
    pub async fn read_response(&mut self) -> Response {
        self.read_response_opts(false, true).await
    }

    /// Read the final response to a HEAD request.
    pub async fn read_head_response(&mut self) -> Response {
        self.read_response_opts(true, true).await
    }

    /// Read one final response; see [`Client::read_body`] for the flags.
    pub async fn read_response_opts(&mut self, head_request: bool, keep: bool) -> Response {
        loop {
            let head = self.read_head().await;
            if (100..200).contains(&head.status) && head.status != 101 {
                continue;
            }
            return self.read_body(head, head_request, keep).await;
        }
    }

    /// Read whatever arrives next (at least one byte), or nothing at EOF/reset.
    pub async fn read_some(&mut self) -> Vec<u8> {
        if self.conn.buf.is_empty() {
            let _ = timeout(SAFETY, self.conn.fill())
                .await
                .expect("timed out waiting for bytes");
        }
        self.conn.buf.split().to_vec()
    }

    /// Read exactly `n` raw bytes (fewer if the connection ends).
    pub async fn read_exact_raw(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < n {
            let got = self.read_some().await;
            if got.is_empty() {
                break;
            }
            out.extend_from_slice(&got);
        }
        if out.len() > n {
            let rest = out.split_off(n);
            let mut buf = BytesMut::from(&rest[..]);
            buf.extend_from_slice(&self.conn.buf);
            self.conn.buf = buf;
        }
        out
    }

    /// Read raw bytes until EOF or reset.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let conn = &mut self.conn;
        let _ = timeout(
            SAFETY,
            conn.read_to_eof_into(&mut |d| out.extend_from_slice(d)),
        )
        .await
        .expect("timed out waiting for the connection to close");
        out
    }

    /// Whether the proxy closed the connection (EOF or reset) with nothing more sent.
    /// Waits (up to the safety bound) for either bytes or the close.
    pub async fn is_closed(&mut self) -> bool {
        self.read_some().await.is_empty()
    }
}

/// One request on a fresh connection; returns the response.
pub async fn request(addr: SocketAddr, raw: impl AsRef<[u8]>) -> Response {
    let mut c = Client::connect(addr).await;
    c.send(raw).await;
    c.read_response().await
}

/// `GET path` with `Host: test` on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
    .await
}
