//! One request exchanged over a peer's custom transport (see
//! [`crate::protocols::custom`]): the request head, body and trailers go to the
//! exchange's sink while its source's events come back through the same relay helpers
//! as HTTP/1 and HTTP/2 responses, so every phase (and the cache) runs at the same
//! point. The request body keeps uploading while the response streams down.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Version, header};

use super::HttpProxy;
use super::common::{
    client_accepts_trailers, refine_retry, strip_hop_by_hop, strip_upstream_request,
};
use crate::error::{Error, ErrorKind, ErrorSource, Result, RetryType};
use crate::http::RequestHeader;
use crate::protocols::custom::{CustomExchange, RequestSink, ResponseEvent};
use crate::protocols::h1::BodyFraming;
use crate::protocols::timeout::lazy_timeout;
use crate::proxy_trait::ProxyHttp;
use crate::session::{Session, body_not_replayable};
use crate::upstream::HttpPeer;

impl<P: ProxyHttp> HttpProxy<P> {
    /// Send the session's request through `exchange` and relay the response. Errors
    /// carry the retry decision for the caller: the transport's own before the first
    /// response event (refined for non-idempotent requests), never a retry after it.
    pub(super) async fn proxy_to_custom_upstream(
        &self,
        session: &mut Session,
        exchange: CustomExchange,
        peer: &HttpPeer,
        ctx: &mut P::CTX,
    ) -> Result<()> {
        if !session.body_replayable() {
            return Err(body_not_replayable());
        }
        let CustomExchange {
            request: mut sink,
            response: mut source,
            ..
        } = exchange;
        let read_timeout = peer.options.read_timeout;
        let write_timeout = peer.options.write_timeout;

        let mut req = session.req_header().clone();
        // No tunnels over a custom transport: an upgrade request goes as a plain one.
        strip_upstream_request(session, &mut req, false);
        if client_accepts_trailers(session) {
            // As with HTTP/2: the origin may answer with trailers that mean something.
            req.insert_header(header::TE, "trailers")?;
        }
        req.version = Version::HTTP_11;
        if req.header(header::HOST).is_none() {
            req.insert_header(header::HOST, peer.default_host())?;
        }
        self.cache_upstream_request(session, &mut req);
        self.inner
            .upstream_request_filter(session, &mut req, ctx)
            .await?;

        // Body bytes already read (by a phase, or by a failed attempt) go first.
        let replay: Vec<Bytes> = session.body_read_so_far().to_vec();
        let body_done_at_start = session.is_body_done();
        let no_body = session.is_body_empty() && replay.is_empty();
        if !no_body && !declared_length_holds(session, &req) {
            // The frames (or whatever the transport uses) delimit the body; a length
            // that a phase changed, or that the client never gave, would be a lie.
            req.remove_header(header::CONTENT_LENGTH);
        }
        let method = req.method.clone();
        within(
            write_timeout,
            "sending the request head",
            sink.send_head(req, no_body),
        )
        .await
        .map_err(|e| refine_retry(e, &method, true))?;

        let mut req_done = no_body;
        if !no_body {
            let last = replay.len();
            for (i, chunk) in replay.into_iter().enumerate() {
                let eos = body_done_at_start && i + 1 == last;
                self.send_custom_body(
                    session,
                    sink.as_mut(),
                    Some(chunk),
                    eos,
                    &method,
                    write_timeout,
                    ctx,
                )
                .await?;
                req_done = eos;
            }
            if body_done_at_start && !req_done {
                self.send_custom_body(
                    session,
                    sink.as_mut(),
                    None,
                    true,
                    &method,
                    write_timeout,
                    ctx,
                )
                .await?;
                req_done = true;
            }
        }

        let no_response_body = method == Method::HEAD;
        let mut started = false; // a response event arrived
        let mut final_status: Option<StatusCode> = None;
        let mut trailers: Option<HeaderMap> = None;
        loop {
            // Wait for the next event; until the request is complete, keep uploading
            // meanwhile. The pending `next_event` future lives until it completes.
            let event = {
                let mut next = source.next_event();
                loop {
                    if req_done {
                        break match lazy_timeout(read_timeout, &mut next).await {
                            Ok(r) => r,
                            Err(_) => Err(Error::explain(
                                ErrorKind::ReadTimedout,
                                ErrorSource::Upstream,
                                format!("no progress from the upstream within {read_timeout:?}"),
                            )),
                        };
                    }
                    // While the client uploads, its body read timeout applies instead.
                    tokio::select! {
                        r = &mut next => break r,
                        chunk = session.read_body_for_proxy() => {
                            let chunk = chunk?;
                            let eos = chunk.is_none() || session.is_body_done();
                            self.send_custom_body(session, sink.as_mut(), chunk, eos, &method, write_timeout, ctx)
                                .await?;
                            req_done = eos;
                        }
                    }
                }
            };
            let event = match event {
                Ok(ev) => ev,
                Err(e) if started => return Err(e.with_retry(RetryType::Decided(false))),
                Err(e) => return Err(refine_retry(e, &method, false)),
            };
            started = true;
            match event {
                ResponseEvent::Head(mut resp) => {
                    if final_status.is_some() {
                        return Err(bad_response("a second final response head"));
                    }
                    if resp.status == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(bad_response(
                            "101 Switching Protocols: a custom transport cannot tunnel",
                        ));
                    }
                    strip_hop_by_hop(resp.fields_mut(), false);
                    if !resp.status.is_informational() {
                        final_status = Some(resp.status);
                        if !req_done {
                            // The upstream answers before the upload is complete: the
                            // client connection will be closed, so say so.
                            session.set_keepalive_off();
                        }
                    }
                    self.relay_response_head(session, resp, ctx).await?;
                }
                ResponseEvent::Body(data) => {
                    let Some(status) = final_status else {
                        return Err(bad_response("response body before the response head"));
                    };
                    if data.is_empty()
                        || no_response_body
                        || status == StatusCode::NO_CONTENT
                        || status == StatusCode::NOT_MODIFIED
                    {
                        continue; // no body may be sent: drop it
                    }
                    self.relay_response_body(session, data, ctx).await?;
                    // Out to the client before the wait for more (streamed bodies).
                    self.flush_client(session).await?;
                }
                ResponseEvent::Trailers(t) => {
                    if final_status.is_none() || trailers.is_some() {
                        return Err(bad_response("response trailers out of place"));
                    }
                    trailers = Some(self.filter_response_trailers(session, t, ctx).await?);
                }
                ResponseEvent::End => {
                    if final_status.is_none() {
                        return Err(bad_response("the response ended without a final head"));
                    }
                    self.relay_response_end(session, trailers.take(), true, ctx)
                        .await?;
                    break;
                }
            }
        }
        if !req_done {
            // The response is complete; the rest of the upload is not wanted (dropping
            // the sink abandons it) and this client connection cannot be reused.
            session.set_keepalive_off();
        }
        Ok(())
    }

    /// One piece of request body through `request_body_filter` into the sink; at the
    /// end, the client's trailers (if any) end the request instead of an empty piece.
    #[allow(clippy::too_many_arguments)]
    async fn send_custom_body(
        &self,
        session: &mut Session,
        sink: &mut dyn RequestSink,
        chunk: Option<Bytes>,
        end_of_stream: bool,
        method: &Method,
        write_timeout: Duration,
        ctx: &mut P::CTX,
    ) -> Result<()> {
        let mut body = chunk;
        self.inner
            .request_body_filter(session, &mut body, end_of_stream, ctx)
            .await?;
        let data = body.unwrap_or_default();
        let trailers = if end_of_stream {
            session
                .request_trailers()
                .filter(|t| !t.is_empty())
                .cloned()
        } else {
            None
        };
        let eos_on_data = end_of_stream && trailers.is_none();
        if !data.is_empty() || eos_on_data {
            within(
                write_timeout,
                "sending the request body",
                sink.send_body(data, eos_on_data),
            )
            .await
            .map_err(|e| refine_retry(e, method, true))?;
        }
        if let Some(t) = trailers {
            within(
                write_timeout,
                "sending the request trailers",
                sink.send_trailers(t),
            )
            .await
            .map_err(|e| refine_retry(e, method, true))?;
        }
        Ok(())
    }
}

/// Whether the request's `Content-Length` still says how long the client's body is.
fn declared_length_holds(session: &Session, req: &RequestHeader) -> bool {
    let declared = req
        .header_str(header::CONTENT_LENGTH)
        .and_then(|v| v.trim().parse::<u64>().ok());
    matches!((session.h1_framing(), declared), (BodyFraming::Length(n), Some(d)) if n == d)
}

/// A write to the transport, bounded by the peer's write timeout.
async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match lazy_timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::explain(
            ErrorKind::WriteTimedout,
            ErrorSource::Upstream,
            format!("{what} took longer than {limit:?}"),
        )),
    }
}

/// A response that breaks the order of events.
fn bad_response(what: &'static str) -> Box<Error> {
    Error::explain(
        ErrorKind::InvalidUpstreamResponse,
        ErrorSource::Upstream,
        what,
    )
}
