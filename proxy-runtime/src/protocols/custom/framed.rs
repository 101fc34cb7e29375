//! The framed transport: HTTP messages as length-prefixed frames over any byte stream
//! (TCP or a Unix domain socket), for origins that would rather not speak HTTP/1.
//!
//! # Wire format
//!
//! Both directions are a sequence of frames:
//!
//! ```text
//! +--------+--------------------+---------------------+
//! | type   | length             | payload             |
//! | 1 byte | 4 bytes, big end.  | `length` bytes      |
//! +--------+--------------------+---------------------+
//! ```
//!
//! | type | name       | payload |
//! |------|------------|---------|
//! | 1    | `HEAD`     | a message head as HTTP/1.1 text: the request line (`GET /a?b HTTP/1.1`) or status line (`HTTP/1.1 200 OK`), header lines, and the empty line, all ending in CRLF |
//! | 2    | `BODY`     | body bytes |
//! | 3    | `TRAILERS` | header lines ending in CRLF, then an empty line (CRLF) |
//! | 4    | `END`      | empty: the message is complete |
//! | 5    | `ERROR`    | UTF-8 text: the sender gives up on the exchange |
//!
//! A request is `HEAD BODY* TRAILERS? END` from the proxy; a response is
//! `HEAD(1xx)* HEAD BODY* TRAILERS? END` (or an `ERROR` at any point) from the
//! origin. The frames delimit the body: `Content-Length` in a head is information (the
//! proxy keeps the client's when it is still true), and `Transfer-Encoding` never
//! appears. The version in a start line is always `HTTP/1.1`. Header names keep their
//! case. An origin may answer before the request has ended; the proxy then stops
//! sending and closes the connection.
//!
//! After a complete exchange (both `END`s, nothing else received) the connection may
//! carry the next one: the transport pools it (see [`FramedTransport`]). A connection
//! closed by either side ends any exchange on it; one closed by the proxy in the middle
//! of a request means the request was abandoned.
//!
//! # Limits
//!
//! A receiver rejects frames of an unknown type, `BODY` frames longer than
//! [`FramedLimits::max_frame`] (default 1 MiB), `HEAD`, `TRAILERS` and `ERROR` frames
//! longer than [`FramedLimits::max_head`] (default 64 KiB), heads with more than
//! [`FramedLimits::max_headers`] fields, an `END` with a payload, and heads or trailers
//! that do not parse. The proxy sends `BODY` frames of at most [`MAX_BODY_FRAME`]
//! (64 KiB). A malformed response is a 502 for the client.
//!
//! [`FrameReader`] and [`FrameWriter`] are the codec, public so origins written in Rust
//! (like `examples/src/bin/framed_origin.rs`) use the same code.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use super::{
    BoxFuture, CustomExchange, CustomTransport, RequestSink, ResponseEvent, ResponseSource,
};
use crate::error::{Error, ErrorKind, ErrorSource, Result, RetryType, io_error};
use crate::http::{RequestHeader, ResponseHeader};
use crate::protocols::h1::head::MAX_HEADERS_CEILING;
use crate::protocols::{SocketAddress, Stream};
use crate::upstream::connector::connect_address;
use crate::upstream::{ConnectionPool, HttpPeer, PoolOptions};

/// The largest `BODY` frame this implementation sends.
pub const MAX_BODY_FRAME: usize = 64 * 1024;

/// Bytes of a frame's type and length.
const FRAME_HEADER: usize = 5;

/// Frame types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A request or response head (type 1).
    Head,
    /// Body bytes (type 2).
    Body,
    /// Trailer fields (type 3).
    Trailers,
    /// The end of the message (type 4).
    End,
    /// The sender gives up on the exchange (type 5).
    Error,
}

impl FrameKind {
    /// The type byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            FrameKind::Head => 1,
            FrameKind::Body => 2,
            FrameKind::Trailers => 3,
            FrameKind::End => 4,
            FrameKind::Error => 5,
        }
    }

    /// The frame type of a type byte, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => FrameKind::Head,
            2 => FrameKind::Body,
            3 => FrameKind::Trailers,
            4 => FrameKind::End,
            5 => FrameKind::Error,
            _ => return None,
        })
    }
}

/// One frame as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its type.
    pub kind: FrameKind,
    /// Its payload.
    pub payload: Bytes,
}

/// What a receiver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramedLimits {
    /// The longest `BODY` payload (default 1 MiB).
    pub max_frame: usize,
    /// The longest `HEAD`, `TRAILERS` or `ERROR` payload (default 64 KiB).
    pub max_head: usize,
    /// The most header fields in a head or trailers (default 128, at most 512).
    pub max_headers: usize,
}

impl Default for FramedLimits {
    fn default() -> Self {
        FramedLimits {
            max_frame: 1024 * 1024,
            max_head: 64 * 1024,
            max_headers: 128,
        }
    }
}

/// Why frames could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// Reading failed.
    Io(io::Error),
    /// The stream ended inside a frame.
    Truncated,
    /// A type byte that is not a frame type.
    UnknownKind(u8),
    /// A frame longer than the limit for its type.
    TooLarge {
        /// The frame's type.
        kind: FrameKind,
        /// Its announced length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A payload that does not parse (a head, trailers, an `END` with bytes).
    Malformed(&'static str),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::Truncated => f.write_str("the stream ended inside a frame"),
            FrameError::UnknownKind(k) => write!(f, "unknown frame type {k}"),
            FrameError::TooLarge { kind, len, limit } => {
                write!(f, "{kind:?} frame of {len} bytes (limit {limit})")
            }
            FrameError::Malformed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Reads frames from a byte stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    limits: FramedLimits,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader over `io` that enforces `limits`.
    pub fn new(io: R, limits: FramedLimits) -> Self {
        FrameReader {
            io,
            buf: BytesMut::new(),
            limits,
        }
    }

    /// The next frame; `Ok(None)` if the stream ended cleanly between frames.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        while self.buf.len() < FRAME_HEADER {
            if self.fill(FRAME_HEADER).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
        }
        let code = self.buf[0];
        let kind = FrameKind::from_code(code).ok_or(FrameError::UnknownKind(code))?;
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        let limit = match kind {
            FrameKind::Body => self.limits.max_frame,
            FrameKind::End => 0,
            FrameKind::Head | FrameKind::Trailers | FrameKind::Error => self.limits.max_head,
        };
        if len > limit {
            return Err(if kind == FrameKind::End {
                FrameError::Malformed("END frame with a payload")
            } else {
                FrameError::TooLarge { kind, len, limit }
            });
        }
        while self.buf.len() < FRAME_HEADER + len {
            if self.fill(FRAME_HEADER + len).await? == 0 {
                return Err(FrameError::Truncated);
            }
        }
        self.buf.advance(FRAME_HEADER);
        let payload = self.buf.split_to(len).freeze();
        Ok(Some(Frame { kind, payload }))
    }

    /// Read once, with room for at least `want` bytes in the buffer.
    async fn fill(&mut self, want: usize) -> Result<usize, FrameError> {
        let room = want.saturating_sub(self.buf.len()).max(8 * 1024);
        self.buf.reserve(room);
        self.io
            .read_buf(&mut self.buf)
            .await
            .map_err(FrameError::Io)
    }

    /// Whether bytes past the last frame were read already.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The stream (bytes read past the last frame are lost).
    pub fn into_inner(self) -> R {
        self.io
    }
}

/// Writes frames to a byte stream. Frames are queued and go out on
/// [`flush`](Self::flush) (or when 64 KiB are queued).
#[derive(Debug)]
pub struct FrameWriter<W> {
    io: W,
    buf: BytesMut,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer over `io`.
    pub fn new(io: W) -> Self {
        FrameWriter {
            io,
            buf: BytesMut::new(),
        }
    }

    /// Queue one frame. A length field holds less than 4 GiB: a longer payload is cut
    /// there (bodies go through [`write_body`](Self::write_body), which splits them).
    pub fn queue(&mut self, kind: FrameKind, payload: &[u8]) {
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.buf.reserve(FRAME_HEADER + payload.len());
        self.buf.put_u8(kind.code());
        self.buf.put_u32(len);
        self.buf.put_slice(&payload[..len as usize]);
    }

    /// Queue `data` as `BODY` frames of at most [`MAX_BODY_FRAME`] bytes, writing out
    /// as the queue fills.
    pub async fn write_body(&mut self, data: &[u8]) -> io::Result<()> {
        for piece in data.chunks(MAX_BODY_FRAME) {
            self.queue(FrameKind::Body, piece);
            if self.buf.len() >= MAX_BODY_FRAME {
                self.io.write_all(&self.buf).await?;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Queue one frame and write everything out.
    pub async fn write_frame(&mut self, kind: FrameKind, payload: &[u8]) -> io::Result<()> {
        self.queue(kind, payload);
        self.flush().await
    }

    /// Write out everything queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.io.write_all(&self.buf).await?;
            self.buf.clear();
        }
        self.io.flush().await
    }

    /// The stream (queued frames are lost).
    pub fn into_inner(self) -> W {
        self.io
    }
}

/// A request head as a `HEAD` payload.
pub fn encode_request_head(head: &RequestHeader) -> Bytes {
    let mut head = head.clone();
    head.version = Version::HTTP_11;
    let mut out = BytesMut::new();
    head.write_h1(&mut out);
    out.freeze()
}

/// A response head as a `HEAD` payload.
pub fn encode_response_head(head: &ResponseHeader) -> Bytes {
    let mut out = BytesMut::new();
    if head.version == Version::HTTP_11 {
        head.write_h1(&mut out);
    } else {
        let mut head = head.clone();
        head.version = Version::HTTP_11;
        head.write_h1(&mut out);
    }
    out.freeze()
}

/// Trailer fields as a `TRAILERS` payload.
pub fn encode_trailers(trailers: &HeaderMap) -> Bytes {
    let mut out = BytesMut::new();
    for (name, value) in trailers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    out.freeze()
}

/// Header slots for parsing, as many as `limits` allow.
fn header_slots(limits: &FramedLimits) -> Vec<httparse::Header<'static>> {
    vec![httparse::EMPTY_HEADER; limits.max_headers.clamp(1, MAX_HEADERS_CEILING)]
}

/// Check that httparse consumed exactly `payload`.
fn whole(
    parsed: std::result::Result<httparse::Status<usize>, httparse::Error>,
    payload: &[u8],
    what: &'static str,
) -> Result<(), FrameError> {
    match parsed {
        Ok(httparse::Status::Complete(n)) if n == payload.len() => Ok(()),
        Ok(httparse::Status::Complete(_)) => Err(FrameError::Malformed("bytes after a head")),
        Ok(httparse::Status::Partial) => Err(FrameError::Malformed("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => {
            Err(FrameError::Malformed("too many header fields"))
        }
        Err(_) => Err(FrameError::Malformed(what)),
    }
}

/// Parse a `HEAD` payload sent by the proxy.
pub fn decode_request_head(
    payload: &[u8],
    limits: &FramedLimits,
) -> Result<RequestHeader, FrameError> {
    let mut slots = header_slots(limits);
    let mut req = httparse::Request::new(&mut slots);
    whole(req.parse(payload), payload, "malformed request head")?;
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Err(FrameError::Malformed("malformed request line"));
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| FrameError::Malformed("invalid method"))?;
    let mut head = RequestHeader::build(method, path, Version::HTTP_11)
        .map_err(|_| FrameError::Malformed("invalid request target"))?;
    for h in req.headers.iter() {
        head.append_header(h.name, h.value)
            .map_err(|_| FrameError::Malformed("invalid header field"))?;
    }
    Ok(head)
}

/// Parse a `HEAD` payload sent by an origin.
pub fn decode_response_head(
    payload: &[u8],
    limits: &FramedLimits,
) -> Result<ResponseHeader, FrameError> {
    let mut slots = header_slots(limits);
    let mut resp = httparse::Response::new(&mut slots);
    whole(resp.parse(payload), payload, "malformed response head")?;
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(FrameError::Malformed("invalid status code"))?;
    let mut head = ResponseHeader::new(status, resp.headers.len());
    if let Some(reason) = resp.reason
        && !reason.is_empty()
        && Some(reason) != status.canonical_reason()
    {
        head.set_reason(Bytes::copy_from_slice(reason.as_bytes()));
    }
    for h in resp.headers.iter() {
        head.append_header(h.name, h.value)
            .map_err(|_| FrameError::Malformed("invalid header field"))?;
    }
    Ok(head)
}

/// Parse a `TRAILERS` payload.
pub fn decode_trailers(payload: &[u8], limits: &FramedLimits) -> Result<HeaderMap, FrameError> {
    let mut slots = header_slots(limits);
    let parsed = httparse::parse_headers(payload, &mut slots);
    let fields = match parsed {
        Ok(httparse::Status::Complete((n, fields))) if n == payload.len() => fields,
        Ok(httparse::Status::Complete(_)) => {
            return Err(FrameError::Malformed("bytes after the trailers"));
        }
        Ok(httparse::Status::Partial) => return Err(FrameError::Malformed("incomplete trailers")),
        Err(_) => return Err(FrameError::Malformed("malformed trailers")),
    };
    let mut map = HeaderMap::with_capacity(fields.len());
    for f in fields.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| FrameError::Malformed("invalid trailer name"))?;
        let value = HeaderValue::from_bytes(f.value)
            .map_err(|_| FrameError::Malformed("invalid trailer value"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Where a [`FramedTransport`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Always this address.
    Fixed(SocketAddress),
    /// The address of the peer being served (for load-balanced groups).
    PeerAddress,
}

/// The framed transport (see the [module docs](self) for the wire format).
///
/// Connections are pooled inside the transport: after an exchange in which both
/// messages ended cleanly, the connection waits (up to the peer's `idle_timeout`) for
/// the next exchange to the same address, with the checks and bounds of the HTTP/1
/// pool ([`ConnectionPool`]). A failure on a reused connection before any response
/// frame may be retried (`ReusedOnly`), as with HTTP/1. Plain TCP and Unix sockets
/// only; no TLS.
pub struct FramedTransport {
    target: Target,
    limits: FramedLimits,
    pool: Arc<ConnectionPool>,
}

impl fmt::Debug for FramedTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            Target::Fixed(a) => a.to_string(),
            Target::PeerAddress => "peer address".to_string(),
        };
        f.debug_struct("FramedTransport")
            .field("target", &target)
            .field("limits", &self.limits)
            .field("idle", &self.pool.idle_count())
            .finish()
    }
}

impl FramedTransport {
    fn to(target: Target) -> Self {
        FramedTransport {
            target,
            limits: FramedLimits::default(),
            pool: ConnectionPool::new(PoolOptions {
                max_idle_per_key: 64,
                max_idle_total: 256,
            }),
        }
    }

    /// Frames over TCP to `addr`.
    pub fn tcp(addr: std::net::SocketAddr) -> Self {
        Self::to(Target::Fixed(SocketAddress::Inet(addr)))
    }

    /// Frames over the Unix domain socket at `path`.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::to(Target::Fixed(SocketAddress::Unix(path.into())))
    }

    /// Frames to whatever address the peer names (`peer.address`, TCP or Unix): one
    /// transport for every backend of a load-balanced group.
    pub fn at_peer_address() -> Self {
        Self::to(Target::PeerAddress)
    }

    /// With these limits on what the origin sends.
    pub fn with_limits(mut self, limits: FramedLimits) -> Self {
        self.limits = limits;
        self
    }

    /// With a pool of this size (`max_idle_total: 0` disables pooling).
    pub fn with_pool(mut self, opts: PoolOptions) -> Self {
        self.pool = ConnectionPool::new(opts);
        self
    }

    /// Idle connections held.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }
}

impl CustomTransport for FramedTransport {
    fn open<'a>(&'a self, peer: &'a HttpPeer) -> BoxFuture<'a, Result<CustomExchange>> {
        Box::pin(async move {
            let address = match &self.target {
                Target::Fixed(a) => a.clone(),
                Target::PeerAddress => peer.address.clone(),
            };
            let mut hasher = std::hash::DefaultHasher::new();
            address.hash(&mut hasher);
            let key = hasher.finish();
            let (stream, reused) = match self.pool.take(key) {
                Some(s) => (s, true),
                None => {
                    let label = format!("framed upstream {address}");
                    let s = connect_address(&address, peer.options.connect_timeout, &label).await?;
                    (s, false)
                }
            };
            let (read, write) = tokio::io::split(stream);
            let reunion = Arc::new(Reunion {
                pool: self.pool.clone(),
                key,
                idle_timeout: peer.options.idle_timeout,
                halves: Mutex::new(Halves::default()),
            });
            let sink = FramedSink {
                writer: Some(FrameWriter::new(write)),
                reunion: reunion.clone(),
            };
            let source = FramedSource {
                reader: Some(FrameReader::new(read, self.limits)),
                reunion,
                limits: self.limits,
                started: false,
                final_head: false,
            };
            Ok(CustomExchange::new(sink, source).reused(reused))
        })
    }
}

/// The two halves of a connection, collected after a clean exchange to go back to the
/// pool together.
struct Reunion {
    pool: Arc<ConnectionPool>,
    key: u64,
    idle_timeout: Duration,
    halves: Mutex<Halves>,
}

#[derive(Default)]
struct Halves {
    read: Option<ReadHalf<Stream>>,
    write: Option<WriteHalf<Stream>>,
}

impl Reunion {
    fn give_read(&self, half: ReadHalf<Stream>) {
        let mut halves = self.halves.lock().unwrap_or_else(|p| p.into_inner());
        halves.read = Some(half);
        self.pool_if_whole(&mut halves);
    }

    fn give_write(&self, half: WriteHalf<Stream>) {
        let mut halves = self.halves.lock().unwrap_or_else(|p| p.into_inner());
        halves.write = Some(half);
        self.pool_if_whole(&mut halves);
    }

    fn pool_if_whole(&self, halves: &mut Halves) {
        if halves.read.is_none() || halves.write.is_none() {
            return; // the other half is still busy (or failed, and never comes)
        }
        if let (Some(read), Some(write)) = (halves.read.take(), halves.write.take())
            && read.is_pair_of(&write)
        {
            self.pool
                .put(self.key, read.unsplit(write), self.idle_timeout);
        }
    }
}

/// The request half of a framed exchange.
struct FramedSink {
    /// `None` once the request has ended.
    writer: Option<FrameWriter<WriteHalf<Stream>>>,
    reunion: Arc<Reunion>,
}

impl FramedSink {
    fn writer(&mut self) -> Result<&mut FrameWriter<WriteHalf<Stream>>> {
        self.writer
            .as_mut()
            .ok_or_else(|| Error::internal("framed request written after its end"))
    }

    /// Write out what is queued; at the end of the request, give the write half back.
    async fn flush(&mut self, end: bool) -> Result<()> {
        self.writer()?.flush().await.map_err(write_error)?;
        if end && let Some(w) = self.writer.take() {
            self.reunion.give_write(w.into_inner());
        }
        Ok(())
    }
}

fn write_error(e: io::Error) -> Box<Error> {
    io_error(
        e,
        ErrorSource::Upstream,
        false,
        "writing to the framed upstream",
    )
    .with_retry(RetryType::ReusedOnly)
}

impl RequestSink for FramedSink {
    fn send_head(&mut self, head: RequestHeader, end_of_stream: bool) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let w = self.writer()?;
            w.queue(FrameKind::Head, &encode_request_head(&head));
            if end_of_stream {
                w.queue(FrameKind::End, &[]);
            }
            self.flush(end_of_stream).await
        })
    }

    fn send_body(&mut self, data: Bytes, end_of_stream: bool) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let w = self.writer()?;
            w.write_body(&data).await.map_err(write_error)?;
            if end_of_stream {
                w.queue(FrameKind::End, &[]);
            }
            self.flush(end_of_stream).await
        })
    }

    fn send_trailers(&mut self, trailers: HeaderMap) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let w = self.writer()?;
            w.queue(FrameKind::Trailers, &encode_trailers(&trailers));
            w.queue(FrameKind::End, &[]);
            self.flush(true).await
        })
    }
}

/// The response half of a framed exchange.
struct FramedSource {
    /// `None` once the response has ended.
    reader: Option<FrameReader<ReadHalf<Stream>>>,
    reunion: Arc<Reunion>,
    limits: FramedLimits,
    /// A frame of the response arrived.
    started: bool,
    /// The final (non-1xx) head arrived.
    final_head: bool,
}

impl FramedSource {
    async fn next(&mut self) -> Result<ResponseEvent> {
        let reader = self
            .reader
            .as_mut()
            .ok_or_else(|| Error::internal("framed response read after its end"))?;
        let read = reader.read_frame().await;
        // Before any frame, a failure may be a pooled connection the origin closed.
        let retry = if self.started {
            RetryType::Decided(false)
        } else {
            RetryType::ReusedOnly
        };
        let frame = match read {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(FrameError::Truncated) => {
                let what = if self.started {
                    "the framed upstream closed the connection in the middle of the response"
                } else {
                    "the framed upstream closed the connection before responding"
                };
                return Err(Error::explain(
                    ErrorKind::ConnectionClosed,
                    ErrorSource::Upstream,
                    what,
                )
                .with_retry(retry));
            }
            Err(FrameError::Io(e)) => {
                return Err(io_error(
                    e,
                    ErrorSource::Upstream,
                    true,
                    "reading from the framed upstream",
                )
                .with_retry(retry));
            }
            Err(e) => return Err(malformed(e)),
        };
        self.started = true;
        match frame.kind {
            FrameKind::Head => {
                let head = decode_response_head(&frame.payload, &self.limits).map_err(malformed)?;
                self.final_head |= !head.status.is_informational();
                Ok(ResponseEvent::Head(head))
            }
            FrameKind::Body => Ok(ResponseEvent::Body(frame.payload)),
            FrameKind::Trailers => decode_trailers(&frame.payload, &self.limits)
                .map(ResponseEvent::Trailers)
                .map_err(malformed),
            FrameKind::End => {
                if let Some(reader) = self.reader.take()
                    && self.final_head
                    && !reader.has_buffered()
                {
                    self.reunion.give_read(reader.into_inner());
                }
                Ok(ResponseEvent::End)
            }
            FrameKind::Error => {
                self.reader = None;
                Err(Error::explain(
                    ErrorKind::ReadError,
                    ErrorSource::Upstream,
                    format!(
                        "the framed upstream gave up: {}",
                        String::from_utf8_lossy(&frame.payload)
                    ),
                ))
            }
        }
    }
}

/// A frame that breaks the rules: a bad response.
fn malformed(e: FrameError) -> Box<Error> {
    Error::because(
        ErrorKind::InvalidUpstreamResponse,
        ErrorSource::Upstream,
        "malformed frame from the framed upstream",
        e,
    )
}

impl ResponseSource for FramedSource {
    fn next_event(&mut self) -> BoxFuture<'_, Result<ResponseEvent>> {
        Box::pin(self.next())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_trailers_round_trip_with_their_spelling() {
        let limits = FramedLimits::default();
        let mut req = RequestHeader::build(Method::PUT, "/a?b=1", Version::HTTP_11).expect("head");
        req.insert_header("Host", "example").expect("header");
        req.append_header("X-Multi", "1").expect("header");
        req.append_header("x-multi", "2").expect("header");
        let payload = encode_request_head(&req);
        assert_eq!(
            &payload[..],
            b"PUT /a?b=1 HTTP/1.1\r\nHost: example\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n"
        );
        let back = decode_request_head(&payload, &limits).expect("decode");
        assert_eq!(back.method, Method::PUT);
        assert_eq!(back.path_and_query(), "/a?b=1");
        assert_eq!(back.headers().get_all("x-multi").iter().count(), 2);

        let mut resp = ResponseHeader::build(418, None).expect("head");
        resp.set_reason(Bytes::from_static(b"Short And Stout"));
        resp.insert_header("Content-Type", "text/plain")
            .expect("header");
        let back = decode_response_head(&encode_response_head(&resp), &limits).expect("decode");
        assert_eq!(back.status.as_u16(), 418);
        assert_eq!(back.reason(), b"Short And Stout");
        assert_eq!(back.header_str("content-type"), Some("text/plain"));

        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static("0"));
        assert_eq!(
            decode_trailers(&encode_trailers(&t), &limits).expect("decode"),
            t
        );
        assert!(decode_trailers(b"\r\n", &limits).expect("empty").is_empty());
    }

    #[test]
    fn malformed_heads_are_rejected() {
        let limits = FramedLimits {
            max_headers: 2,
            ..FramedLimits::default()
        };
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"GET / HTTP/1.1\r\n\r\nextra",
            b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
            b"\x00\x01\x02",
        ] {
            assert!(decode_request_head(bad, &limits).is_err(), "{bad:?}");
        }
        assert!(decode_response_head(b"HTTP/1.1 999x OK\r\n\r\n", &limits).is_err());
        assert!(decode_trailers(b"a: 1\r\n", &limits).is_err());
    }

    async fn read_all(bytes: &[u8], limits: FramedLimits) -> Vec<Result<Option<Frame>, String>> {
        let mut r = FrameReader::new(bytes, limits);
        let mut out = Vec::new();
        loop {
            let f = r.read_frame().await.map_err(|e| e.to_string());
            let stop = !matches!(f, Ok(Some(_)));
            out.push(f);
            if stop {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn frames_are_read_back_and_bad_ones_refused() {
        let mut w = FrameWriter::new(Vec::new());
        w.queue(FrameKind::Head, b"x");
        w.write_body(&vec![7u8; MAX_BODY_FRAME + 1])
            .await
            .expect("body");
        w.queue(FrameKind::End, &[]);
        w.flush().await.expect("flush");
        let wire = w.into_inner();
        let frames = read_all(&wire, FramedLimits::default()).await;
        let kinds: Vec<_> = frames
            .iter()
            .map(|f| match f {
                Ok(Some(f)) => format!("{:?} {}", f.kind, f.payload.len()),
                Ok(None) => "eof".into(),
                Err(e) => e.clone(),
            })
            .collect();
        assert_eq!(kinds, ["Head 1", "Body 65536", "Body 1", "End 0", "eof"]);

        let small = FramedLimits {
            max_frame: 10,
            ..FramedLimits::default()
        };
        let cases: [(&[u8], &str); 4] = [
            (b"\x09\x00\x00\x00\x00", "unknown frame type 9"),
            (b"\x02\x00\x00\x00\x0b", "Body frame of 11 bytes (limit 10)"),
            (b"\x04\x00\x00\x00\x01x", "END frame with a payload"),
            (
                b"\x02\x00\x00\x00\x05abc",
                "the stream ended inside a frame",
            ),
        ];
        for (wire, want) in cases {
            let got = read_all(wire, small).await;
            assert_eq!(got.last(), Some(&Err(want.to_string())), "{wire:?}");
        }
    }
}
