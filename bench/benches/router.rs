//! The route matcher the DSL compiles, against `matchit`, on the GitHub REST API.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench -p proxy-bench --bench router
//! ```
//!
//! Both sides get the same routes (`github_routes.rs`, generated from
//! `routes/github.txt`) and look up the same requests (`PATHS`: one per method of every
//! route), with the method already turned into a bit, the host empty and the path
//! already normalized: what is timed is the matcher alone.
//!
//! * **ours**: `github::match_route(method_bit, "", path)`, the straight-line code the
//!   `#[proxy]` macro generates.
//! * **matchit**: what axum does. One `matchit::Router` maps a path pattern to a
//!   per-path method table (axum's `MethodRouter`, here a fixed array indexed by the
//!   method's bit, so the method check is one load); `router.at(path)` then the method
//!   check. A path that matches with a method that is not in its table is a 405 with
//!   that table's methods (axum answers the same).
//!
//! Before timing, every request is checked to give the same route and the same parameter
//! values on both sides (the run aborts otherwise), and a wider sweep (every request
//! with every method, plus near-miss paths) lists where the two *semantics* differ.

#![allow(missing_docs)]

mod github_routes;

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use github_routes::{PATH_ROUTES, PATHS, github};
use proxy_runtime::dsl::routing::{Matched, methods};

/// The number of method bits (`methods::ANY` has 10).
const METHOD_BITS: usize = 10;

/// axum's `MethodRouter`, reduced to what routing needs: the route for each method.
#[derive(Debug, Clone, Default)]
struct MethodTable {
    by_method: [Option<u32>; METHOD_BITS],
    /// The methods in the table, for `405` + `Allow`.
    allowed: u16,
}

fn method_mask(names: &[&str]) -> u16 {
    names.iter().fold(0, |mask, name| {
        mask | match *name {
            "ANY" => methods::ANY,
            n => {
                let i = methods::NAMES
                    .iter()
                    .position(|m| *m == n)
                    .unwrap_or_else(|| panic!("unknown method {n}"));
                1 << i
            }
        }
    })
}

fn method_bit(name: &str) -> u16 {
    method_mask(&[name])
}

/// One matchit router over the same routes as `github::match_route`, in the same order.
fn build_matchit() -> matchit::Router<MethodTable> {
    let mut tables: BTreeMap<&str, MethodTable> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (i, route) in github::ROUTES.routes().iter().enumerate() {
        assert!(route.host.is_none(), "hosts are not benchmarked");
        let table = tables.entry(route.pattern).or_insert_with(|| {
            order.push(route.pattern);
            MethodTable::default()
        });
        let mask = method_mask(route.methods);
        for (bit, slot) in table.by_method.iter_mut().enumerate() {
            if mask & (1 << bit) != 0 {
                assert!(slot.is_none(), "{} {}", route.pattern, bit);
                *slot = Some(u32::try_from(i).expect("route index"));
            }
        }
        table.allowed |= mask;
    }
    let mut router = matchit::Router::new();
    for pattern in order {
        router
            .insert(pattern, tables[pattern].clone())
            .unwrap_or_else(|e| panic!("matchit rejects {pattern}: {e}"));
    }
    router
}

/// A routing decision, comparable across the two matchers.
#[derive(Debug, PartialEq, Eq)]
enum Outcome<'p> {
    Found(usize, Vec<&'p str>),
    MethodNotAllowed(u16),
    NotFound,
}

fn ours(bit: u16, path: &str) -> Outcome<'_> {
    match github::match_route(bit, "", path) {
        Matched::Found(i, p) => {
            let n = github::ROUTES.routes()[i].pattern.matches('{').count();
            Outcome::Found(i, p[..n].to_vec())
        }
        Matched::MethodNotAllowed(mask) => Outcome::MethodNotAllowed(mask),
        Matched::NotFound => Outcome::NotFound,
    }
}

fn theirs<'p>(router: &matchit::Router<MethodTable>, bit: u16, path: &'p str) -> Outcome<'p> {
    match router.at(path) {
        Ok(m) => match m.value.by_method[bit.trailing_zeros() as usize] {
            Some(i) => Outcome::Found(i as usize, m.params.iter().map(|(_, v)| v).collect()),
            None => Outcome::MethodNotAllowed(m.value.allowed),
        },
        Err(_) => Outcome::NotFound,
    }
}

/// Paths near the table's that no request in `PATHS` uses: prefixes, extensions,
/// trailing slashes, empty catch-alls.
const NEAR_MISSES: &[&str] = &[
    "/nope",
    "/repos",
    "/repos/octocat",
    "/repos/octocat/hello-world/",
    "/repos/octocat/hello-world/issues/1347/unknown",
    "/repos/octocat/hello-world/contents",
    "/repos/octocat/hello-world/contents/",
    "/repos/octocat/hello-world/git/refs/",
    "/gists/aa5a315d61ae9438b18d/comments/1/x",
    "/user/",
    "/users/octocat/events/orgs",
];

/// Check that both matchers agree on every request of `PATHS` (abort otherwise), then
/// list where their semantics differ on other methods and near misses.
fn verify(router: &matchit::Router<MethodTable>) {
    assert_eq!(PATHS.len(), PATH_ROUTES.len());
    for (&(method, path), &expected) in PATHS.iter().zip(PATH_ROUTES) {
        let bit = method_bit(method);
        let a = ours(bit, path);
        let b = theirs(router, bit, path);
        assert!(
            matches!(a, Outcome::Found(i, _) if i == expected),
            "ours: {method} {path} -> {a:?}, expected route {expected}"
        );
        assert_eq!(a, b, "{method} {path}: ours {a:?}, matchit {b:?}");
    }
    let mut differences = Vec::new();
    let paths = PATHS
        .iter()
        .map(|(_, p)| *p)
        .chain(NEAR_MISSES.iter().copied());
    let mut checked = 0;
    for path in paths {
        for bit in 0..METHOD_BITS {
            checked += 1;
            let a = ours(1 << bit, path);
            let b = theirs(router, 1 << bit, path);
            if a != b {
                differences.push(format!("  bit {bit} {path}: ours {a:?}, matchit {b:?}"));
            }
        }
    }
    differences.sort();
    differences.dedup();
    eprintln!(
        "verified: {} requests give the same route and parameters (one benchmark iteration \
         looks them all up: ns per lookup = time / {}); {} of {checked} (path, method) pairs \
         outside them differ:",
        PATHS.len(),
        PATHS.len(),
        differences.len()
    );
    for d in &differences {
        eprintln!("{d}");
    }
}

fn router(c: &mut Criterion) {
    let router = build_matchit();
    verify(&router);
    let requests: Vec<(u16, &str)> = PATHS.iter().map(|&(m, p)| (method_bit(m), p)).collect();
    let n = requests.len() as u64;

    let mut g = c.benchmark_group("github");
    g.throughput(Throughput::Elements(n));
    g.bench_function("ours", |b| {
        b.iter(|| {
            for &(bit, path) in &requests {
                black_box(github::match_route(black_box(bit), "", black_box(path)));
            }
        })
    });
    g.bench_function("matchit", |b| {
        b.iter(|| {
            for &(bit, path) in &requests {
                let bit = black_box(bit);
                let found = match router.at(black_box(path)) {
                    Ok(m) => Ok((m.value.by_method[bit.trailing_zeros() as usize], m.params)),
                    Err(e) => Err(e),
                };
                let _ = black_box(found);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, router);
criterion_main!(benches);
