//! The upstream connection pool.
//!
//! Idle connections are kept per [`HttpPeer::reuse_hash`](super::HttpPeer::reuse_hash),
//! bounded per key and overall. The overall bound evicts the least recently returned
//! connection. A connection is only handed out if it is still quiet: one the
//! origin closed, or that has unexpected bytes waiting, is dropped instead (its framing
//! is in doubt). Idle connections expire after their peer's idle timeout; a sweeper task
//! closes expired and peer-closed connections so their sockets do not linger.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::protocols::{IdleState, Stream};

/// How often the sweeper looks for expired or closed idle connections.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Pool size limits.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Idle connections kept per peer key (default 128).
    pub max_idle_per_key: usize,
    /// Idle connections kept in all (default 4096).
    pub max_idle_total: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_idle_per_key: 128,
            max_idle_total: 4096,
        }
    }
}

struct IdleConn {
    id: u64,
    stream: Stream,
    expires: Instant,
}

/// Keys are already hashes (`HttpPeer::reuse_hash`): one multiplication spreads them
/// over the whole word, whatever their distribution. (It was added when connection ids,
/// a counter, were hashed too: passed through unchanged, their top bits were zero, which
/// `hashbrown` uses to tell slots apart, and every probe compared keys, 3.5× slower with
/// 1,000 peers — `benches/pool.rs`.)
#[derive(Default, Clone, Copy)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: the odd constant nearest 2^64 / golden ratio.
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Identity = std::hash::BuildHasherDefault<IdentityHasher>;

/// Ids grow with every `put`, so each key's list is in id order, oldest first, and so
/// is `order`. `take` pops the newest connection of a key and leaves its `order` entry
/// behind (stale); eviction skips stale entries, and the queue is compacted when they
/// outnumber the live ones. Nothing here allocates per request once the queues have
/// grown to their working size (an LRU map would allocate a node per `put`).
#[derive(Default)]
struct PoolInner {
    by_key: HashMap<u64, VecDeque<IdleConn>, Identity>,
    /// `(id, key)` of returned connections, least recently returned first; includes
    /// stale entries of connections no longer held.
    order: VecDeque<(u64, u64)>,
    /// Connections held, over all keys.
    idle: usize,
    next_id: u64,
    sweeper_running: bool,
}

impl PoolInner {
    /// Drop the least recently returned connection of any key.
    fn evict_oldest(&mut self) {
        while let Some((id, key)) = self.order.pop_front() {
            // The oldest live entry is also the oldest of its key (every older
            // connection of the key came earlier in `order`), so it is at the front.
            let Some(list) = self.by_key.get_mut(&key) else {
                continue;
            };
            if list.front().is_some_and(|c| c.id == id) {
                list.pop_front();
                self.idle -= 1;
                return;
            }
        }
    }

    /// Drop stale `order` entries once they outnumber live ones (amortized: the
    /// queue has grown by at least as many `put`s since the last time).
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.idle + 64 {
            self.drop_stale_order();
        }
    }

    /// Rebuild `order` from the connections held: each key's list is already in id
    /// order, and a stable sort merges those runs cheaply (cheaper than looking every
    /// queued entry up in its key's list).
    fn drop_stale_order(&mut self) {
        self.order.clear();
        for (&key, list) in &self.by_key {
            self.order.extend(list.iter().map(|c| (c.id, key)));
        }
        self.order.make_contiguous().sort_by_key(|&(id, _)| id);
    }
}

/// A bounded pool of idle upstream connections.
pub struct ConnectionPool {
    inner: Mutex<PoolInner>,
    opts: PoolOptions,
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl ConnectionPool {
    /// An empty pool with these limits.
    pub fn new(opts: PoolOptions) -> Arc<Self> {
        Arc::new(ConnectionPool {
            inner: Mutex::new(PoolInner::default()),
            opts,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolInner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way
        // that matters (worst case: a connection is forgotten), so recover the guard.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of idle connections held.
    pub fn idle_count(&self) -> usize {
        self.lock().idle
    }

    /// Take an idle connection for `key`, newest first, skipping ones that expired,
    /// were closed by the peer, or have stray bytes.
    pub fn take(&self, key: u64) -> Option<Stream> {
        let mut inner = self.lock();
        let now = Instant::now();
        loop {
            let conn = inner.by_key.get_mut(&key)?.pop_back()?;
            inner.idle -= 1;
            // Its `order` entry stays, stale. An emptied list stays (the sweeper drops
            // it): the connection usually comes back within the request, and
            // re-creating the list would allocate.
            if conn.expires <= now {
                continue;
            }
            let mut stream = conn.stream;
            match stream.idle_state() {
                IdleState::Quiet => return Some(stream),
                IdleState::Closed | IdleState::StrayBytes => continue,
            }
        }
    }

    /// Return a connection for `key` to keep for up to `idle_timeout`.
    pub fn put(self: &Arc<Self>, key: u64, stream: Stream, idle_timeout: Duration) {
        if idle_timeout.is_zero()
            || self.opts.max_idle_per_key == 0
            || self.opts.max_idle_total == 0
        {
            return; // pooling disabled
        }
        let mut inner = self.lock();
        let inner = &mut *inner;
        let id = inner.next_id;
        inner.next_id += 1;
        let per_key = inner.by_key.get(&key).map_or(0, VecDeque::len);
        if per_key >= self.opts.max_idle_per_key {
            // Per-key bound: drop the oldest of this key (its `order` entry goes stale).
            if let Some(list) = inner.by_key.get_mut(&key)
                && list.pop_front().is_some()
            {
                inner.idle -= 1;
            }
        } else if inner.idle >= self.opts.max_idle_total {
            // Overall bound: drop the least recently returned connection of any key.
            inner.evict_oldest();
        }
        inner.by_key.entry(key).or_default().push_back(IdleConn {
            id,
            stream,
            expires: Instant::now() + idle_timeout,
        });
        inner.idle += 1;
        inner.order.push_back((id, key));
        inner.compact_order();
        if !inner.sweeper_running && tokio::runtime::Handle::try_current().is_ok() {
            inner.sweeper_running = true;
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
    }

    /// Close every expired or peer-closed idle connection; returns how many were closed.
    pub fn sweep_once(&self) -> usize {
        let mut inner = self.lock();
        let now = Instant::now();
        let mut closed = 0;
        for list in inner.by_key.values_mut() {
            list.retain_mut(|c| {
                let keep = c.expires > now && c.stream.idle_state() == IdleState::Quiet;
                closed += usize::from(!keep);
                keep
            });
        }
        inner.by_key.retain(|_, list| !list.is_empty());
        inner.idle -= closed;
        if closed > 0 {
            // Entries of closed connections are stale now; drop them all.
            inner.drop_stale_order();
        }
        closed
    }
}

async fn sweep(pool: Weak<ConnectionPool>) {
    loop {
        tokio::time::sleep(SWEEP_INTERVAL).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        pool.sweep_once();
        let mut inner = pool.lock();
        if inner.by_key.is_empty() {
            // Nothing to watch; the next `put` starts a new sweeper.
            inner.sweeper_running = false;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair(listener: &TcpListener) -> (Stream, TcpStream) {
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Stream::Tcp(client), server)
    }

    #[tokio::test]
    async fn reuses_quiet_connections_and_drops_closed_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = ConnectionPool::new(PoolOptions::default());
        let (c1, s1) = pair(&listener).await;
        pool.put(1, c1, Duration::from_secs(60));
        assert!(pool.take(1).is_some());
        assert!(pool.take(1).is_none());

        let (c2, s2) = pair(&listener).await;
        pool.put(1, c2, Duration::from_secs(60));
        drop(s2);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            pool.take(1).is_none(),
            "a closed connection must not be reused"
        );
        drop(s1);
    }

    #[tokio::test]
    async fn stray_bytes_make_a_connection_unusable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = ConnectionPool::new(PoolOptions::default());
        let (c, mut s) = pair(&listener).await;
        pool.put(7, c, Duration::from_secs(60));
        s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take(7).is_none());
    }

    #[tokio::test]
    async fn bounds_per_key_and_total() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = ConnectionPool::new(PoolOptions {
            max_idle_per_key: 2,
            max_idle_total: 3,
        });
        let mut servers = Vec::new();
        for key in [1, 1, 1, 2, 2] {
            let (c, s) = pair(&listener).await;
            servers.push(s);
            pool.put(key, c, Duration::from_secs(60));
        }
        assert_eq!(pool.idle_count(), 3);
    }

    #[tokio::test]
    async fn the_overall_bound_evicts_the_least_recently_returned() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = ConnectionPool::new(PoolOptions {
            max_idle_per_key: 8,
            max_idle_total: 2,
        });
        let mut servers = Vec::new();
        let mut conn = async || {
            let (c, s) = pair(&listener).await;
            servers.push(s);
            c
        };
        pool.put(1, conn().await, Duration::from_secs(60));
        pool.put(2, conn().await, Duration::from_secs(60));
        // Key 1's connection leaves; its place in the order goes stale.
        let taken = pool.take(1).unwrap();
        pool.put(3, conn().await, Duration::from_secs(60));
        assert_eq!(pool.idle_count(), 2);
        // Full: the oldest held connection (key 2's) makes room, not the stale entry.
        pool.put(1, taken, Duration::from_secs(60));
        assert_eq!(pool.idle_count(), 2);
        assert!(pool.take(2).is_none());
        assert!(pool.take(3).is_some());
        assert!(pool.take(1).is_some());
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn stale_order_entries_do_not_accumulate() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = ConnectionPool::new(PoolOptions::default());
        let (mut c, _s) = pair(&listener).await;
        for _ in 0..10_000 {
            pool.put(9, c, Duration::from_secs(60));
            c = pool.take(9).unwrap();
        }
        let inner = pool.lock();
        assert_eq!(inner.idle, 0);
        assert!(inner.order.len() <= 65, "{} entries", inner.order.len());
    }

    #[tokio::test]
    async fn expired_connections_are_swept() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pool = ConnectionPool::new(PoolOptions::default());
        let (c, _s) = pair(&listener).await;
        pool.put(1, c, Duration::from_millis(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(pool.sweep_once(), 1);
        assert_eq!(pool.idle_count(), 0);
    }
}
