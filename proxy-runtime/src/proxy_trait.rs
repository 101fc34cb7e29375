//! [`ProxyHttp`]: the phases of a proxied request, as one trait.
//!
//! A proxy is a type implementing this trait. Only [`ProxyHttp::new_ctx`] and
//! [`ProxyHttp::upstream_peer`] are required; every other phase has a default that does
//! what a plain reverse proxy should. The phases are called in one order for every
//! protocol (see `docs/src/phases.md` for the diagram):
//!
//! ```text
//! early_request_filter → request_filter → [cache phases] → proxy_upstream_filter
//!   → upstream_peer → connected_to_upstream | fail_to_connect (→ retry)
//!   → upstream_request_filter → request_body_filter (per body piece)
//!   → upstream_response_filter → response_filter
//!   → upstream_response_body_filter → response_body_filter (per body piece)
//!   → upstream_response_trailer_filter → response_trailer_filter
//!   → [error_while_proxy (→ retry)] → [fail_to_proxy] → logging
//! ```
//!
//! The asynchronous phases return `impl Future + Send` — written as plain `async fn` in
//! an `impl` — so calling a phase costs no heap allocation.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

use crate::cache::{CacheKey, CacheMeta, PurgeStatus, RangeType, RespCacheable, VarianceKey};
use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::http::{RequestHeader, ResponseHeader};
use crate::modules::HttpModules;
use crate::session::Session;
use crate::upstream::HttpPeer;

/// What [`ProxyHttp::fail_to_proxy`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailToProxy {
    /// The status sent to the client (0: nothing was sent, e.g. the client is gone).
    pub error_code: u16,
    /// Whether the client connection may serve another request.
    pub can_reuse_downstream: bool,
}

/// The status a client should see for `e` when nothing else decided.
pub fn error_status(e: &Error) -> u16 {
    match e.kind {
        ErrorKind::HttpStatus(code) | ErrorKind::InvalidHttp(code) => code,
        _ => match e.source {
            ErrorSource::Upstream => {
                if e.kind.is_timeout() {
                    504
                } else {
                    502
                }
            }
            ErrorSource::Downstream => match e.kind {
                // The client is gone or stuck writing: nobody to answer.
                ErrorKind::WriteError
                | ErrorKind::ReadError
                | ErrorKind::ConnectionClosed
                | ErrorKind::WriteTimedout => 0,
                ErrorKind::ReadTimedout => 408,
                ErrorKind::BodyTooLarge => 413,
                _ => 400,
            },
            ErrorSource::Internal => match e.kind {
                ErrorKind::NoUpstream | ErrorKind::ConnectRefused | ErrorKind::ConnectError => 502,
                ErrorKind::ConnectTimedout => 504,
                _ => 500,
            },
        },
    }
}

/// The phases of an HTTP proxy. See the [module docs](self) for the order.
///
/// ```
/// use proxy_runtime::prelude::*;
///
/// struct Plain;
///
/// impl ProxyHttp for Plain {
///     type CTX = ();
///     fn new_ctx(&self) {}
///
///     async fn upstream_peer(&self, _s: &mut Session, _ctx: &mut ()) -> Result<HttpPeer> {
///         HttpPeer::new("127.0.0.1:8000", false, "")
///     }
///
///     async fn request_filter(&self, s: &mut Session, _ctx: &mut ()) -> Result<bool> {
///         if s.req_header().path().starts_with("/private") {
///             s.respond_error(403).await?;
///             return Ok(true); // answered: do not proxy
///         }
///         Ok(false)
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a proxy: it does not implement `ProxyHttp`",
    note = "implement `ProxyHttp` by hand, or declare the proxy with `#[proxy]`"
)]
pub trait ProxyHttp: Send + Sync + 'static {
    /// Per-request state shared by all phases of one request.
    type CTX: Send + 'static;

    /// A fresh context for a new request.
    fn new_ctx(&self) -> Self::CTX;

    /// Where to send this request. Called again for every retry.
    fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<HttpPeer>> + Send;

    /// Register downstream modules (once, when the service is built).
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    /// First phase after the request head is read, before downstream modules run.
    fn early_request_filter(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Inspect or change the request, or answer it. `Ok(true)` means a response was
    /// sent and the request is done; `Ok(false)` continues to the upstream.
    fn request_filter(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<bool>> + Send {
        async { Ok(false) }
    }

    /// Each piece of the request body on its way upstream (`None` with
    /// `end_of_stream` at the end). Runs again on replays after a retry.
    fn request_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Last chance to decide not to proxy: `Ok(false)` stops, answering 502 unless a
    /// response was already written.
    fn proxy_upstream_filter(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<bool>> + Send {
        async { Ok(true) }
    }

    /// Decide whether this request uses the cache (cache phase): enable it with
    /// `session.cache.enable(&cache)` (and optionally `set_overrides`). Without that,
    /// no other cache phase runs.
    fn request_cache_filter(&self, _session: &mut Session, _ctx: &mut Self::CTX) -> Result<()> {
        Ok(())
    }

    /// The cache key of this request (cache phase). The default is scheme + authority +
    /// path and query.
    fn cache_key_callback(&self, session: &Session, _ctx: &mut Self::CTX) -> Result<CacheKey> {
        Ok(CacheKey::default_for(
            session.req_header(),
            session.is_downstream_tls(),
        ))
    }

    /// Called on a cache miss (cache phase).
    fn cache_miss(&self, _session: &mut Session, _ctx: &mut Self::CTX) {}

    /// Called on a cache hit; `Ok(true)` treats the hit as expired (cache phase).
    fn cache_hit_filter(
        &self,
        _session: &Session,
        _meta: &CacheMeta,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<bool>> + Send {
        async { Ok(false) }
    }

    /// Whether and how to store this upstream response (cache phase). The default
    /// follows RFC 9111 for a shared cache within the request's
    /// [`CacheOverrides`](crate::cache::CacheOverrides) (see [`crate::cache::policy`]).
    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<RespCacheable> {
        let request_time = session
            .cache
            .request_time
            .unwrap_or_else(std::time::SystemTime::now);
        Ok(crate::cache::policy::decide(
            session.req_header(),
            resp,
            request_time,
            session.cache.overrides(),
        ))
    }

    /// The variance of a request against a stored response's `Vary` names, to keep
    /// variants apart (cache phase). The default hashes the request's values of those
    /// headers; `None` means "does not vary".
    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Self::CTX,
        req: &RequestHeader,
    ) -> Option<VarianceKey> {
        if meta.vary.is_empty() {
            return None;
        }
        Some(VarianceKey(crate::cache::key::variance(&meta.vary, req)))
    }

    /// Whether a cached response satisfies the client's conditional request, so the
    /// answer is `304` (cache phase). The default evaluates `If-None-Match` and
    /// `If-Modified-Since` (RFC 9110 §13).
    fn cache_not_modified_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<bool> {
        Ok(crate::cache::conditional::not_modified(
            session.req_header(),
            resp,
        ))
    }

    /// How to answer a `Range` request from a full cached response (cache phase). The
    /// default follows RFC 9110 §14 (`Range`, `If-Range`).
    fn range_header_filter(
        &self,
        session: &Session,
        resp: &mut ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> RangeType {
        let len = resp
            .header_str(http::header::CONTENT_LENGTH)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        match crate::cache::range::select_ranges(session.req_header(), resp, len) {
            crate::cache::range::RangeRequest::Whole => RangeType::None,
            crate::cache::range::RangeRequest::Unsatisfiable => RangeType::Invalid,
            crate::cache::range::RangeRequest::Ranges(mut list) if list.len() == 1 => {
                RangeType::Single(list.remove(0))
            }
            crate::cache::range::RangeRequest::Ranges(list) => RangeType::Multi(list),
        }
    }

    /// Change the request just before it is sent upstream (after hop-by-hop headers were
    /// removed). Called for every attempt.
    fn upstream_request_filter(
        &self,
        _session: &mut Session,
        _upstream_request: &mut RequestHeader,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// The upstream response head as received (hop-by-hop headers removed), before it
    /// would be cached.
    fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Each upstream response body piece as received, before it would be cached.
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        Ok(())
    }

    /// Upstream response trailers as received.
    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        _trailers: &mut HeaderMap,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        Ok(())
    }

    /// The response head on its way to the client.
    fn response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Each response body piece on its way to the client. A returned duration delays
    /// the next piece (rate limiting).
    fn response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        Ok(None)
    }

    /// Whether this response's body may go from the origin's socket to the client's
    /// inside the kernel (`splice(2)`), without passing through
    /// [`ProxyHttp::upstream_response_body_filter`] and [`ProxyHttp::response_body_filter`].
    ///
    /// Asked once per response, after [`ProxyHttp::response_filter`]. The engine splices
    /// only where nothing else needs the bytes either: Linux, HTTP/1.x over plain sockets
    /// (TCP or Unix domain, no TLS) on both sides, a `Content-Length` body the client is told unchanged, no cache on the
    /// request, no [`HttpModules`] and [`ProxyOptions::splice`](crate::proxy::ProxyOptions::splice)
    /// on. It pays on large bodies: they are never copied into user space and back.
    ///
    /// The default is `false`, the safe answer for a proxy whose body filters do
    /// something. A proxy declared with the DSL answers `true` when it declares no body
    /// filter phase.
    fn response_body_passthrough(&self, _session: &Session, _ctx: &Self::CTX) -> bool {
        false
    }

    /// Response trailers on their way to the client.
    fn response_trailer_filter(
        &self,
        _session: &mut Session,
        _trailers: &mut HeaderMap,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// A connection to the upstream is ready (`reused`: it came from the pool).
    fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Connecting failed. Return the error, possibly with a changed retry decision
    /// (`e.retry`); a retryable error leads to another `upstream_peer` call.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut Self::CTX,
        e: Box<Error>,
    ) -> Box<Error> {
        e
    }

    /// Proxying failed after connecting. Return the error, possibly with a changed
    /// retry decision. `client_reused`: the upstream connection came from the pool.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        _session: &mut Session,
        e: Box<Error>,
        _ctx: &mut Self::CTX,
        _client_reused: bool,
    ) -> Box<Error> {
        e.more_context(format_args!("peer: {peer}"))
    }

    /// The request failed: answer the client (if it can still be answered) and say
    /// whether its connection may be reused. Default: 502 for upstream errors, 504 for
    /// upstream timeouts, 400 for bad requests, 500 for internal errors. The client's
    /// connection carries its next request, as with nginx, when the error page went out
    /// whole, the request was read to its end and the client did nothing wrong;
    /// otherwise the error page says `Connection: close`.
    fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = FailToProxy> + Send {
        async move {
            let code = if session.response_written().is_some() {
                0 // too late for an error page; the connection is closed instead
            } else {
                error_status(e)
            };
            let mut reusable =
                code > 0 && e.source != ErrorSource::Downstream && session.is_body_done();
            if code > 0 {
                if !reusable {
                    // Said on the error page, so the client does not send another
                    // request into a connection about to close.
                    session.set_keepalive_off();
                }
                reusable &= session.respond_error(code).await.is_ok();
            }
            FailToProxy {
                error_code: code,
                can_reuse_downstream: reusable,
            }
        }
    }

    /// Whether to serve a stale cached response on this error (cache phase).
    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
        error: Option<&Error>,
    ) -> bool {
        // Stale-while-revalidate (no error) is always fine; on errors, only upstream ones.
        error.is_none_or(|e| e.source == ErrorSource::Upstream)
    }

    /// Whether this request is a cache purge (cache phase).
    fn is_purge(&self, _session: &Session, _ctx: &Self::CTX) -> bool {
        false
    }

    /// Change the response to a purge request (cache phase).
    fn purge_response_filter(
        &self,
        _session: &Session,
        _ctx: &mut Self::CTX,
        _purge_status: PurgeStatus,
        _purge_response: &mut ResponseHeader,
    ) -> Result<()> {
        Ok(())
    }

    /// Whether to skip the error log line for this failure.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, _error: &Error) -> bool {
        false
    }

    /// A one-line description of the request for error logs.
    fn request_summary(&self, session: &Session, _ctx: &Self::CTX) -> String {
        let req = session.req_header();
        format!(
            "{} {}, Host: {}",
            req.method,
            req.path_and_query(),
            req.authority().unwrap_or("-")
        )
    }

    /// The last phase, called exactly once per request, with the error if it failed.
    fn logging(
        &self,
        _session: &mut Session,
        _e: Option<&Error>,
        _ctx: &mut Self::CTX,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}
