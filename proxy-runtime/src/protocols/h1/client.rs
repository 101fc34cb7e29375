//! The upstream (origin-facing) side of HTTP/1.x: send one request, read its response.
//!
//! The session is driven by events: [`ClientSession::next_event`] makes progress on both
//! directions at once — it keeps writing queued request bytes while it reads the
//! response — so a request body can stream up while the response streams down, in one
//! task, without a channel, and without deadlocking against an origin that answers
//! before it has read the whole upload.

use std::future::poll_fn;
use std::task::Poll;

use bytes::Bytes;
use http::{HeaderMap, Method};

use super::body::{BodyDecoder, BodyEncoder, BodyError, BodyEvent};
use super::head::{self, BodyFraming, HeadLimits, ParsedResponse};
use super::io::ConnIo;
use crate::error::{Error, ErrorKind, ErrorSource, Result, RetryType, io_error};
use crate::http::RequestHeader;
use crate::protocols::Stream;

/// Something that happened on the upstream connection.
#[derive(Debug)]
pub enum UpstreamEvent {
    /// A response head: interim (1xx) or final.
    Head(Box<ParsedResponse>),
    /// A piece of the response body.
    Body(Bytes),
    /// Response trailers.
    Trailers(HeaderMap),
    /// The response is complete.
    End,
    /// Every queued request byte has been written: more may be queued.
    Drained,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    /// Waiting for a (final) response head.
    Head,
    /// Reading the response body.
    Body,
    /// Response complete.
    Done,
}

/// One request/response exchange on an upstream HTTP/1.x connection.
#[derive(Debug)]
pub struct ClientSession {
    io: ConnIo,
    limits: HeadLimits,
    method: Method,
    encoder: BodyEncoder,
    request_finished: bool,
    read: ReadState,
    decoder: BodyDecoder,
    keep_alive: bool,
    /// Whether this connection came from the pool.
    pub reused: bool,
    /// Whether any byte of a response was received.
    response_started: bool,
    /// A write failed: whatever was sent, the origin did not get the whole request.
    write_failed: bool,
}

impl ClientSession {
    /// Start an exchange on a connected stream (`reused`: it came from the pool).
    pub fn new(stream: Stream, limits: HeadLimits, reused: bool) -> Self {
        ClientSession {
            io: ConnIo::new(stream),
            limits,
            method: Method::GET,
            encoder: BodyEncoder::Empty,
            request_finished: false,
            read: ReadState::Head,
            decoder: BodyDecoder::new(BodyFraming::Empty),
            keep_alive: false,
            reused,
            response_started: false,
            write_failed: false,
        }
    }

    /// Queue the request head. `framing` is how the body will be sent: it must match the
    /// head (`Content-Length` for `Length`, `Transfer-Encoding: chunked` for `Chunked`).
    pub fn write_request_header(&mut self, req: &RequestHeader, framing: BodyFraming) {
        self.method = req.method.clone();
        self.encoder = BodyEncoder::new(framing);
        req.write_h1(self.io.small_buf());
        if framing.is_empty() {
            self.request_finished = true;
        }
    }

    /// Queue a piece of the request body (written by [`ClientSession::next_event`] or
    /// [`ClientSession::flush`]).
    pub fn queue_body(&mut self, data: Bytes) -> Result<()> {
        match self.io.queue_body(&mut self.encoder, data) {
            Ok(()) => {}
            Err(why) => {
                return Err(Error::explain(
                    ErrorKind::Internal,
                    ErrorSource::Internal,
                    why,
                ));
            }
        }
        Ok(())
    }

    /// Queue the end of the request body (with trailers when chunked).
    pub fn finish_request(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        if self.request_finished {
            return Ok(());
        }
        self.encoder
            .finish(trailers, self.io.small_buf())
            .map_err(|why| Error::explain(ErrorKind::Internal, ErrorSource::Internal, why))?;
        self.request_finished = true;
        Ok(())
    }

    /// Bytes of request queued but not written yet.
    pub fn pending_write(&self) -> usize {
        self.io.pending_write()
    }

    /// Whether the whole request (head, body, end) has been queued.
    pub fn is_request_finished(&self) -> bool {
        self.request_finished
    }

    /// Whether any response byte arrived.
    pub fn response_started(&self) -> bool {
        self.response_started
    }

    /// Whether a write to the origin failed.
    pub fn write_failed(&self) -> bool {
        self.write_failed
    }

    /// Write everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        self.io.flush().await.map_err(|e| self.write_error(e))
    }

    fn write_error(&mut self, e: std::io::Error) -> Box<Error> {
        self.write_failed = true;
        io_error(
            e,
            ErrorSource::Upstream,
            false,
            "writing request to upstream",
        )
        .with_retry(RetryType::ReusedOnly)
    }

    /// The next event, if one can be produced from what was already read.
    pub fn try_event(&mut self) -> Result<Option<UpstreamEvent>> {
        match self.read {
            ReadState::Done => Ok(Some(UpstreamEvent::End)),
            ReadState::Head => {
                match head::parse_response(&mut self.io.rbuf, &self.limits, &self.method) {
                    Ok(Some(parsed)) => {
                        let status = parsed.header.status.as_u16();
                        if (100..200).contains(&status) && status != 101 {
                            return Ok(Some(UpstreamEvent::Head(Box::new(parsed))));
                        }
                        self.keep_alive = parsed.keep_alive;
                        self.decoder = BodyDecoder::new(parsed.framing);
                        self.read = if status == 101 {
                            // The connection now belongs to the tunnel.
                            self.keep_alive = false;
                            ReadState::Done
                        } else {
                            ReadState::Body
                        };
                        Ok(Some(UpstreamEvent::Head(Box::new(parsed))))
                    }
                    Ok(None) => {
                        if self.io.eof {
                            return Err(self.closed_before_response());
                        }
                        Ok(None)
                    }
                    Err(e) => Err(Error::explain(
                        ErrorKind::InvalidUpstreamResponse,
                        ErrorSource::Upstream,
                        e.reason,
                    )),
                }
            }
            ReadState::Body => match self.decoder.decode(&mut self.io.rbuf, self.io.eof) {
                Ok(Some(BodyEvent::Data(b))) => Ok(Some(UpstreamEvent::Body(b))),
                Ok(Some(BodyEvent::Trailers(t))) => Ok(Some(UpstreamEvent::Trailers(t))),
                Ok(Some(BodyEvent::End)) => {
                    self.read = ReadState::Done;
                    Ok(Some(UpstreamEvent::End))
                }
                Ok(None) => Ok(None),
                Err(BodyError::BadChunk(why)) => Err(Error::explain(
                    ErrorKind::InvalidUpstreamResponse,
                    ErrorSource::Upstream,
                    why,
                )),
                Err(BodyError::Truncated) => Err(Error::explain(
                    ErrorKind::ConnectionClosed,
                    ErrorSource::Upstream,
                    "upstream closed before the response body was complete",
                )),
            },
        }
    }

    fn closed_before_response(&self) -> Box<Error> {
        let e = Error::explain(
            ErrorKind::ConnectionClosed,
            ErrorSource::Upstream,
            if self.response_started {
                "upstream closed in the middle of the response head"
            } else {
                "upstream closed the connection before responding"
            },
        );
        if self.response_started {
            e
        } else {
            e.with_retry(RetryType::ReusedOnly)
        }
    }

    /// Read what the origin has already sent, without waiting: `Ok(true)` if bytes
    /// arrived (events may be ready), `Ok(false)` if nothing is there now. Only while
    /// the response body is being read (the head is awaited with a timeout).
    pub fn try_fill(&mut self) -> Result<bool> {
        if self.read != ReadState::Body || self.io.eof || self.io.pending_write() > 0 {
            return Ok(false);
        }
        let want = self.decoder.remaining_hint();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match self.io.poll_fill(&mut cx, want) {
            Poll::Ready(Ok(n)) => Ok(n > 0 || self.io.eof),
            Poll::Ready(Err(e)) => Err(io_error(
                e,
                ErrorSource::Upstream,
                true,
                "reading response from upstream",
            )),
            Poll::Pending => Ok(false),
        }
    }

    /// The origin's socket and the body bytes still to come, when the rest of the
    /// response body can be taken straight off the socket: a `Content-Length` body over
    /// a plain socket, nothing of it buffered, and the whole request written.
    pub fn splice_source(&self) -> Option<(crate::protocols::splice::SpliceEnd<'_>, u64)> {
        if self.read != ReadState::Body
            || !self.io.rbuf.is_empty()
            || self.io.eof
            || !self.request_finished
            || self.io.pending_write() > 0
        {
            return None;
        }
        let left = self.decoder.remaining_length()?;
        Some((self.io.stream.as_splice_end()?, left))
    }

    /// Count `n` body bytes as read: they were taken off the socket by
    /// [`crate::protocols::splice::relay`].
    pub fn spliced(&mut self, n: u64) {
        self.response_started = true;
        self.decoder.spliced(n);
    }

    /// Make progress until there is an event: writes queued request bytes and reads the
    /// response concurrently. Cancel-safe.
    pub async fn next_event(&mut self) -> Result<UpstreamEvent> {
        loop {
            if let Some(ev) = self.try_event()? {
                return Ok(ev);
            }
            let progressed = poll_fn(|cx| {
                if self.io.pending_write() > 0 {
                    match self.io.poll_flush_queue(cx) {
                        // Everything queued is out: the caller may queue more.
                        Poll::Ready(Ok(())) => return Poll::Ready(Ok(None)),
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(self.write_error(e))),
                        Poll::Pending => {}
                    }
                }
                let want = self.decoder.remaining_hint();
                match self.io.poll_fill(cx, want) {
                    Poll::Ready(Ok(n)) => Poll::Ready(Ok(Some(n))),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(io_error(
                        e,
                        ErrorSource::Upstream,
                        true,
                        "reading response from upstream",
                    )
                    .with_retry(if self.response_started {
                        RetryType::Decided(false)
                    } else {
                        RetryType::ReusedOnly
                    }))),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await?;
            match progressed {
                None => return Ok(UpstreamEvent::Drained),
                Some(n) if n > 0 => self.response_started = true,
                Some(_) => {} // EOF: `try_event` decides what it means
            }
        }
    }

    /// The connection, if it can carry another request: both messages ended cleanly,
    /// the origin allows keep-alive, and nothing unexpected is buffered.
    pub fn into_reusable(mut self) -> Option<Stream> {
        self.io.release_buffers();
        if self.read == ReadState::Done
            && self.keep_alive
            && self.request_finished
            && self.encoder.is_complete()
            && self.io.pending_write() == 0
            && self.io.rbuf.is_empty()
            && !self.io.eof
            && !self.write_failed
        {
            Some(self.io.stream)
        } else {
            None
        }
    }

    /// The connection's I/O, for raw forwarding after an upgrade.
    pub fn into_io(self) -> ConnIo {
        self.io
    }
}
