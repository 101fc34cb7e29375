//! A route's cache policy as declared with `#[cache(...)]`: the generated proxy's
//! `request_cache_filter` calls [`apply`] for the matched route, which enables the
//! response cache (see [`crate::cache`](mod@crate::cache)) with the policy's limits, extra key parts and
//! bypass conditions.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::{Cache, CacheOverrides};
use crate::http::RequestHeader;
use crate::session::Session;

/// The cache size when a declaration has cached routes and the configuration says
/// nothing (`cache_size`).
pub const DEFAULT_CACHE_SIZE: u64 = 128 << 20;

/// A part of the request added to a route's cache key, or checked to bypass the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestPart {
    /// A request header.
    Header(&'static str),
    /// A cookie.
    Cookie(&'static str),
    /// A query parameter.
    Query(&'static str),
}

/// A declared cache policy.
#[derive(Debug, Clone, Copy)]
pub struct CachePolicy {
    /// Time to live when the origin says nothing (or as an override).
    pub ttl: Option<Duration>,
    /// Serve stale while revalidating, for this long past freshness.
    pub stale_while_revalidate: Option<Duration>,
    /// Serve stale on origin errors, for this long past freshness.
    pub stale_if_error: Option<Duration>,
    /// Request headers the response varies on.
    pub vary: &'static [&'static str],
    /// Extra parts of the cache key.
    pub key: &'static [RequestPart],
    /// Requests carrying any of these bypass the cache.
    pub bypass: &'static [RequestPart],
    /// Largest object stored, in bytes.
    pub max_size: Option<u64>,
    /// How long concurrent misses wait for the first one.
    pub lock_timeout: Option<Duration>,
}

impl RequestPart {
    /// This part's value in `req`, if present.
    pub fn value<'a>(&self, req: &'a RequestHeader) -> Option<&'a str> {
        match self {
            RequestPart::Header(name) => req.header_str(*name),
            RequestPart::Cookie(name) => super::upstreams::cookie(req, name),
            RequestPart::Query(name) => req
                .uri
                .query()?
                .split('&')
                .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                .find(|(n, _)| n == name)
                .map(|(_, v)| v),
        }
    }

    fn label(&self) -> (&'static str, &'static str) {
        match self {
            RequestPart::Header(n) => ("header", n),
            RequestPart::Cookie(n) => ("cookie", n),
            RequestPart::Query(n) => ("query", n),
        }
    }
}

/// Use `cache` for `session`'s request under `policy`: unless a bypass part is
/// present, enable it with the policy's limits and add the key parts.
pub fn apply(policy: &CachePolicy, cache: &Arc<Cache>, session: &mut Session) {
    let req = session.req_header();
    if policy.bypass.iter().any(|p| p.value(req).is_some()) {
        session.cache.bypass(cache);
        return;
    }
    let parts: Vec<String> = policy
        .key
        .iter()
        .map(|p| {
            let (kind, name) = p.label();
            // Absent and empty are different keys.
            match p.value(req) {
                Some(v) => format!("{kind}:{name}={v}"),
                None => format!("{kind}:{name}"),
            }
        })
        .collect();
    session.cache.enable(cache);
    session.cache.set_overrides(CacheOverrides {
        ttl: policy.ttl,
        force_ttl: false,
        stale_while_revalidate: policy.stale_while_revalidate,
        stale_if_error: policy.stale_if_error,
        max_size: policy.max_size,
        lock_timeout: policy.lock_timeout,
        vary: policy.vary,
    });
    for part in parts {
        session.cache.add_key_part(part);
    }
}
