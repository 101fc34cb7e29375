//! The cache lock: concurrent misses on one URL make one origin request.
//!
//! The first miss takes the [`WriteLock`] and fetches; the others get a [`ReadLock`] and
//! wait for it to be released — then look the cache up again (a hit, usually). A writer
//! releases the lock when its guard is dropped, however its request ended (stored,
//! uncacheable, failed, or its task cancelled), so a dead writer never blocks readers;
//! and readers stop waiting after the lock timeout and go to the origin themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::key::PrimaryKey;

/// Locks by URL.
#[derive(Debug, Default)]
pub struct CacheLock {
    table: Arc<Mutex<HashMap<PrimaryKey, watch::Receiver<()>>>>,
}

/// The outcome of [`CacheLock::lock`].
#[derive(Debug)]
pub enum Locked {
    /// This request fetches; others wait until the guard is dropped.
    Writer(WriteLock),
    /// Another request is fetching; wait for it.
    Reader(ReadLock),
}

/// Held by the request that fetches a URL; dropping it wakes the readers.
#[derive(Debug)]
pub struct WriteLock {
    table: Arc<Mutex<HashMap<PrimaryKey, watch::Receiver<()>>>>,
    key: PrimaryKey,
    // Dropping the sender closes the channel: every waiting reader wakes.
    _release: watch::Sender<()>,
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// A request waiting for another one's fetch.
#[derive(Debug)]
pub struct ReadLock {
    released: watch::Receiver<()>,
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The writer finished (whatever the result): look up again.
    Released,
    /// The writer took longer than the lock timeout.
    TimedOut,
}

impl ReadLock {
    /// Wait until the writer is done, at most `timeout`.
    pub async fn wait(mut self, timeout: Duration) -> WaitOutcome {
        // `changed` fails once the sender is dropped: that is the release.
        match tokio::time::timeout(timeout, async {
            while self.released.changed().await.is_ok() {}
        })
        .await
        {
            Ok(()) => WaitOutcome::Released,
            Err(_) => WaitOutcome::TimedOut,
        }
    }
}

impl CacheLock {
    /// A lock table.
    pub fn new() -> Self {
        CacheLock::default()
    }

    /// Take the lock of `key`, or a place in line behind the request that has it.
    pub fn lock(&self, key: PrimaryKey) -> Locked {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = table.get(&key) {
            return Locked::Reader(ReadLock {
                released: rx.clone(),
            });
        }
        let (tx, rx) = watch::channel(());
        table.insert(key, rx);
        Locked::Writer(WriteLock {
            table: self.table.clone(),
            key,
            _release: tx,
        })
    }

    /// URLs being fetched now.
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no URL is being fetched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_writer_many_readers_released_on_drop() {
        let lock = CacheLock::new();
        let Locked::Writer(w) = lock.lock(PrimaryKey(1)) else {
            panic!("the first one writes")
        };
        let readers: Vec<ReadLock> = (0..5)
            .map(|_| match lock.lock(PrimaryKey(1)) {
                Locked::Reader(r) => r,
                Locked::Writer(_) => panic!("only one writer"),
            })
            .collect();
        assert!(matches!(lock.lock(PrimaryKey(2)), Locked::Writer(_)));
        let waits: Vec<_> = readers
            .into_iter()
            .map(|r| tokio::spawn(r.wait(Duration::from_secs(10))))
            .collect();
        tokio::task::yield_now().await;
        drop(w);
        for w in waits {
            assert_eq!(w.await.unwrap(), WaitOutcome::Released);
        }
        assert!(lock.is_empty());
        assert!(matches!(lock.lock(PrimaryKey(1)), Locked::Writer(_)));
    }

    #[tokio::test]
    async fn readers_give_up_after_the_timeout() {
        let lock = CacheLock::new();
        let _w = lock.lock(PrimaryKey(1));
        let Locked::Reader(r) = lock.lock(PrimaryKey(1)) else {
            panic!("second is a reader")
        };
        assert_eq!(
            r.wait(Duration::from_millis(10)).await,
            WaitOutcome::TimedOut
        );
    }

    #[tokio::test]
    async fn a_cancelled_writer_releases_the_lock() {
        let lock = Arc::new(CacheLock::new());
        let l = lock.clone();
        let writer = tokio::spawn(async move {
            let _w = l.lock(PrimaryKey(5));
            std::future::pending::<()>().await;
        });
        while lock.is_empty() {
            tokio::task::yield_now().await;
        }
        let Locked::Reader(r) = lock.lock(PrimaryKey(5)) else {
            panic!("the writer holds it")
        };
        writer.abort();
        assert_eq!(r.wait(Duration::from_secs(10)).await, WaitOutcome::Released);
    }
}
