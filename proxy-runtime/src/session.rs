//! [`Session`]: one downstream request as the phases see it, whatever the protocol.
//!
//! A session gives access to the request head, lets a phase read the request body or
//! answer locally, and records what was sent. The protocol-specific connection lives
//! inside ([`Downstream`]); phases never need to know which one it is.

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};

use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::http::{RequestHeader, ResponseHeader};
use crate::modules::ModuleCtx;
use crate::protocols::SocketAddress;
use crate::protocols::h1::server::ServerSession;
use crate::protocols::h2::server::H2ServerSession;
use crate::protocols::subrequest::{
    MAX_SUBREQUEST_DEPTH, SubrequestResponse, SubrequestRunner, SubrequestSession,
};

/// Request body bytes kept so a request can be sent again to another attempt.
#[derive(Debug)]
pub(crate) struct RetryBuffer {
    chunks: Vec<Bytes>,
    size: usize,
    limit: usize,
    /// More was read than fits: the body cannot be replayed.
    overflowed: bool,
}

impl RetryBuffer {
    fn new(limit: usize) -> Self {
        RetryBuffer {
            chunks: Vec::new(),
            size: 0,
            limit,
            overflowed: false,
        }
    }

    fn record(&mut self, chunk: &Bytes) {
        if self.overflowed {
            return;
        }
        if self.size + chunk.len() > self.limit {
            self.overflowed = true;
            self.chunks = Vec::new();
            return;
        }
        self.size += chunk.len();
        self.chunks.push(chunk.clone());
    }
}

/// The protocol-specific downstream connection of a session.
#[derive(Debug)]
pub enum Downstream {
    /// HTTP/1.x.
    H1(Box<ServerSession>),
    /// One HTTP/2 stream.
    H2(Box<H2ServerSession>),
    /// A subrequest made from inside the proxy (no client connection).
    Sub(Box<SubrequestSession>),
}

/// One downstream request and its response, as seen by the phases.
#[derive(Debug)]
pub struct Session {
    pub(crate) downstream: Downstream,
    retry: RetryBuffer,
    client_addr: Option<SocketAddress>,
    server_addr: Option<SocketAddress>,
    pub(crate) modules: ModuleCtx,
    body_bytes_read: u64,
    body_bytes_sent: u64,
    upstream_tries: u32,
    shutdown: Option<crate::server::ShutdownWatch>,
    /// The response cache's state for this request (see [`crate::cache`](mod@crate::cache)); a
    /// `request_cache_filter` phase enables it.
    pub cache: crate::cache::HttpCache,
    /// The proxy this session runs in, for subrequests.
    subrequests: Option<std::sync::Arc<dyn SubrequestRunner>>,
    /// 0 for a client's request; 1 for its subrequests, and so on.
    subrequest_depth: u8,
    /// A copy of the request going to a second destination.
    mirror: Option<crate::proxy::mirror::MirrorHandle>,
    /// The client connection is TLS (a subrequest inherits its parent's).
    downstream_tls: bool,
    /// Interim (1xx) heads relayed for this request.
    pub(crate) interim_heads: u8,
}

impl Session {
    /// A session over an HTTP/1.x exchange.
    pub fn new_h1(
        h1: Box<ServerSession>,
        client_addr: Option<SocketAddress>,
        server_addr: Option<SocketAddress>,
        retry_buffer_limit: usize,
    ) -> Self {
        Self::new(
            Downstream::H1(h1),
            client_addr,
            server_addr,
            retry_buffer_limit,
        )
    }

    /// A session over one HTTP/2 stream.
    pub fn new_h2(
        h2: Box<H2ServerSession>,
        client_addr: Option<SocketAddress>,
        server_addr: Option<SocketAddress>,
        retry_buffer_limit: usize,
    ) -> Self {
        Self::new(
            Downstream::H2(h2),
            client_addr,
            server_addr,
            retry_buffer_limit,
        )
    }

    /// A subrequest: `req` runs through the phases without a client connection; the
    /// response is kept up to `collect_limit` body bytes.
    pub fn new_subrequest(
        req: RequestHeader,
        body: Vec<Bytes>,
        collect_limit: usize,
        client_addr: Option<SocketAddress>,
    ) -> Self {
        let limit = body.iter().map(Bytes::len).sum::<usize>();
        Self::new(
            Downstream::Sub(Box::new(SubrequestSession::new(req, body, collect_limit))),
            client_addr,
            None,
            limit,
        )
    }

    /// Whether this session is a subrequest made from inside the proxy.
    pub fn is_subrequest(&self) -> bool {
        matches!(self.downstream, Downstream::Sub(_))
    }

    /// Send a copy of this request, body included, to `peer` as well (shadow
    /// traffic). The copy never slows this request down: a mirror that falls behind is
    /// cut off. Call it before the body is read on (e.g. from `request_filter`); its
    /// response is dropped, its outcome is [`Session::mirror_outcome`].
    pub fn mirror_to(&mut self, peer: &crate::upstream::HttpPeer) {
        let framing = self.h1_framing();
        let done = self.is_body_done() || self.is_body_empty();
        let handle =
            crate::proxy::mirror::start(peer, self.req_header(), framing, &self.retry.chunks, done);
        self.mirror = Some(handle);
    }

    /// How the mirrored copy of this request went so far (`None`: not mirrored).
    pub fn mirror_outcome(&self) -> Option<crate::proxy::mirror::MirrorOutcome> {
        self.mirror.as_ref().map(|m| m.outcome())
    }

    pub(crate) fn set_subrequest_runner(&mut self, runner: std::sync::Arc<dyn SubrequestRunner>) {
        self.subrequests = Some(runner);
    }

    /// Make a request through this proxy's own phases, from inside a phase: `req` (with
    /// `body`) runs as a subrequest — every phase sees `is_subrequest()`, with its own
    /// context — and its response comes back, the body kept up to `body_limit` bytes.
    /// An auth phase can ask an auth service this way before forwarding.
    ///
    /// Failures come back as responses (a 502 when the upstream cannot be reached), as
    /// a client would see them; an error means the subrequest could not run at all
    /// (nested too deep, or outside a proxy).
    pub async fn subrequest(
        &self,
        req: RequestHeader,
        body: Vec<Bytes>,
        body_limit: usize,
    ) -> Result<SubrequestResponse> {
        let Some(runner) = self.subrequests.clone() else {
            return Err(Error::explain(
                ErrorKind::Internal,
                ErrorSource::Internal,
                "subrequests need a session served by a proxy",
            ));
        };
        if self.subrequest_depth >= MAX_SUBREQUEST_DEPTH {
            return Err(Error::explain(
                ErrorKind::Internal,
                ErrorSource::Internal,
                format!("subrequests nested more than {MAX_SUBREQUEST_DEPTH} deep"),
            ));
        }
        let mut sub = Session::new_subrequest(req, body, body_limit, self.client_addr.clone());
        sub.downstream_tls = self.downstream_tls;
        sub.subrequest_depth = self.subrequest_depth + 1;
        let sub = runner.run(sub).await;
        match sub.downstream {
            Downstream::Sub(s) => Ok(s.into_response()),
            _ => Err(Error::internal("a subrequest lost its downstream")),
        }
    }

    fn new(
        downstream: Downstream,
        client_addr: Option<SocketAddress>,
        server_addr: Option<SocketAddress>,
        retry_buffer_limit: usize,
    ) -> Self {
        Session {
            downstream,
            retry: RetryBuffer::new(retry_buffer_limit),
            client_addr,
            server_addr,
            modules: ModuleCtx::default(),
            downstream_tls: false,
            interim_heads: 0,
            body_bytes_read: 0,
            body_bytes_sent: 0,
            upstream_tries: 0,
            shutdown: None,
            cache: crate::cache::HttpCache::default(),
            subrequests: None,
            subrequest_depth: 0,
            mirror: None,
        }
    }

    /// Watch the server's shutdown: a response started after shutdown began says
    /// `Connection: close`.
    pub fn set_shutdown_watch(&mut self, watch: crate::server::ShutdownWatch) {
        self.shutdown = Some(watch);
    }

    /// The request head.
    pub fn req_header(&self) -> &RequestHeader {
        match &self.downstream {
            Downstream::H1(s) => s.req_header(),
            Downstream::H2(s) => s.req_header(),
            Downstream::Sub(s) => s.req_header(),
        }
    }

    /// The request head, for changes (before it is sent upstream).
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        match &mut self.downstream {
            Downstream::H1(s) => s.req_header_mut(),
            Downstream::H2(s) => s.req_header_mut(),
            Downstream::Sub(s) => s.req_header_mut(),
        }
    }

    /// The value of request header `name` as text, if present and visible ASCII.
    pub fn get_header(&self, name: impl crate::http::HeaderKey) -> Option<&str> {
        self.req_header().header_str(name)
    }

    /// The client's address.
    pub fn client_addr(&self) -> Option<&SocketAddress> {
        self.client_addr.as_ref()
    }

    /// The local address the client connected to.
    pub fn server_addr(&self) -> Option<&SocketAddress> {
        self.server_addr.as_ref()
    }

    /// Whether the client's connection is TLS (`https`): part of the default cache key.
    /// A subrequest answers for the request it was made from.
    pub fn is_downstream_tls(&self) -> bool {
        self.downstream_tls
    }

    pub(crate) fn set_downstream_tls(&mut self, tls: bool) {
        self.downstream_tls = tls;
    }

    /// Whether the downstream speaks HTTP/2.
    pub fn is_http2(&self) -> bool {
        self.downstream_is_h2()
    }

    /// Whether the client asked to upgrade the connection (e.g. WebSocket).
    pub fn is_upgrade_request(&self) -> bool {
        match &self.downstream {
            Downstream::H1(s) => s.is_upgrade_request(),
            Downstream::H2(_) | Downstream::Sub(_) => false,
        }
    }

    /// Whether the request has no body at all.
    pub fn is_body_empty(&self) -> bool {
        match &self.downstream {
            Downstream::H1(s) => s.body_framing().is_empty(),
            Downstream::H2(s) => s.body_framing().is_empty(),
            Downstream::Sub(s) => s.body_framing().is_empty(),
        }
    }

    /// Whether the request body has been read to its end.
    pub fn is_body_done(&self) -> bool {
        match &self.downstream {
            Downstream::H1(s) => s.is_body_done(),
            Downstream::H2(s) => s.is_body_done(),
            Downstream::Sub(s) => s.is_body_done(),
        }
    }

    /// Request trailers, once the body has been read and carried some.
    pub fn request_trailers(&self) -> Option<&HeaderMap> {
        match &self.downstream {
            Downstream::H1(s) => s.request_trailers(),
            Downstream::H2(s) => s.request_trailers(),
            Downstream::Sub(s) => s.request_trailers(),
        }
    }

    /// Read the next piece of the request body (`None` at the end). Answers
    /// `Expect: 100-continue` first if the client is waiting for it.
    ///
    /// What a phase reads here is still forwarded upstream afterwards, as long as it
    /// fits the retry buffer (64 KiB by default); past that, the request cannot be
    /// proxied any more and the proxy answers 500.
    pub async fn read_request_body(&mut self) -> Result<Option<Bytes>> {
        match &mut self.downstream {
            Downstream::H1(s) => s.send_continue().await?,
            // HTTP/2 clients do not wait for 100 unless they asked; the origin answers.
            Downstream::H2(_) | Downstream::Sub(_) => {}
        }
        self.read_body_for_proxy().await
    }

    /// Read a body piece without answering `Expect` (the origin answers it).
    pub(crate) async fn read_body_for_proxy(&mut self) -> Result<Option<Bytes>> {
        let chunk = match &mut self.downstream {
            Downstream::H1(s) => s.read_body().await?,
            Downstream::H2(s) => s.read_body().await?,
            Downstream::Sub(s) => s.read_body(),
        };
        self.took_body(&chunk);
        Ok(chunk)
    }

    /// While proxying: the next body piece (with `want_body`), or an error as soon as
    /// an HTTP/2 client resets its stream. Without `want_body` (or for other
    /// downstreams), it only waits for such a reset — possibly forever.
    pub(crate) async fn read_body_or_reset(&mut self, want_body: bool) -> Result<Option<Bytes>> {
        let chunk = match &mut self.downstream {
            Downstream::H2(s) => s.read_body_or_reset(want_body).await?,
            _ if want_body => return self.read_body_for_proxy().await,
            _ => std::future::pending().await,
        };
        self.took_body(&chunk);
        Ok(chunk)
    }

    /// Bookkeeping for a body piece the proxy took: counts, retry buffer, mirror.
    fn took_body(&mut self, chunk: &Option<Bytes>) {
        if let Some(c) = &chunk {
            self.body_bytes_read += c.len() as u64;
            self.retry.record(c);
        }
        if self.mirror.is_some() {
            let ended = chunk.is_none() || self.is_body_done();
            if let Some(m) = &mut self.mirror {
                if let Some(c) = &chunk {
                    m.push(c);
                }
                if ended {
                    m.finish();
                }
            }
        }
    }

    /// Body bytes read so far can be sent again (none were lost past the retry buffer).
    pub(crate) fn body_replayable(&self) -> bool {
        !self.retry.overflowed
    }

    /// The body bytes read so far, to send to a (new) upstream attempt.
    pub(crate) fn body_read_so_far(&self) -> &[Bytes] {
        &self.retry.chunks
    }

    /// Count an upstream attempt; returns the attempt number (1-based).
    pub(crate) fn next_try(&mut self) -> u32 {
        self.upstream_tries += 1;
        self.upstream_tries
    }

    /// Upstream attempts made for this request.
    pub fn upstream_tries(&self) -> u32 {
        self.upstream_tries
    }

    /// Request body bytes read from the client.
    pub fn body_bytes_read(&self) -> u64 {
        self.body_bytes_read
    }

    /// Response body bytes sent to the client.
    pub fn body_bytes_sent(&self) -> u64 {
        self.body_bytes_sent
    }

    /// Of [`Session::body_bytes_sent`], the bytes relayed from the origin's socket to
    /// the client's inside the kernel (`splice(2)`; see
    /// [`ProxyHttp::response_body_passthrough`](crate::ProxyHttp::response_body_passthrough)),
    /// without passing through user space.
    pub fn body_bytes_spliced(&self) -> u64 {
        match &self.downstream {
            Downstream::H1(s) => s.body_bytes_spliced(),
            Downstream::H2(_) | Downstream::Sub(_) => 0,
        }
    }

    /// Count `n` response body bytes as sent by `splice(2)`.
    pub(crate) fn count_spliced(&mut self, n: u64) {
        self.body_bytes_sent += n;
        if let Downstream::H1(s) = &mut self.downstream {
            s.spliced(n);
        }
    }

    /// The final response head sent (or queued) to the client, if any.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        match &self.downstream {
            Downstream::H1(s) => s.response_written(),
            Downstream::H2(s) => s.response_written(),
            Downstream::Sub(s) => s.response_written(),
        }
    }

    /// Close the client connection after this request.
    pub fn set_keepalive_off(&mut self) {
        match &mut self.downstream {
            Downstream::H1(s) => s.set_must_close(),
            // A stream is never reused; the connection's life is not the request's.
            Downstream::H2(_) | Downstream::Sub(_) => {}
        }
    }

    /// Send a response head to the client; `end_of_stream` when there is no body.
    pub async fn write_response_header(
        &mut self,
        resp: ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        let mut resp = resp;
        self.modules
            .response_header_filter(&mut resp, end_of_stream)?;
        // RFC 9110 §6.6.1: a final response the origin sent without a date, or one the
        // proxy made itself, gets the time it leaves.
        if !resp.status.is_informational() && resp.header(header::DATE).is_none() {
            resp.insert_header(header::DATE, crate::http::date::now())?;
        }
        if self.shutdown.as_ref().is_some_and(|w| w.is_shutting_down()) {
            self.set_keepalive_off();
        }
        match &mut self.downstream {
            Downstream::H1(s) => {
                s.write_response_header(resp)?;
                if end_of_stream {
                    s.finish_response(None).await?;
                }
            }
            Downstream::H2(s) => s.write_response_header(resp, end_of_stream)?,
            Downstream::Sub(s) => {
                s.write_response_header(resp);
                if end_of_stream {
                    s.finish_response()?;
                }
            }
        }
        Ok(())
    }

    /// Send a piece of the response body; `end_of_stream` on the last one.
    pub async fn write_response_body(
        &mut self,
        data: Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        let mut data = data;
        self.modules
            .response_body_filter(&mut data, end_of_stream)?;
        match &mut self.downstream {
            Downstream::H1(s) => {
                if let Some(d) = data {
                    self.body_bytes_sent += d.len() as u64;
                    s.write_body(d).await?;
                }
                if end_of_stream {
                    s.finish_response(None).await?;
                }
            }
            Downstream::H2(s) => {
                if let Some(d) = data {
                    self.body_bytes_sent += d.len() as u64;
                    s.write_body(d).await?;
                }
                if end_of_stream {
                    s.finish_response(None).await?;
                }
            }
            Downstream::Sub(s) => {
                if let Some(d) = data {
                    self.body_bytes_sent += d.len() as u64;
                    s.write_body(d);
                }
                if end_of_stream {
                    s.finish_response()?;
                }
            }
        }
        Ok(())
    }

    /// End the response with trailers (sent to clients that can receive them).
    pub async fn write_response_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        match &mut self.downstream {
            Downstream::H1(s) => s.finish_response(Some(&trailers)).await,
            Downstream::H2(s) => s.finish_response(Some(&trailers)).await,
            Downstream::Sub(s) => s.finish_response(),
        }
    }

    /// Bytes queued for the client and not written yet.
    pub fn pending_write(&self) -> usize {
        match &self.downstream {
            Downstream::H1(s) => s.pending_write(),
            Downstream::H2(s) => s.pending_write(),
            Downstream::Sub(_) => 0,
        }
    }

    /// Send everything queued for the client now.
    pub async fn flush(&mut self) -> Result<()> {
        match &mut self.downstream {
            Downstream::H1(s) => s.flush().await,
            // `h2` sends what it was handed as soon as the connection task runs.
            Downstream::H2(s) => s.flush().await,
            Downstream::Sub(_) => Ok(()),
        }
    }

    /// Answer with `status` and a short text body, and close the connection if the
    /// request body was not read. Does nothing if a response was already started.
    pub async fn respond_error(&mut self, status: u16) -> Result<()> {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = format!(
            "{} {}\n",
            code.as_str(),
            code.canonical_reason().unwrap_or("Error")
        );
        self.respond_error_with_body(status, Bytes::from(body))
            .await
    }

    /// Answer with `status` and the given body (as `text/plain`).
    pub async fn respond_error_with_body(&mut self, status: u16, body: Bytes) -> Result<()> {
        if self.response_written().is_some() {
            return Ok(());
        }
        let mut resp = ResponseHeader::build(status, Some(4))?;
        resp.insert_header(header::CONTENT_TYPE, "text/plain")?;
        resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
        resp.insert_header(header::CACHE_CONTROL, "private, no-store")?;
        if !self.is_body_done() {
            // The body will not be read: the connection cannot carry another request.
            self.set_keepalive_off();
        }
        self.write_response_header(resp, false).await?;
        self.write_response_body(Some(body), true).await
    }

    /// Run the downstream modules' request filters on the request head.
    pub(crate) fn run_module_request_filters(&mut self) -> Result<()> {
        let Session {
            downstream,
            modules,
            ..
        } = self;
        let req = match downstream {
            Downstream::H1(s) => s.req_header_mut(),
            Downstream::H2(s) => s.req_header_mut(),
            Downstream::Sub(s) => s.req_header_mut(),
        };
        modules.request_header_filter(req)
    }

    /// How the client framed its request body.
    pub(crate) fn h1_framing(&self) -> crate::protocols::h1::BodyFraming {
        match &self.downstream {
            Downstream::H1(s) => s.body_framing(),
            Downstream::H2(s) => s.body_framing(),
            Downstream::Sub(s) => s.body_framing(),
        }
    }

    /// The HTTP/1.x exchange, if that is what this session is.
    pub(crate) fn h1_mut(&mut self) -> Option<&mut ServerSession> {
        match &mut self.downstream {
            Downstream::H1(s) => Some(s),
            Downstream::H2(_) | Downstream::Sub(_) => None,
        }
    }

    /// Whether the downstream speaks HTTP/2.
    pub(crate) fn downstream_is_h2(&self) -> bool {
        matches!(self.downstream, Downstream::H2(_))
    }

    /// End the response now (complete it, or — if it cannot be — close/reset).
    pub(crate) async fn finish_response(&mut self) -> Result<()> {
        match &mut self.downstream {
            Downstream::H1(s) => s.finish_response(None).await,
            Downstream::H2(s) => s.finish_response(None).await,
            Downstream::Sub(s) => s.finish_response(),
        }
    }
}

/// An error for a request whose body was consumed past the retry buffer before proxying.
pub(crate) fn body_not_replayable() -> Box<Error> {
    Error::explain(
        ErrorKind::Internal,
        ErrorSource::Internal,
        "the request body was read by a phase beyond the retry buffer and cannot be forwarded",
    )
}

/// Phases hold `&Session` across awaits in `Send` futures: a session must stay `Sync`.
const _: () = {
    const fn sync<T: Sync + Send>() {}
    sync::<Session>();
};
