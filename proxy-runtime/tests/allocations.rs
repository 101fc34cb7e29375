//! Heap allocations per proxied request, counted with a counting global allocator.
//!
//! A keep-alive client sends GET requests through the proxy to an origin that answers
//! 1 KiB; the allocations made while `N` requests go through (after a warm-up that fills
//! the connection pool) are divided by `N`. The count is deterministic for a given
//! build, so it is asserted against a ceiling: a change that adds allocations to the
//! hot path fails here (this is not a timing test). Run with `--nocapture` to see it.
#![allow(clippy::unwrap_used, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use proxy_runtime::prelude::*;
use proxy_runtime::server::{ConnectionTracker, ListenAddr, Listener, ShutdownWatch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter has
// no effect on the memory handed out.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The most allocations one proxied keep-alive GET may make (client and origin here are
/// written to allocate nothing per request).
const CEILING: u64 = 8;

struct Forward(HttpPeer);

impl ProxyHttp for Forward {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<HttpPeer> {
        Ok(self.0.clone())
    }
}

const BODY: [u8; 1024] = [b'x'; 1024];

/// An origin that answers every request with 1 KiB, without allocating per request.
async fn origin(listener: tokio::net::TcpListener) {
    loop {
        let (mut s, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut have = 0;
            let mut out = Vec::with_capacity(2048);
            out.extend_from_slice(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nContent-Type: text/plain\r\n\r\n",
            );
            out.extend_from_slice(&BODY);
            loop {
                let Ok(n) = s.read(&mut buf[have..]).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                have += n;
                while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                    let used = end + 4;
                    buf.copy_within(used..have, 0);
                    have -= used;
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

#[tokio::test(flavor = "current_thread")]
async fn allocations_per_proxied_request_stay_low() {
    let origin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_addr = origin_listener.local_addr().unwrap();
    tokio::spawn(origin(origin_listener));
    let service =
        HttpProxyServiceBuilder::new(Forward(HttpPeer::new(origin_addr, false, "").unwrap()))
            .build();
    let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".into()))
        .await
        .unwrap();
    let proxy_addr = *listener.local_addr().unwrap().as_inet().unwrap();
    tokio::spawn(HttpProxyService::serve_listener(
        service.proxy().clone(),
        listener,
        ShutdownWatch::never(),
        Arc::new(ConnectionTracker::default()),
    ));

    let mut client = tokio::net::TcpStream::connect(proxy_addr).await.unwrap();
    client.set_nodelay(true).unwrap();
    let request = b"GET /1k HTTP/1.1\r\nHost: bench.local\r\nUser-Agent: alloc-count/1\r\nAccept: */*\r\n\r\n";
    let mut buf = vec![0u8; 64 * 1024];
    let mut one = async |client: &mut tokio::net::TcpStream| {
        client.write_all(request).await.unwrap();
        let mut have = 0;
        loop {
            let n = client.read(&mut buf[have..]).await.unwrap();
            assert!(n > 0, "proxy closed the connection");
            have += n;
            if let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n")
                && have >= end + 4 + 1024
            {
                assert!(buf.starts_with(b"HTTP/1.1 200"));
                return;
            }
        }
    };
    for _ in 0..200 {
        one(&mut client).await;
    }
    const N: u64 = 2000;
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..N {
        one(&mut client).await;
    }
    let per_request = (ALLOCS.load(Ordering::Relaxed) - before) as f64 / N as f64;
    println!("allocations per proxied request: {per_request:.3}");
    // Work done once a second, not per request (formatting the `Date` the origin's
    // responses lack), adds a few allocations in all: well under 0.05 per request.
    assert!(
        per_request < CEILING as f64 + 0.05,
        "{per_request:.3} allocations per request (ceiling {CEILING})"
    );
}
