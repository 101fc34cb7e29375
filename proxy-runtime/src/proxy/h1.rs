//! One request exchanged with an HTTP/1.x origin: the request head and body go up while
//! the response comes down, in one task, each direction streaming. Upgrades (e.g.
//! WebSocket) become a raw two-way tunnel after — and only after — the origin's `101`.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Version, header};
use tokio::time::timeout;

use super::HttpProxy;
use super::common::{refine_retry, strip_hop_by_hop, strip_upstream_request};
use super::splice::splice_rest;
use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::protocols::Stream;
use crate::protocols::h1::BodyFraming;
use crate::protocols::h1::client::{ClientSession, UpstreamEvent};
use crate::protocols::h1::io::ConnIo;
use crate::protocols::timeout::lazy_timeout;
use crate::proxy_trait::ProxyHttp;
use crate::session::{Session, body_not_replayable};
use crate::upstream::HttpPeer;

/// Response bytes gathered for the client before writing, when more is already
/// readable from the origin.
const READ_AHEAD_LIMIT: usize = 256 * 1024;

impl<P: ProxyHttp> HttpProxy<P> {
    /// Send the session's request to an HTTP/1.x origin over `stream` and relay the
    /// response. Errors carry the retry decision for the caller.
    pub(super) async fn proxy_to_h1_upstream(
        &self,
        session: &mut Session,
        stream: Stream,
        reused: bool,
        peer: &HttpPeer,
        ctx: &mut P::CTX,
    ) -> Result<()> {
        if !session.body_replayable() {
            return Err(body_not_replayable());
        }
        let mut client = ClientSession::new(stream, self.opts.upstream_head, reused);
        let upgrade = session.is_upgrade_request();

        let mut req = session.req_header().clone();
        strip_upstream_request(session, &mut req, upgrade);
        req.version = Version::HTTP_11;
        if req.header(header::HOST).is_none() {
            req.insert_header(header::HOST, peer.default_host())?;
        }
        self.cache_upstream_request(session, &mut req);
        self.inner
            .upstream_request_filter(session, &mut req, ctx)
            .await?;
        let framing = upstream_request_framing(session, &mut req)?;
        client.write_request_header(&req, framing);
        let method = req.method.clone();
        drop(req);

        // Body bytes already read (by a phase, or by a failed attempt) go first.
        let replay: Vec<Bytes> = session.body_read_so_far().to_vec();
        let body_done = session.is_body_done();
        let mut req_done = framing.is_empty();
        if !req_done {
            let last = replay.len();
            for (i, chunk) in replay.into_iter().enumerate() {
                let eos = body_done && i + 1 == last;
                self.send_body_piece(session, &mut client, Some(chunk), eos, ctx)
                    .await?;
                req_done = eos;
            }
            if body_done && !req_done {
                self.send_body_piece(session, &mut client, None, true, ctx)
                    .await?;
                req_done = true;
            }
        }

        let read_timeout = peer.options.read_timeout;
        let write_timeout = peer.options.write_timeout;
        let mut trailers: Option<HeaderMap> = None;
        // The body may go socket to socket in the kernel (decided at the final head).
        let mut splice_body = false;
        loop {
            let event = match client.try_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    if splice_body && req_done {
                        if splice_rest(session, &mut client, read_timeout).await? {
                            continue; // the body is complete: `End` comes next
                        }
                        // Not possible for this response: the ordinary path goes on.
                        splice_body = false;
                    }
                    // More of the response may already be waiting in the socket: take it
                    // now, so the client gets fewer, larger writes (up to a bound).
                    if session.pending_write() < READ_AHEAD_LIMIT
                        && client
                            .try_fill()
                            .map_err(|e| refine_retry(e, &method, client.write_failed()))?
                    {
                        continue;
                    }
                    // About to wait: everything produced so far goes to the client first.
                    self.flush_client(session).await?;
                    let reading_client = !req_done && client.pending_write() == 0;
                    let limit = if client.pending_write() > 0 {
                        Some((write_timeout, ErrorKind::WriteTimedout))
                    } else if reading_client {
                        None // the client's body read timeout applies instead
                    } else {
                        Some((read_timeout, ErrorKind::ReadTimedout))
                    };
                    tokio::select! {
                        biased;
                        ev = next_event_within(&mut client, limit) => {
                            match ev {
                                Ok(ev) => ev,
                                Err(e) => {
                                    return Err(refine_retry(e, &method, client.write_failed()));
                                }
                            }
                        }
                        // An HTTP/2 client that resets its stream ends the upstream
                        // request too (without it, resets would pile up requests).
                        chunk = session.read_body_or_reset(reading_client),
                            if reading_client || session.is_http2() =>
                        {
                            let chunk = chunk?;
                            if !reading_client {
                                continue;
                            }
                            let eos = chunk.is_none() || session.is_body_done();
                            self.send_body_piece(session, &mut client, chunk, eos, ctx).await?;
                            req_done = eos;
                            continue;
                        }
                    }
                }
                Err(e) => return Err(refine_retry(e, &method, client.write_failed())),
            };
            match event {
                UpstreamEvent::Drained => {}
                UpstreamEvent::Head(parsed) => {
                    let mut resp = parsed.header;
                    let status = resp.status.as_u16();
                    if status == 101 {
                        if !upgrade {
                            return Err(Error::explain(
                                ErrorKind::InvalidUpstreamResponse,
                                ErrorSource::Upstream,
                                "101 Switching Protocols to a request that did not ask to upgrade",
                            ));
                        }
                        if !switches_to_offered(session.req_header(), &resp) {
                            return Err(Error::explain(
                                ErrorKind::InvalidUpstreamResponse,
                                ErrorSource::Upstream,
                                "101 Switching Protocols to a protocol the client did not offer",
                            ));
                        }
                        strip_hop_by_hop(resp.fields_mut(), true);
                        self.inner
                            .upstream_response_filter(session, &mut resp, ctx)
                            .await?;
                        self.inner.response_filter(session, &mut resp, ctx).await?;
                        session.write_response_header(resp, false).await?;
                        session.flush().await?;
                        let Some(h1) = session.h1_mut() else {
                            return Err(Error::internal("upgrade on a non-HTTP/1 client"));
                        };
                        tunnel(h1.io_mut(), client.into_io(), self.opts.tunnel_idle_timeout).await;
                        return Ok(());
                    }
                    strip_hop_by_hop(resp.fields_mut(), false);
                    if !(100..200).contains(&status) && !req_done {
                        // The origin answers before the upload is complete: this client
                        // connection will be closed, so say so in the response.
                        session.set_keepalive_off();
                    }
                    self.relay_response_head(session, resp, ctx).await?;
                    splice_body = status >= 200 && self.may_splice_body(session, ctx);
                }
                UpstreamEvent::Body(data) => self.relay_response_body(session, data, ctx).await?,
                UpstreamEvent::Trailers(t) => {
                    trailers = Some(self.filter_response_trailers(session, t, ctx).await?);
                }
                UpstreamEvent::End => {
                    self.relay_response_end(session, trailers.take(), false, ctx)
                        .await?;
                    break;
                }
            }
        }

        if req_done {
            if let Some(stream) = client.into_reusable() {
                self.connector.release(peer, stream);
            }
        } else {
            // The origin answered before the whole body was sent: neither connection
            // can carry another request (the rest of the body is still on the wire).
            session.set_keepalive_off();
        }
        Ok(())
    }

    /// One piece of request body through `request_body_filter` and onto the upstream.
    async fn send_body_piece(
        &self,
        session: &mut Session,
        client: &mut ClientSession,
        chunk: Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut P::CTX,
    ) -> Result<()> {
        let mut body = chunk;
        self.inner
            .request_body_filter(session, &mut body, end_of_stream, ctx)
            .await?;
        if let Some(b) = body {
            client.queue_body(b)?;
        }
        if end_of_stream {
            client.finish_request(session.request_trailers())?;
        }
        Ok(())
    }
}

/// How the request body is framed towards the origin. A `Content-Length` that still
/// matches the client's body is kept; anything else (chunked from the client, or a
/// length that a phase removed or changed) is sent chunked.
fn upstream_request_framing(
    session: &Session,
    req: &mut crate::http::RequestHeader,
) -> Result<BodyFraming> {
    if session.is_body_empty() {
        return Ok(BodyFraming::Empty);
    }
    let client_framing = session.h1_framing();
    let declared = req
        .header_str(header::CONTENT_LENGTH)
        .and_then(single_length);
    // An HTTP/2 request may end in trailers after a body of declared length; HTTP/1.1
    // carries trailers only in chunked framing. When the client announced them
    // (`Trailer`), the body goes chunked so that they reach the origin.
    let trailers_announced =
        session.downstream_is_h2() && session.req_header().has_header(header::TRAILER);
    match (client_framing, declared) {
        (BodyFraming::Length(n), Some(d)) if n == d && !trailers_announced => {
            // A repeated (identical) Content-Length goes on as one (RFC 9110 §8.6):
            // repeated as fields, or as a list in one (`5, 5`).
            if req.header_values(header::CONTENT_LENGTH).nth(1).is_some()
                || req
                    .header_str(header::CONTENT_LENGTH)
                    .is_some_and(|v| v.contains(','))
            {
                req.insert_header(header::CONTENT_LENGTH, n.to_string())?;
            }
            Ok(BodyFraming::Length(n))
        }
        _ => {
            req.remove_header(header::CONTENT_LENGTH);
            req.insert_header(header::TRANSFER_ENCODING, "chunked")?;
            Ok(BodyFraming::Chunked)
        }
    }
}

/// The length a `Content-Length` value states: one number, or a list of the same
/// number (`5, 5`, which RFC 9110 §8.6 lets a recipient take as `5`).
fn single_length(v: &str) -> Option<u64> {
    let mut values = v.split(',').map(|p| p.trim().parse::<u64>().ok());
    let first = values.next()??;
    values.all(|x| x == Some(first)).then_some(first)
}

/// Wait for the next upstream event, within `limit` if given.
async fn next_event_within(
    client: &mut ClientSession,
    limit: Option<(Duration, ErrorKind)>,
) -> Result<UpstreamEvent> {
    match limit {
        None => client.next_event().await,
        Some((d, kind)) => match lazy_timeout(d, client.next_event()).await {
            Ok(r) => r,
            Err(_) => Err(Error::explain(
                kind,
                ErrorSource::Upstream,
                format!("no progress from upstream within {d:?}"),
            )),
        },
    }
}

/// Whether a `101` names, in its `Upgrade`, only protocols the request offered (RFC
/// 9110 §7.8: a server must not switch to one the client did not ask for; §15.2.2: a
/// 101 must say which). Names compare without case; a version, when the response gives
/// one, must match too.
fn switches_to_offered(
    req: &crate::http::RequestHeader,
    resp: &crate::http::ResponseHeader,
) -> bool {
    let tokens = |v: &http::HeaderValue| -> Vec<String> {
        v.as_bytes()
            .split(|&b| b == b',')
            .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    };
    let offered: Vec<String> = req
        .header_values(header::UPGRADE)
        .flat_map(tokens)
        .collect();
    let chosen: Vec<String> = resp
        .header_values(header::UPGRADE)
        .flat_map(tokens)
        .collect();
    !chosen.is_empty()
        && chosen.iter().all(|c| {
            offered
                .iter()
                .any(|o| o == c || (!c.contains('/') && o.split('/').next() == Some(c.as_str())))
        })
}

/// Relay raw bytes both ways until both sides closed or nothing moved for `idle`
/// (a side that takes nothing for that long ends the tunnel too).
async fn tunnel(down: &mut ConnIo, mut up: ConnIo, idle: Duration) {
    // Bytes that arrived early on either side go first.
    if !down.rbuf.is_empty() {
        up.push_large(down.rbuf.split().freeze());
    }
    if !up.rbuf.is_empty() {
        down.push_large(up.rbuf.split().freeze());
    }
    let mut down_open = !down.eof;
    let mut up_open = !up.eof;
    loop {
        let flushed = timeout(idle, async {
            up.flush().await.is_ok() && down.flush().await.is_ok()
        })
        .await;
        if flushed != Ok(true) {
            return;
        }
        if !down_open && !up_open {
            return;
        }
        let step = timeout(idle, async {
            tokio::select! {
                n = down.fill(None), if down_open => (true, n),
                n = up.fill(None), if up_open => (false, n),
            }
        })
        .await;
        let Ok((from_client, read)) = step else {
            return; // idle
        };
        let (src, dst, open) = if from_client {
            (&mut *down, &mut up, &mut down_open)
        } else {
            (&mut up, &mut *down, &mut up_open)
        };
        match read {
            Ok(0) => {
                *open = false;
                // Half close: pass the FIN on, keep the other direction going.
                if dst.shutdown().await.is_err() {
                    return;
                }
            }
            Ok(_) => dst.push_large(src.rbuf.split().freeze()),
            Err(_) => return,
        }
    }
}
