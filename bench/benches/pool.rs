//! What the upstream connection pool costs a request: one checkout (`take`) and one
//! checkin (`put`) of a pooled HTTP/1 connection, a miss, and the sweeper's scan.
//!
//! ```text
//! cargo bench -p proxy-bench --bench pool
//! ```
//!
//! The pooled connections are real connected loopback TCP sockets (`Stream::Tcp`,
//! registered with a tokio runtime), opened once before timing; their server ends stay
//! open and silent, so every connection is quiet and fit for reuse. Keys are real
//! `HttpPeer::reuse_hash` values of plaintext peers (computed before timing: hashing the
//! peer is not part of the pool). The idle timeout is an hour, so nothing expires
//! during a run; `max_idle_per_key` and `max_idle_total` are the defaults (128, 4,096).
//!
//! * `pool/round_trip/1_key`: `take` then `put` of the same connection, one key holding
//!   64 idle connections: the steady-state cost per proxied request.
//! * `pool/round_trip/1000_keys`: the same over 1,000 keys (peers) holding 4 idle
//!   connections each (4,000 in all), one key after the other in a scattered order.
//! * `pool/miss/unknown_key`: `take` of a key the pool has never seen (1,000-key pool).
//! * `pool/miss/drained_key`: `take` of a key whose connections were all taken (its
//!   empty list stays in the map).
//! * `pool/sweep_once/4000_idle`: one scan of the sweeper over the 4,000 idle
//!   connections (nothing to close). Not a per-request cost: the sweeper runs once a
//!   second, holding the pool's lock for this long.
//!
//! What a request pays: `take` locks the pool, pops the newest connection of the key
//! (its entry in the least-recently-returned queue goes stale) and checks it with
//! `Stream::idle_state` (a non-blocking read through tokio; no system call while tokio
//! knows the socket is not readable, as for these quiet sockets). `put` locks, pushes
//! it back, appends it to the queue (which is rebuilt once stale entries outnumber live
//! ones) and reads the clock. `put` spawns the sweeper task only when none is
//! running: once per pool here (at the first `put`, during set-up), not per request.
//! The timed loops run inside the runtime's context (`Runtime::enter`), as requests do,
//! but nobody drives the runtime meanwhile, so the sweeper never wakes during timing.
//!
//! Needs about 8,200 open files (`ulimit -n`): 4,064 connections, both ends.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use proxy_runtime::protocols::Stream;
use proxy_runtime::upstream::{ConnectionPool, HttpPeer, PoolOptions};
use tokio::net::{TcpListener, TcpStream};

/// Long enough that nothing expires during a run.
const IDLE: Duration = Duration::from_secs(3600);
const ONE_KEY_CONNS: usize = 64;
const KEYS: usize = 1000;
const CONNS_PER_KEY: usize = 4;

/// `n` connected loopback TCP pairs: the client ends as pool streams, and the server
/// ends, which must stay open (a closed peer makes a connection unusable).
async fn connections(listener: &TcpListener, n: usize) -> (Vec<Stream>, Vec<TcpStream>) {
    let addr = listener.local_addr().unwrap();
    let mut clients = Vec::with_capacity(n);
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.set_nodelay(true).unwrap();
        clients.push(Stream::Tcp(client));
        servers.push(server);
    }
    (clients, servers)
}

/// The pool key of the `i`-th plaintext peer `10.0.x.y:8080`.
fn key(i: usize) -> u64 {
    let addr = SocketAddr::from((Ipv4Addr::new(10, 0, (i / 256) as u8, (i % 256) as u8), 8080));
    HttpPeer::new(addr, false, "").unwrap().reuse_hash()
}

fn pool(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Every socket is opened (and registered) first; the server ends live until the end.
    let (one, many, _servers) = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (one, mut servers) = connections(&listener, ONE_KEY_CONNS).await;
        let (many, more) = connections(&listener, KEYS * CONNS_PER_KEY).await;
        servers.extend(more);
        (one, many, servers)
    });
    // From here on, in the runtime's context as a request is, but not driving it.
    let _cx = rt.enter();
    let mut group = c.benchmark_group("pool");

    // One key, 64 idle connections.
    let hot = ConnectionPool::new(PoolOptions::default());
    let hot_key = key(0);
    for stream in one {
        hot.put(hot_key, stream, IDLE);
    }
    assert_eq!(hot.idle_count(), ONE_KEY_CONNS);
    group.bench_function("round_trip/1_key", |b| {
        b.iter(|| {
            let k = black_box(hot_key);
            let stream = hot.take(k).expect("a quiet pooled connection");
            hot.put(k, stream, IDLE);
        })
    });
    assert_eq!(hot.idle_count(), ONE_KEY_CONNS, "no connection was lost");
    drop(hot);

    // 1,000 keys, 4 idle connections each.
    let wide = ConnectionPool::new(PoolOptions::default());
    let keys: Vec<u64> = (0..KEYS).map(key).collect();
    let distinct: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), KEYS, "1,000 distinct pool keys");
    for (i, stream) in many.into_iter().enumerate() {
        wide.put(keys[i % KEYS], stream, IDLE);
    }
    assert_eq!(wide.idle_count(), KEYS * CONNS_PER_KEY);
    // Visit the keys in a scattered order: a stride coprime with 1,000.
    let mut i = 0;
    group.bench_function("round_trip/1000_keys", |b| {
        b.iter(|| {
            i = (i + 617) % KEYS;
            let k = black_box(keys[i]);
            let stream = wide.take(k).expect("a quiet pooled connection");
            wide.put(k, stream, IDLE);
        })
    });
    assert_eq!(
        wide.idle_count(),
        KEYS * CONNS_PER_KEY,
        "no connection was lost"
    );

    let unknown = key(KEYS + 1);
    assert!(wide.take(unknown).is_none());
    group.bench_function("miss/unknown_key", |b| {
        b.iter(|| black_box(wide.take(black_box(unknown)).is_none()))
    });

    // A key whose connections were all taken: its list is empty but still there.
    let drained = keys[0];
    let taken: Vec<Stream> = std::iter::from_fn(|| wide.take(drained)).collect();
    assert_eq!(taken.len(), CONNS_PER_KEY);
    group.bench_function("miss/drained_key", |b| {
        b.iter(|| black_box(wide.take(black_box(drained)).is_none()))
    });
    for stream in taken {
        wide.put(drained, stream, IDLE);
    }

    group.bench_function("sweep_once/4000_idle", |b| {
        b.iter(|| black_box(wide.sweep_once()))
    });
    assert_eq!(wide.idle_count(), KEYS * CONNS_PER_KEY, "nothing was swept");
    group.finish();
}

criterion_group!(benches, pool);
criterion_main!(benches);
