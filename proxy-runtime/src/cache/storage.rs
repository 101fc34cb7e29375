//! Where cached responses live: the [`Storage`] trait and [`MemoryStorage`], an
//! in-memory store bounded by bytes with least-recently-used eviction.
//!
//! An object is written as it streams from the origin ([`Storage::begin_fill`] returns a
//! [`Fill`]: pieces go in as they arrive; `finish` makes the object visible; dropping an
//! unfinished fill discards it) and read back piece by piece ([`Hit::body`]). Objects of
//! one URL that vary on request headers are kept apart and purged together.

use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::HeaderName;
use lru::LruCache;

use super::CacheMeta;
use super::key::{ObjectKey, PrimaryKey};

/// A stored object found by a lookup.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Its metadata.
    pub meta: Arc<CacheMeta>,
    /// Its body, in the pieces it was stored in.
    pub body: Arc<[Bytes]>,
}

impl Hit {
    /// The body's length.
    pub fn body_len(&self) -> u64 {
        self.body.iter().map(|b| b.len() as u64).sum()
    }
}

/// A body being written into the storage.
pub trait Fill: Send + Sync {
    /// Append a piece. An error (the object is larger than the storage takes) abandons
    /// the fill.
    fn write(&mut self, piece: Bytes) -> Result<(), FillError>;
    /// The body is complete: make the object visible to lookups.
    fn finish(self: Box<Self>);
}

/// Why a fill stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillError {
    /// The object is larger than the storage (or the policy) allows.
    TooLarge,
}

/// A cache storage. Lookups and metadata are synchronous (an index in memory); bodies
/// stream in through [`Fill`] and out through [`Hit::body`].
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// The `Vary` names recorded for `primary` (empty: objects there do not vary);
    /// `None` if nothing is stored under it.
    fn vary_of(&self, primary: PrimaryKey) -> Option<Arc<[HeaderName]>>;
    /// The object stored under `key`.
    fn lookup(&self, key: ObjectKey) -> Option<Hit>;
    /// Start writing an object; it replaces any object under `key` once finished.
    /// `max_size` bounds the body (the storage may bound it further).
    fn begin_fill(&self, key: ObjectKey, meta: CacheMeta, max_size: u64) -> Box<dyn Fill>;
    /// Replace an object's metadata (after a revalidation); `false` if it is gone.
    fn update_meta(&self, key: ObjectKey, meta: CacheMeta) -> bool;
    /// Remove every object of `primary`; whether there was any.
    fn purge(&self, primary: PrimaryKey) -> bool;
    /// Bytes held.
    fn used_bytes(&self) -> usize;
}

/// Per-object bookkeeping beyond the body (the head, the index entries).
const OBJECT_OVERHEAD: usize = 256;

#[derive(Debug)]
struct Entry {
    meta: Arc<CacheMeta>,
    body: Arc<[Bytes]>,
    size: usize,
}

#[derive(Debug)]
struct Shard {
    objects: LruCache<ObjectKey, Entry>,
    /// Per URL: its `Vary` names and the variances stored.
    urls: std::collections::HashMap<PrimaryKey, (Arc<[HeaderName]>, Vec<u64>)>,
    bytes: usize,
    budget: usize,
}

impl Shard {
    fn remove(&mut self, key: ObjectKey) {
        if let Some(e) = self.objects.pop(&key) {
            self.bytes -= e.size;
        }
        self.forget_variance(key);
    }

    fn forget_variance(&mut self, key: ObjectKey) {
        if let Some((_, variances)) = self.urls.get_mut(&key.primary) {
            variances.retain(|&v| v != key.variance);
            if variances.is_empty() {
                self.urls.remove(&key.primary);
            }
        }
    }

    fn insert(&mut self, key: ObjectKey, entry: Entry) {
        self.remove(key);
        let vary: Arc<[HeaderName]> = entry.meta.vary.clone().into();
        match self.urls.get_mut(&key.primary) {
            // A response with other Vary names than the stored variants: they were
            // chosen on other headers and can no longer be told apart; drop them.
            Some((names, variances)) if **names != *vary => {
                let old: Vec<u64> = std::mem::take(variances);
                *names = vary;
                for v in old {
                    if let Some(e) = self.objects.pop(&ObjectKey {
                        primary: key.primary,
                        variance: v,
                    }) {
                        self.bytes -= e.size;
                    }
                }
                if let Some((_, variances)) = self.urls.get_mut(&key.primary) {
                    variances.push(key.variance);
                }
            }
            Some((_, variances)) => variances.push(key.variance),
            None => {
                self.urls.insert(key.primary, (vary, vec![key.variance]));
            }
        }
        self.bytes += entry.size;
        self.objects.put(key, entry);
        while self.bytes > self.budget {
            let Some((k, e)) = self.objects.pop_lru() else {
                break;
            };
            self.bytes -= e.size;
            self.forget_variance(k);
        }
    }
}

/// An in-memory storage of at most `capacity` bytes (bodies plus a fixed overhead per
/// object), evicting the least recently used objects first. Split into shards by key
/// so that lookups on different URLs do not contend.
pub struct MemoryStorage {
    inner: Arc<Shards>,
}

struct Shards {
    shards: Box<[Mutex<Shard>]>,
    max_object: u64,
}

impl Shards {
    fn lock(&self, primary: PrimaryKey) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[(primary.0 as usize) % self.shards.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStorage")
            .field("shards", &self.inner.shards.len())
            .field("max_object", &self.inner.max_object)
            .field("used_bytes", &self.used_bytes())
            .finish()
    }
}

const SHARDS: usize = 16;

impl MemoryStorage {
    /// A storage of `capacity` bytes, split in 16 shards; one object may take at most a
    /// shard's share (a sixteenth).
    pub fn new(capacity: usize) -> Self {
        let budget = (capacity / SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    objects: LruCache::unbounded(),
                    urls: std::collections::HashMap::new(),
                    bytes: 0,
                    budget,
                })
            })
            .collect();
        MemoryStorage {
            inner: Arc::new(Shards {
                shards,
                max_object: budget as u64,
            }),
        }
    }

    /// The largest body stored.
    pub fn max_object(&self) -> u64 {
        self.inner.max_object
    }
}

/// A fill into a [`MemoryStorage`]: pieces gather here and land in the shard at
/// `finish`.
struct MemoryFill {
    shards: Arc<Shards>,
    key: ObjectKey,
    meta: CacheMeta,
    body: Vec<Bytes>,
    size: u64,
    max: u64,
}

impl Fill for MemoryFill {
    fn write(&mut self, piece: Bytes) -> Result<(), FillError> {
        self.size += piece.len() as u64;
        if self.size > self.max {
            return Err(FillError::TooLarge);
        }
        if !piece.is_empty() {
            self.body.push(piece);
        }
        Ok(())
    }

    fn finish(self: Box<Self>) {
        let MemoryFill {
            shards,
            key,
            meta,
            body,
            size,
            ..
        } = *self;
        // One exact-size copy of the body. The pieces are slices of the connection's
        // read buffers: kept as they are, a small object would pin a whole buffer (a
        // 1 KiB body holding 16 KiB, unaccounted), and a hit would be written piece by
        // piece. Copied once per fill, a hit is one contiguous write.
        let body: Arc<[Bytes]> = match body.len() {
            0 => Arc::new([]),
            _ => {
                let mut whole = bytes::BytesMut::with_capacity(size as usize);
                for piece in &body {
                    whole.extend_from_slice(piece);
                }
                Arc::new([whole.freeze()])
            }
        };
        let size = size as usize + OBJECT_OVERHEAD + header_size(&meta);
        let entry = Entry {
            meta: Arc::new(meta),
            body,
            size,
        };
        shards.lock(key.primary).insert(key, entry);
    }
}

/// Roughly what a stored head takes.
fn header_size(meta: &CacheMeta) -> usize {
    meta.header
        .header_fields()
        .map(|(n, v)| n.as_str().len() + v.len() + 32)
        .sum()
}

impl Storage for MemoryStorage {
    fn vary_of(&self, primary: PrimaryKey) -> Option<Arc<[HeaderName]>> {
        self.inner
            .lock(primary)
            .urls
            .get(&primary)
            .map(|(n, _)| n.clone())
    }

    fn lookup(&self, key: ObjectKey) -> Option<Hit> {
        let mut shard = self.inner.lock(key.primary);
        shard.objects.get(&key).map(|e| Hit {
            meta: e.meta.clone(),
            body: e.body.clone(),
        })
    }

    fn begin_fill(&self, key: ObjectKey, meta: CacheMeta, max_size: u64) -> Box<dyn Fill> {
        Box::new(MemoryFill {
            shards: self.inner.clone(),
            key,
            meta,
            body: Vec::new(),
            size: 0,
            max: max_size.min(self.inner.max_object),
        })
    }

    fn update_meta(&self, key: ObjectKey, meta: CacheMeta) -> bool {
        let mut shard = self.inner.lock(key.primary);
        match shard.objects.get_mut(&key) {
            Some(e) => {
                e.meta = Arc::new(meta);
                true
            }
            None => false,
        }
    }

    fn purge(&self, primary: PrimaryKey) -> bool {
        let mut shard = self.inner.lock(primary);
        let Some((_, variances)) = shard.urls.remove(&primary) else {
            return false;
        };
        for variance in variances {
            if let Some(e) = shard.objects.pop(&ObjectKey { primary, variance }) {
                shard.bytes -= e.size;
            }
        }
        true
    }

    fn used_bytes(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ResponseHeader;
    use std::time::{Duration, SystemTime};

    fn meta(vary: &[&'static str]) -> CacheMeta {
        CacheMeta {
            header: ResponseHeader::build(200, None).unwrap(),
            request_time: SystemTime::now(),
            response_time: SystemTime::now(),
            initial_age: Duration::ZERO,
            fresh_for: Duration::from_secs(60),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            must_revalidate: false,
            no_cache: false,
            vary: vary.iter().map(|n| HeaderName::from_static(n)).collect(),
        }
    }

    fn key(p: u128, v: u64) -> ObjectKey {
        ObjectKey {
            primary: PrimaryKey(p),
            variance: v,
        }
    }

    fn store(s: &MemoryStorage, k: ObjectKey, m: CacheMeta, body: &[&'static [u8]]) {
        let mut fill = s.begin_fill(k, m, u64::MAX);
        for piece in body {
            fill.write(Bytes::from_static(piece)).unwrap();
        }
        fill.finish();
    }

    #[test]
    fn objects_appear_only_when_the_fill_finishes() {
        let s = MemoryStorage::new(1 << 20);
        let mut fill = s.begin_fill(key(1, 0), meta(&[]), u64::MAX);
        fill.write(Bytes::from_static(b"hello ")).unwrap();
        assert!(s.lookup(key(1, 0)).is_none());
        fill.write(Bytes::from_static(b"world")).unwrap();
        fill.finish();
        let hit = s.lookup(key(1, 0)).unwrap();
        assert_eq!(hit.body_len(), 11);
        // Stored as one contiguous piece of exactly the body's size.
        assert_eq!(&*hit.body, [Bytes::from_static(b"hello world")]);
        // An abandoned fill leaves nothing behind.
        let mut fill = s.begin_fill(key(2, 0), meta(&[]), u64::MAX);
        fill.write(Bytes::from_static(b"x")).unwrap();
        drop(fill);
        assert!(s.lookup(key(2, 0)).is_none());
    }

    #[test]
    fn fills_over_the_size_limit_fail() {
        let s = MemoryStorage::new(1 << 20);
        let mut fill = s.begin_fill(key(1, 0), meta(&[]), 4);
        assert_eq!(fill.write(Bytes::from_static(b"1234")), Ok(()));
        assert_eq!(
            fill.write(Bytes::from_static(b"5")),
            Err(FillError::TooLarge)
        );
        let s = MemoryStorage::new(16 * 800);
        assert_eq!(s.max_object(), 800);
    }

    #[test]
    fn least_recently_used_objects_are_evicted_within_the_budget() {
        // One shard's budget: everything lands in shard 0 (primary keys multiple of 16).
        let s = MemoryStorage::new(SHARDS * 2000);
        let body: &'static [u8] = &[b'x'; 150];
        for i in 0..10u128 {
            store(&s, key(i * 16, 0), meta(&[]), &[body]);
            if i >= 1 {
                // Keep the first one recently used.
                assert!(s.lookup(key(0, 0)).is_some());
            }
        }
        assert!(s.used_bytes() <= 2000, "{}", s.used_bytes());
        assert!(s.lookup(key(0, 0)).is_some(), "recently used, kept");
        assert!(
            s.lookup(key(16, 0)).is_none(),
            "least recently used, evicted"
        );
    }

    #[test]
    fn variants_are_kept_apart_and_purged_together() {
        let s = MemoryStorage::new(1 << 20);
        store(&s, key(7, 1), meta(&["accept-encoding"]), &[b"gzip"]);
        store(&s, key(7, 2), meta(&["accept-encoding"]), &[b"br"]);
        assert_eq!(
            &*s.vary_of(PrimaryKey(7)).unwrap(),
            [HeaderName::from_static("accept-encoding")]
        );
        assert_eq!(
            &*s.lookup(key(7, 1)).unwrap().body,
            [Bytes::from_static(b"gzip")]
        );
        assert_eq!(
            &*s.lookup(key(7, 2)).unwrap().body,
            [Bytes::from_static(b"br")]
        );
        assert!(s.purge(PrimaryKey(7)));
        assert!(s.lookup(key(7, 1)).is_none());
        assert!(s.lookup(key(7, 2)).is_none());
        assert!(!s.purge(PrimaryKey(7)));
        assert_eq!(s.used_bytes(), 0);
    }

    #[test]
    fn a_new_vary_drops_the_old_variants() {
        let s = MemoryStorage::new(1 << 20);
        store(&s, key(9, 1), meta(&["accept-encoding"]), &[b"a"]);
        store(&s, key(9, 5), meta(&["accept-language"]), &[b"b"]);
        assert!(s.lookup(key(9, 1)).is_none());
        assert!(s.lookup(key(9, 5)).is_some());
        assert_eq!(
            &*s.vary_of(PrimaryKey(9)).unwrap(),
            [HeaderName::from_static("accept-language")]
        );
    }

    #[test]
    fn metadata_updates_keep_the_body() {
        let s = MemoryStorage::new(1 << 20);
        store(&s, key(3, 0), meta(&[]), &[b"body"]);
        let mut m = meta(&[]);
        m.fresh_for = Duration::from_secs(999);
        assert!(s.update_meta(key(3, 0), m));
        let hit = s.lookup(key(3, 0)).unwrap();
        assert_eq!(hit.meta.fresh_for, Duration::from_secs(999));
        assert_eq!(&*hit.body, [Bytes::from_static(b"body")]);
        assert!(!s.update_meta(key(4, 0), meta(&[])));
    }
}
