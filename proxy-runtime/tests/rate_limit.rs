//! The per-key rate limiter as the proxy uses it: exact 429 counts at a known rate,
//! a key table that stays bounded under a flood of distinct keys, and one exact budget
//! shared by many threads.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use proxy_runtime::ratelimit::{
    Decision, LimitOptions, RateLimiter, parse_rate, retry_after_secs, too_many_requests,
};

/// The status a proxy would send for one request: 200 when allowed, else the 429 head.
fn status_of(decision: Decision) -> u16 {
    match decision {
        Decision::Allowed(_permit) => 200,
        Decision::Limited { retry_after } => too_many_requests(retry_after).status.as_u16(),
    }
}

#[test]
fn exactly_the_burst_passes_at_one_instant_and_the_rest_get_429() {
    let limiter = RateLimiter::new(parse_rate("10/s").unwrap(), LimitOptions::default());
    let now = Instant::now();
    let statuses: Vec<u16> = (0..25)
        .map(|_| status_of(limiter.check_at(b"198.51.100.4", now)))
        .collect();
    assert_eq!(statuses.iter().filter(|&&s| s == 200).count(), 10);
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 15);
    assert!(
        statuses[..10].iter().all(|&s| s == 200),
        "the first ten pass"
    );

    let Decision::Limited { retry_after } = limiter.check_at(b"198.51.100.4", now) else {
        panic!("the bucket is empty");
    };
    assert_eq!(retry_after, Duration::from_millis(100));
    let head = too_many_requests(retry_after);
    assert_eq!(head.header_str("retry-after"), Some("1"));

    // One second later the bucket is full again, and no fuller.
    let later = now + Duration::from_secs(1);
    let passed = (0..25)
        .filter(|_| limiter.check_at(b"198.51.100.4", later).is_allowed())
        .count();
    assert_eq!(passed, 10);
}

#[test]
fn a_minute_of_saturating_traffic_gets_the_burst_plus_the_rate() {
    let options = LimitOptions {
        burst: Some(5),
        ..LimitOptions::default()
    };
    let limiter = RateLimiter::new(parse_rate("100/min").unwrap(), options);
    let start = Instant::now();
    let mut passed = 0;
    let mut refused = 0;
    // Ten attempts every 100 ms from 0 s to 60 s inclusive.
    for tick in 0..=600 {
        let now = start + Duration::from_millis(100 * tick);
        for _ in 0..10 {
            match limiter.check_at(b"api-key-42", now) {
                Decision::Allowed(_) => passed += 1,
                Decision::Limited { retry_after } => {
                    assert!(retry_after <= Duration::from_millis(600));
                    assert_eq!(retry_after_secs(retry_after), 1);
                    refused += 1;
                }
            }
        }
    }
    // 5 at once, then one every 600 ms for 60 s.
    assert_eq!(passed, 5 + 100);
    assert_eq!(refused, 6010 - 105);
}

#[test]
fn a_million_distinct_keys_stay_within_max_keys() {
    let options = LimitOptions {
        max_keys: 10_000,
        ..LimitOptions::default()
    };
    let limiter = RateLimiter::new(parse_rate("5/s").unwrap(), options);
    let now = Instant::now();
    let started = Instant::now();
    for i in 0..1_000_000u32 {
        let key = i.to_be_bytes();
        assert!(limiter.check_at(&key, now).is_allowed(), "new key {i}");
    }
    let elapsed = started.elapsed();
    let remembered = limiter.len();
    assert!(remembered <= 10_000, "{remembered} keys remembered");
    assert!(remembered >= 9_000, "the table is used: {remembered}");
    // The most recent keys are remembered: the last one has spent a token.
    let last = 999_999u32.to_be_bytes();
    let passed = (0..10)
        .filter(|_| limiter.check_at(&last, now).is_allowed())
        .count();
    assert_eq!(passed, 4);
    eprintln!("1,000,000 keys checked in {elapsed:?}");
}

#[test]
fn threads_share_one_exact_budget() {
    let limiter = RateLimiter::new(parse_rate("100/s").unwrap(), LimitOptions::default());
    let now = Instant::now();
    let threads = 4;
    let barrier = Barrier::new(threads);
    let per_thread: Vec<(usize, usize)> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let mut shared = 0;
                    let mut own = 0;
                    for i in 0..1000u32 {
                        // Everyone hammers one key, and eight keys in turn.
                        if limiter.check_at(b"shared", now).is_allowed() {
                            shared += 1;
                        }
                        if limiter.check_at(&(i % 8).to_be_bytes(), now).is_allowed() {
                            own += 1;
                        }
                    }
                    (shared, own)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let shared: usize = per_thread.iter().map(|p| p.0).sum();
    let own: usize = per_thread.iter().map(|p| p.1).sum();
    assert_eq!(shared, 100);
    assert_eq!(own, 8 * 100);
}

#[test]
fn threads_never_exceed_the_concurrency_limit() {
    let options = LimitOptions {
        concurrency: Some(3),
        ..LimitOptions::default()
    };
    let limiter = RateLimiter::new(parse_rate("1000/s").unwrap(), options);
    let now = Instant::now();
    let threads = 8;
    let holding = Barrier::new(threads);
    let admitted: usize = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let decision = limiter.check_at(b"uploader", now);
                    // Hold the permit until everyone has asked.
                    holding.wait();
                    usize::from(decision.is_allowed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(admitted, 3);
    // Every permit was dropped with its thread: the slots are free again.
    let again: Vec<Decision> = (0..5).map(|_| limiter.check_at(b"uploader", now)).collect();
    assert_eq!(again.iter().filter(|d| d.is_allowed()).count(), 3);
}
