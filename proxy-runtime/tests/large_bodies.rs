//! Streaming of very large bodies, alone in its own test binary: the memory check reads
//! the process-wide peak RSS (`VmHWM`), which tests running in parallel in the same
//! process would disturb.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;

#[tokio::test]
async fn hundred_megabyte_bodies_stream_through_without_buffering() {
    const N: u64 = 100 * 1024 * 1024;
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let before = vm_hwm_kib();

    // Upload: the origin checks length and content as the bytes arrive.
    let mut c = Client::connect(addr).await;
    c.send(format!(
        "POST /sink HTTP/1.1\r\nHost: test\r\nContent-Length: {N}\r\n\r\n"
    ))
    .await;
    let mut sent = 0u64;
    while sent < N {
        let len = (N - sent).min(64 * 1024) as usize;
        c.send(pattern_at(sent, len)).await;
        sent += len as u64;
    }
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), format!("len={N} pattern_ok=true"));
    assert_eq!(origin.requests()[0].digest.len, N);

    // Download: the client checks length and content without keeping the body.
    c.send(format!("GET /big?n={N} HTTP/1.1\r\nHost: test\r\n\r\n"))
        .await;
    let r = c.read_response_opts(false, false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.framing, Framing::Length(N));
    assert!(r.complete);
    assert_eq!(r.digest.len, N);
    assert!(r.digest.pattern_ok);

    let after = vm_hwm_kib();
    if let (Some(b), Some(a)) = (before, after) {
        let growth_mib = a.saturating_sub(b) / 1024;
        eprintln!("VmHWM before {b} KiB, after {a} KiB (growth {growth_mib} MiB)");
        assert!(
            growth_mib < 60,
            "peak RSS grew by {growth_mib} MiB while streaming 100 MiB each way: bodies are being buffered"
        );
    } else {
        eprintln!("SKIPPED memory check: /proc/self/status has no VmHWM");
    }
}
