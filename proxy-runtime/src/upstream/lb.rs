//! Choosing a backend among several: the selection policies.
//!
//! [`LoadBalancer`] holds a fixed list of [`Backend`]s and picks one per request,
//! skipping backends that health checks (see [`super::health`]) marked down. Round
//! robin is lock-free (one atomic counter, one atomic flag per backend).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::Result;
use crate::protocols::SocketAddress;

use super::peer::ToPeerAddress;

/// One backend of a load-balanced group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Its address.
    pub address: SocketAddress,
    /// Relative weight (≥ 1).
    pub weight: u32,
}

/// A group of backends, their health, and a round-robin cursor.
#[derive(Debug)]
pub struct LoadBalancer {
    backends: Vec<Backend>,
    health: Arc<[AtomicBool]>,
    next: AtomicUsize,
}

impl LoadBalancer {
    /// A round-robin balancer over `addrs` (each `"ip:port"` or `"unix:/path"`).
    pub fn round_robin<A: ToPeerAddress>(addrs: impl IntoIterator<Item = A>) -> Result<Self> {
        let backends = addrs
            .into_iter()
            .map(|a| {
                Ok(Backend {
                    address: a.to_peer_address()?,
                    weight: 1,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let health = backends.iter().map(|_| AtomicBool::new(true)).collect();
        Ok(LoadBalancer {
            backends,
            health,
            next: AtomicUsize::new(0),
        })
    }

    /// Whether backend `i` is considered healthy.
    pub fn is_healthy(&self, i: usize) -> bool {
        self.health
            .get(i)
            .is_some_and(|h| h.load(Ordering::Relaxed))
    }

    /// Mark backend `i` up or down (health checks do this).
    pub fn set_healthy(&self, i: usize, healthy: bool) {
        if let Some(h) = self.health.get(i) {
            h.store(healthy, Ordering::Relaxed);
        }
    }

    /// The backends.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The next healthy backend in turn; `None` when the group is empty. When every
    /// backend is down, they are all tried in turn anyway: a health check can be wrong,
    /// and refusing every request is never better.
    pub fn select(&self) -> Option<&Backend> {
        let n = self.backends.len();
        if n == 0 {
            return None;
        }
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for k in 0..n {
            let i = (first + k) % n;
            if self.is_healthy(i) {
                if k > 0 {
                    // Keep the cursor moving past the skipped ones.
                    self.next.fetch_add(k, Ordering::Relaxed);
                }
                return self.backends.get(i);
            }
        }
        self.backends.get(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles() {
        let lb = LoadBalancer::round_robin(["127.0.0.1:1", "127.0.0.1:2"]).unwrap();
        let picks: Vec<String> = (0..4)
            .map(|_| lb.select().unwrap().address.to_string())
            .collect();
        assert_eq!(
            picks,
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:1", "127.0.0.1:2"]
        );
    }

    #[test]
    fn unhealthy_backends_are_skipped_unless_all_are_down() {
        let lb = LoadBalancer::round_robin(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]).unwrap();
        lb.set_healthy(1, false);
        for _ in 0..10 {
            assert_ne!(lb.select().unwrap().address.to_string(), "127.0.0.1:2");
        }
        for i in 0..3 {
            lb.set_healthy(i, false);
        }
        assert!(lb.select().is_some(), "all down: still try");
    }

    #[test]
    fn empty_group_selects_nothing() {
        let lb = LoadBalancer::round_robin(Vec::<&str>::new()).unwrap();
        assert!(lb.select().is_none());
    }
}
