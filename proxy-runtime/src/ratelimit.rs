//! Per-key rate limiting: "at most 100 requests per second per client IP", checked on
//! every request, in constant memory however many distinct keys arrive.
//!
//! A [`RateLimiter`] is built from a [`Rate`] (`"100/s"`, parsed by [`parse_rate`]) and
//! [`LimitOptions`]. Each request asks [`RateLimiter::check`] with a key of any bytes
//! (a client address, a header value, a route name) and gets a [`Decision`]: either a
//! [`Permit`] to go on, or `Limited` with the time after which a retry would pass. The
//! proxy answers a limited request with [`too_many_requests`] (429 and `Retry-After`).
//!
//! ```
//! use std::time::Instant;
//! use proxy_runtime::ratelimit::{Decision, LimitOptions, RateLimiter, parse_rate};
//!
//! let limiter = RateLimiter::new(parse_rate("10/s").unwrap(), LimitOptions::default());
//! let now = Instant::now();
//! let allowed = (0..25)
//!     .filter(|_| limiter.check_at(b"203.0.113.7", now).is_allowed())
//!     .count();
//! assert_eq!(allowed, 10);
//! match limiter.check_at(b"203.0.113.7", now) {
//!     Decision::Allowed(_permit) => unreachable!("the bucket is empty"),
//!     Decision::Limited { retry_after } => {
//!         let head = proxy_runtime::ratelimit::too_many_requests(retry_after);
//!         assert_eq!(head.status, 429);
//!         assert_eq!(head.header_str("retry-after"), Some("1"));
//!     }
//! }
//! ```
//!
//! # Algorithm
//!
//! The limiter is a token bucket (capacity `burst`, refilled continuously at
//! `count / per`) computed the GCRA way: instead of a token count and a refill time,
//! each key keeps one number, its *theoretical arrival time* (TAT) — when its bucket
//! will be full again. A request at `now` passes if `TAT - now` is at most
//! `(burst - 1) × interval`, and then pushes the TAT one `interval` (`per / count`)
//! further. Nothing refills in the background; an idle key costs nothing.
//!
//! The arithmetic is exact integers: time is counted in ticks of `1 / k` nanosecond,
//! where `k = count / gcd(count, per in ns)`, so the interval is a whole number of
//! ticks even for rates like `3/s`. A TAT is stored as whole nanoseconds since the
//! limiter was created plus a remainder in ticks. There is no rounding drift: `3/s`
//! allows exactly 300 requests in 100 s, not 301.
//!
//! # Memory
//!
//! Keys are not stored. The table holds a 64-bit hash of each key, computed with a
//! hasher keyed randomly per limiter (SipHash via [`RandomState`]), so an attacker
//! cannot craft a key that collides with a victim's and spend its budget; accidental
//! collisions among 100,000 keys have odds of about 1 in 10⁹. Every entry therefore has
//! the same size whatever the key: the hash, a 24-byte state, the LRU links and a hash
//! table slot — about 90 to 100 bytes measured (100,000 keys take about 9 MB), plus
//! about 32 bytes for the in-flight counter when `concurrency` is set. The table starts
//! empty and grows with the keys it sees.
//!
//! The table is split into up to 64 shards, each behind its own mutex and holding an
//! equal share of `max_keys`, so checks on different keys rarely wait for each other.
//! When a shard is full, its least recently seen key is forgotten. A forgotten key
//! starts again with a full bucket: under a flood of new keys the limiter errs on the
//! side of allowing, never of refusing a client it no longer remembers. (Eviction is
//! least-recently-used per shard, a close approximation of a global LRU.)
//!
//! # Concurrency
//!
//! With [`LimitOptions::concurrency`] set, each key also counts its requests in flight:
//! a [`Permit`] holds one slot and gives it back when dropped. A request over the limit
//! is `Limited` with a `retry_after` of one second (requests in flight end at no
//! predictable time, and `Retry-After` has whole-second resolution), and spends no
//! token. The counter lives in an `Arc` shared by the table entry and its permits, and
//! an entry with requests in flight is never evicted (eviction passes over it), so a
//! full table cannot make the limiter forget requests that are still running. If a
//! shard is full of such entries it grows past its share until they finish; that excess
//! is bounded by the number of requests in flight.

use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http::{HeaderValue, StatusCode, header};
use lru::LruCache;
pub use proxy_syntax::rate::{Rate, parse_rate};

use crate::http::ResponseHeader;

/// The default bound on remembered keys ([`LimitOptions::max_keys`]).
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// What a request over the concurrency limit is told to wait.
const CONCURRENCY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// At most this many shards: enough for a many-core server to rarely contend.
const MAX_SHARDS: usize = 64;

/// Fewer shards for small tables, so each shard's LRU still sees enough keys to be a
/// fair approximation of a global one.
const MIN_KEYS_PER_SHARD: usize = 32;

/// When making room, pass over at most this many entries with requests in flight before
/// letting the shard grow: bounds the work of one check.
const MAX_BUSY_SKIPS: usize = 8;

/// How a [`RateLimiter`] behaves beyond its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitOptions {
    /// Bucket capacity: how many requests may arrive at once after a quiet spell
    /// (default: the rate's count; 0 is taken as 1).
    pub burst: Option<u32>,
    /// Most requests in flight per key (default: no limit; 0 is taken as 1).
    pub concurrency: Option<u32>,
    /// Most keys remembered at once (default [`DEFAULT_MAX_KEYS`]; 0 is taken as 1).
    pub max_keys: usize,
}

impl Default for LimitOptions {
    fn default() -> Self {
        LimitOptions {
            burst: None,
            concurrency: None,
            max_keys: DEFAULT_MAX_KEYS,
        }
    }
}

/// The outcome of [`RateLimiter::check`].
#[derive(Debug)]
#[must_use = "a limited request should be answered with 429"]
pub enum Decision {
    /// Go on; keep the permit until the request is done (it holds a concurrency slot
    /// when [`LimitOptions::concurrency`] is set).
    Allowed(Permit),
    /// Over the limit: answer 429 (see [`too_many_requests`]).
    Limited {
        /// How long until a retry would pass: the time until the next token, or one
        /// second when the concurrency limit was hit.
        retry_after: Duration,
    },
}

impl Decision {
    /// Whether the request may go on.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed(_))
    }

    /// The wait before a retry, if limited.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Decision::Allowed(_) => None,
            Decision::Limited { retry_after } => Some(*retry_after),
        }
    }
}

/// Leave to run one request; gives its concurrency slot back when dropped.
#[derive(Debug)]
#[must_use = "dropping the permit ends the request's concurrency slot at once"]
pub struct Permit {
    slot: Option<Arc<AtomicU32>>,
}

impl Permit {
    /// Take a slot of `in_flight` (if the key counts them).
    fn occupy(in_flight: Option<&Arc<AtomicU32>>) -> Self {
        if let Some(counter) = in_flight {
            counter.fetch_add(1, Ordering::AcqRel);
        }
        Permit {
            slot: in_flight.cloned(),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(counter) = &self.slot {
            counter.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Limits requests per key to a [`Rate`], with bursts, an optional concurrency limit
/// and a bounded table of keys. Shared between threads by reference (`Arc`).
pub struct RateLimiter {
    shards: Box<[Shard]>,
    /// `shards.len() - 1` (a power of two minus one).
    shard_mask: u64,
    hasher: RandomState,
    schedule: Schedule,
    /// Time zero of every stored TAT.
    epoch: Instant,
    rate: Rate,
    burst: u32,
    concurrency: Option<u32>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("concurrency", &self.concurrency)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// A limiter allowing `rate` per key.
    ///
    /// A hand-built rate that [`parse_rate`] would refuse is raised to something
    /// usable rather than a panic: a count of 0 becomes 1 and a zero period becomes
    /// one nanosecond.
    pub fn new(rate: Rate, options: LimitOptions) -> Self {
        let rate = Rate {
            count: rate.count.max(1),
            per: rate.per.max(Duration::from_nanos(1)),
        };
        let burst = options.burst.unwrap_or(rate.count).max(1);
        let max_keys = options.max_keys.max(1);
        let shard_count = shard_count(max_keys);
        let shards = (0..shard_count)
            .map(|i| Shard {
                table: Mutex::new(LruCache::unbounded_with_hasher(
                    BuildHasherDefault::default(),
                )),
                // Shares that add up to exactly `max_keys`.
                capacity: max_keys / shard_count + usize::from(i < max_keys % shard_count),
            })
            .collect();
        RateLimiter {
            shards,
            shard_mask: shard_count as u64 - 1,
            hasher: RandomState::new(),
            schedule: Schedule::new(rate, burst),
            epoch: Instant::now(),
            rate,
            burst,
            concurrency: options.concurrency.map(|c| c.max(1)),
        }
    }

    /// Check (and count) one request for `key`, now.
    pub fn check(&self, key: &[u8]) -> Decision {
        self.check_at(key, Instant::now())
    }

    /// Check (and count) one request for `key` arriving at `now`: the clock is a
    /// parameter so tests can be exact. Instants before the limiter was created count
    /// as its creation time.
    pub fn check_at(&self, key: &[u8], now: Instant) -> Decision {
        let hash = self.hasher.hash_one(key);
        // The low bits index buckets inside the shard's hash table and the top seven
        // are its tags: pick the shard from bits in between, independent of both.
        let shard = &self.shards[((hash >> 32) & self.shard_mask) as usize];
        let now_ns =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);

        let mut table = shard.lock();
        if let Some(state) = table.get_mut(&hash) {
            return self.decide(state, now_ns);
        }
        make_room(&mut table, shard.capacity);
        let mut state = KeyState {
            tat: Tat::default(),
            in_flight: self.concurrency.map(|_| Arc::new(AtomicU32::new(0))),
        };
        let decision = self.decide(&mut state, now_ns);
        table.push(hash, state);
        decision
    }

    /// The rate (after raising a zero count or period, see [`RateLimiter::new`]).
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// The bucket capacity.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// How many keys are remembered now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.lock().is_empty())
    }

    /// The concurrency check, then the rate check; a request refused by either spends
    /// nothing.
    fn decide(&self, state: &mut KeyState, now_ns: u64) -> Decision {
        let slot = match (self.concurrency, &state.in_flight) {
            (Some(limit), Some(counter)) => {
                // Slots are only taken under the shard lock (which we hold), and only
                // given back elsewhere: the count cannot rise between this load and
                // the increment in `Permit::occupy`.
                if counter.load(Ordering::Acquire) >= limit {
                    return Decision::Limited {
                        retry_after: CONCURRENCY_RETRY_AFTER,
                    };
                }
                Some(counter)
            }
            _ => None,
        };
        match self.schedule.admit(&mut state.tat, now_ns) {
            Ok(()) => Decision::Allowed(Permit::occupy(slot)),
            Err(retry_after) => Decision::Limited { retry_after },
        }
    }
}

/// The time in whole seconds for a `Retry-After` header: rounded up (waiting less than
/// `d` would be refused again), and at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs()
        .saturating_add(u64::from(d.subsec_nanos() > 0))
        .max(1)
}

/// The head of a `429 Too Many Requests` answer: `Retry-After` in whole seconds (see
/// [`retry_after_secs`]) and an empty body (`Content-Length: 0`). The DSL's routes answer
/// with a short text body instead (`dsl::limits`).
pub fn too_many_requests(retry_after: Duration) -> ResponseHeader {
    let mut head = ResponseHeader::new(StatusCode::TOO_MANY_REQUESTS, 2);
    // Names and values are valid by construction: the infallible path.
    let headers = head.fields_mut();
    headers.append_lower(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after_secs(retry_after)),
    );
    headers.append_lower(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    head
}

/// How many shards for `max_keys`: a power of two, at most [`MAX_SHARDS`], with at
/// least [`MIN_KEYS_PER_SHARD`] keys each when `max_keys` allows.
fn shard_count(max_keys: usize) -> usize {
    let wanted = (max_keys / MIN_KEYS_PER_SHARD).clamp(1, MAX_SHARDS);
    1 << wanted.ilog2()
}

/// Forget least recently seen keys until `table` has room for one more, passing over
/// (and refreshing) those with requests in flight.
fn make_room(table: &mut KeyTable, capacity: usize) {
    let mut skipped = 0;
    while table.len() >= capacity {
        let Some((&hash, state)) = table.peek_lru() else {
            break;
        };
        if state.is_busy() {
            if skipped == MAX_BUSY_SKIPS {
                break;
            }
            skipped += 1;
            table.promote(&hash);
        } else {
            table.pop_lru();
        }
    }
}

/// Key hash → state, least recently seen first out.
type KeyTable = LruCache<u64, KeyState, BuildHasherDefault<PreHashed>>;

/// One share of the key table. Aligned to a cache line so that locking one shard does
/// not slow down a neighbour's.
#[repr(align(64))]
struct Shard {
    table: Mutex<KeyTable>,
    /// Keys this shard may remember (it may exceed this only with requests in flight).
    capacity: usize,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, KeyTable> {
        // A panic under the lock leaves at worst one key's state stale: keep going.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the limiter remembers about one key.
struct KeyState {
    tat: Tat,
    /// Requests in flight, when the limiter counts them; shared with their permits.
    in_flight: Option<Arc<AtomicU32>>,
}

impl KeyState {
    fn is_busy(&self) -> bool {
        self.in_flight
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Acquire) > 0)
    }
}

/// A theoretical arrival time: `ns` nanoseconds plus `frac` ticks after the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tat {
    ns: u64,
    /// Always less than the schedule's ticks per nanosecond.
    frac: u32,
}

/// The GCRA constants of a rate and burst, in ticks.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// Ticks per nanosecond: `count / gcd(count, per_ns)`, at most `u32::MAX`.
    ticks_per_ns: u128,
    /// Ticks between two requests at the steady rate (`per / count`), a whole number.
    interval: u128,
    /// How far ahead of now a TAT may be for a request to pass: `(burst - 1)` intervals.
    tolerance: u128,
}

impl Schedule {
    /// The schedule of `rate` (count ≥ 1, period > 0) with `burst` (≥ 1).
    fn new(rate: Rate, burst: u32) -> Self {
        let per_ns = rate.per.as_nanos().max(1);
        let count = u128::from(rate.count.max(1));
        let common = gcd(per_ns, count);
        let interval = per_ns / common;
        Schedule {
            ticks_per_ns: count / common,
            interval,
            tolerance: interval.saturating_mul(u128::from(burst.max(1) - 1)),
        }
    }

    /// Admit one request at `now_ns` (moving `tat` on), or say how long to wait.
    fn admit(&self, tat: &mut Tat, now_ns: u64) -> Result<(), Duration> {
        let k = self.ticks_per_ns;
        let now = u128::from(now_ns) * k;
        // A TAT in the past means a full bucket: count from now.
        let at = (u128::from(tat.ns) * k + u128::from(tat.frac)).max(now);
        let ahead = at - now;
        if ahead > self.tolerance {
            // The next token comes when the TAT is back within the tolerance.
            return Err(duration_from_nanos((ahead - self.tolerance).div_ceil(k)));
        }
        let next = at.saturating_add(self.interval);
        *tat = match u64::try_from(next / k) {
            Ok(ns) => Tat {
                ns,
                // Less than `k`, which fits in a u32.
                frac: (next % k) as u32,
            },
            // Over 584 years ahead: the key stays limited for the limiter's lifetime.
            Err(_) => Tat {
                ns: u64::MAX,
                frac: 0,
            },
        };
        Ok(())
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A duration of `ns` nanoseconds, saturating at `u64::MAX` seconds.
fn duration_from_nanos(ns: u128) -> Duration {
    let secs = u64::try_from(ns / 1_000_000_000).unwrap_or(u64::MAX);
    Duration::new(secs, (ns % 1_000_000_000) as u32)
}

/// Passes a key that is already a keyed hash straight through to the table.
#[derive(Debug, Default, Clone, Copy)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Unused for `u64` keys (they call `write_u64`); fold anything else in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: &str, options: LimitOptions) -> RateLimiter {
        RateLimiter::new(parse_rate(rate).unwrap(), options)
    }

    fn with_burst(burst: u32) -> LimitOptions {
        LimitOptions {
            burst: Some(burst),
            ..LimitOptions::default()
        }
    }

    /// Ask `attempts` times for `key` at `now`; how many passed.
    fn allowed(limiter: &RateLimiter, key: &[u8], now: Instant, attempts: usize) -> usize {
        (0..attempts)
            .filter(|_| limiter.check_at(key, now).is_allowed())
            .count()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn spends_exactly_the_burst_at_one_instant() {
        let l = limiter("10/s", LimitOptions::default());
        let t0 = Instant::now();
        assert_eq!(allowed(&l, b"k", t0, 25), 10);
        assert_eq!(l.burst(), 10);
    }

    #[test]
    fn refills_half_the_bucket_after_half_a_period() {
        let l = limiter("10/s", LimitOptions::default());
        let t0 = Instant::now();
        assert_eq!(allowed(&l, b"k", t0, 10), 10);
        assert_eq!(allowed(&l, b"k", t0 + ms(500), 100), 5);
        assert_eq!(allowed(&l, b"k", t0 + ms(599), 100), 0);
        assert_eq!(allowed(&l, b"k", t0 + ms(600), 100), 1);
    }

    #[test]
    fn never_refills_past_the_burst() {
        let l = limiter("10/s", with_burst(4));
        let t0 = Instant::now();
        assert_eq!(allowed(&l, b"k", t0, 100), 4);
        assert_eq!(allowed(&l, b"k", t0 + Duration::from_secs(3600), 100), 4);
    }

    #[test]
    fn a_burst_of_one_spaces_requests_evenly() {
        let l = limiter("10/s", with_burst(1));
        let t0 = Instant::now();
        for step in 0..20 {
            let at = t0 + ms(100 * step);
            assert_eq!(allowed(&l, b"k", at, 3), 1, "at step {step}");
            assert!(!l.check_at(b"k", at + ms(99)).is_allowed());
        }
    }

    #[test]
    fn retry_after_is_the_time_until_the_next_token() {
        let l = limiter("10/s", LimitOptions::default());
        let t0 = Instant::now();
        assert_eq!(allowed(&l, b"k", t0, 10), 10);
        assert_eq!(l.check_at(b"k", t0).retry_after(), Some(ms(100)));
        assert_eq!(l.check_at(b"k", t0 + ms(30)).retry_after(), Some(ms(70)));
        assert!(l.check_at(b"k", t0 + ms(100)).is_allowed());
        assert_eq!(l.check_at(b"k", t0 + ms(100)).retry_after(), Some(ms(100)));
    }

    #[test]
    fn retry_after_rounds_partial_nanoseconds_up() {
        // 3/µs: one request every 333⅓ ns.
        let rate = Rate {
            count: 3,
            per: Duration::from_micros(1),
        };
        let l = RateLimiter::new(rate, with_burst(1));
        let t0 = Instant::now();
        assert!(l.check_at(b"k", t0).is_allowed());
        let wait = l.check_at(b"k", t0).retry_after().unwrap();
        assert_eq!(wait, Duration::from_nanos(334));
        assert!(
            !l.check_at(b"k", t0 + Duration::from_nanos(333))
                .is_allowed()
        );
        assert!(l.check_at(b"k", t0 + wait).is_allowed());
    }

    #[test]
    fn uneven_intervals_stay_exact() {
        // Saturating traffic for 1 ms: rounding the 333⅓ ns interval to 333 ns would let
        // 3003 requests through instead of 3000.
        let rate = Rate {
            count: 3,
            per: Duration::from_micros(1),
        };
        let l = RateLimiter::new(rate, LimitOptions::default());
        let t0 = Instant::now();
        assert_eq!(allowed(&l, b"k", t0, 10), 3);
        let refilled: usize = (1..=1000)
            .map(|us| allowed(&l, b"k", t0 + Duration::from_micros(us), 10))
            .sum();
        assert_eq!(refilled, 3000);
    }

    #[test]
    fn a_limited_request_spends_nothing() {
        let l = limiter("1/s", LimitOptions::default());
        let t0 = Instant::now();
        assert!(l.check_at(b"k", t0).is_allowed());
        assert_eq!(allowed(&l, b"k", t0 + ms(500), 50), 0);
        assert!(l.check_at(b"k", t0 + ms(1000)).is_allowed());
    }

    #[test]
    fn distinct_keys_are_independent() {
        let l = limiter("2/s", LimitOptions::default());
        let t0 = Instant::now();
        assert_eq!(allowed(&l, b"10.0.0.1", t0, 5), 2);
        assert_eq!(allowed(&l, b"10.0.0.2", t0, 5), 2);
        assert_eq!(allowed(&l, b"", t0, 5), 2);
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn permits_hold_concurrency_slots_until_dropped() {
        let options = LimitOptions {
            concurrency: Some(2),
            ..LimitOptions::default()
        };
        let l = limiter("100/s", options);
        let t0 = Instant::now();
        let first = l.check_at(b"k", t0);
        let second = l.check_at(b"k", t0);
        assert!(first.is_allowed() && second.is_allowed());
        assert!(!l.check_at(b"k", t0).is_allowed());
        assert!(l.check_at(b"other", t0).is_allowed());
        drop(first);
        let third = l.check_at(b"k", t0);
        assert!(third.is_allowed());
        assert!(!l.check_at(b"k", t0).is_allowed());
        drop((second, third));
        assert_eq!(allowed(&l, b"k", t0, 2), 2);
    }

    #[test]
    fn the_concurrency_limit_asks_for_one_second_and_spends_no_token() {
        let options = LimitOptions {
            burst: Some(2),
            concurrency: Some(1),
            ..LimitOptions::default()
        };
        let l = limiter("1/h", options);
        let t0 = Instant::now();
        let held = l.check_at(b"k", t0);
        assert!(held.is_allowed());
        for _ in 0..5 {
            assert_eq!(
                l.check_at(b"k", t0).retry_after(),
                Some(Duration::from_secs(1))
            );
        }
        drop(held);
        // The refused requests took no token: the second one of the burst is left.
        assert!(l.check_at(b"k", t0).is_allowed());
        assert!(!l.check_at(b"k", t0).is_allowed());
    }

    #[test]
    fn forgotten_keys_start_with_a_full_bucket() {
        let options = LimitOptions {
            max_keys: 1,
            ..LimitOptions::default()
        };
        let l = limiter("3/h", options);
        let t0 = Instant::now();
        assert_eq!(allowed(&l, b"a", t0, 5), 3);
        assert_eq!(allowed(&l, b"b", t0, 5), 3);
        assert_eq!(l.len(), 1);
        // `a` was forgotten to make room for `b`: it is allowed again.
        assert_eq!(allowed(&l, b"a", t0, 5), 3);
    }

    #[test]
    fn keys_with_requests_in_flight_are_not_forgotten() {
        let options = LimitOptions {
            concurrency: Some(1),
            max_keys: 1,
            ..LimitOptions::default()
        };
        let l = limiter("100/s", options);
        let t0 = Instant::now();
        let running = l.check_at(b"a", t0);
        assert!(running.is_allowed());
        assert!(l.check_at(b"b", t0).is_allowed());
        assert_eq!(l.len(), 2, "`a` is busy: the table grows instead");
        assert!(
            !l.check_at(b"a", t0).is_allowed(),
            "a's slot is still counted"
        );
        drop(running);
        assert!(l.check_at(b"c", t0).is_allowed());
        assert_eq!(l.len(), 1, "idle keys are forgotten again");
    }

    #[test]
    fn the_table_holds_at_most_max_keys() {
        for max_keys in [1, 7, 100, 1000, 5000] {
            let options = LimitOptions {
                max_keys,
                ..LimitOptions::default()
            };
            let l = limiter("1/s", options);
            let t0 = Instant::now();
            for i in 0..(3 * max_keys as u32) {
                let _ = l.check_at(&i.to_be_bytes(), t0);
            }
            assert!(l.len() <= max_keys, "{} > {max_keys}", l.len());
            let shares: usize = l.shards.iter().map(|s| s.capacity).sum();
            assert_eq!(shares, max_keys);
        }
    }

    #[test]
    fn settings_that_allow_nothing_are_raised_to_one() {
        let rate = Rate {
            count: 0,
            per: Duration::ZERO,
        };
        let options = LimitOptions {
            burst: Some(0),
            concurrency: Some(0),
            max_keys: 0,
        };
        let l = RateLimiter::new(rate, options);
        let t0 = Instant::now();
        let permit = l.check_at(b"k", t0);
        assert!(permit.is_allowed());
        assert!(!l.check_at(b"k", t0).is_allowed());
        assert_eq!(l.burst(), 1);
        assert_eq!(l.rate().count, 1);
    }

    #[test]
    fn retry_after_secs_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(ms(1)), 1);
        assert_eq!(retry_after_secs(ms(1000)), 1);
        assert_eq!(retry_after_secs(ms(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
        assert_eq!(retry_after_secs(Duration::MAX), u64::MAX);
    }

    #[test]
    fn too_many_requests_says_when_to_retry() {
        let head = too_many_requests(ms(1200));
        assert_eq!(head.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(head.header_str(header::RETRY_AFTER), Some("2"));
        assert_eq!(head.header_str(header::CONTENT_LENGTH), Some("0"));
        let mut wire = bytes::BytesMut::new();
        head.write_h1(&mut wire);
        assert!(wire.starts_with(b"HTTP/1.1 429 Too Many Requests\r\n"));
    }

    #[test]
    fn key_state_stays_small() {
        // The per-key cost quoted in the module docs.
        assert!(std::mem::size_of::<KeyState>() <= 24);
        assert!(std::mem::size_of::<(u64, KeyState)>() <= 32);
    }
}
