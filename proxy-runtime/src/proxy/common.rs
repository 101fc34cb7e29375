//! What every proxy loop shares: the order of the phases, the retry loop, failure
//! handling and logging, and the hop-by-hop header rules.
//!
//! A phase is called from here once; protocol loops only implement the exchange with
//! one upstream connection (see `h1.rs`).

use std::sync::Arc;

use http::{HeaderValue, header};

use super::HttpProxy;
use crate::cache::state::ClientView;
use crate::error::{Error, ErrorKind, ErrorSource, Result, RetryType};
use crate::http::fields::Fields;
use crate::http::{KeyRef, hop};
use crate::protocols::h1::io::ConnIo;
use crate::proxy_trait::ProxyHttp;
use crate::server::ShutdownWatch;
use crate::session::{Downstream, Session};
use crate::upstream::UpstreamConn;

impl<P: ProxyHttp> HttpProxy<P> {
    /// Run one request through every phase; the client connection comes back if it can
    /// carry another request.
    pub(crate) async fn process_request(
        self: &Arc<Self>,
        session: Session,
        shutdown: &ShutdownWatch,
    ) -> Option<ConnIo> {
        let mut session = self.handle_request(session).await;
        if shutdown.is_shutting_down() {
            session.set_keepalive_off();
        }
        match session.downstream {
            Downstream::H1(h1) => h1.finish().await,
            Downstream::H2(h2) => {
                h2.finish();
                None
            }
            Downstream::Sub(_) => None,
        }
    }

    /// Every phase for one request, failures answered and logged; the session comes
    /// back for its downstream to be finished.
    pub(crate) async fn handle_request(self: &Arc<Self>, mut session: Session) -> Session {
        session.set_subrequest_runner(self.clone());
        let mut ctx = self.inner.new_ctx();
        let error = self.run_phases(&mut session, &mut ctx).await.err();
        if let Some(e) = &error {
            let fail = self.inner.fail_to_proxy(&mut session, e, &mut ctx).await;
            if !fail.can_reuse_downstream {
                session.set_keepalive_off();
            }
            if !self.inner.suppress_error_log(&session, &ctx, e) {
                tracing::error!(
                    status = fail.error_code,
                    tries = session.upstream_tries(),
                    "{e}, {}",
                    self.inner.request_summary(&session, &ctx)
                );
            }
        }
        self.inner
            .logging(&mut session, error.as_deref(), &mut ctx)
            .await;
        session
    }

    /// The request phases, then the upstream with retries.
    pub(super) async fn run_phases(
        self: &Arc<Self>,
        session: &mut Session,
        ctx: &mut P::CTX,
    ) -> Result<()> {
        self.inner.early_request_filter(session, ctx).await?;
        session.run_module_request_filters()?;
        if self.inner.request_filter(session, ctx).await? {
            return complete_local_response(session, "request_filter").await;
        }
        if self.cache_request(session, ctx).await? {
            return Ok(());
        }
        if !self.inner.proxy_upstream_filter(session, ctx).await? {
            if session.response_written().is_none() {
                session.respond_error(502).await?;
                return Ok(());
            }
            return complete_local_response(session, "proxy_upstream_filter").await;
        }
        match self.proxy_with_retries(session, ctx).await {
            Err(e) if self.serve_stale_on_error(session, ctx, &e).await? => Ok(()),
            other => other,
        }
    }

    /// `upstream_peer` → connect → exchange, again while the failure is retryable, the
    /// body can be replayed, nothing was sent to the client, and tries remain.
    async fn proxy_with_retries(&self, session: &mut Session, ctx: &mut P::CTX) -> Result<()> {
        let max_tries = self.opts.max_retries + 1;
        loop {
            let attempt = session.next_try();
            let peer = self.inner.upstream_peer(session, ctx).await?;
            let (conn, reused) = match self.connector.get_conn(&peer).await {
                Ok(c) => c,
                Err(e) => {
                    let e = self.inner.fail_to_connect(session, &peer, ctx, e);
                    if e.retryable(false) && attempt < max_tries && session.body_replayable() {
                        tracing::debug!(%peer, attempt, "{e}; trying again");
                        continue;
                    }
                    return Err(e);
                }
            };
            self.inner
                .connected_to_upstream(session, reused, &peer, ctx)
                .await?;
            let exchanged = match conn {
                UpstreamConn::H1(stream) => {
                    self.proxy_to_h1_upstream(session, stream, reused, &peer, ctx)
                        .await
                }
                UpstreamConn::H2(h2) => self.proxy_to_h2_upstream(session, h2, &peer, ctx).await,
                UpstreamConn::Custom(exchange) => {
                    self.proxy_to_custom_upstream(session, exchange, &peer, ctx)
                        .await
                }
            };
            let e = match exchanged {
                Ok(()) => return Ok(()),
                Err(e) => self.inner.error_while_proxy(&peer, session, e, ctx, reused),
            };
            // A fetch without validators after a 304 the cache could not use is not a
            // failed try: it gets one more.
            let tries = max_tries + u32::from(session.cache.refetched);
            let may_retry = e.retryable(reused)
                && attempt < tries
                && session.response_written().is_none()
                && session.body_replayable();
            if !may_retry {
                return Err(e);
            }
            tracing::debug!(%peer, attempt, reused, "{e}; trying again");
        }
    }
}

impl<P: ProxyHttp> HttpProxy<P> {
    /// An upstream response head (hop-by-hop headers already removed) on its way to the
    /// client: an interim (1xx) one is relayed as is; the final one goes through
    /// `upstream_response_filter` and `response_filter`.
    pub(crate) async fn relay_response_head(
        &self,
        session: &mut Session,
        mut resp: crate::http::ResponseHeader,
        ctx: &mut P::CTX,
    ) -> Result<()> {
        if resp.status.is_informational() {
            // A few interim heads are normal (100, 103); an origin that keeps sending
            // them would hold the request (each one resets the read timeout) and queue
            // heads for a client that may not read them.
            session.interim_heads = session.interim_heads.saturating_add(1);
            if session.interim_heads > MAX_INTERIM_HEADS {
                return Err(Error::explain(
                    ErrorKind::InvalidUpstreamResponse,
                    ErrorSource::Upstream,
                    format!("more than {MAX_INTERIM_HEADS} interim (1xx) responses"),
                ));
            }
            session.write_response_header(resp, false).await?;
            return session.flush().await;
        }
        self.inner
            .upstream_response_filter(session, &mut resp, ctx)
            .await?;
        if session.cache.enabled() && self.cache_response_head(session, &mut resp, ctx).await? {
            return Ok(()); // answered from the cache; the origin's body is drained
        }
        self.inner.response_filter(session, &mut resp, ctx).await?;
        let (resp, ends) = self.cache_client_head(session, resp)?;
        self.write_to_client(session, ClientWrite::Head(resp, ends))
            .await
    }

    /// Write to the client; while a cache fill goes on, a client that left does not
    /// stop the response from being read (and stored).
    async fn write_to_client(&self, session: &mut Session, what: ClientWrite) -> Result<()> {
        if session.cache.client_gone {
            return Ok(());
        }
        let written = match what {
            ClientWrite::Head(resp, ends) => session.write_response_header(resp, ends).await,
            ClientWrite::Body(body, ends) => session.write_response_body(body, ends).await,
            ClientWrite::Trailers(t) => session.write_response_trailers(t).await,
        };
        match written {
            Err(e) if self.cache_client_gone(session, &e) => Ok(()),
            other => other,
        }
    }

    /// Send what is queued for the client (see [`Self::write_to_client`] for errors).
    pub(crate) async fn flush_client(&self, session: &mut Session) -> Result<()> {
        if session.cache.client_gone {
            return Ok(());
        }
        match session.flush().await {
            Err(e) if self.cache_client_gone(session, &e) => Ok(()),
            other => other,
        }
    }

    /// The pause a body filter asked for (rate limiting). It delays the next piece, not
    /// this one: what is queued for the client goes out first.
    pub(crate) async fn pace(
        &self,
        session: &mut Session,
        delay: Option<std::time::Duration>,
    ) -> Result<()> {
        if let Some(d) = delay {
            self.flush_client(session).await?;
            tokio::time::sleep(d).await;
        }
        Ok(())
    }

    /// A piece of the upstream response body through the body filters to the client.
    pub(crate) async fn relay_response_body(
        &self,
        session: &mut Session,
        data: bytes::Bytes,
        ctx: &mut P::CTX,
    ) -> Result<()> {
        let mut body = Some(data);
        self.inner
            .upstream_response_body_filter(session, &mut body, false, ctx)?;
        if session.cache.enabled() {
            let Some(data) = body else { return Ok(()) };
            for piece in self.cache_body_piece(session, &data)? {
                self.relay_to_client(session, piece, ctx).await?;
            }
            return Ok(());
        }
        let delay = self
            .inner
            .response_body_filter(session, &mut body, false, ctx)?;
        if body.is_some() {
            session.write_response_body(body, false).await?;
        }
        self.pace(session, delay).await?;
        Ok(())
    }

    /// A body piece through `response_body_filter` to the client.
    async fn relay_to_client(
        &self,
        session: &mut Session,
        piece: bytes::Bytes,
        ctx: &mut P::CTX,
    ) -> Result<()> {
        let mut body = Some(piece);
        let delay = self
            .inner
            .response_body_filter(session, &mut body, false, ctx)?;
        if body.is_some() {
            self.write_to_client(session, ClientWrite::Body(body, false))
                .await?;
        }
        self.pace(session, delay).await?;
        Ok(())
    }

    /// Upstream trailers through the trailer filters (sent with the end).
    pub(crate) async fn filter_response_trailers(
        &self,
        session: &mut Session,
        mut trailers: http::HeaderMap,
        ctx: &mut P::CTX,
    ) -> Result<http::HeaderMap> {
        self.inner
            .upstream_response_trailer_filter(session, &mut trailers, ctx)?;
        self.inner
            .response_trailer_filter(session, &mut trailers, ctx)
            .await?;
        Ok(trailers)
    }

    /// The end of the upstream response: the body filters' last call, then the end
    /// (with trailers) to the client. With `trailers_need_te`, an HTTP/1 client gets
    /// the trailers only if it sent `TE: trailers` (for trailers from HTTP/2, where
    /// they may carry what the response means, as with gRPC).
    pub(crate) async fn relay_response_end(
        &self,
        session: &mut Session,
        trailers: Option<http::HeaderMap>,
        trailers_need_te: bool,
        ctx: &mut P::CTX,
    ) -> Result<()> {
        let mut body = None;
        self.inner
            .upstream_response_body_filter(session, &mut body, true, ctx)?;
        if session.cache.enabled() {
            let client_done = matches!(session.cache.client, ClientView::Nothing);
            for piece in self.cache_response_end(session)? {
                self.relay_to_client(session, piece, ctx).await?;
            }
            if client_done {
                return Ok(()); // the client's answer was complete already
            }
        }
        let delay = self
            .inner
            .response_body_filter(session, &mut body, true, ctx)?;
        // An HTTP/1 client gets trailers only if it said it accepts them.
        let trailers = trailers.filter(|_| {
            !trailers_need_te || session.is_http2() || client_accepts_trailers(session)
        });
        match trailers {
            Some(t) => {
                if body.is_some() {
                    self.write_to_client(session, ClientWrite::Body(body, false))
                        .await?;
                }
                self.write_to_client(session, ClientWrite::Trailers(t))
                    .await?;
            }
            None => {
                self.write_to_client(session, ClientWrite::Body(body, true))
                    .await?
            }
        }
        self.pace(session, delay).await?;
        Ok(())
    }
}

/// Interim (1xx) heads relayed per request before the origin is given up on.
const MAX_INTERIM_HEADS: u8 = 16;

/// One write to the client.
enum ClientWrite {
    Head(crate::http::ResponseHeader, bool),
    Body(Option<bytes::Bytes>, bool),
    Trailers(http::HeaderMap),
}

/// `TE: trailers` on the client's request.
pub(crate) fn client_accepts_trailers(session: &Session) -> bool {
    session
        .req_header()
        .header_values(header::TE)
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
}

/// After a phase said it answered: make sure the response really is complete.
async fn complete_local_response(session: &mut Session, phase: &str) -> Result<()> {
    if session.response_written().is_none() {
        return Err(Error::explain(
            ErrorKind::Internal,
            ErrorSource::Internal,
            format!("{phase} returned true without sending a response"),
        ));
    }
    session.finish_response().await
}

/// An upstream failure that happened before any response byte, on a connection the
/// origin may have closed while it was pooled: safe to retry only if the request is
/// idempotent or the write itself failed (so the origin cannot have acted on it).
pub(crate) fn refine_retry(e: Box<Error>, method: &http::Method, write_failed: bool) -> Box<Error> {
    if e.retry == RetryType::ReusedOnly && !write_failed && !method.is_idempotent() {
        e.with_retry(RetryType::Decided(false))
    } else {
        e
    }
}

/// Remove hop-by-hop headers and every header the `Connection` header names (except
/// `Host`, which HTTP/1.1 requires and which no connection option can stand for). With
/// `keep_upgrade` (a WebSocket-style handshake), `Upgrade` stays and `Connection` is
/// set to `upgrade`. Returns whether fields named by `Connection` were removed.
pub(crate) fn strip_hop_by_hop(headers: &mut Fields, keep_upgrade: bool) -> bool {
    // The fields know which hop-by-hop names they may hold; most heads hold none, or
    // only `Connection`.
    let present = headers.hop_by_hop();
    if !keep_upgrade && present == 0 {
        return false;
    }
    let mut removed_listed = false;
    if present & hop::CONNECTION != 0 {
        // The other names `Connection` lists go too. Usually it lists only options
        // (`keep-alive`, `close`) that name no header present: look before copying.
        let connection = KeyRef::Name(&header::CONNECTION);
        let listed_present = headers
            .get_all(connection)
            .any(|v| listed_names(v, keep_upgrade).any(|name| headers.contains(KeyRef::Str(name))));
        if listed_present {
            // Removed by text (no name is built); the values are cloned (shared bytes)
            // so that the fields can change while they are read.
            let listed: Vec<HeaderValue> = headers.get_all(connection).cloned().collect();
            for value in &listed {
                for name in listed_names(value, keep_upgrade) {
                    removed_listed |= headers.remove(KeyRef::Str(name)).is_some();
                }
            }
        }
    }
    let remove = if keep_upgrade {
        present & !hop::UPGRADE
    } else {
        present
    };
    // One scan per name present (names compare as enum tags or by length first).
    for (i, name) in hop::HOP_BY_HOP.iter().enumerate() {
        if remove & (1 << i) != 0 {
            headers.remove(KeyRef::Name(name));
        }
    }
    if keep_upgrade {
        // Both names are constants; this cannot fail.
        let _ = headers.insert(header::CONNECTION, "upgrade");
    }
    removed_listed
}

/// [`strip_hop_by_hop`] on the copy of the client's request that goes upstream. When
/// `Connection` named fields the request carries, the origin answers a different
/// request than the one the cache would file its answer under (the key and `Vary`
/// are computed from the client's request): that answer is not stored.
pub(crate) fn strip_upstream_request(
    session: &mut Session,
    req: &mut crate::http::RequestHeader,
    keep_upgrade: bool,
) {
    if strip_hop_by_hop(req.fields_mut(), keep_upgrade) {
        session.cache.no_store = true;
    }
}

/// The header names a `Connection` value lists, other than the fixed hop-by-hop set
/// (removed anyway) and, with `keep_upgrade`, `upgrade`.
fn listed_names(value: &HeaderValue, keep_upgrade: bool) -> impl Iterator<Item = &str> {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .filter_map(move |token| {
            let token = token.trim_ascii();
            let skip = token.is_empty()
                || token.eq_ignore_ascii_case(b"host")
                || (keep_upgrade && token.eq_ignore_ascii_case(b"upgrade"))
                || hop::index(token, true).is_some();
            if skip {
                return None;
            }
            std::str::from_utf8(token).ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::RequestHeader;
    use http::{Method, Version};

    #[test]
    fn hop_by_hop_and_listed_headers_are_removed() {
        let mut req = RequestHeader::build(Method::GET, "/", Version::HTTP_11).unwrap();
        for (n, v) in [
            ("Host", "a"),
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Proxy-Connection", "keep-alive"),
            ("Upgrade", "websocket"),
            ("X-Kept", "2"),
        ] {
            req.append_header(n, v).unwrap();
        }
        strip_hop_by_hop(req.fields_mut(), false);
        let names: Vec<&str> = req.header_fields().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["host", "x-kept"]);
    }

    #[test]
    fn websocket_handshake_keeps_upgrade() {
        let mut req = RequestHeader::build(Method::GET, "/", Version::HTTP_11).unwrap();
        req.append_header("Connection", "Upgrade").unwrap();
        req.append_header("Upgrade", "websocket").unwrap();
        strip_hop_by_hop(req.fields_mut(), true);
        assert_eq!(req.header_str("upgrade"), Some("websocket"));
        assert_eq!(req.header_str("connection"), Some("upgrade"));
    }

    #[test]
    fn retry_on_reused_connection_only_when_safe() {
        let e = || {
            Error::new(ErrorKind::ConnectionClosed, ErrorSource::Upstream)
                .with_retry(RetryType::ReusedOnly)
        };
        assert!(refine_retry(e(), &Method::GET, false).retryable(true));
        assert!(!refine_retry(e(), &Method::POST, false).retryable(true));
        assert!(refine_retry(e(), &Method::POST, true).retryable(true));
        assert!(!refine_retry(e(), &Method::GET, false).retryable(false));
    }
}
