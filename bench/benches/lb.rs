//! Selection cost per pick for each load-balancing policy, and the rate limiter's cost
//! per check.
//!
//! ```text
//! cargo bench -p proxy-bench --bench lb
//! ```
//!
//! * `lb/<policy>/<n>`: one `LoadBalancer::pick` (and the drop of its in-flight guard)
//!   over `n` healthy backends. Consistent hashing hashes a 16-byte key (CRC32) and
//!   binary-searches a ring of 160 points per backend.
//! * `lb/round_robin_one_down/16`: round robin with one backend marked down.
//! * `ratelimit/hot_key` and `ratelimit/100k_keys`: one `RateLimiter::check` on the same
//!   key, and over 100,000 distinct keys in turn (a table at its bound).

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};

use criterion::{Criterion, criterion_group, criterion_main};
use proxy_runtime::protocols::SocketAddress;
use proxy_runtime::ratelimit::{LimitOptions, RateLimiter, parse_rate};
use proxy_runtime::upstream::{Backend, LoadBalancer, Policy};

fn backends(n: usize) -> Vec<Backend> {
    (0..n)
        .map(|i| Backend {
            address: SocketAddress::Inet(SocketAddr::from((
                Ipv4Addr::new(10, 0, (i / 256) as u8, (i % 256) as u8),
                8080,
            ))),
            weight: 1 + (i % 3) as u32,
        })
        .collect()
}

fn picks(c: &mut Criterion) {
    let policies = [
        ("round_robin", Policy::RoundRobin),
        ("weighted_round_robin", Policy::WeightedRoundRobin),
        ("random", Policy::Random),
        ("least_loaded", Policy::LeastLoaded),
        ("least_connections", Policy::LeastConnections),
        ("consistent", Policy::Consistent { points: 160 }),
    ];
    let mut group = c.benchmark_group("lb");
    for n in [4usize, 16, 64] {
        for (name, policy) in policies {
            let lb = LoadBalancer::new(backends(n), policy).unwrap();
            let key = b"user-0123456789ab";
            group.bench_function(format!("{name}/{n}"), |b| {
                b.iter(|| {
                    let pick = lb.pick(Some(black_box(key)), &[]).unwrap();
                    black_box(pick.index)
                })
            });
        }
    }
    let lb = LoadBalancer::new(backends(16), Policy::RoundRobin).unwrap();
    lb.set_healthy(3, false);
    group.bench_function("round_robin_one_down/16", |b| {
        b.iter(|| black_box(lb.pick(None, &[]).unwrap().index))
    });
    group.finish();
}

fn limiter(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit");
    let limiter = RateLimiter::new(parse_rate("1000000000/s").unwrap(), LimitOptions::default());
    group.bench_function("hot_key", |b| {
        b.iter(|| black_box(limiter.check(black_box(b"203.0.113.7")).is_allowed()))
    });
    let keys: Vec<[u8; 4]> = (0..100_000u32).map(u32::to_be_bytes).collect();
    let mut i = 0;
    group.bench_function("100k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(limiter.check(&keys[i]).is_allowed())
        })
    });
    group.finish();
}

criterion_group!(benches, picks, limiter);
criterion_main!(benches);
