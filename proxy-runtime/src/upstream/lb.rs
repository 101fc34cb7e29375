//! Choosing a backend among several: the selection policies.
//!
//! [`LoadBalancer`] holds a list of [`Backend`]s, their health, and one of the
//! [`Policy`]s; it picks one backend per attempt:
//!
//! | policy | how | cost per pick |
//! |---|---|---|
//! | round robin | each healthy backend in turn | one atomic add |
//! | weighted round robin | nginx's smooth weighted order, precomputed | one atomic add |
//! | random | uniform among healthy backends | a thread-local PRNG step |
//! | least loaded | the less busy of two random backends (power of two choices) | two PRNG steps, two loads |
//! | least connections | the fewest requests in flight per weight | a scan |
//! | consistent hash | Ketama ring, point layout of nginx's `hash ... consistent` | a binary search |
//!
//! A backend is skipped while it is down (an active health check failed, see
//! [`super::health`]) or ejected (passive checks: too many consecutive failures,
//! reported with [`LoadBalancer::report`]). If every backend is down, they are all used
//! anyway: a wrong health verdict must not refuse every request. A pick can exclude
//! backends already tried, so a retry goes elsewhere when it can. Picks return an
//! in-flight guard, which the least-loaded policies count.
//!
//! The backend set is an immutable snapshot behind an atomic pointer: discovery swaps in
//! a new one ([`LoadBalancer::update`]) while picks keep reading without a lock, and
//! per-backend state (health, ejection, in-flight) follows a backend's address from one
//! snapshot to the next.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::error::{Error, ErrorKind, ErrorSource, Result};
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

/// How a backend is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Each backend in turn (weights ignored).
    RoundRobin,
    /// nginx's smooth weighted round robin.
    WeightedRoundRobin,
    /// Uniformly at random.
    Random,
    /// Power of two choices on requests in flight.
    LeastLoaded,
    /// The fewest requests in flight per unit of weight.
    LeastConnections,
    /// Ketama consistent hashing of a request key, `points` per unit of weight (nginx
    /// uses 160).
    Consistent {
        /// Ring points per unit of weight.
        points: u32,
    },
}

/// Passive health: eject a backend after consecutive failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejection {
    /// Consecutive failures that eject a backend.
    pub failures: u32,
    /// How long it stays out; then the next request to it is the probe.
    pub duration: Duration,
}

#[derive(Debug)]
struct BackendState {
    /// Whose state this is.
    address: SocketAddress,
    /// Set by active health checks.
    up: AtomicBool,
    /// Consecutive active probe successes and failures (rise/fall counters).
    probe_successes: AtomicU32,
    probe_failures: AtomicU32,
    /// Requests in flight.
    in_flight: AtomicUsize,
    /// Consecutive failures reported.
    failures: AtomicU32,
    /// Ejected until this many milliseconds after the balancer's epoch (0: not ejected).
    ejected_until_ms: AtomicU64,
}

impl BackendState {
    fn new_up(address: SocketAddress) -> Arc<Self> {
        Arc::new(BackendState {
            address,
            up: AtomicBool::new(true),
            probe_successes: AtomicU32::new(0),
            probe_failures: AtomicU32::new(0),
            in_flight: AtomicUsize::new(0),
            failures: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
        })
    }
}

/// Holds a backend's in-flight count up while a request uses it; also identifies the
/// backend to [`LoadBalancer::report_pick`] even after the backend set changed.
#[derive(Debug)]
pub struct InFlight {
    state: Arc<BackendState>,
}

impl InFlight {
    /// The address of the backend in use.
    pub fn address(&self) -> &SocketAddress {
        &self.state.address
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A chosen backend.
#[derive(Debug)]
pub struct Pick {
    /// Its position in the backend set current when it was chosen.
    pub index: usize,
    /// The backend.
    pub backend: Backend,
    /// Keeps the backend's in-flight count up until dropped.
    pub guard: InFlight,
}

/// One version of a group's backend set, with everything precomputed for selection.
/// Replaced as a whole when discovery changes the set; readers never lock.
#[derive(Debug)]
struct BackendSet {
    backends: Vec<Backend>,
    states: Vec<Arc<BackendState>>,
    /// Weighted round robin: the precomputed order of backend indices.
    wrr_order: Vec<u32>,
    /// Consistent hashing: the ring, sorted by point.
    ring: Vec<(u32, u32)>,
}

/// A group of backends, their state, and a selection policy.
///
/// The backend set can change while requests run ([`LoadBalancer::update`], driven by
/// [`super::discovery`]): picks read the current set without locking; requests in
/// flight keep the backend they chose; backends that stay keep their health state.
#[derive(Debug)]
pub struct LoadBalancer {
    set: ArcSwap<BackendSet>,
    policy: Policy,
    cursor: AtomicUsize,
    ejection: Option<Ejection>,
    epoch: Instant,
}

/// Passive ejections (a backend taken out after consecutive failures) since start.
pub static EJECTIONS: AtomicU64 = AtomicU64::new(0);

/// The most ring points or weighted-order entries a group may have.
const MAX_POINTS: u64 = 1 << 22;

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
        Self::new(backends, Policy::RoundRobin)
    }

    /// A balancer over `backends` with `policy`. Weights must be at least 1.
    pub fn new(backends: Vec<Backend>, policy: Policy) -> Result<Self> {
        let set = build_set(backends, policy, &[])?;
        Ok(LoadBalancer {
            set: ArcSwap::from_pointee(set),
            policy,
            cursor: AtomicUsize::new(0),
            ejection: None,
            epoch: Instant::now(),
        })
    }

    /// Replace the backend set. Backends present before and after (same address) keep
    /// their health, ejection and in-flight state; requests in flight are not
    /// disturbed. Returns the addresses added and removed.
    pub fn update(&self, backends: Vec<Backend>) -> Result<SetChange> {
        let old = self.set.load_full();
        let mut change = SetChange::default();
        for b in &backends {
            if !old.backends.iter().any(|o| o.address == b.address) {
                change.added.push(b.address.clone());
            }
        }
        for o in &old.backends {
            if !backends.iter().any(|b| b.address == o.address) {
                change.removed.push(o.address.clone());
            }
        }
        let unchanged = change.added.is_empty()
            && change.removed.is_empty()
            && old.backends.len() == backends.len()
            && old.backends.iter().zip(&backends).all(|(a, b)| a == b);
        if unchanged {
            return Ok(change);
        }
        let carried: Vec<(&Backend, &Arc<BackendState>)> =
            old.backends.iter().zip(&old.states).collect();
        let set = build_set(backends, self.policy, &carried)?;
        self.set.store(Arc::new(set));
        Ok(change)
    }

    /// Eject backends after consecutive failures (passive health checks).
    pub fn with_ejection(mut self, ejection: Ejection) -> Self {
        self.ejection = Some(ejection);
        self
    }

    /// The selection policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The current backends.
    pub fn backends(&self) -> Vec<Backend> {
        self.set.load().backends.clone()
    }

    /// How many backends the current set holds.
    pub fn len(&self) -> usize {
        self.set.load().backends.len()
    }

    /// Whether the group has no backend.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether backend `i` of the current set may be chosen now: up and not ejected.
    pub fn is_healthy(&self, i: usize) -> bool {
        let set = self.set.load();
        set.states.get(i).is_some_and(|s| self.usable_state(s))
    }

    fn usable_state(&self, s: &BackendState) -> bool {
        if !s.up.load(Ordering::Relaxed) {
            return false;
        }
        let until = s.ejected_until_ms.load(Ordering::Relaxed);
        until == 0 || self.now_ms() >= until
    }

    /// Mark backend `i` of the current set up or down (active health checks do this).
    pub fn set_healthy(&self, i: usize, healthy: bool) {
        if let Some(s) = self.set.load().states.get(i) {
            s.up.store(healthy, Ordering::Relaxed);
        }
    }

    /// Requests in flight to backend `i` of the current set.
    pub fn in_flight(&self, i: usize) -> usize {
        self.set
            .load()
            .states
            .get(i)
            .map_or(0, |s| s.in_flight.load(Ordering::Relaxed))
    }

    fn now_ms(&self) -> u64 {
        // +1 so that 0 keeps meaning "not ejected".
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Report how a request to backend `i` of the current set went (passive health
    /// checks). Returns whether this report ejected the backend.
    pub fn report(&self, i: usize, success: bool) -> bool {
        let set = self.set.load();
        set.states
            .get(i)
            .is_some_and(|s| self.report_state(s, success))
    }

    /// Report how the request that made `pick` went: exact even if the backend set
    /// changed since. Returns whether this report ejected the backend.
    pub fn report_pick(&self, pick: &InFlight, success: bool) -> bool {
        self.report_state(&pick.state, success)
    }

    fn report_state(&self, s: &BackendState, success: bool) -> bool {
        let Some(ej) = self.ejection else {
            return false;
        };
        if success {
            s.failures.store(0, Ordering::Relaxed);
            s.ejected_until_ms.store(0, Ordering::Relaxed);
            return false;
        }
        let failures = s.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < ej.failures.max(1) {
            return false;
        }
        // Out for a while; the first request after that is the probe: one more failure
        // ejects it again at once.
        s.failures.store(ej.failures.max(1) - 1, Ordering::Relaxed);
        let until = self.now_ms() + ej.duration.as_millis() as u64;
        s.ejected_until_ms.store(until, Ordering::Relaxed);
        EJECTIONS.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The next backend (no key, no exclusions); `None` when the group is empty.
    pub fn select(&self) -> Option<Backend> {
        self.pick(None, &[]).map(|p| p.backend)
    }

    /// Choose a backend: `key` feeds consistent hashing (ignored by other policies);
    /// backends in `tried` (indices in the current set) are avoided while any other is
    /// healthy.
    pub fn pick(&self, key: Option<&[u8]>, tried: &[usize]) -> Option<Pick> {
        let set = self.set.load();
        let n = set.backends.len();
        if n == 0 {
            return None;
        }
        let usable = |i: usize| self.usable_state(&set.states[i]) && !tried.contains(&i);
        let index = match self.policy {
            Policy::RoundRobin => self.rotate(n, usable),
            Policy::WeightedRoundRobin => {
                let len = set.wrr_order.len();
                let start = self.cursor.fetch_add(1, Ordering::Relaxed);
                (0..len)
                    .map(|k| set.wrr_order[(start + k) % len] as usize)
                    .find(|&i| usable(i))
            }
            Policy::Random => {
                let start = (random_u64() % n as u64) as usize;
                (0..n).map(|k| (start + k) % n).find(|&i| usable(i))
            }
            Policy::LeastLoaded => self.power_of_two(&set, usable),
            Policy::LeastConnections => self.least_connections(&set, usable),
            Policy::Consistent { .. } => {
                let hash = crc32(key.unwrap_or_default());
                ring_walk(&set, hash, usable)
            }
        };
        // Nothing usable: every backend is down or tried. Use one anyway (in turn).
        let index = index.unwrap_or_else(|| self.cursor.fetch_add(1, Ordering::Relaxed) % n);
        let state = set.states[index].clone();
        state.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(Pick {
            index,
            backend: set.backends[index].clone(),
            guard: InFlight { state },
        })
    }

    fn rotate(&self, n: usize, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let found = (0..n).map(|k| (start + k) % n).find(|&i| usable(i))?;
        let skipped = (found + n - start % n) % n;
        if skipped > 0 {
            // Keep the rotation moving past the skipped backends.
            self.cursor.fetch_add(skipped, Ordering::Relaxed);
        }
        Some(found)
    }

    fn power_of_two(&self, set: &BackendSet, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let n = set.backends.len();
        let candidates: [usize; 2] = [
            (random_u64() % n as u64) as usize,
            (random_u64() % n as u64) as usize,
        ];
        let load = |i: usize| {
            // Compare in-flight per unit of weight without division.
            (
                set.states[i].in_flight.load(Ordering::Relaxed) as u64,
                u64::from(set.backends[i].weight),
            )
        };
        let better = |a: usize, b: usize| {
            let ((la, wa), (lb, wb)) = (load(a), load(b));
            if la * wb <= lb * wa { a } else { b }
        };
        match (usable(candidates[0]), usable(candidates[1])) {
            (true, true) => Some(better(candidates[0], candidates[1])),
            (true, false) => Some(candidates[0]),
            (false, true) => Some(candidates[1]),
            // Both unusable: fall back to the best usable one.
            (false, false) => self.least_connections(set, usable),
        }
    }

    fn least_connections(&self, set: &BackendSet, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let n = set.backends.len();
        // Start at a rotating offset so ties spread over the backends.
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<(usize, u64, u64)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if !usable(i) {
                continue;
            }
            let load = set.states[i].in_flight.load(Ordering::Relaxed) as u64;
            let weight = u64::from(set.backends[i].weight);
            match best {
                Some((_, bl, bw)) if load * bw >= bl * weight => {}
                _ => best = Some((i, load, weight)),
            }
        }
        best.map(|(i, _, _)| i)
    }

    /// The backend a key maps to on the ring, ignoring health (for tests and tools).
    pub fn ring_owner(&self, key: &[u8]) -> Option<Backend> {
        let set = self.set.load();
        let i = ring_walk(&set, crc32(key), |_| true)?;
        set.backends.get(i).cloned()
    }

    /// Each current backend with a handle on its health state (for active checks,
    /// which must keep probing the right backend while the set changes).
    pub(crate) fn probe_targets(&self) -> Vec<(Backend, ProbeTarget)> {
        let set = self.set.load();
        set.backends
            .iter()
            .cloned()
            .zip(set.states.iter().map(|s| ProbeTarget(s.clone())))
            .collect()
    }
}

/// A backend's health state as seen by active health checks.
#[derive(Debug, Clone)]
pub(crate) struct ProbeTarget(Arc<BackendState>);

impl ProbeTarget {
    /// Record a probe result with `rise`/`fall` thresholds; returns the new up/down
    /// state when this result changed it.
    pub(crate) fn record(&self, success: bool, rise: u32, fall: u32) -> Option<bool> {
        let s = &self.0;
        let up = s.up.load(Ordering::Relaxed);
        if success {
            s.probe_failures.store(0, Ordering::Relaxed);
            let n = s
                .probe_successes
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            if !up && n >= rise {
                s.up.store(true, Ordering::Relaxed);
                return Some(true);
            }
        } else {
            s.probe_successes.store(0, Ordering::Relaxed);
            let n = s
                .probe_failures
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            if up && n >= fall {
                s.up.store(false, Ordering::Relaxed);
                return Some(false);
            }
        }
        None
    }
}

/// What [`LoadBalancer::update`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetChange {
    /// Addresses that joined.
    pub added: Vec<SocketAddress>,
    /// Addresses that left.
    pub removed: Vec<SocketAddress>,
}

/// Build a backend set; a backend whose address appears in `carried` takes over that
/// state.
fn build_set(
    backends: Vec<Backend>,
    policy: Policy,
    carried: &[(&Backend, &Arc<BackendState>)],
) -> Result<BackendSet> {
    if let Some(b) = backends.iter().find(|b| b.weight == 0) {
        return Err(Error::explain(
            ErrorKind::Config,
            ErrorSource::Internal,
            format!("backend {} has weight 0: weights are at least 1", b.address),
        ));
    }
    let total_weight: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    let wrr_order = if policy == Policy::WeightedRoundRobin {
        if total_weight > MAX_POINTS {
            return Err(too_many("weights", total_weight));
        }
        smooth_weighted_order(&backends)
    } else {
        Vec::new()
    };
    let ring = match policy {
        Policy::Consistent { points } => {
            let n = total_weight * u64::from(points.max(1));
            if n > MAX_POINTS {
                return Err(too_many("ring points", n));
            }
            ketama_ring(&backends, points.max(1))
        }
        _ => Vec::new(),
    };
    let states = backends
        .iter()
        .map(|b| {
            carried
                .iter()
                .find(|(old, _)| old.address == b.address)
                .map_or_else(
                    || BackendState::new_up(b.address.clone()),
                    |(_, s)| Arc::clone(s),
                )
        })
        .collect();
    Ok(BackendSet {
        backends,
        states,
        wrr_order,
        ring,
    })
}

/// The first usable backend on the ring at or after `hash` (wrapping).
fn ring_walk(set: &BackendSet, hash: u32, usable: impl Fn(usize) -> bool) -> Option<usize> {
    let len = set.ring.len();
    if len == 0 {
        return None;
    }
    let start = set.ring.partition_point(|&(point, _)| point < hash);
    (0..len)
        .map(|k| set.ring[(start + k) % len].1 as usize)
        .find(|&i| usable(i))
}

fn too_many(what: &str, n: u64) -> Box<Error> {
    Error::explain(
        ErrorKind::Config,
        ErrorSource::Internal,
        format!("{n} {what} in one upstream group: at most {MAX_POINTS}"),
    )
}

/// nginx's smooth weighted round robin, unrolled into the order of one full cycle
/// (`sum(weights)` picks): every backend appears `weight` times, spread out.
fn smooth_weighted_order(backends: &[Backend]) -> Vec<u32> {
    let total: i64 = backends.iter().map(|b| i64::from(b.weight)).sum();
    let mut current = vec![0i64; backends.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, b) in backends.iter().enumerate() {
            current[i] += i64::from(b.weight);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        order.push(best as u32);
    }
    order
}

/// The Ketama ring with nginx's point layout (`hash ... consistent`): for a backend
/// written `host:port`, the base is CRC32 of `host`, a NUL byte, `port`; each point is
/// the CRC32 of the base continued with the previous point's four little-endian bytes
/// (starting from 0); `points × weight` points per backend; sorted, duplicates dropped
/// (the first one kept).
fn ketama_ring(backends: &[Backend], points: u32) -> Vec<(u32, u32)> {
    let mut ring = Vec::new();
    for (i, b) in backends.iter().enumerate() {
        let server = b.address.to_string();
        let (host, port) = split_server(&server);
        let mut base = Crc32::new();
        base.update(host.as_bytes());
        base.update(&[0]);
        base.update(port.as_bytes());
        let mut prev: u32 = 0;
        for _ in 0..u64::from(b.weight) * u64::from(points) {
            let mut c = base.clone();
            c.update(&prev.to_le_bytes());
            let hash = c.finish();
            ring.push((hash, i as u32));
            prev = hash;
        }
    }
    ring.sort_by_key(|&(hash, _)| hash);
    ring.dedup_by_key(|&mut (hash, _)| hash);
    ring
}

/// `host:port` → (`host`, `port`); `unix:/path` → (`/path`, ``) — as nginx splits a
/// `server` string for hashing.
fn split_server(server: &str) -> (&str, &str) {
    if let Some(path) = server.strip_prefix("unix:") {
        return (path, "");
    }
    match server.rfind(':') {
        Some(i) if server[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            (&server[..i], &server[i + 1..])
        }
        _ => (server, ""),
    }
}

/// CRC-32 (IEEE, reflected, as zlib and nginx's `ngx_crc32`).
#[derive(Clone)]
struct Crc32(u32);

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

impl Crc32 {
    fn new() -> Self {
        Crc32(0xFFFF_FFFF)
    }

    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = CRC_TABLE[((self.0 ^ u32::from(b)) & 0xFF) as usize] ^ (self.0 >> 8);
        }
    }

    fn finish(&self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

/// CRC-32 of `data` (the key hash of consistent hashing).
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(data);
    c.finish()
}

/// A fast per-thread pseudo-random generator (xorshift64*), seeded from the clock and
/// the thread: for spreading load, not for anything secret.
fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let id = &t as *const u64 as u64;
            (t ^ id.rotate_left(32)) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(weights: &[u32]) -> Vec<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Backend {
                address: format!("127.0.0.1:{}", 8001 + i)
                    .as_str()
                    .to_peer_address()
                    .unwrap(),
                weight: w,
            })
            .collect()
    }

    fn counts(lb: &LoadBalancer, picks: usize) -> Vec<usize> {
        let mut c = vec![0; lb.backends().len()];
        for _ in 0..picks {
            c[lb.pick(None, &[]).unwrap().index] += 1;
        }
        c
    }

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

    #[test]
    fn round_robin_is_exact_over_10000_picks() {
        let lb = LoadBalancer::new(backends(&[1, 1, 1, 1]), Policy::RoundRobin).unwrap();
        assert_eq!(counts(&lb, 10_000), [2500; 4]);
    }

    #[test]
    fn smooth_weighted_round_robin_follows_weights_exactly_and_spreads() {
        let lb = LoadBalancer::new(backends(&[5, 1, 1]), Policy::WeightedRoundRobin).unwrap();
        // nginx's documented example: a a b a c a a.
        let first: Vec<usize> = (0..7).map(|_| lb.pick(None, &[]).unwrap().index).collect();
        assert_eq!(first, [0, 0, 1, 0, 2, 0, 0]);
        let lb = LoadBalancer::new(backends(&[3, 2, 5]), Policy::WeightedRoundRobin).unwrap();
        assert_eq!(counts(&lb, 10_000), [3000, 2000, 5000]);
    }

    #[test]
    fn random_is_uniform_within_eight_percent() {
        let lb = LoadBalancer::new(backends(&[1, 1, 1, 1]), Policy::Random).unwrap();
        for c in counts(&lb, 10_000) {
            assert!((2300..=2700).contains(&c), "{c}");
        }
    }

    #[test]
    fn least_loaded_prefers_idle_backends() {
        let lb = LoadBalancer::new(backends(&[1, 1]), Policy::LeastLoaded).unwrap();
        let busy: Vec<_> = (0..5).map(|_| lb.pick(None, &[1]).unwrap()).collect();
        assert!(busy.iter().all(|p| p.index == 0));
        // Backend 0 has 5 in flight, backend 1 none: two random choices pick 1 unless
        // both land on 0.
        let picks = counts(&lb, 1000);
        assert!(picks[1] > 600, "{picks:?}");
        drop(busy);
        assert_eq!(lb.in_flight(0), 0);
    }

    #[test]
    fn least_connections_balances_by_weight() {
        let lb = LoadBalancer::new(backends(&[1, 3]), Policy::LeastConnections).unwrap();
        let held: Vec<_> = (0..8).map(|_| lb.pick(None, &[]).unwrap()).collect();
        assert_eq!(lb.in_flight(0), 2);
        assert_eq!(lb.in_flight(1), 6);
        drop(held);
    }

    #[test]
    fn ketama_remaps_about_a_tenth_when_one_of_ten_leaves() {
        let all = backends(&[1; 10]);
        let lb = LoadBalancer::new(all.clone(), Policy::Consistent { points: 160 }).unwrap();
        let fewer =
            LoadBalancer::new(all[..9].to_vec(), Policy::Consistent { points: 160 }).unwrap();
        let keys: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
        let moved = keys
            .iter()
            .filter(|k| lb.ring_owner(k.as_bytes()) != fewer.ring_owner(k.as_bytes()))
            .count();
        // Only the removed backend's keys move: about 1/10 of them (within ±3 points).
        assert!((700..=1300).contains(&moved), "{moved} of 10000 keys moved");
        // And every key that moved belonged to the removed backend.
        for k in &keys {
            let before = lb.ring_owner(k.as_bytes()).unwrap();
            if before != all[9] {
                assert_eq!(Some(before), fewer.ring_owner(k.as_bytes()));
            }
        }
    }

    #[test]
    fn ketama_skips_unhealthy_and_tried_backends() {
        let lb =
            LoadBalancer::new(backends(&[1, 1, 1]), Policy::Consistent { points: 160 }).unwrap();
        let owner = lb.pick(Some(b"key"), &[]).unwrap().index;
        let other = lb.pick(Some(b"key"), &[owner]).unwrap().index;
        assert_ne!(owner, other, "a retry goes to another backend");
        lb.set_healthy(owner, false);
        assert_eq!(lb.pick(Some(b"key"), &[]).unwrap().index, other);
    }

    #[test]
    fn crc32_matches_the_standard() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(split_server("10.0.0.1:80"), ("10.0.0.1", "80"));
        assert_eq!(split_server("unix:/tmp/s"), ("/tmp/s", ""));
        assert_eq!(split_server("[::1]:8080"), ("[::1]", "8080"));
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
    fn passive_checks_eject_after_consecutive_failures_and_probe_after() {
        let lb = LoadBalancer::new(backends(&[1, 1]), Policy::RoundRobin)
            .unwrap()
            .with_ejection(Ejection {
                failures: 3,
                duration: Duration::from_millis(30),
            });
        assert!(!lb.report(0, false));
        assert!(!lb.report(0, true), "a success resets the count");
        assert!(!lb.report(0, false));
        assert!(!lb.report(0, false));
        assert!(lb.report(0, false), "the third consecutive failure ejects");
        assert!(!lb.is_healthy(0));
        assert!((0..10).all(|_| lb.pick(None, &[]).unwrap().index == 1));
        std::thread::sleep(Duration::from_millis(40));
        assert!(lb.is_healthy(0), "back for a probe");
        assert!(lb.report(0, false), "a failed probe ejects again at once");
    }

    #[test]
    fn zero_weights_are_refused() {
        assert!(LoadBalancer::new(backends(&[1, 0]), Policy::WeightedRoundRobin).is_err());
    }
}
