//! HTTP/2 in the proxy loops: serving a client's HTTP/2 connection (each stream runs the
//! same phases as an HTTP/1 request, concurrently) and exchanging one request with an
//! HTTP/2 origin over a shared connection — with the request body and the response
//! streaming at the same time, as gRPC needs.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use h2::SendStream;
use http::{Uri, Version, header};
use tokio::io::{AsyncRead, AsyncWrite};

use super::HttpProxy;
use super::common::{
    client_accepts_trailers, refine_retry, strip_hop_by_hop, strip_upstream_request,
};
use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::http::ResponseHeader;
use crate::protocols::SocketAddress;
use crate::protocols::h2::client::{H2Connection, upstream_h2_error};
use crate::protocols::h2::coalesce::CoalescingIo;
use crate::protocols::h2::server::{
    H2ServerSession, check_request, h2_header_map, sanitize_for_h2,
};
use crate::protocols::timeout::lazy_timeout;
use crate::proxy_trait::ProxyHttp;
use crate::server::ShutdownWatch;
use crate::session::{Session, body_not_replayable};
use crate::upstream::HttpPeer;

impl<P: ProxyHttp> HttpProxy<P> {
    /// Serve a client's HTTP/2 connection: every stream becomes a [`Session`] and runs
    /// the phases in its own task; at shutdown the client gets a GOAWAY and open
    /// streams finish.
    pub(crate) async fn serve_h2<IO>(
        self: Arc<Self>,
        io: IO,
        shutdown: ShutdownWatch,
        client_addr: Option<SocketAddress>,
        server_addr: Option<SocketAddress>,
        tls: bool,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let o = &self.opts.h2;
        let mut builder = h2::server::Builder::new();
        builder
            .max_concurrent_streams(o.max_concurrent_streams)
            .initial_window_size(o.initial_window_size)
            .initial_connection_window_size(o.effective_connection_window())
            .max_header_list_size(o.max_header_list_size)
            .max_pending_accept_reset_streams(o.max_pending_accept_reset_streams)
            .max_local_error_reset_streams(Some(o.max_local_error_reset_streams))
            .max_send_buffer_size(o.max_send_buffer_size);
        // Responses of streams that finish together go out in one write.
        let handshake = builder.handshake::<_, Bytes>(CoalescingIo::new(io));
        let mut conn =
            match tokio::time::timeout(self.downstream.header_read_timeout, handshake).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::debug!("HTTP/2 handshake failed: {e}");
                    return;
                }
                Err(_) => return,
            };
        let mut going_away = shutdown.is_shutting_down();
        if going_away {
            conn.graceful_shutdown();
        }
        // Idle connections (no open stream for `idle_timeout`) get a GOAWAY; a client
        // that does not take even that within the write timeout is dropped. Timers and
        // the wake-up for "no stream left" live across loop turns.
        let open = Arc::new(OpenStreams::default());
        let idle_timeout = self.opts.h2.idle_timeout;
        let mut idle_timer = std::pin::pin!(tokio::time::sleep(idle_timeout));
        let mut idle = true;
        let mut all_done = std::pin::pin!(open.all_done.notified());
        let mut close_at: Option<tokio::time::Instant> = None;
        let mut close_timer = std::pin::pin!(tokio::time::sleep(idle_timeout));
        let mut accepted = 0usize;
        loop {
            let next = tokio::select! {
                next = conn.accept() => next,
                () = shutdown.wait(), if !going_away => {
                    conn.graceful_shutdown();
                    going_away = true;
                    continue;
                }
                () = all_done.as_mut(), if !idle => {
                    all_done.set(open.all_done.notified());
                    if open.count.load(Ordering::Acquire) == 0 {
                        idle = true;
                        idle_timer.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                    }
                    continue;
                }
                () = idle_timer.as_mut(), if idle && close_at.is_none() => {
                    tracing::debug!(client = ?client_addr, "idle HTTP/2 connection: GOAWAY");
                    conn.graceful_shutdown();
                    going_away = true;
                    let at = tokio::time::Instant::now() + self.downstream.write_timeout;
                    close_at = Some(at);
                    close_timer.as_mut().reset(at);
                    continue;
                }
                () = close_timer.as_mut(), if close_at.is_some() => {
                    tracing::debug!(client = ?client_addr, "HTTP/2 connection closed after its GOAWAY");
                    return;
                }
            };
            match next {
                Some(Ok((request, mut respond))) => {
                    if let Err(why) = check_request(&request) {
                        tracing::info!(
                            client = ?client_addr,
                            "malformed HTTP/2 request, stream reset: {why}"
                        );
                        respond.send_reset(h2::Reason::PROTOCOL_ERROR);
                        continue;
                    }
                    if request.method() == http::Method::CONNECT {
                        // As over HTTP/1: a reverse proxy offers no tunnels.
                        let mut refused = http::Response::new(());
                        *refused.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
                        let _ = respond.send_response(refused, true);
                        continue;
                    }
                    accepted += 1;
                    let resets = open.client_resets.load(Ordering::Relaxed);
                    if resets >= MAX_PREMATURE_RESETS && resets * 2 > accepted {
                        // Rapid reset (CVE-2023-44487) with streams the proxy had
                        // already taken on: most of them cancelled before their answer.
                        tracing::info!(
                            client = ?client_addr,
                            resets,
                            streams = accepted,
                            "HTTP/2 client resets most of its streams: closing the connection"
                        );
                        conn.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    let mut stream = match H2ServerSession::new(
                        request,
                        respond,
                        self.downstream.write_timeout,
                        self.downstream.body_read_timeout,
                    ) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::info!("rejected HTTP/2 request: {e}");
                            continue;
                        }
                    };
                    stream.count_client_resets(open.client_resets.clone());
                    let mut session = Session::new_h2(
                        Box::new(stream),
                        client_addr.clone(),
                        server_addr.clone(),
                        self.opts.retry_buffer_limit,
                    );
                    session.modules = self.modules.build_ctx();
                    session.set_shutdown_watch(shutdown.clone());
                    session.set_downstream_tls(tls);
                    let proxy = self.clone();
                    let shutdown = shutdown.clone();
                    // A stream is open: not idle (nor closing) until the last one ends.
                    let open_stream = OpenStream::new(&open);
                    idle = false;
                    close_at = None;
                    tokio::spawn(async move {
                        // The phases' large state in its own allocation, made in place
                        // at the first poll: the task itself stays small, so spawning
                        // does not copy the whole state around (nor take a large chunk
                        // from the allocator).
                        crate::boxed::pin_in_place(|| proxy.process_request(session, &shutdown))
                            .await;
                        drop(open_stream);
                    });
                }
                Some(Err(e)) => {
                    // Protocol violations, floods (CONTINUATION, HPACK, resets) and
                    // broken transports end here: one line per connection.
                    tracing::info!(client = ?client_addr, "HTTP/2 connection closed: {e}");
                    return;
                }
                None => return,
            }
        }
    }

    /// Send the session's request to an HTTP/2 origin on a shared connection and relay
    /// the response.
    pub(super) async fn proxy_to_h2_upstream(
        &self,
        session: &mut Session,
        conn: H2Connection,
        peer: &HttpPeer,
        ctx: &mut P::CTX,
    ) -> Result<()> {
        if !session.body_replayable() {
            return Err(body_not_replayable());
        }
        let read_timeout = peer.options.read_timeout;
        let write_timeout = peer.options.write_timeout;
        let mut req = session.req_header().clone();
        strip_upstream_request(session, &mut req, false);
        if client_accepts_trailers(session) {
            // gRPC and friends: the origin must know the client takes trailers.
            req.insert_header(header::TE, "trailers")?;
        }
        req.version = Version::HTTP_2;
        self.cache_upstream_request(session, &mut req);
        self.inner
            .upstream_request_filter(session, &mut req, ctx)
            .await?;

        let authority = req
            .authority()
            .map(str::to_string)
            .unwrap_or_else(|| peer.default_host());
        let uri = Uri::builder()
            .scheme(if peer.tls { "https" } else { "http" })
            .authority(authority.as_str())
            .path_and_query(req.path_and_query())
            .build()
            .map_err(|e| {
                Error::because(
                    ErrorKind::Internal,
                    ErrorSource::Internal,
                    "upstream request target",
                    e,
                )
            })?;
        let mut headers = h2_header_map(req.fields());
        headers.remove(header::HOST); // carried as :authority
        let replay: Vec<Bytes> = session.body_read_so_far().to_vec();
        let body_done_at_start = session.is_body_done();
        let no_body = session.is_body_empty() && replay.is_empty();
        if !no_body
            && !matches!(
                session.h1_framing(),
                crate::protocols::h1::BodyFraming::Length(_)
            )
        {
            headers.remove(header::CONTENT_LENGTH);
        }
        let mut request = http::Request::new(());
        *request.method_mut() = req.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_2;
        *request.headers_mut() = headers;
        let method = req.method.clone();
        drop(req);

        let ready = lazy_timeout(write_timeout, conn.ready())
            .await
            .map_err(|_| {
                Error::explain(
                    ErrorKind::WriteTimedout,
                    ErrorSource::Upstream,
                    "no HTTP/2 stream available on the upstream connection in time",
                )
            })?;
        let mut send = match ready {
            Ok(s) => s,
            Err(e) => {
                self.connector.drop_h2(peer);
                return Err(e);
            }
        };
        let (response, mut body_tx) = send
            .send_request(request, no_body)
            .map_err(|e| self.h2_failure(peer, e, "sending request to upstream"))?;

        // Body bytes already read go first, then the rest as it arrives.
        let mut req_done = no_body;
        if !no_body {
            let last = replay.len();
            for (i, chunk) in replay.into_iter().enumerate() {
                let eos = body_done_at_start && i + 1 == last;
                self.send_h2_body(session, &mut body_tx, Some(chunk), eos, write_timeout, ctx)
                    .await?;
                req_done = eos;
            }
            if body_done_at_start && !req_done {
                self.send_h2_body(session, &mut body_tx, None, true, write_timeout, ctx)
                    .await?;
                req_done = true;
            }
        }

        // Until the final response head: keep uploading, and relay interim (1xx) heads.
        let mut response = response;
        let response = loop {
            let head = if req_done {
                tokio::select! {
                    r = lazy_timeout(read_timeout, poll_fn(|cx| poll_head(&mut response, cx))) => match r {
                        Ok(head) => head,
                        Err(_) => {
                            return Err(Error::explain(
                                ErrorKind::ReadTimedout,
                                ErrorSource::Upstream,
                                format!("no response from upstream within {read_timeout:?}"),
                            ));
                        }
                    },
                    // Only an HTTP/2 client's reset can come out of this.
                    reset = session.read_body_or_reset(false), if session.is_http2() => {
                        reset?;
                        continue;
                    }
                }
            } else {
                tokio::select! {
                    head = poll_fn(|cx| poll_head(&mut response, cx)) => head,
                    chunk = session.read_body_or_reset(true) => {
                        let chunk = chunk?;
                        let eos = chunk.is_none() || session.is_body_done();
                        self.send_h2_body(session, &mut body_tx, chunk, eos, write_timeout, ctx).await?;
                        req_done = eos;
                        continue;
                    }
                }
            };
            match head {
                OriginHead::Final(r) => break r,
                OriginHead::Interim(parts) => {
                    let mut interim = ResponseHeader::new(parts.status, 0);
                    interim.replace_headers_lower(parts.headers);
                    strip_hop_by_hop(interim.fields_mut(), false);
                    self.relay_response_head(session, interim, ctx).await?;
                }
            }
        };
        let response = response.map_err(|e| {
            let e = self.h2_failure(peer, e, "waiting for the upstream response");
            refine_retry(e, &method, false)
        })?;

        let (parts, mut recv) = response.into_parts();
        let mut resp = ResponseHeader::new(parts.status, 0);
        resp.replace_headers_lower(parts.headers);
        strip_hop_by_hop(resp.fields_mut(), false);
        if !req_done {
            session.set_keepalive_off();
        }
        self.relay_response_head(session, resp, ctx).await?;

        // The response streams down while the rest of the request (if any) goes up.
        loop {
            tokio::select! {
                data = lazy_timeout(read_timeout, poll_fn(|cx| recv.poll_data(cx))) => match data {
                    Err(_) => {
                        return Err(Error::explain(
                            ErrorKind::ReadTimedout,
                            ErrorSource::Upstream,
                            format!("upstream response body stalled for {read_timeout:?}"),
                        ));
                    }
                    Ok(Some(Ok(data))) => {
                        let _ = recv.flow_control().release_capacity(data.len());
                        self.relay_response_body(session, data, ctx).await?;
                        // What the origin sent so far reaches the client before the
                        // wait for more: a streamed body is not held back.
                        self.flush_client(session).await?;
                    }
                    Ok(Some(Err(e))) => return Err(self.h2_failure(peer, e, "reading upstream response body")),
                    Ok(None) => {
                        let mut trailers = poll_fn(|cx| recv.poll_trailers(cx))
                            .await
                            .map_err(|e| self.h2_failure(peer, e, "reading upstream trailers"))?;
                        if let Some(t) = trailers.as_mut() {
                            crate::http::trailers::drop_disallowed(t);
                        }
                        self.relay_response_end(session, trailers, true, ctx).await?;
                        break;
                    }
                },
                chunk = session.read_body_or_reset(!req_done), if !req_done || session.is_http2() => {
                    let chunk = chunk?;
                    if req_done {
                        continue;
                    }
                    let eos = chunk.is_none() || session.is_body_done();
                    self.send_h2_body(session, &mut body_tx, chunk, eos, write_timeout, ctx).await?;
                    req_done = eos;
                }
            }
        }
        if !req_done {
            // The response is complete; the rest of the upload is not wanted.
            body_tx.send_reset(h2::Reason::CANCEL);
        }
        Ok(())
    }

    /// One piece of request body through `request_body_filter` onto the HTTP/2 stream,
    /// as the origin's flow-control window allows.
    async fn send_h2_body(
        &self,
        session: &mut Session,
        tx: &mut SendStream<Bytes>,
        chunk: Option<Bytes>,
        end_of_stream: bool,
        write_timeout: std::time::Duration,
        ctx: &mut P::CTX,
    ) -> Result<()> {
        let mut body = chunk;
        self.inner
            .request_body_filter(session, &mut body, end_of_stream, ctx)
            .await?;
        let mut data = body.unwrap_or_default();
        // Trailers end the stream themselves; without them the last DATA frame does.
        let trailers = if end_of_stream {
            session
                .request_trailers()
                .filter(|t| !t.is_empty())
                .cloned()
        } else {
            None
        };
        let eos_on_data = end_of_stream && trailers.is_none();
        let mut sent_eos = false;
        while !data.is_empty() {
            tx.reserve_capacity(data.len());
            let granted = lazy_timeout(write_timeout, poll_fn(|cx| tx.poll_capacity(cx)))
                .await
                .map_err(|_| {
                    Error::explain(
                        ErrorKind::WriteTimedout,
                        ErrorSource::Upstream,
                        "upstream flow-control window stayed closed",
                    )
                })?;
            let n = match granted {
                Some(Ok(n)) => n.min(data.len()),
                Some(Err(e)) => return Err(upstream_h2_error(e, "sending request body")),
                None => {
                    return Err(Error::explain(
                        ErrorKind::ConnectionClosed,
                        ErrorSource::Upstream,
                        "upstream closed the stream while the request body was sent",
                    ));
                }
            };
            if n > 0 {
                let piece = data.split_to(n);
                let last = eos_on_data && data.is_empty();
                tx.send_data(piece, last)
                    .map_err(|e| upstream_h2_error(e, "sending request body"))?;
                sent_eos |= last;
            }
        }
        if let Some(mut t) = trailers {
            sanitize_for_h2(&mut t);
            tx.send_trailers(t)
                .map_err(|e| upstream_h2_error(e, "sending request trailers"))?;
        } else if eos_on_data && !sent_eos {
            tx.send_data(Bytes::new(), true)
                .map_err(|e| upstream_h2_error(e, "ending the request body"))?;
        }
        Ok(())
    }

    /// An `h2` error from an upstream; a broken connection is forgotten.
    fn h2_failure(&self, peer: &HttpPeer, e: h2::Error, what: &str) -> Box<Error> {
        if e.is_io() || e.is_go_away() {
            self.connector.drop_h2(peer);
        }
        upstream_h2_error(e, what)
    }
}

/// The next head from an HTTP/2 origin for one request.
enum OriginHead {
    /// An interim (1xx) response, relayed to the client as it comes.
    Interim(http::response::Parts),
    /// The final response (or the stream's failure).
    Final(std::result::Result<http::Response<h2::RecvStream>, h2::Error>),
}

/// Poll for an interim head first (as `h2` asks), then for the final one.
fn poll_head(
    response: &mut h2::client::ResponseFuture,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<OriginHead> {
    use std::future::Future;
    use std::task::Poll;
    match response.poll_informational(cx) {
        Poll::Ready(Some(Ok(interim))) => {
            return Poll::Ready(OriginHead::Interim(interim.into_parts().0));
        }
        Poll::Ready(Some(Err(e))) => return Poll::Ready(OriginHead::Final(Err(e))),
        Poll::Ready(None) | Poll::Pending => {}
    }
    std::pin::Pin::new(response).poll(cx).map(OriginHead::Final)
}

/// The streams of one client connection still being served, and a wake-up for the
/// connection's task when the last one ends (the idle timeout starts then).
#[derive(Default)]
struct OpenStreams {
    count: AtomicUsize,
    all_done: tokio::sync::Notify,
    /// Streams the client reset before their response completed.
    client_resets: Arc<AtomicUsize>,
}

/// Streams a client may reset before their answers before its connection is closed
/// with `ENHANCE_YOUR_CALM`, when they are also most of its streams. The `h2` crate's
/// own guard (`max_pending_accept_reset_streams`) sees only streams reset before the
/// proxy took them; small batches of HEADERS + RST_STREAM get past it.
const MAX_PREMATURE_RESETS: usize = 100;

/// One open stream, counted while it lives.
struct OpenStream(Arc<OpenStreams>);

impl OpenStream {
    fn new(open: &Arc<OpenStreams>) -> Self {
        open.count.fetch_add(1, Ordering::AcqRel);
        OpenStream(open.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_done.notify_one();
        }
    }
}
