//! The response cache's vocabulary: keys, metadata and the decisions cache phases make.
//!
//! These are the types that [`ProxyHttp`](crate::ProxyHttp)'s cache phases take and
//! return. The cache engine itself (storage, lock, revalidation) is built on them; until
//! a proxy enables it, no cache phase is called.

use std::time::SystemTime;

use crate::http::{RequestHeader, ResponseHeader};

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

/// What the cache knows about a stored response.
#[derive(Debug, Clone)]
pub struct CacheMeta {
    /// The stored response head.
    pub header: ResponseHeader,
    /// When it was stored (or last revalidated).
    pub created: SystemTime,
    /// Fresh until this instant.
    pub fresh_until: SystemTime,
    /// May be served stale while revalidating, for this many seconds past freshness.
    pub stale_while_revalidate_sec: u32,
    /// May be served stale on origin errors, for this many seconds past freshness.
    pub stale_if_error_sec: u32,
}

impl CacheMeta {
    /// Whether the object is still fresh at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        now < self.fresh_until
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
