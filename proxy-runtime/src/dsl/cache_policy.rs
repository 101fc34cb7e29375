//! A route's cache policy as declared with `#[cache(...)]`. It is carried into the
//! generated proxy and drives the response cache once that is enabled; until then the
//! binary warns at start-up that these routes are not cached.

use std::time::Duration;

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
