//! One HTTP/2 stream from a client: its request head and body, and the response written
//! back — the HTTP/2 counterpart of [`crate::protocols::h1::server::ServerSession`].
//!
//! Flow control is honoured both ways: request body data is acknowledged (its window
//! released) as the proxy consumes it, and response data is sent as the client's window
//! allows. Connection-specific headers never go out on HTTP/2 (RFC 9113 §8.2.2).

use std::future::poll_fn;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, Method, Version, header};

use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::http::fields::Fields;
use crate::http::{RequestHeader, ResponseHeader};
use crate::protocols::h1::BodyFraming;
use crate::protocols::timeout::lazy_timeout;

/// Headers that are connection-specific in HTTP/1 and forbidden in HTTP/2.
pub(crate) const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// A head's fields as an HTTP/2 header map, without what HTTP/2 forbids. The fields
/// know whether they hold any hop-by-hop name (all the forbidden ones are): usually
/// not, and then nothing is looked up.
pub(crate) fn h2_header_map(fields: &Fields) -> HeaderMap {
    let mut map = fields.to_map();
    if fields.hop_by_hop() != 0 {
        sanitize_for_h2(&mut map);
    }
    map
}

/// Remove what HTTP/2 forbids from a header map (`TE` survives only as `trailers`).
pub(crate) fn sanitize_for_h2(headers: &mut HeaderMap) {
    for name in CONNECTION_SPECIFIC {
        headers.remove(name);
    }
    if let Some(te) = headers.get(header::TE)
        && !te.as_bytes().eq_ignore_ascii_case(b"trailers")
    {
        headers.remove(header::TE);
    }
}

/// The downstream side of one HTTP/2 stream.
pub struct H2ServerSession {
    req: RequestHeader,
    body: RecvStream,
    body_framing: BodyFraming,
    body_done: bool,
    req_trailers: Option<HeaderMap>,
    respond: SendResponse<Bytes>,
    send: Option<SendStream<Bytes>>,
    resp: Option<ResponseHeader>,
    /// The last body piece written, not yet handed to `h2`: it goes with the end of the
    /// stream when the end comes next (one DATA frame with END_STREAM instead of two
    /// frames), or at the next write or flush. The proxy flushes before it waits.
    held: Option<Bytes>,
    /// Where to count a reset by the client before the response completed (the
    /// connection's rapid-reset guard).
    client_resets: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
    finished: bool,
    write_timeout: Duration,
    body_read_timeout: Duration,
}

impl std::fmt::Debug for H2ServerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2ServerSession")
            .field("req", &self.req)
            .field("finished", &self.finished)
            .finish()
    }
}

/// Why a request's fields make it malformed beyond what the `h2` crate checks (RFC 9113
/// §8.2.1, §8.3.1; RFC 9110 §7.2), or `Ok`. The stream is then reset with
/// `PROTOCOL_ERROR` and the request goes nowhere.
pub fn check_request<B>(request: &http::Request<B>) -> std::result::Result<(), &'static str> {
    let authority = request.uri().authority();
    if authority.is_some_and(|a| a.as_str().contains('@')) {
        return Err("userinfo in :authority");
    }
    if request.method() == http::Method::CONNECT && authority.is_none() {
        return Err("CONNECT without :authority"); // RFC 9113 §8.5
    }
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match authority {
        // Host may repeat :authority, never name another target (a proxy that routed
        // and cached by one and let the origin serve the other would be split).
        Some(a) => {
            if hosts.any(|h| !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes())) {
                return Err("Host differs from :authority");
            }
        }
        None => {
            if let Some(h) = hosts.next() {
                if hosts.next().is_some() {
                    return Err("more than one Host header");
                }
                if !crate::protocols::h1::head::valid_authority(h.as_bytes()) {
                    return Err("invalid Host header");
                }
            }
        }
    }
    let padded = |v: &http::HeaderValue| {
        matches!(v.as_bytes().first(), Some(b' ' | b'\t'))
            || matches!(v.as_bytes().last(), Some(b' ' | b'\t'))
    };
    if request.headers().values().any(padded) {
        return Err("field value with leading or trailing whitespace");
    }
    Ok(())
}

/// What an HTTP/2 request carries in a form HTTP/1 cannot, rewritten for both kinds of
/// origin: `Host` is `:authority` when there is one (RFC 9113 §8.3.1: an intermediary
/// generating Host must use it); several `cookie` fields become one, joined with
/// `"; "` (§8.2.3); a repeated `content-length` (necessarily the same value, the
/// `h2` crate rejects others) is sent once (RFC 9110 §8.6).
fn normalize_fields(uri: &http::Uri, headers: &mut HeaderMap) {
    if let Some(a) = uri.authority()
        && let Ok(host) = http::HeaderValue::from_str(a.as_str())
    {
        headers.insert(header::HOST, host);
    }
    if headers.get_all(header::COOKIE).iter().nth(1).is_some() {
        let mut joined = Vec::new();
        for (i, v) in headers.get_all(header::COOKIE).iter().enumerate() {
            if i > 0 {
                joined.extend_from_slice(b"; ");
            }
            joined.extend_from_slice(v.as_bytes());
        }
        // Valid values joined by "; " are a valid value.
        if let Ok(v) = http::HeaderValue::from_bytes(&joined) {
            headers.insert(header::COOKIE, v);
        }
    }
    if headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .nth(1)
        .is_some()
        && let Some(first) = headers.get(header::CONTENT_LENGTH).cloned()
    {
        headers.insert(header::CONTENT_LENGTH, first);
    }
}

/// Body pieces up to this size are copied before they are queued for the client (the
/// HTTP/1 writer copies the same sizes into its write buffer).
const COPY_AT_MOST: usize = 4096;

fn h2_error(e: h2::Error, source: ErrorSource, what: &str) -> Box<Error> {
    let kind = if e.is_io() || e.is_reset() || e.is_go_away() {
        ErrorKind::ConnectionClosed
    } else {
        ErrorKind::InvalidHttp(400)
    };
    Error::because(kind, source, what.to_string(), e)
}

impl H2ServerSession {
    /// A session for a stream just accepted.
    pub fn new(
        request: http::Request<RecvStream>,
        respond: SendResponse<Bytes>,
        write_timeout: Duration,
        body_read_timeout: Duration,
    ) -> Result<Self> {
        let (mut parts, body) = request.into_parts();
        normalize_fields(&parts.uri, &mut parts.headers);
        let req = RequestHeader::from_lower_parts(
            parts.method,
            parts.uri,
            Version::HTTP_2,
            parts.headers,
        );
        let body_done = body.is_end_stream();
        let declared = req
            .header_str(header::CONTENT_LENGTH)
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body_framing = match (body_done, declared) {
            (true, _) => BodyFraming::Empty,
            (false, Some(n)) => BodyFraming::Length(n),
            (false, None) => BodyFraming::Chunked,
        };
        Ok(H2ServerSession {
            req,
            body,
            body_framing,
            body_done,
            req_trailers: None,
            respond,
            send: None,
            held: None,
            client_resets: None,
            resp: None,
            finished: false,
            write_timeout,
            body_read_timeout,
        })
    }

    /// The request head.
    pub fn req_header(&self) -> &RequestHeader {
        &self.req
    }

    /// The request head, for changes.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.req
    }

    /// How the body would be framed on HTTP/1 (length when declared, else chunked).
    pub fn body_framing(&self) -> BodyFraming {
        self.body_framing
    }

    /// Whether the request body was read to its end.
    pub fn is_body_done(&self) -> bool {
        self.body_done
    }

    /// Trailers of the request body, once read.
    pub fn request_trailers(&self) -> Option<&HeaderMap> {
        self.req_trailers.as_ref()
    }

    /// The final response head sent, if any.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        self.resp.as_ref()
    }

    /// Read the next piece of the request body (`None` at its end). Cancel-safe.
    pub async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.body_done {
            return Ok(None);
        }
        let next = lazy_timeout(
            self.body_read_timeout,
            poll_fn(|cx| self.body.poll_data(cx)),
        )
        .await;
        match next {
            Err(_) => Err(Error::explain(
                ErrorKind::ReadTimedout,
                ErrorSource::Downstream,
                "request body read timed out",
            )),
            Ok(Some(Ok(data))) => {
                // The proxy took these bytes: let the client send more.
                let _ = self.body.flow_control().release_capacity(data.len());
                if self.body.is_end_stream() {
                    self.finish_body_read().await?;
                }
                Ok(Some(data))
            }
            Ok(Some(Err(e))) => Err(h2_error(e, ErrorSource::Downstream, "reading request body")),
            Ok(None) => {
                self.finish_body_read().await?;
                Ok(None)
            }
        }
    }

    /// While proxying: the next request body piece (with `want_body`), or an error as
    /// soon as the client resets the stream — so the upstream request is abandoned
    /// with it. Without `want_body`, only waits for a reset. Cancel-safe.
    pub async fn read_body_or_reset(&mut self, want_body: bool) -> Result<Option<Bytes>> {
        enum Step {
            Data(Option<std::result::Result<Bytes, h2::Error>>),
            Reset(h2::Reason),
        }
        let want_body = want_body && !self.body_done;
        let mut reset_known = false;
        let step = poll_fn(|cx| {
            if !reset_known {
                let polled = match self.send.as_mut() {
                    Some(s) => s.poll_reset(cx),
                    None => self.respond.poll_reset(cx),
                };
                match polled {
                    std::task::Poll::Ready(Ok(reason)) => {
                        return std::task::Poll::Ready(Step::Reset(reason));
                    }
                    // Nothing more to learn about resets on this stream.
                    std::task::Poll::Ready(Err(_)) => reset_known = true,
                    std::task::Poll::Pending => {}
                }
            }
            if want_body && let std::task::Poll::Ready(d) = self.body.poll_data(cx) {
                return std::task::Poll::Ready(Step::Data(d));
            }
            std::task::Poll::Pending
        });
        let step = if want_body {
            match lazy_timeout(self.body_read_timeout, step).await {
                Ok(s) => s,
                Err(_) => {
                    return Err(Error::explain(
                        ErrorKind::ReadTimedout,
                        ErrorSource::Downstream,
                        "request body read timed out",
                    ));
                }
            }
        } else {
            step.await
        };
        match step {
            Step::Reset(reason) => Err(Error::explain(
                ErrorKind::ConnectionClosed,
                ErrorSource::Downstream,
                format!("client reset the stream ({reason:?})"),
            )),
            Step::Data(Some(Ok(data))) => {
                let _ = self.body.flow_control().release_capacity(data.len());
                if self.body.is_end_stream() {
                    self.finish_body_read().await?;
                }
                Ok(Some(data))
            }
            Step::Data(Some(Err(e))) => {
                Err(h2_error(e, ErrorSource::Downstream, "reading request body"))
            }
            Step::Data(None) => {
                self.finish_body_read().await?;
                Ok(None)
            }
        }
    }

    async fn finish_body_read(&mut self) -> Result<()> {
        self.body_done = true;
        match poll_fn(|cx| self.body.poll_trailers(cx)).await {
            Ok(mut t) => {
                if let Some(t) = t.as_mut() {
                    crate::http::trailers::drop_disallowed(t);
                }
                self.req_trailers = t;
                Ok(())
            }
            Err(e) => Err(h2_error(
                e,
                ErrorSource::Downstream,
                "reading request trailers",
            )),
        }
    }

    /// Send a response head (1xx interim ones are sent as informational responses).
    pub fn write_response_header(
        &mut self,
        resp: ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        let status = resp.status;
        let mut headers = h2_header_map(resp.fields());
        // No content-length on interim heads or a 204 (RFC 9110 §8.6).
        if status.is_informational() || status == http::StatusCode::NO_CONTENT {
            headers.remove(header::CONTENT_LENGTH);
        }
        let mut response = http::Response::new(());
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        if status.is_informational() {
            if status.as_u16() == 101 {
                return Err(Error::explain(
                    ErrorKind::InvalidUpstreamResponse,
                    ErrorSource::Upstream,
                    "101 Switching Protocols cannot be relayed on HTTP/2",
                ));
            }
            return self
                .respond
                .send_informational(response)
                .map_err(|e| h2_error(e, ErrorSource::Downstream, "sending an interim response"));
        }
        if self.resp.is_some() {
            return Err(Error::internal("response head written twice"));
        }
        // 204 and 304 have no content: END_STREAM goes on the HEADERS frame.
        let head_only = end_of_stream
            || self.req.method == Method::HEAD
            || status == http::StatusCode::NO_CONTENT
            || status == http::StatusCode::NOT_MODIFIED;
        let send = self
            .respond
            .send_response(response, head_only)
            .map_err(|e| h2_error(e, ErrorSource::Downstream, "sending the response head"))?;
        self.send = Some(send);
        self.finished = head_only;
        self.resp = Some(resp);
        Ok(())
    }

    /// Send a piece of the response body. The piece is held until the next write,
    /// [`H2ServerSession::flush`] or [`H2ServerSession::finish_response`], so that a
    /// last piece and the end of the stream travel in one frame; small pieces are
    /// copied, so that a slow client does not pin the larger buffer they were read into.
    pub async fn write_body(&mut self, data: Bytes) -> Result<()> {
        if self.finished {
            // HEAD, or a body after the end: nothing may be sent.
            return Ok(());
        }
        if self.send.is_none() {
            return Err(Error::internal(
                "response body written without an open response",
            ));
        }
        if let Some(previous) = self.held.take() {
            self.send_body(previous, false).await?;
        }
        self.held = Some(if data.len() <= COPY_AT_MOST {
            Bytes::copy_from_slice(&data)
        } else {
            data
        });
        Ok(())
    }

    /// Hand the held body piece (if any) to `h2`, which sends it as soon as the
    /// connection's task runs.
    pub async fn flush(&mut self) -> Result<()> {
        match self.held.take() {
            Some(data) if !self.finished => self.send_body(data, false).await,
            _ => Ok(()),
        }
    }

    /// Body bytes written but held (see [`H2ServerSession::write_body`]).
    pub fn pending_write(&self) -> usize {
        self.held.as_ref().map_or(0, Bytes::len)
    }

    /// Send `data` as the client's flow-control window allows; with `end`, the last
    /// frame ends the stream.
    async fn send_body(&mut self, mut data: Bytes, end: bool) -> Result<()> {
        let timeout = self.write_timeout;
        let Some(send) = self.send.as_mut() else {
            return Err(Error::internal(
                "response body written without an open response",
            ));
        };
        while !data.is_empty() {
            send.reserve_capacity(data.len());
            let granted = lazy_timeout(timeout, poll_fn(|cx| send.poll_capacity(cx))).await;
            let n = match granted {
                Err(_) => {
                    return Err(Error::explain(
                        ErrorKind::WriteTimedout,
                        ErrorSource::Downstream,
                        "client flow-control window stayed closed",
                    ));
                }
                Ok(None) => {
                    return Err(Error::explain(
                        ErrorKind::ConnectionClosed,
                        ErrorSource::Downstream,
                        "client reset the stream",
                    ));
                }
                Ok(Some(Err(e))) => {
                    return Err(h2_error(
                        e,
                        ErrorSource::Downstream,
                        "sending response body",
                    ));
                }
                Ok(Some(Ok(n))) => n.min(data.len()),
            };
            if n == 0 {
                continue;
            }
            let last = n == data.len();
            send.send_data(data.split_to(n), end && last)
                .map_err(|e| h2_error(e, ErrorSource::Downstream, "sending response body"))?;
        }
        if end {
            self.finished = true;
        }
        Ok(())
    }

    /// End the response, with trailers if given. A held body piece goes first, in the
    /// same frame as the end when there are no trailers.
    pub async fn finish_response(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        if self.send.is_none() {
            return Err(Error::internal("response finished without a response head"));
        }
        let trailers = trailers.filter(|t| !t.is_empty());
        if let Some(data) = self.held.take() {
            self.send_body(data, trailers.is_none()).await?;
            if self.finished {
                return Ok(());
            }
        }
        let Some(send) = self.send.as_mut() else {
            return Err(Error::internal("response finished without a response head"));
        };
        let sent = match trailers {
            Some(t) => {
                let mut t = t.clone();
                sanitize_for_h2(&mut t);
                send.send_trailers(t)
            }
            None => send.send_data(Bytes::new(), true),
        };
        self.finished = true;
        sent.map_err(|e| h2_error(e, ErrorSource::Downstream, "ending the response"))
    }

    /// Whether the response was sent completely.
    pub fn is_response_finished(&self) -> bool {
        self.finished
    }

    /// Abort the stream: the client sees a reset, never a truncated response that
    /// looks complete.
    pub fn reset(&mut self, internal: bool) {
        let reason = if internal {
            h2::Reason::INTERNAL_ERROR
        } else {
            h2::Reason::CANCEL
        };
        match self.send.as_mut() {
            Some(s) => s.send_reset(reason),
            None => self.respond.send_reset(reason),
        }
        self.finished = true;
    }

    /// Count into `counter` whether the client resets this stream before its response
    /// completes.
    pub(crate) fn count_client_resets(
        &mut self,
        counter: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        self.client_resets = Some(counter);
    }

    /// End of the exchange: a stream never carries another request. A response that
    /// did not complete is reset rather than left hanging.
    pub fn finish(mut self) {
        if !self.finished {
            if let Some(counter) = &self.client_resets {
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                let reset = match self.send.as_mut() {
                    Some(s) => s.poll_reset(&mut cx),
                    None => self.respond.poll_reset(&mut cx),
                };
                if matches!(reset, std::task::Poll::Ready(Ok(_))) {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            self.reset(true);
        }
    }
}
