//! The downstream (client-facing) side of HTTP/1.x: read one request, stream its body,
//! write one response, then hand the connection back for the next request if — and only
//! if — both messages ended cleanly.
//!
//! A connection waiting for its next request holds no buffers (see [`ConnIo`]). A head
//! that breaks the rules gets its status (400, 405, 408, 414, 417, 431, 501, 505) with a
//! one-line body, a log line, and a lingering close.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use http::{HeaderMap, Method, StatusCode, Version, header};
use tokio::time::{Instant, timeout, timeout_at};

use crate::protocols::SocketAddress;
use crate::protocols::timeout::{lazy_timeout, lazy_timeout_at};

use super::H1ServerOptions;
use super::body::{BodyDecoder, BodyEncoder, BodyError, BodyEvent};
use super::head::{self, BodyFraming, ConnectionTokens, HeadError, ParsedRequest};
use super::io::ConnIo;
use crate::error::{Error, ErrorKind, ErrorSource, Result, io_error};
use crate::http::hop;
use crate::http::{RequestHeader, ResponseHeader};

/// Write buffered output once this much is queued, to bound memory per connection.
const WRITE_HIGH_WATER: usize = 256 * 1024;

/// What waiting for the next request on a connection produced.
#[derive(Debug)]
pub enum ReadOutcome {
    /// A request head was read; its body (if any) is next on the connection.
    Request(Box<ServerSession>),
    /// The connection is over: closed by the client, idle too long, or a rejected head
    /// (already answered and logged).
    Closed,
}

/// One request/response exchange on a downstream HTTP/1.x connection.
#[derive(Debug)]
pub struct ServerSession {
    io: ConnIo,
    opts: Arc<H1ServerOptions>,
    req: RequestHeader,
    decoder: BodyDecoder,
    req_framing: BodyFraming,
    req_trailers: Option<HeaderMap>,
    client_keep_alive: bool,
    expect_continue: bool,
    continue_sent: bool,
    upgrade_requested: bool,
    upgraded: bool,
    resp: Option<ResponseHeader>,
    encoder: BodyEncoder,
    resp_finished: bool,
    must_close: bool,
    /// A write to the client failed or timed out: nothing more is written to it.
    write_failed: bool,
    /// Requests served on this connection before this one.
    served: u64,
    /// Response body bytes that went to the socket by `splice(2)`.
    spliced: u64,
}

/// Read the next request head on `io`, once the connection has something to read: the
/// caller waits for that (with the keep-alive timeout, or the first request's deadline,
/// and shutdown).
///
/// `served` is the number of requests already answered on this connection (0 for a new
/// connection). `head_by`, when given, is when the head must be complete (the first
/// request's: the header timeout from the connection's start); otherwise it must be
/// complete within the header timeout from now.
pub async fn read_request(
    mut io: ConnIo,
    opts: &Arc<H1ServerOptions>,
    served: u64,
    peer: Option<&SocketAddress>,
    head_by: Option<Instant>,
) -> ReadOutcome {
    // The client's address, for log lines (formatted only when one is written).
    let peer = tracing::field::display(PeerLabel(peer));
    // The head must be complete within the header timeout from here (or by `head_by`);
    // the clock is only read if the head is not already complete in the buffer.
    let mut deadline: Option<Instant> = head_by;
    loop {
        match head::parse_request(&mut io.rbuf, &opts.head) {
            Ok(Some(parsed)) => {
                return ReadOutcome::Request(crate::boxed::in_place(|| {
                    ServerSession::new(io, parsed, opts, served)
                }));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::info!(
                    peer,
                    status = e.status,
                    reason = e.reason,
                    "rejected request head"
                );
                Box::pin(reject(io, &e)).await;
                return ReadOutcome::Closed;
            }
        }
        if io.eof {
            if !io.rbuf.iter().all(|b| b.is_ascii_whitespace()) {
                tracing::debug!(peer, "client closed in the middle of a request head");
            }
            // A TLS client that said goodbye (`close_notify`) gets one back.
            close_idle(io, opts).await;
            return ReadOutcome::Closed;
        }
        let at = *deadline.get_or_insert_with(|| Instant::now() + opts.header_read_timeout);
        match lazy_timeout_at(at, io.fill(None)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return ReadOutcome::Closed,
            Err(_) => {
                if io.rbuf.is_empty() {
                    close_idle(io, opts).await;
                    return ReadOutcome::Closed;
                }
                let e = HeadError {
                    status: 408,
                    reason: "request head not received in time",
                };
                tracing::info!(
                    peer,
                    status = 408,
                    reason = e.reason,
                    "rejected request head"
                );
                Box::pin(reject(io, &e)).await;
                return ReadOutcome::Closed;
            }
        }
    }
}

/// A client address as log lines show it (`-` when unknown).
struct PeerLabel<'a>(Option<&'a SocketAddress>);

impl std::fmt::Display for PeerLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => a.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Close a connection that stayed idle past its timeout. TLS says goodbye first
/// (`close_notify`, RFC 8446 §6.1), so the client can tell a deliberate close from a
/// truncation; a client that does not take it within the write timeout is dropped.
/// A plain connection is just dropped (the kernel sends FIN).
pub(crate) async fn close_idle(mut io: ConnIo, opts: &H1ServerOptions) {
    if io.stream.is_tls() {
        let _ = timeout(opts.write_timeout, io.shutdown()).await;
    }
}

/// Answer a rejected head and close without resetting the connection under the answer.
async fn reject(mut io: ConnIo, e: &HeadError) {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = format!("{}\n", e.reason);
    let small = io.small_buf();
    small.put_slice(b"HTTP/1.1 ");
    small.put_slice(status.as_str().as_bytes());
    small.put_u8(b' ');
    small.put_slice(status.canonical_reason().unwrap_or("Error").as_bytes());
    small.put_slice(b"\r\nContent-Type: text/plain\r\nContent-Length: ");
    small.put_slice(body.len().to_string().as_bytes());
    small.put_slice(b"\r\nDate: ");
    small.put_slice(crate::http::date::now().as_bytes());
    small.put_slice(b"\r\nConnection: close\r\n\r\n");
    small.put_slice(body.as_bytes());
    lingering_close(io).await;
}

/// Flush, send FIN, then read and discard what the client still sends for a moment, so
/// the kernel does not answer unread input with a reset that destroys our response.
pub(crate) async fn lingering_close(mut io: ConnIo) {
    let write = timeout(Duration::from_secs(5), io.shutdown()).await;
    if !matches!(write, Ok(Ok(()))) {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut discarded = 0usize;
    while discarded < 1 << 20 {
        io.rbuf.clear();
        match timeout_at(deadline, io.fill(None)).await {
            Ok(Ok(n)) if n > 0 => discarded += n,
            _ => return,
        }
    }
}

impl ServerSession {
    fn new(io: ConnIo, p: ParsedRequest, opts: &Arc<H1ServerOptions>, served: u64) -> Self {
        let max_reached = opts
            .max_requests_per_connection
            .is_some_and(|max| served + 1 >= max);
        ServerSession {
            io,
            opts: opts.clone(),
            decoder: BodyDecoder::new(p.framing),
            req_framing: p.framing,
            req: p.header,
            req_trailers: None,
            client_keep_alive: p.keep_alive,
            expect_continue: p.expect_continue,
            continue_sent: false,
            upgrade_requested: p.upgrade,
            upgraded: false,
            resp: None,
            encoder: BodyEncoder::Empty,
            resp_finished: false,
            must_close: max_reached,
            write_failed: false,
            served,
            spliced: 0,
        }
    }

    /// The request head.
    pub fn req_header(&self) -> &RequestHeader {
        &self.req
    }

    /// The request head, for changes.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.req
    }

    /// How the request body is framed.
    pub fn body_framing(&self) -> BodyFraming {
        self.req_framing
    }

    /// Whether the request body has been read completely.
    pub fn is_body_done(&self) -> bool {
        self.decoder.is_done()
    }

    /// Request trailers, once a chunked body with trailers has been read.
    pub fn request_trailers(&self) -> Option<&HeaderMap> {
        self.req_trailers.as_ref()
    }

    /// Whether the client asked for `Expect: 100-continue` and has not been answered.
    pub fn expects_continue(&self) -> bool {
        self.expect_continue && !self.continue_sent && self.resp.is_none()
    }

    /// Whether the client asked to upgrade the protocol (not h2c).
    pub fn is_upgrade_request(&self) -> bool {
        self.upgrade_requested
    }

    /// Whether a `101 Switching Protocols` was written: the connection is now raw bytes.
    pub fn is_upgraded(&self) -> bool {
        self.upgraded
    }

    /// The final response head written, if any.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        self.resp.as_ref()
    }

    /// Whether the response is complete (its end written).
    pub fn is_response_finished(&self) -> bool {
        self.resp_finished
    }

    /// Requests served on this connection before this one.
    pub fn served_before(&self) -> u64 {
        self.served
    }

    /// The client's socket and the write timeout, when the next `len` response body
    /// bytes may be written to the socket directly: a response of `Content-Length`
    /// framing owing exactly `len` more bytes, over a plain socket, with nothing queued.
    pub fn splice_sink(
        &self,
        len: u64,
    ) -> Option<(crate::protocols::splice::SpliceEnd<'_>, Duration)> {
        if !self.may_splice(len) || self.io.pending_write() > 0 {
            return None;
        }
        Some((self.io.stream.as_splice_end()?, self.opts.write_timeout))
    }

    /// Whether [`ServerSession::splice_sink`] will give the socket for `len` more
    /// body bytes once what is queued has been written.
    pub fn may_splice(&self, len: u64) -> bool {
        self.resp.is_some()
            && !self.resp_finished
            && self.encoder.remaining_length() == Some(len)
            && self.io.stream.as_splice_end().is_some()
    }

    /// Count `n` body bytes as written: they went to the socket by
    /// [`crate::protocols::splice::relay`].
    pub fn spliced(&mut self, n: u64) {
        self.encoder.spliced(n);
        self.spliced += n;
    }

    /// Response body bytes written by [`ServerSession::spliced`] accounting.
    pub fn body_bytes_spliced(&self) -> u64 {
        self.spliced
    }

    /// Make sure the connection is closed after this exchange.
    pub fn set_must_close(&mut self) {
        self.must_close = true;
    }

    /// Whether the client's connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.io.stream.is_tls()
    }

    /// The connection's I/O, for raw forwarding after an upgrade.
    pub fn io_mut(&mut self) -> &mut ConnIo {
        &mut self.io
    }

    /// Read the next piece of the request body; `None` at its end. Cancel-safe.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.decoder.decode(&mut self.io.rbuf, self.io.eof) {
                Ok(Some(BodyEvent::Data(b))) => return Ok(Some(b)),
                Ok(Some(BodyEvent::Trailers(t))) => {
                    self.req_trailers = Some(t);
                    continue;
                }
                Ok(Some(BodyEvent::End)) => return Ok(None),
                Ok(None) => {}
                Err(BodyError::BadChunk(why)) => {
                    self.must_close = true;
                    return Err(Error::explain(
                        ErrorKind::InvalidHttp(400),
                        ErrorSource::Downstream,
                        why,
                    ));
                }
                Err(BodyError::Truncated) => {
                    self.must_close = true;
                    return Err(Error::explain(
                        ErrorKind::ConnectionClosed,
                        ErrorSource::Downstream,
                        "client closed before the request body was complete",
                    ));
                }
            }
            let hint = self.decoder.remaining_hint();
            match lazy_timeout(self.opts.body_read_timeout, self.io.fill(hint)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    self.must_close = true;
                    return Err(io_error(
                        e,
                        ErrorSource::Downstream,
                        true,
                        "reading request body",
                    ));
                }
                Err(_) => {
                    self.must_close = true;
                    return Err(Error::explain(
                        ErrorKind::ReadTimedout,
                        ErrorSource::Downstream,
                        "request body read timed out",
                    ));
                }
            }
        }
    }

    /// Answer `Expect: 100-continue` ourselves (when a phase reads the body locally).
    pub async fn send_continue(&mut self) -> Result<()> {
        if !self.expects_continue() {
            return Ok(());
        }
        self.continue_sent = true;
        self.io
            .small_buf()
            .put_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        self.flush().await
    }

    /// Queue a response head. Informational (1xx) heads may come before the final one;
    /// `101` only answers an upgrade request. Framing headers are set here: the body is
    /// sent by length if `Content-Length` is present, else chunked (HTTP/1.1 clients) or
    /// delimited by closing the connection (HTTP/1.0 clients).
    pub fn write_response_header(&mut self, mut resp: ResponseHeader) -> Result<()> {
        if self.resp.is_some() {
            return Err(Error::explain(
                ErrorKind::Internal,
                ErrorSource::Internal,
                "response head written twice",
            ));
        }
        let status = resp.status.as_u16();
        resp.version = Version::HTTP_11;
        if (100..200).contains(&status) {
            // An interim head frames nothing: a length or coding on it could make a
            // lenient client take bytes of the final response for a body (RFC 9110
            // §8.6, RFC 9112 §6.1).
            resp.remove_header(header::CONTENT_LENGTH);
            resp.remove_header(header::TRANSFER_ENCODING);
            if status == 101 {
                if !self.upgrade_requested {
                    return Err(Error::explain(
                        ErrorKind::InvalidUpstreamResponse,
                        ErrorSource::Upstream,
                        "101 Switching Protocols without an upgrade request",
                    ));
                }
                self.upgraded = true;
                resp.write_h1(self.io.small_buf());
                self.resp = Some(resp);
                self.resp_finished = true;
                return Ok(());
            }
            // A 1.0 client does not understand interim responses (RFC 9110 §15.2).
            if self.req.version == Version::HTTP_11 {
                if status == 100 {
                    if self.continue_sent {
                        return Ok(());
                    }
                    self.continue_sent = true;
                }
                resp.write_h1(self.io.small_buf());
            }
            return Ok(());
        }

        // The fields know which hop-by-hop names they may hold: absent ones cost nothing
        // (a relayed response has had them removed already).
        let hop_by_hop = resp.fields().hop_by_hop();
        let connection = hop_by_hop & hop::CONNECTION != 0;
        if hop_by_hop & hop::TRANSFER_ENCODING != 0 {
            resp.remove_header(header::TRANSFER_ENCODING);
        }
        let head_request = self.req.method == Method::HEAD;
        let framing = if head_request || status == 204 || status == 304 {
            // A HEAD or 304 answer may tell the length of the body it does not carry,
            // but only as one valid value (RFC 9110 §8.6).
            if status == 204
                || (resp.has_header(header::CONTENT_LENGTH) && content_length_of(&resp).is_none())
            {
                resp.remove_header(header::CONTENT_LENGTH);
            }
            BodyFraming::Empty
        } else {
            match content_length_of(&resp) {
                Some(n) => BodyFraming::Length(n),
                None if self.req.version == Version::HTTP_11 => {
                    resp.remove_header(header::CONTENT_LENGTH);
                    resp.insert_header(header::TRANSFER_ENCODING, "chunked")?;
                    BodyFraming::Chunked
                }
                None => {
                    resp.remove_header(header::CONTENT_LENGTH);
                    self.must_close = true;
                    BodyFraming::UntilClose
                }
            }
        };
        if connection {
            if ConnectionTokens::of(resp.header_values(header::CONNECTION)).close {
                self.must_close = true;
            }
            resp.remove_header(header::CONNECTION);
        }
        if self.must_close || !self.client_keep_alive {
            resp.insert_header(header::CONNECTION, "close")?;
        } else if self.req.version == Version::HTTP_10 {
            resp.insert_header(header::CONNECTION, "keep-alive")?;
        }
        self.encoder = BodyEncoder::new(framing);
        resp.write_h1(self.io.small_buf());
        self.resp = Some(resp);
        Ok(())
    }

    /// Queue a piece of the response body; writes out when enough is queued.
    pub async fn write_body(&mut self, data: Bytes) -> Result<()> {
        if self.resp.is_none() || self.resp_finished {
            return Err(Error::explain(
                ErrorKind::Internal,
                ErrorSource::Internal,
                "response body written without an open response",
            ));
        }
        match self.io.queue_body(&mut self.encoder, data) {
            Ok(()) => {}
            Err(why) => {
                self.must_close = true;
                return Err(Error::explain(
                    ErrorKind::Internal,
                    ErrorSource::Internal,
                    why,
                ));
            }
        }
        if self.io.pending_write() >= WRITE_HIGH_WATER {
            self.flush().await?;
        }
        Ok(())
    }

    /// End the response (last chunk and trailers when chunked) and write it all out.
    pub async fn finish_response(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        if self.resp_finished {
            return self.flush().await;
        }
        // Trailers only go to clients that can receive them: chunked responses.
        if let Err(why) = self.encoder.finish(trailers, self.io.small_buf()) {
            self.must_close = true;
            self.flush().await?;
            return Err(Error::explain(
                ErrorKind::Internal,
                ErrorSource::Internal,
                why,
            ));
        }
        self.resp_finished = true;
        self.flush().await
    }

    /// Bytes queued for the client and not written yet.
    pub fn pending_write(&self) -> usize {
        self.io.pending_write()
    }

    /// Write out everything queued, within the write timeout.
    pub async fn flush(&mut self) -> Result<()> {
        if self.io.pending_write() == 0 {
            return Ok(());
        }
        match lazy_timeout(self.opts.write_timeout, self.io.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.must_close = true;
                self.write_failed = true;
                Err(io_error(
                    e,
                    ErrorSource::Downstream,
                    false,
                    "writing response",
                ))
            }
            Err(_) => {
                self.must_close = true;
                self.write_failed = true;
                Err(Error::explain(
                    ErrorKind::WriteTimedout,
                    ErrorSource::Downstream,
                    "response write timed out",
                ))
            }
        }
    }

    /// Whether the connection may carry another request after this exchange.
    pub fn is_reusable(&self) -> bool {
        self.client_keep_alive
            && !self.must_close
            && !self.upgraded
            && self.resp_finished
            && self.encoder.is_complete()
            && self.decoder.is_done()
            && !self.io.eof
    }

    /// End the exchange: the connection back for the next request if it is reusable,
    /// else `None` (after a clean close).
    pub async fn finish(mut self) -> Option<ConnIo> {
        if self.is_reusable() {
            // Any queued bytes were flushed by `finish_response`.
            return Some(self.io);
        }
        if self.write_failed {
            // The client already took longer than the write timeout (or is gone): no
            // second wait to flush what it would not take. Dropping closes the socket.
            return None;
        }
        if self.resp.is_some() && !self.resp_finished {
            // The response was cut short (the origin failed mid-body): the client must
            // not take what it got for the whole response. What is queued goes out;
            // then no `close_notify` (a TLS client sees the truncation), and a body
            // delimited by the close ends with a reset, since a FIN would end it as if
            // complete. Length and chunked framing show the cut by themselves.
            let _ = timeout(self.opts.write_timeout, self.io.flush()).await;
            if matches!(self.encoder, BodyEncoder::UntilClose) {
                self.io.stream.reset_on_close();
            }
            return None;
        }
        if !self.decoder.is_done() && !self.io.eof {
            // Unread request body: close gracefully so the response survives.
            lingering_close(self.io).await;
        } else {
            let _ = timeout(self.opts.write_timeout, self.io.shutdown()).await;
        }
        None
    }

    /// Take the connection for raw forwarding (after `101`).
    pub fn into_io(self) -> ConnIo {
        self.io
    }
}

/// The value of a single valid `Content-Length` header.
fn content_length_of(resp: &ResponseHeader) -> Option<u64> {
    let mut values = resp.header_values(header::CONTENT_LENGTH);
    let v = values.next()?;
    if values.next().is_some() {
        return None;
    }
    std::str::from_utf8(v.as_bytes()).ok()?.trim().parse().ok()
}
