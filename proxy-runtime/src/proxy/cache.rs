//! The response cache in the proxy loops: lookup after `request_filter`, serving hits
//! (conditional requests, ranges, HEAD), the lock that collapses concurrent misses,
//! storing responses as they stream to the client, revalidation, stale serving,
//! background refreshes (subrequests), PURGE and invalidation by unsafe methods.
//!
//! Every protocol loop goes through here: the request side from `run_phases`, the
//! response side from the shared relay helpers in `common.rs`.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{Method, header};

use super::HttpProxy;
use crate::cache::conditional::{
    names_other_representation, not_modified_head, prepare_upstream_request, refreshed_head,
};
use crate::cache::freshness::{
    Storable, request_allows_stale_or_fresh, request_cache_control, storable,
};
use crate::cache::key::{ObjectKey, PrimaryKey};
use crate::cache::lock::{Locked, WaitOutcome};
use crate::cache::range::{RangeRequest, range_head};
use crate::cache::state::ClientView;
use crate::cache::storage::{FillError, Hit};
use crate::cache::{CacheKey, CacheMeta, CacheStatus, PurgeStatus, RangeType, RespCacheable};
use crate::error::{Error, Result};
use crate::http::{RequestHeader, ResponseHeader};
use crate::proxy_trait::ProxyHttp;
use crate::session::Session;

/// What the request side decided.
enum Lookup {
    /// Answered from the cache.
    Served,
    /// Go to the origin.
    Fetch,
    /// Another request is fetching this URL: wait, then look again.
    Wait(crate::cache::lock::ReadLock),
}

/// How many times a request looks up again after waiting on the lock.
const MAX_LOCK_WAITS: usize = 2;

impl<P: ProxyHttp> HttpProxy<P> {
    /// The cache phases after `request_filter`: `Ok(true)` when the request was answered
    /// (a hit, a stale object, a purge).
    pub(super) async fn cache_request(
        self: &Arc<Self>,
        session: &mut Session,
        ctx: &mut P::CTX,
    ) -> Result<bool> {
        self.inner.request_cache_filter(session, ctx)?;
        let Some(cache) = session.cache.cache.clone() else {
            return Ok(false);
        };
        if session.cache.status == Some(CacheStatus::Bypass) {
            return Ok(false);
        }
        let mut key = self.inner.cache_key_callback(session, ctx)?;
        key.extra.extend(session.cache.key_parts.iter().cloned());
        let primary = PrimaryKey::of(&key);
        session.cache.key = Some(Box::new(key));
        session.cache.primary = Some(primary);
        if self.inner.is_purge(session, ctx) {
            self.cache_purge(session, ctx, primary).await?;
            return Ok(true);
        }
        let method = session.req_header().method.clone();
        if method != Method::GET && method != Method::HEAD {
            // Unsafe methods invalidate the URL once they succeed (RFC 9111 §4.4).
            session.cache.invalidate = !method.is_safe();
            session.cache.status = Some(CacheStatus::Bypass);
            return Ok(false);
        }
        if session.cache.refresh {
            return Ok(false); // a background refresh always fetches
        }
        session.cache.no_store = request_cache_control(session.req_header()).no_store;
        for _ in 0..=MAX_LOCK_WAITS {
            match self.cache_lookup(session, ctx, primary).await? {
                Lookup::Served => return Ok(true),
                Lookup::Fetch => return Ok(false),
                Lookup::Wait(lock) => {
                    let timeout = session
                        .cache
                        .overrides()
                        .lock_timeout
                        .unwrap_or(cache.options.lock_timeout);
                    if lock.wait(timeout).await == WaitOutcome::TimedOut {
                        tracing::info!(
                            key = ?session.cache.key,
                            "cache lock timed out: fetching without it"
                        );
                        return Ok(false);
                    }
                }
            }
        }
        Ok(false)
    }

    /// One lookup: serve what is usable, or decide to fetch (taking the lock) or wait.
    async fn cache_lookup(
        self: &Arc<Self>,
        session: &mut Session,
        ctx: &mut P::CTX,
        primary: PrimaryKey,
    ) -> Result<Lookup> {
        let Some(cache) = session.cache.cache.clone() else {
            return Ok(Lookup::Fetch);
        };
        let req_cc = request_cache_control(session.req_header());
        let found = cache.storage.vary_of(primary).and_then(|vary| {
            let probe = vary_probe(&vary);
            let variance = self
                .inner
                .cache_vary_filter(&probe, ctx, session.req_header())
                .map_or(0, |v| v.0);
            let key = ObjectKey { primary, variance };
            cache.storage.lookup(key).map(|hit| (key, hit))
        });
        let Some((key, hit)) = found else {
            self.inner.cache_miss(session, ctx);
            session.cache.status = Some(CacheStatus::Miss);
            if req_cc.only_if_cached {
                // The client wants a stored answer or none (RFC 9111 §5.2.1.7).
                session.respond_error(504).await?;
                return Ok(Lookup::Served);
            }
            return Ok(match cache.lock.lock(primary) {
                Locked::Writer(w) => {
                    session.cache.write_lock = Some(Box::new(w));
                    Lookup::Fetch
                }
                Locked::Reader(r) => Lookup::Wait(r),
            });
        };
        let now = SystemTime::now();
        let forced_expired = self.inner.cache_hit_filter(session, &hit.meta, ctx).await?;
        let age = hit.meta.age(now);
        let stale = age >= hit.meta.fresh_for;
        // What the request accepts (its `max-age`, `min-fresh`, `max-stale`), unless the
        // response must be validated on every use, or stale (`must-revalidate`).
        let usable = !forced_expired
            && !hit.meta.no_cache
            && (!stale || !hit.meta.must_revalidate)
            && request_allows_stale_or_fresh(&req_cc, age, hit.meta.fresh_for);
        if usable {
            let status = if stale {
                CacheStatus::Stale
            } else {
                CacheStatus::Hit
            };
            self.serve_from_cache(session, ctx, &hit, status).await?;
            return Ok(Lookup::Served);
        }
        // Stale (or the client wants it validated): revalidate, maybe serving it
        // stale meanwhile.
        session.cache.stale = Some(Box::new((key, hit.clone())));
        // Not when the client asked for a fresher answer than this one.
        let swr = !forced_expired
            && !req_cc.no_cache
            && req_cc.max_age.is_none()
            && req_cc.min_fresh.is_none()
            && hit.meta.serves_stale_while_revalidate(now)
            && self.inner.should_serve_stale(session, ctx, None);
        if swr {
            if let Locked::Writer(w) = cache.lock.lock(primary) {
                self.spawn_refresh(session, w);
            }
            self.serve_from_cache(session, ctx, &hit, CacheStatus::Stale)
                .await?;
            return Ok(Lookup::Served);
        }
        if req_cc.only_if_cached {
            session.cache.status = Some(CacheStatus::Expired);
            session.respond_error(504).await?;
            return Ok(Lookup::Served);
        }
        session.cache.status = Some(CacheStatus::Expired);
        session.cache.revalidate = true;
        Ok(match cache.lock.lock(primary) {
            Locked::Writer(w) => {
                session.cache.write_lock = Some(Box::new(w));
                Lookup::Fetch
            }
            Locked::Reader(r) => Lookup::Wait(r),
        })
    }

    /// Revalidate `session`'s stale object in the background: a subrequest through the
    /// same phases, holding the URL's lock, whose response only feeds the cache.
    fn spawn_refresh(self: &Arc<Self>, session: &Session, lock: crate::cache::lock::WriteLock) {
        let mut req = session.req_header().clone();
        req.remove_header(header::CONTENT_LENGTH);
        req.remove_header(header::TRANSFER_ENCODING);
        let mut sub = Session::new_subrequest(req, Vec::new(), 0, session.client_addr().cloned());
        // The same key as the stale object's: the scheme is part of it.
        sub.set_downstream_tls(session.is_downstream_tls());
        sub.cache.cache = session.cache.cache.clone();
        sub.cache.overrides = session.cache.overrides.clone();
        sub.cache.stale = session.cache.stale.clone();
        sub.cache.revalidate = true;
        sub.cache.refresh = true;
        sub.cache.write_lock = Some(Box::new(lock));
        let this = self.clone();
        tokio::spawn(async move {
            // Failures are answered (to nobody) and logged like any request's.
            this.handle_request(sub).await;
        });
    }

    /// Answer from a stored object: conditional requests (`304`), HEAD, ranges.
    async fn serve_from_cache(
        &self,
        session: &mut Session,
        ctx: &mut P::CTX,
        hit: &Hit,
        status: CacheStatus,
    ) -> Result<()> {
        session.cache.status = Some(status);
        if let Some(cache) = &session.cache.cache {
            cache.count(status);
        }
        session.cache.client = ClientView::Nothing;
        let now = SystemTime::now();
        let len = hit.body_len();
        let mut resp = hit.meta.header.clone();
        resp.insert_header(header::AGE, hit.meta.age(now).as_secs().to_string())?;
        resp.remove_header(header::TRANSFER_ENCODING);
        resp.insert_header(header::CONTENT_LENGTH, len.to_string())?;
        set_status_header(session, &mut resp, status)?;
        if crate::cache::conditional::precondition_failed(session.req_header(), &resp) {
            // If-Match / If-Unmodified-Since fail against the stored response.
            let mut head = ResponseHeader::build(412, Some(1))?;
            head.insert_header(header::CONTENT_LENGTH, "0")?;
            set_status_header(session, &mut head, status)?;
            self.inner.response_filter(session, &mut head, ctx).await?;
            return session.write_response_header(head, true).await;
        }
        if self.inner.cache_not_modified_filter(session, &resp, ctx)? {
            let mut head = not_modified_head(&resp);
            set_status_header(session, &mut head, status)?;
            self.inner.response_filter(session, &mut head, ctx).await?;
            return session.write_response_header(head, true).await;
        }
        let head_only = session.req_header().method == Method::HEAD;
        let ranges = range_decision(self.inner.range_header_filter(session, &mut resp, ctx));
        let (mut head, mut range_body) = match ranges {
            RangeRequest::Whole => (resp, None),
            r => {
                let (h, b) = range_head(&resp, len, &r);
                (h, Some(b))
            }
        };
        self.inner.response_filter(session, &mut head, ctx).await?;
        let empty = head_only || head.status == 416 || len == 0;
        session.write_response_header(head, empty).await?;
        if empty {
            return Ok(());
        }
        let mut out = Vec::new();
        for piece in hit.body.iter() {
            match &mut range_body {
                None => out.push(piece.clone()),
                Some(rb) => rb.push(piece.clone(), &mut out),
            }
            for b in out.drain(..) {
                self.write_body_piece(session, ctx, b).await?;
            }
            if range_body.as_ref().is_some_and(|rb| rb.is_done()) {
                break;
            }
        }
        if let Some(rb) = &mut range_body {
            // The stored body is complete, so every range is too.
            let _ = rb.finish(&mut out);
            for b in out.drain(..) {
                self.write_body_piece(session, ctx, b).await?;
            }
        }
        self.end_body(session, ctx).await
    }

    async fn write_body_piece(
        &self,
        session: &mut Session,
        ctx: &mut P::CTX,
        piece: Bytes,
    ) -> Result<()> {
        let mut body = Some(piece);
        let delay = self
            .inner
            .response_body_filter(session, &mut body, false, ctx)?;
        if body.is_some() {
            session.write_response_body(body, false).await?;
        }
        self.pace(session, delay).await?;
        Ok(())
    }

    async fn end_body(&self, session: &mut Session, ctx: &mut P::CTX) -> Result<()> {
        let mut body = None;
        let delay = self
            .inner
            .response_body_filter(session, &mut body, true, ctx)?;
        session.write_response_body(body, true).await?;
        self.pace(session, delay).await?;
        Ok(())
    }

    /// `PURGE`: remove every variant of the URL; `200` if something was removed, else
    /// `404`.
    async fn cache_purge(
        &self,
        session: &mut Session,
        ctx: &mut P::CTX,
        primary: PrimaryKey,
    ) -> Result<()> {
        let purged = session
            .cache
            .cache
            .as_ref()
            .is_some_and(|c| c.storage.purge(primary));
        let status = if purged {
            if let Some(c) = &session.cache.cache {
                c.stats
                    .purged
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            PurgeStatus::Purged
        } else {
            PurgeStatus::NotFound
        };
        let code = if purged { 200 } else { 404 };
        let mut resp = ResponseHeader::build(code, Some(3))?;
        resp.insert_header(header::CONTENT_LENGTH, "0")?;
        resp.insert_header(header::CACHE_CONTROL, "no-store")?;
        self.inner
            .purge_response_filter(session, ctx, status, &mut resp)?;
        session.write_response_header(resp, true).await
    }

    /// The request about to go upstream: when its response may be stored, the
    /// client's own validators and ranges come off (the cache answers them) and a
    /// stale object's validators go on.
    pub(super) fn cache_upstream_request(&self, session: &mut Session, req: &mut RequestHeader) {
        if !session.cache.fetching() || session.cache.status == Some(CacheStatus::Bypass) {
            return;
        }
        session.cache.request_time = Some(SystemTime::now());
        let stale = session
            .cache
            .stale
            .as_ref()
            .filter(|_| session.cache.revalidate)
            .map(|b| &b.1.meta.header);
        prepare_upstream_request(req, stale);
    }

    /// The origin's final response head, after `upstream_response_filter`: refresh a
    /// stale object on `304`, serve stale on `5xx` when allowed, invalidate after an
    /// unsafe method, decide whether to store, and prepare what the client gets.
    /// `Ok(true)`: the client was answered from the cache; the origin's response is
    /// only drained.
    pub(super) async fn cache_response_head(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut P::CTX,
    ) -> Result<bool> {
        let Some(cache) = session.cache.cache.clone() else {
            return Ok(false);
        };
        let status = resp.status.as_u16();
        if session.cache.invalidate {
            if (200..400).contains(&status) {
                self.invalidate(session, resp);
            }
            return Ok(false);
        }
        if session.cache.primary.is_none() || session.cache.status == Some(CacheStatus::Bypass) {
            return Ok(false);
        }
        if status == 304
            && session.cache.revalidate
            && !session.cache.refetched
            && session
                .cache
                .stale
                .as_ref()
                .is_some_and(|s| names_other_representation(&s.1.meta.header, resp))
        {
            // RFC 9111 §4.3.4: this 304 is about a representation the cache does not
            // hold, so it updates nothing and the client has no body to get. Ask again
            // without validators; the retry loop allows this one extra try.
            tracing::info!(
                "the origin's 304 names an entity-tag the cache does not hold; fetching the response in full"
            );
            session.cache.revalidate = false;
            session.cache.refetched = true;
            return Err(Error::explain(
                crate::ErrorKind::NotModifiedElsewhere,
                crate::ErrorSource::Upstream,
                "304 for a representation the cache does not hold",
            )
            .with_retry(crate::error::RetryType::Decided(true)));
        }
        if status == 304
            && session.cache.revalidate
            && let Some((key, hit)) = session.cache.stale.clone().map(|b| *b)
        {
            let mut meta = (*hit.meta).clone();
            let now = SystemTime::now();
            meta.header = refreshed_head(&hit.meta.header, resp);
            let request_time = session.cache.request_time.unwrap_or(now);
            meta = refreshed_meta(meta, resp, request_time, now);
            if matches!(storable(session.req_header(), &meta.header), Storable::Yes) {
                cache.storage.update_meta(key, meta.clone());
            } else {
                // The 304 made it a response a shared cache may not keep (`no-store`,
                // `private`, ...): this client gets it, nobody after.
                cache.storage.purge(key.primary);
            }
            session.cache.write_lock = None;
            let refreshed = Hit {
                meta: Arc::new(meta),
                body: hit.body.clone(),
            };
            self.serve_from_cache(session, ctx, &refreshed, CacheStatus::Revalidated)
                .await?;
            return Ok(true);
        }
        if status >= 500
            && let Some((_, hit)) = session.cache.stale.clone().map(|b| *b)
            && hit.meta.serves_stale_if_error(SystemTime::now())
            && self.inner.should_serve_stale(
                session,
                ctx,
                Some(&Error::explain(
                    crate::ErrorKind::HttpStatus(status),
                    crate::ErrorSource::Upstream,
                    format!("origin answered {status}"),
                )),
            )
        {
            tracing::warn!(status, "origin error: serving the stale cached response");
            session.cache.write_lock = None;
            self.serve_from_cache(session, ctx, &hit, CacheStatus::StaleIfError)
                .await?;
            return Ok(true);
        }
        if session.cache.no_store || session.req_header().method != Method::GET {
            session.cache.write_lock = None;
            return Ok(false);
        }
        match self.inner.response_cache_filter(session, resp, ctx)? {
            RespCacheable::Cacheable(meta) => {
                let variance = self
                    .inner
                    .cache_vary_filter(&meta, ctx, session.req_header())
                    .map_or(0, |v| v.0);
                let key = ObjectKey {
                    primary: session.cache.primary.unwrap_or(PrimaryKey(0)),
                    variance,
                };
                let max = session
                    .cache
                    .overrides()
                    .max_size
                    .unwrap_or(cache.options.max_object)
                    .min(cache.options.max_object);
                let declared = resp
                    .header_str(header::CONTENT_LENGTH)
                    .and_then(|v| v.parse::<u64>().ok());
                if declared.is_some_and(|l| l > max) {
                    tracing::debug!("response too large for the cache");
                    session.cache.write_lock = None;
                } else {
                    session.cache.fill = Some(cache.storage.begin_fill(key, *meta, max));
                }
            }
            RespCacheable::Uncacheable(reason) => {
                tracing::debug!(?reason, "response not cached");
                // Nothing will be stored: waiters go to the origin themselves.
                session.cache.write_lock = None;
            }
        }
        if let Some(c) = &session.cache.cache {
            c.count(session.cache.status.unwrap_or(CacheStatus::Miss));
        }
        Ok(false)
    }

    /// What the client gets of the origin's response (after `response_filter`): the
    /// cache answers a client's conditional request or range itself. Returns the head
    /// to send and whether it ends the response.
    pub(super) fn cache_client_head(
        &self,
        session: &mut Session,
        mut resp: ResponseHeader,
    ) -> Result<(ResponseHeader, bool)> {
        let Some(cache) = &session.cache.cache else {
            return Ok((resp, false));
        };
        if let (Some(name), Some(status)) =
            (cache.options.status_header.clone(), session.cache.status)
        {
            resp.insert_header(name, status.as_str())?;
        }
        if session.cache.primary.is_none()
            || session.cache.status == Some(CacheStatus::Bypass)
            || resp.status != 200
        {
            return Ok((resp, false));
        }
        // The client's validators and ranges were not sent upstream: answer them here.
        let req = session.req_header();
        if crate::cache::conditional::not_modified(req, &resp) {
            session.cache.client = ClientView::Nothing;
            let mut head = not_modified_head(&resp);
            if let Some(status) = session.cache.status {
                set_status_header(session, &mut head, status)?;
            }
            return Ok((head, true));
        }
        let len = resp
            .header_str(header::CONTENT_LENGTH)
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = len
            && req.has_header(header::RANGE)
        {
            match crate::cache::range::select_ranges(req, &resp, len) {
                RangeRequest::Whole => {}
                r => {
                    let (head, body) = range_head(&resp, len, &r);
                    let done = head.status == 416;
                    session.cache.client = if done {
                        ClientView::Nothing
                    } else {
                        ClientView::Ranges(Box::new(body))
                    };
                    return Ok((head, done));
                }
            }
        }
        Ok((resp, false))
    }

    /// A piece of the origin's body: into the fill, and what of it the client gets.
    pub(super) fn cache_body_piece(
        &self,
        session: &mut Session,
        data: &Bytes,
    ) -> Result<Vec<Bytes>> {
        if let Some(fill) = &mut session.cache.fill
            && fill.write(data.clone()) == Err(FillError::TooLarge)
        {
            tracing::debug!("response grew too large for the cache: not stored");
            session.cache.abandon_fill();
        }
        if session.cache.client_gone && session.cache.fill.is_none() {
            // Nobody reads the response and it is no longer being stored: stop reading
            // the origin (an endless body would otherwise be drained to its end).
            return Err(Error::explain(
                crate::ErrorKind::ConnectionClosed,
                crate::ErrorSource::Downstream,
                "the client left and the response is no longer being stored",
            ));
        }
        Ok(match &mut session.cache.client {
            ClientView::Whole => vec![data.clone()],
            ClientView::Nothing => Vec::new(),
            ClientView::Ranges(rb) => {
                let mut out = Vec::new();
                rb.push(data.clone(), &mut out);
                out
            }
        })
    }

    /// The origin's response is complete: store it. Returns the last pieces for the
    /// client (a multipart closing delimiter).
    pub(super) fn cache_response_end(&self, session: &mut Session) -> Result<Vec<Bytes>> {
        if let Some(fill) = session.cache.fill.take() {
            fill.finish();
            if let Some(c) = &session.cache.cache {
                c.stats
                    .stored
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        session.cache.write_lock = None;
        let mut out = Vec::new();
        if let ClientView::Ranges(rb) = &mut session.cache.client
            && !rb.finish(&mut out)
        {
            return Err(Error::explain(
                crate::ErrorKind::InvalidUpstreamResponse,
                crate::ErrorSource::Upstream,
                "the response body ended before the requested ranges",
            ));
        }
        Ok(out)
    }

    /// Whether a write error to the client can be ignored: a fill is going on, so the
    /// response keeps being read for the cache (and the client gets nothing more).
    pub(super) fn cache_client_gone(&self, session: &mut Session, e: &Error) -> bool {
        if session.cache.fill.is_none() {
            return false;
        }
        if !session.cache.client_gone {
            tracing::debug!("client left during a cache fill: finishing the fill ({e})");
        }
        session.cache.client_gone = true;
        session.cache.client = ClientView::Nothing;
        session.set_keepalive_off();
        true
    }

    /// The origin failed: serve the stale object if its `stale-if-error` allows.
    pub(super) async fn serve_stale_on_error(
        &self,
        session: &mut Session,
        ctx: &mut P::CTX,
        e: &Error,
    ) -> Result<bool> {
        let Some((_, hit)) = session.cache.stale.clone().map(|b| *b) else {
            return Ok(false);
        };
        if session.response_written().is_some()
            || !hit.meta.serves_stale_if_error(SystemTime::now())
            || !self.inner.should_serve_stale(session, ctx, Some(e))
        {
            return Ok(false);
        }
        tracing::warn!("origin failed ({e}): serving the stale cached response");
        session.cache.write_lock = None;
        self.serve_from_cache(session, ctx, &hit, CacheStatus::StaleIfError)
            .await?;
        Ok(true)
    }

    /// After an unsafe method succeeded: the URL and the `Location` /
    /// `Content-Location` URLs on the same host are invalidated (RFC 9111 §4.4).
    fn invalidate(&self, session: &Session, resp: &ResponseHeader) {
        let (Some(cache), Some(key)) = (&session.cache.cache, &session.cache.key) else {
            return;
        };
        let mut purged = cache.storage.purge(PrimaryKey::of(key));
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let Some(target) = resp.header_str(name) else {
                continue;
            };
            let path = match target.parse::<http::Uri>() {
                Ok(u) if u.authority().is_none() && target.starts_with('/') => target.to_string(),
                Ok(u)
                    if u.authority()
                        .is_some_and(|a| a.as_str().eq_ignore_ascii_case(&key.authority)) =>
                {
                    u.path_and_query().map_or("/", |p| p.as_str()).to_string()
                }
                _ => continue,
            };
            let other = CacheKey {
                path_and_query: path,
                ..(**key).clone()
            };
            purged |= cache.storage.purge(PrimaryKey::of(&other));
        }
        if purged {
            cache
                .stats
                .purged
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The cache status header, if the cache sends one.
fn set_status_header(
    session: &Session,
    resp: &mut ResponseHeader,
    status: CacheStatus,
) -> Result<()> {
    if let Some(name) = session
        .cache
        .cache
        .as_ref()
        .and_then(|c| c.options.status_header.clone())
    {
        resp.insert_header(name, status.as_str())?;
    }
    Ok(())
}

/// A stand-in meta carrying only the `Vary` names, for `cache_vary_filter` at lookup
/// time (before the object itself is found).
fn vary_probe(vary: &[http::HeaderName]) -> CacheMeta {
    let now = SystemTime::now();
    CacheMeta {
        header: ResponseHeader::build(200, Some(0)).unwrap_or_else(|_| unreachable_head()),
        request_time: now,
        response_time: now,
        initial_age: std::time::Duration::ZERO,
        fresh_for: std::time::Duration::ZERO,
        stale_while_revalidate: std::time::Duration::ZERO,
        stale_if_error: std::time::Duration::ZERO,
        must_revalidate: false,
        no_cache: false,
        vary: vary.to_vec(),
    }
}

fn unreachable_head() -> ResponseHeader {
    ResponseHeader::new(http::StatusCode::OK, 0)
}

/// After a `304`: the object is as old as the new response says, and fresh for what
/// its (updated) head says.
fn refreshed_meta(
    mut meta: CacheMeta,
    not_modified: &ResponseHeader,
    request_time: SystemTime,
    now: SystemTime,
) -> CacheMeta {
    use crate::cache::control::CacheControl;
    use crate::cache::freshness::{corrected_initial_age, freshness_lifetime};
    let cc = CacheControl::from_lines(meta.header.header_values(header::CACHE_CONTROL));
    // The origin's explicit lifetime, if it gives one; else the one used so far (a
    // heuristic or a policy's TTL).
    let explicit =
        cc.max_age.is_some() || cc.s_maxage.is_some() || meta.header.has_header(header::EXPIRES);
    if explicit {
        meta.fresh_for = freshness_lifetime(&meta.header, now).lifetime;
    }
    meta.request_time = request_time;
    meta.response_time = now;
    // The age is the 304 exchange's (its `Age` and `Date`), not the stored one's.
    meta.initial_age = corrected_initial_age(not_modified, request_time, now);
    meta.no_cache = cc.no_cache;
    meta.must_revalidate = crate::cache::freshness::response_forbids_stale(&cc);
    meta
}

/// The trait's range answer in the range module's terms.
fn range_decision(r: RangeType) -> RangeRequest {
    match r {
        RangeType::None => RangeRequest::Whole,
        RangeType::Single(r) => RangeRequest::Ranges(vec![r]),
        RangeType::Multi(list) => RangeRequest::Ranges(list),
        RangeType::Invalid => RangeRequest::Unsatisfiable,
    }
}
