//! Hostile HTTP/2 clients, written frame by frame over TCP: a rapid-reset burst
//! (HEADERS then RST_STREAM, thousands of times) and a CONTINUATION flood (a header
//! block that never ends). The proxy may close the attacking connection (GOAWAY); what
//! must hold is that another client on a new connection is served normally and that the
//! process did not blow up.
//!
//! The memory check reads the process-wide peak RSS (`VmHWM`) with a generous bound;
//! the tests of this binary take a lock so that they do not run at the same time.
//! There are no timing thresholds: every wait is only bounded for safety.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod h2common;

use std::net::SocketAddr;

use h2common::frames::*;
use h2common::*;
use proxy_runtime::prelude::HttpPeer;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;

/// One attack at a time in this binary (the memory check is process-wide).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Peak RSS growth allowed during an attack. The attacks below send hundreds of
/// megabytes' worth of frames: buffering them would blow far past this.
const MAX_GROWTH_MIB: u64 = 128;

async fn setup() -> (TestOrigin, RunningProxy<RouteProxy>) {
    let origin = TestOrigin::start(OriginConfig::plain(Proto::H1)).await;
    let peer = HttpPeer::new(origin.addr, false, "").unwrap();
    let proxy = run_proxy(RouteProxy::new([("h1".to_string(), peer)]), None, |b| b).await;
    (origin, proxy)
}

/// What the proxy sent the attacker, read until the connection ended (or a PING
/// answer showed the proxy had handled everything sent before it).
#[derive(Debug, Default)]
struct Seen {
    goaway: Option<u32>,
    rst_streams: usize,
    ping_ack: bool,
    frames: usize,
}

/// Read frames until EOF, a GOAWAY, or the PING ACK with payload `ping`.
async fn read_until_done(mut r: OwnedReadHalf, ping: [u8; 8]) -> Seen {
    let mut seen = Seen::default();
    while let Some((ty, flags, _stream, payload)) = read_frame(&mut r).await {
        seen.frames += 1;
        match ty {
            GOAWAY if payload.len() >= 8 => {
                seen.goaway = Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
                // Keep reading: the connection closes after the GOAWAY.
            }
            RST_STREAM => seen.rst_streams += 1,
            PING if flags & ACK != 0 && payload == ping => {
                seen.ping_ack = true;
                return seen;
            }
            _ => {}
        }
    }
    seen
}

/// Another client, on a new connection, gets complete answers (HTTP/2 and HTTP/1).
async fn others_are_served(proxy: &RunningProxy<RouteProxy>, pki: &Pki) {
    for down in [Down::H2c, Down::H1] {
        let mut c = DownClient::connect(down, proxy, pki).await;
        let out = c
            .exchange(&Exchange::get("/after-attack?n=100000&trailers=1"))
            .await;
        assert!(
            out.complete && out.status == 200,
            "{down:?} client after the attack: {out:?}"
        );
        assert_eq!(out.body.hex(), pattern_sum(100_000));
    }
}

fn check_memory(before: Option<u64>, what: &str) {
    match (before, vm_hwm_kib()) {
        (Some(b), Some(a)) => {
            let growth = a.saturating_sub(b) / 1024;
            eprintln!("{what}: VmHWM {b} KiB -> {a} KiB (+{growth} MiB)");
            assert!(
                growth < MAX_GROWTH_MIB,
                "{what}: peak RSS grew by {growth} MiB (bound {MAX_GROWTH_MIB} MiB)"
            );
        }
        _ => eprintln!("SKIPPED memory check: /proc/self/status has no VmHWM"),
    }
}

/// Connect and send the client preface and an empty SETTINGS frame.
async fn attacker(addr: SocketAddr) -> (OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf) {
    let sock = tcp(addr).await;
    let (r, mut w) = sock.into_split();
    let mut hello = PREFACE.to_vec();
    hello.extend(settings(&[]));
    w.write_all(&hello).await.unwrap();
    (r, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_burst_leaves_other_clients_unharmed() {
    const STREAMS: u32 = 20_000;
    const PER_WRITE: u32 = 200;
    let _one = ONE_AT_A_TIME.lock().await;
    let pki = Pki::new("rapid-reset");
    let (origin, proxy) = setup().await;
    others_are_served(&proxy, &pki).await;
    let requests_before = origin.requests();
    let before = vm_hwm_kib();

    let (r, mut w) = attacker(proxy.plain).await;
    let ping = *b"rst-done";
    let reader = tokio::spawn(read_until_done(r, ping));
    let block = get_block("attack.test", "/rapid-reset?n=100000");
    let mut sent = 0u32;
    let mut write_failed = false;
    while sent < STREAMS && !write_failed {
        let mut burst = Vec::new();
        for _ in 0..PER_WRITE {
            let id = 2 * sent + 1;
            burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
            burst.extend(rst_stream(id, CANCEL));
            sent += 1;
        }
        // The proxy may have closed the connection: that ends the attack.
        write_failed = bounded("writing the burst", w.write_all(&burst))
            .await
            .is_err();
    }
    if !write_failed {
        let _ = w.write_all(&frame(PING, 0, 0, &ping)).await;
    }
    let seen = bounded("the proxy's answer to the burst", reader)
        .await
        .unwrap();
    drop(w);
    eprintln!(
        "rapid reset: {sent} streams sent (write failed: {write_failed}), proxy sent {} frames, \
         GOAWAY {:?}, {} RST_STREAM, PING answered: {}; {} requests reached the origin",
        seen.frames,
        seen.goaway,
        seen.rst_streams,
        seen.ping_ack,
        origin.requests() - requests_before
    );

    others_are_served(&proxy, &pki).await;
    check_memory(before, "rapid reset");
    // Whatever the proxy started for the attacker's streams winds down.
    wait_until("the origin to finish the attack's requests", || {
        origin.in_flight() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_flood_is_cut_off_and_others_are_served() {
    /// CONTINUATION frames of ~16 KiB each: up to 256 MiB of header block.
    const FRAMES: usize = 16_384;
    const PER_WRITE: usize = 16;
    let _one = ONE_AT_A_TIME.lock().await;
    let pki = Pki::new("continuation");
    let (origin, proxy) = setup().await;
    others_are_served(&proxy, &pki).await;
    let requests_before = origin.requests();
    let before = vm_hwm_kib();

    let (r, mut w) = attacker(proxy.plain).await;
    let reader = tokio::spawn(read_until_done(r, *b"never!!!"));
    // HEADERS without END_HEADERS, then CONTINUATION frames that never end the block.
    let opening = frame(HEADERS, END_STREAM, 1, &get_block("attack.test", "/flood"));
    let mut write_failed = bounded("writing HEADERS", w.write_all(&opening))
        .await
        .is_err();
    // Whole header fields, as many as fit the default maximum frame size (16 KiB).
    let mut field = Vec::new();
    for i in 0.. {
        let next = literal(&format!("x-flood-{i}"), &[b'a'; 500]);
        if field.len() + next.len() > 16_384 {
            break;
        }
        field.extend(next);
    }
    let continuation = frame(CONTINUATION, 0, 1, &field);
    let mut sent = 0;
    while sent < FRAMES && !write_failed {
        let mut burst = Vec::with_capacity(continuation.len() * PER_WRITE);
        for _ in 0..PER_WRITE {
            burst.extend_from_slice(&continuation);
        }
        write_failed = bounded("writing CONTINUATION frames", w.write_all(&burst))
            .await
            .is_err();
        sent += PER_WRITE;
    }
    // Closing our side ends the proxy's wait for more, in case it kept reading.
    let _ = w.shutdown().await;
    let seen = bounded("the proxy to end the flooded connection", reader)
        .await
        .unwrap();
    eprintln!(
        "CONTINUATION flood: {sent} frames of {} bytes sent (write failed: {write_failed}), \
         GOAWAY {:?}",
        continuation.len(),
        seen.goaway
    );
    assert!(
        write_failed || seen.goaway.is_some(),
        "a header block that never ends must make the proxy end the connection \
         (sent {sent} CONTINUATION frames, about {} MiB, without a GOAWAY or a close)",
        (sent * continuation.len()) >> 20
    );
    assert_eq!(
        origin.requests(),
        requests_before,
        "the flooded request never reaches the origin"
    );

    others_are_served(&proxy, &pki).await;
    check_memory(before, "CONTINUATION flood");
}

/// The rapid reset done slowly: each stream is reset only once its request reached the
/// origin, so `h2` counts no "reset before accept" and sends no GOAWAY. Every reset
/// stream frees its slot at once; the upstream requests it started must end too, or a
/// client with no open stream keeps any number of upstream requests (and, to an HTTP/1
/// origin, connections) alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_then_reset_streams_do_not_pile_up_upstream_requests() {
    const STREAMS: u32 = 100;
    let _one = ONE_AT_A_TIME.lock().await;
    let pki = Pki::new("slow-reset");
    let (origin, proxy) = setup().await;
    let (r, mut w) = attacker(proxy.plain).await;
    let reader = tokio::spawn(read_until_done(r, *b"slow-rst"));
    let block = get_block("attack.test", "/hold");
    for i in 0..STREAMS {
        let id = 2 * i + 1;
        w.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, id, &block))
            .await
            .unwrap();
        wait_until("the stream's request to reach the origin", || {
            origin.requests() == i as usize + 1
        })
        .await;
        w.write_all(&rst_stream(id, CANCEL)).await.unwrap();
    }
    w.write_all(&frame(PING, 0, 0, b"slow-rst")).await.unwrap();
    let seen = bounded("the PING answer", reader).await.unwrap();
    eprintln!(
        "slow rapid reset: {seen:?}, {} origin connections",
        origin.accepts()
    );
    wait_until(
        "the proxy to give up every reset stream's upstream request",
        || origin.cancelled() == STREAMS as usize,
    )
    .await;
    others_are_served(&proxy, &pki).await;
}
