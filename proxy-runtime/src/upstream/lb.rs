//! Choosing a backend among several: the selection policies.
//!
//! [`LoadBalancer`] holds a fixed list of [`Backend`]s and picks one per request.
//! Round robin is lock-free (one atomic counter).

use std::sync::atomic::{AtomicUsize, Ordering};

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

/// A group of backends and a round-robin cursor.
#[derive(Debug)]
pub struct LoadBalancer {
    backends: Vec<Backend>,
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
        Ok(LoadBalancer {
            backends,
            next: AtomicUsize::new(0),
        })
    }

    /// The backends.
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The next backend in turn; `None` when the group is empty.
    pub fn select(&self) -> Option<&Backend> {
        if self.backends.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len();
        self.backends.get(i)
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
    fn empty_group_selects_nothing() {
        let lb = LoadBalancer::round_robin(Vec::<&str>::new()).unwrap();
        assert!(lb.select().is_none());
    }
}
