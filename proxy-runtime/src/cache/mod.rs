//! The response cache's vocabulary: keys, metadata and the decisions cache phases make.
//!
//! These are the types that [`ProxyHttp`](crate::ProxyHttp)'s cache phases take and
//! return. The cache engine itself (storage, lock, revalidation) is built on them; until
//! a proxy enables it, no cache phase is called.

use std::time::{Duration, SystemTime};

use crate::http::{RequestHeader, ResponseHeader};

pub mod conditional;
pub mod control;
pub mod freshness;
pub mod key;
pub mod lock;
pub mod policy;
pub mod range;
pub mod state;
pub mod storage;

pub use state::{Cache, CacheOptions, CacheOverrides, CacheStatus, HttpCache};
pub use storage::{MemoryStorage, Storage};

/// Identifies one cached object: always scheme, authority, and path with query, plus
/// optional extra parts chosen by the user (a cache key without the authority lets one
/// site's responses answer another's requests).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]` as requested.
    pub authority: String,
    /// Path and query as requested.
    pub path_and_query: String,
    /// Extra parts (e.g. a tenant id, a device class).
    pub extra: Vec<String>,
}

impl CacheKey {
    /// The default key of a request: scheme + authority + path and query.
    pub fn default_for(req: &RequestHeader, tls: bool) -> Self {
        CacheKey {
            scheme: if tls { "https" } else { "http" }.to_string(),
            authority: req.authority().unwrap_or("").to_ascii_lowercase(),
            path_and_query: req.path_and_query().to_string(),
            extra: Vec::new(),
        }
    }

    /// Add a user-defined part to the key.
    pub fn with_extra(mut self, part: impl Into<String>) -> Self {
        self.extra.push(part.into());
        self
    }
}

/// What the cache knows about a stored response: its head and the times that decide
/// its freshness (RFC 9111 §4.2).
#[derive(Debug, Clone)]
pub struct CacheMeta {
    /// The stored response head (hop-by-hop fields removed).
    pub header: ResponseHeader,
    /// When the request that fetched it was sent.
    pub request_time: SystemTime,
    /// When the response (or the last revalidation) arrived.
    pub response_time: SystemTime,
    /// Its age on arrival (RFC 9111 §4.2.3 `corrected_initial_age`).
    pub initial_age: Duration,
    /// Freshness lifetime.
    pub fresh_for: Duration,
    /// May be served stale while it is revalidated, for this long past freshness.
    pub stale_while_revalidate: Duration,
    /// May be served stale when the origin fails, for this long past freshness.
    pub stale_if_error: Duration,
    /// Never served stale (`must-revalidate`, `proxy-revalidate`, `s-maxage`).
    pub must_revalidate: bool,
    /// Revalidated before every use (`no-cache`).
    pub no_cache: bool,
    /// The request headers it varies on (lower case, sorted).
    pub vary: Vec<http::HeaderName>,
}

impl CacheMeta {
    /// Its current age at `now`.
    pub fn age(&self, now: SystemTime) -> Duration {
        self.initial_age + now.duration_since(self.response_time).unwrap_or_default()
    }

    /// Whether it may be served without revalidation at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        !self.no_cache && self.age(now) < self.fresh_for
    }

    /// Whether it is stale at `now` but within its `stale-while-revalidate` window, so
    /// it may be served while a refresh runs (RFC 5861 §3; never without a window).
    pub fn serves_stale_while_revalidate(&self, now: SystemTime) -> bool {
        let age = self.age(now);
        !self.must_revalidate
            && !self.no_cache
            && !self.stale_while_revalidate.is_zero()
            && age >= self.fresh_for
            && age < self.fresh_for + self.stale_while_revalidate
    }

    /// Whether it may be served stale because the origin failed, at `now`.
    pub fn serves_stale_if_error(&self, now: SystemTime) -> bool {
        !self.must_revalidate && self.age(now) < self.fresh_for + self.stale_if_error
    }
}

/// Why a response is not cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoCacheReason {
    /// The origin said so (`no-store`, `private`, ...).
    OriginNotCache,
    /// The response is larger than the cache accepts.
    ResponseTooLarge,
    /// A phase decided not to cache.
    Custom(&'static str),
}

/// The decision of [`ProxyHttp::response_cache_filter`](crate::ProxyHttp::response_cache_filter).
#[derive(Debug, Clone)]
pub enum RespCacheable {
    /// Store with this metadata.
    Cacheable(Box<CacheMeta>),
    /// Do not store.
    Uncacheable(NoCacheReason),
}

/// The outcome of a purge request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurgeStatus {
    /// Something was removed.
    Purged,
    /// Nothing was stored under the key.
    NotFound,
    /// Purge failed.
    Error,
}

/// How a `Range` request is answered from a full response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeType {
    /// Not a range request (or ranges ignored): send the whole body.
    None,
    /// One byte range `[start, end)`.
    Single(std::ops::Range<u64>),
    /// Several ranges (`multipart/byteranges`).
    Multi(Vec<std::ops::Range<u64>>),
    /// No range can be satisfied: 416.
    Invalid,
}

/// Distinguishes variants of one URL (from `Vary` request headers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VarianceKey(pub u64);

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Version};

    #[test]
    fn default_key_includes_scheme_and_authority() {
        let mut req = RequestHeader::build(Method::GET, "/a?b=1", Version::HTTP_11).unwrap();
        req.insert_header("Host", "Example.COM:8080").unwrap();
        let key = CacheKey::default_for(&req, false);
        assert_eq!(key.scheme, "http");
        assert_eq!(key.authority, "example.com:8080");
        assert_eq!(key.path_and_query, "/a?b=1");
        let other = {
            let mut r = req.clone();
            r.insert_header("Host", "other.example").unwrap();
            CacheKey::default_for(&r, false)
        };
        assert_ne!(key, other);
    }
}
