//! The shared cache ([`Cache`]: storage, lock, options, counters) and one request's
//! view of it ([`HttpCache`], in every [`Session`](crate::Session)).
//!
//! A proxy owns a `Cache` (usually in an `Arc` built at start-up) and, in its
//! `request_cache_filter` phase, enables it for the requests it wants cached:
//! `session.cache.enable(&self.cache)`. Everything after that — lookup, lock, fill,
//! revalidation, stale serving — is the engine's work (see `docs/src/cache.md`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http::HeaderName;

use super::CacheKey;
use super::key::{ObjectKey, PrimaryKey};
use super::lock::{CacheLock, WriteLock};
use super::range::RangeBody;
use super::storage::{Fill, Hit, MemoryStorage, Storage};

/// How the cache behaves, whatever the response says.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Name of the header telling the client what the cache did (`hit`, `miss`, ...);
    /// `None` to send none. Default `x-cache-status`.
    pub status_header: Option<HeaderName>,
    /// How long a request waits for another one fetching the same URL before fetching
    /// itself. Default 5 s.
    pub lock_timeout: Duration,
    /// The largest body stored (the storage may take less). Default 64 MiB.
    pub max_object: u64,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            status_header: Some(HeaderName::from_static("x-cache-status")),
            lock_timeout: Duration::from_secs(5),
            max_object: 64 << 20,
        }
    }
}

/// Counters of what the cache did.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Answered from the cache, fresh.
    pub hits: AtomicU64,
    /// Fetched from the origin: nothing stored.
    pub misses: AtomicU64,
    /// Served stale (while revalidating, or because the origin failed).
    pub stale: AtomicU64,
    /// Revalidated with the origin (304).
    pub revalidated: AtomicU64,
    /// Objects stored.
    pub stored: AtomicU64,
    /// Objects purged (PURGE or unsafe methods).
    pub purged: AtomicU64,
}

/// A response cache: storage, the lock that collapses concurrent misses, options.
#[derive(Debug)]
pub struct Cache {
    /// Where objects live.
    pub storage: Arc<dyn Storage>,
    /// One fetch per URL at a time.
    pub lock: CacheLock,
    /// Behaviour.
    pub options: CacheOptions,
    /// Counters.
    pub stats: CacheStats,
}

impl Cache {
    /// A cache over `storage`.
    pub fn new(storage: Arc<dyn Storage>, options: CacheOptions) -> Self {
        Cache {
            storage,
            lock: CacheLock::new(),
            options,
            stats: CacheStats::default(),
        }
    }

    /// An in-memory cache of `capacity` bytes with default options.
    pub fn in_memory(capacity: usize) -> Arc<Self> {
        Arc::new(Cache::new(
            Arc::new(MemoryStorage::new(capacity)),
            CacheOptions::default(),
        ))
    }

    pub(crate) fn count(&self, status: CacheStatus) {
        let c = match status {
            CacheStatus::Hit => &self.stats.hits,
            CacheStatus::Miss | CacheStatus::Expired => &self.stats.misses,
            CacheStatus::Stale | CacheStatus::StaleIfError => &self.stats.stale,
            CacheStatus::Revalidated => &self.stats.revalidated,
            CacheStatus::Bypass => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the cache did for a request (the status header's value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Served from the cache, fresh.
    Hit,
    /// Not in the cache: fetched from the origin.
    Miss,
    /// In the cache but stale: fetched again from the origin.
    Expired,
    /// Served stale while a background request revalidates it.
    Stale,
    /// Served stale because the origin failed.
    StaleIfError,
    /// Revalidated with the origin (`304`) and served from the cache.
    Revalidated,
    /// The cache was not used (method, phase decision, request directives).
    Bypass,
}

impl CacheStatus {
    /// As sent in the status header.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Expired => "expired",
            CacheStatus::Stale => "stale",
            CacheStatus::StaleIfError => "stale-if-error",
            CacheStatus::Revalidated => "revalidated",
            CacheStatus::Bypass => "bypass",
        }
    }
}

/// Limits a phase can put on how this request's response is cached (the DSL's
/// `#[cache(...)]` policy sets them).
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheOverrides {
    /// Freshness when the origin gives none (and the response may be cached by
    /// default rules), or — with `force_ttl` — whatever the origin says.
    pub ttl: Option<Duration>,
    /// Replace the origin's freshness by `ttl`.
    pub force_ttl: bool,
    /// Stale-while-revalidate window when the origin gives none.
    pub stale_while_revalidate: Option<Duration>,
    /// Stale-if-error window when the origin gives none.
    pub stale_if_error: Option<Duration>,
    /// Largest body stored for this request.
    pub max_size: Option<u64>,
    /// Lock timeout for this request.
    pub lock_timeout: Option<Duration>,
    /// Request headers the response varies on, beyond its own `Vary`.
    pub vary: &'static [&'static str],
}

/// How the response reaches the client while the origin's response streams in.
#[derive(Debug, Default)]
pub(crate) enum ClientView {
    /// As received.
    #[default]
    Whole,
    /// Only some byte ranges (a `Range` request answered by the cache).
    Ranges(Box<RangeBody>),
    /// Nothing more: the client already has its answer (a `304`, or a response served
    /// from the cache); the origin's body only feeds the cache.
    Nothing,
}

/// One request's state in the cache.
#[derive(Debug, Default)]
pub struct HttpCache {
    pub(crate) cache: Option<Arc<Cache>>,
    pub(crate) overrides: Option<Box<CacheOverrides>>,
    pub(crate) key: Option<Box<CacheKey>>,
    pub(crate) primary: Option<PrimaryKey>,
    pub(crate) status: Option<CacheStatus>,
    /// A stored object that is not fresh: revalidated, or served if the origin fails.
    pub(crate) stale: Option<Box<(ObjectKey, Hit)>>,
    /// Send validators of `stale` upstream.
    pub(crate) revalidate: bool,
    /// The origin answered revalidation with a `304` for another representation: the
    /// request went again, unconditionally (once).
    pub(crate) refetched: bool,
    /// This request fetches for everyone waiting on the URL.
    pub(crate) write_lock: Option<Box<WriteLock>>,
    pub(crate) fill: Option<Box<dyn Fill>>,
    pub(crate) client: ClientView,
    /// The client left during a fill: the fill goes on, writes to it stop.
    pub(crate) client_gone: bool,
    /// An unsafe method: invalidate the URL once the response succeeds.
    pub(crate) invalidate: bool,
    /// A background refresh: no lookup, always fetch (with validators).
    pub(crate) refresh: bool,
    /// The request was sent upstream at this time.
    pub(crate) request_time: Option<SystemTime>,
    /// Do not store the response (`no-store` on the request).
    pub(crate) no_store: bool,
    /// Parts appended to the key the `cache_key_callback` phase returns.
    pub(crate) key_parts: Vec<String>,
}

impl std::fmt::Debug for Box<dyn Fill> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fill")
    }
}

impl HttpCache {
    /// Use `cache` for this request (from `request_cache_filter`).
    pub fn enable(&mut self, cache: &Arc<Cache>) {
        self.cache = Some(cache.clone());
    }

    /// Do not use the cache for this request after all.
    pub fn disable(&mut self) {
        self.cache = None;
    }

    /// Use `cache` for nothing but the status header: this request skips it on
    /// purpose (a policy's bypass condition).
    pub fn bypass(&mut self, cache: &Arc<Cache>) {
        self.cache = Some(cache.clone());
        self.status = Some(CacheStatus::Bypass);
    }

    /// Add a part to this request's cache key (after the `cache_key_callback` phase's
    /// key): requests that differ in it are cached apart.
    pub fn add_key_part(&mut self, part: impl Into<String>) {
        self.key_parts.push(part.into());
    }

    /// Whether the cache is used for this request.
    pub fn enabled(&self) -> bool {
        self.cache.is_some()
    }

    /// Limits on how this request's response is cached.
    pub fn set_overrides(&mut self, overrides: CacheOverrides) {
        self.overrides = Some(Box::new(overrides));
    }

    /// The limits set for this request.
    pub fn overrides(&self) -> &CacheOverrides {
        const NONE: CacheOverrides = CacheOverrides {
            ttl: None,
            force_ttl: false,
            stale_while_revalidate: None,
            stale_if_error: None,
            max_size: None,
            lock_timeout: None,
            vary: &[],
        };
        self.overrides.as_deref().unwrap_or(&NONE)
    }

    /// What the cache did, once decided.
    pub fn status(&self) -> Option<CacheStatus> {
        self.status
    }

    /// This request's cache key, once computed.
    pub fn key(&self) -> Option<&CacheKey> {
        self.key.as_deref()
    }

    /// Whether this session is a background refresh made by the cache.
    pub fn is_refresh(&self) -> bool {
        self.refresh
    }

    /// Whether the origin's response may be stored (a fill may start).
    pub(crate) fn fetching(&self) -> bool {
        self.cache.is_some() && self.primary.is_some() && !self.invalidate
    }

    /// Stop the fill (too large, or the response failed) and let waiters fetch.
    pub(crate) fn abandon_fill(&mut self) {
        self.fill = None;
        self.write_lock = None;
    }
}
