//! HTTP/2 streams through the proxy: many concurrent streams sharing one upstream
//! connection within the origin's stream limit, and upstream failures in the middle of
//! a response body turning into a reset for the client — never into a short response
//! that looks complete — while the proxy keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod h2common;

use h2common::*;
use proxy_runtime::prelude::HttpPeer;
use proxy_runtime::proxy::ProxyOptions;
use tokio::io::AsyncWriteExt;

const STREAMS: usize = 100;
const ORIGIN_STREAM_LIMIT: u32 = 10;

/// 100 concurrent streams on one client connection to an HTTP/2 origin allowing 10
/// streams at a time: all succeed, over one upstream connection (at most
/// ceil(100 / 10) = 10 by the letter of the requirement; the shared-connection design
/// must need exactly one). The origin holds requests until 10 are open at once, so the
/// limit is really reached and never exceeded.
async fn hundred_streams(up_tls: bool, down: Down, upload: u64, big_window: bool) {
    let pki = Pki::new("streams");
    let mut cfg = if up_tls {
        OriginConfig::tls(Proto::H2, &pki)
    } else {
        OriginConfig::plain(Proto::H2)
    };
    cfg.max_concurrent_streams = Some(ORIGIN_STREAM_LIMIT);
    cfg.barrier = Some(ORIGIN_STREAM_LIMIT as usize);
    let origin = TestOrigin::start(cfg).await;
    let mut opts = ProxyOptions::default();
    if big_window {
        // Room for every stream's whole body in the client connection's window.
        opts.h2.initial_connection_window_size = 64 << 20;
    }
    let proxy = run_proxy(
        RouteProxy::new([("h2".to_string(), origin.peer(&pki))]),
        Some(proxy_tls_settings(&pki)),
        |b| b.proxy_options(opts),
    )
    .await;
    let DownClient::H2(send) = DownClient::connect(down, &proxy, &pki).await else {
        unreachable!("an HTTP/2 client")
    };

    let mut tasks = Vec::new();
    for i in 0..STREAMS {
        let send = send.clone();
        tasks.push(tokio::spawn(async move {
            let n = 1000 + i as u64;
            let mut ex = Exchange::get(format!("/stream/{i}?n={n}&trailers=1"))
                .header("x-test", &i.to_string());
            if upload > 0 {
                ex.method = "POST";
                ex.body_len = upload + i as u64;
            }
            (i, n, h2_exchange(&send, &ex, PROXY_NAME).await)
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        let (i, n, out) = bounded("a stream to finish", t).await.unwrap();
        let up = if upload > 0 { upload + i as u64 } else { 0 };
        let ok = out.complete
            && out.status == 200
            && out.header("x-req-len") == Some(up.to_string().as_str())
            && out.header("x-req-sum") == Some(pattern_sum(up).as_str())
            && out.header("x-echo") == Some(i.to_string().as_str())
            && out.body.len == n
            && out.body.hex() == pattern_sum(n)
            && out.trailer("x-checksum") == Some(pattern_sum(n).as_str());
        if !ok {
            failures.push(format!("stream {i}: {out:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {STREAMS} streams failed:\n{}\nproxy errors: {:?}",
        failures.len(),
        failures.join("\n"),
        proxy.app().errors()
    );
    assert_eq!(origin.requests(), STREAMS, "one origin request per stream");
    assert_eq!(
        proxy.app().tries(),
        STREAMS,
        "streams were tried again: the origin refused some (sent over its limit)"
    );
    assert_eq!(
        origin.barrier_timeouts(),
        0,
        "the origin never had {ORIGIN_STREAM_LIMIT} streams open at once"
    );
    assert_eq!(
        origin.max_in_flight(),
        ORIGIN_STREAM_LIMIT as usize,
        "the origin's stream limit must be used, never exceeded"
    );
    let limit = STREAMS.div_ceil(ORIGIN_STREAM_LIMIT as usize);
    assert!(
        origin.accepts() <= limit,
        "{} upstream connections for {STREAMS} streams (at most {limit})",
        origin.accepts()
    );
    assert_eq!(
        origin.accepts(),
        1,
        "the streams share one upstream HTTP/2 connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_h2c_streams_share_one_h2c_upstream_connection() {
    hundred_streams(false, Down::H2c, 0, false).await;
}

/// The same with a request body on every stream, larger than the proxy's retry buffer
/// (64 KiB): a stream the origin refused could not be sent again, so none may be
/// refused — the proxy must respect the origin's limit from the first stream on, not
/// only once the origin's SETTINGS arrived. (The client connection's window is made
/// large enough for every body: see the next test for the default one.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_h2c_uploads_share_one_h2c_upstream_connection() {
    hundred_streams(false, Down::H2c, 100 * 1024, true).await;
}

/// 100 uploads of 100 KiB (10 MB in all) with the default windows. The proxy forwards
/// 10 streams at a time; the 90 waiting for an upstream stream slot have each read one
/// piece and stopped, and the client's DATA for them stays in the client connection's
/// window. The proxy opens that window wide enough for every stream's own window
/// (`H2Options::effective_connection_window`), so the 10 forwarded streams still
/// receive the rest of their bodies and every stream finishes in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_h2c_uploads_with_default_windows() {
    hundred_streams(false, Down::H2c, 100 * 1024, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_tls_streams_share_one_tls_upstream_connection() {
    hundred_streams(true, Down::H2Tls, 0, false).await;
}

/// An origin side for the reset tests.
fn origin_config(up: &str, pki: &Pki) -> OriginConfig {
    match up {
        "h1" => OriginConfig::plain(Proto::H1),
        "h2c" => OriginConfig::plain(Proto::H2),
        "h1-tls" => OriginConfig::tls(Proto::H1, pki),
        "h2-tls" => OriginConfig::tls(Proto::H2, pki),
        _ => unreachable!(),
    }
}

/// The origin aborts a response after 10000 body bytes (HTTP/2: RST_STREAM; HTTP/1:
/// closes the connection in the middle of a `Content-Length` body). An HTTP/2 client
/// sees its stream reset — an error from the body stream, not a clean end — and the
/// same connection then serves the next request.
async fn upstream_abort_resets_the_h2_stream(up: &str, down: Down) {
    let pki = Pki::new("reset");
    let origin = TestOrigin::start(origin_config(up, &pki)).await;
    let proxy = run_proxy(
        RouteProxy::new([("up".to_string(), origin.peer(&pki))]),
        Some(proxy_tls_settings(&pki)),
        |b| b,
    )
    .await;
    let DownClient::H2(send) = DownClient::connect(down, &proxy, &pki).await else {
        unreachable!("an HTTP/2 client")
    };

    let req = http::Request::get(format!("http://{PROXY_NAME}/rst"))
        .body(())
        .unwrap();
    let mut ready = bounded("a stream slot", send.clone().ready())
        .await
        .unwrap();
    let (response, _) = ready.send_request(req, true).unwrap();
    let resp = bounded("the response head", response).await.unwrap();
    assert_eq!(resp.status(), 200);
    if origin.proto == Proto::H1 {
        assert_eq!(
            resp.headers().get("content-length").unwrap(),
            "1000000",
            "the declared length is relayed"
        );
    }
    let mut body = resp.into_body();
    let mut got = Sum::default();
    // Everything the origin sent before aborting arrives first.
    while got.len < 10_000 {
        match bounded("response body data", body.data()).await {
            Some(Ok(d)) => {
                got.update(&d);
                let _ = body.flow_control().release_capacity(d.len());
            }
            other => panic!("the body ended after {} bytes: {other:?}", got.len),
        }
    }
    assert_eq!(got.len, 10_000);
    assert_eq!(got.hex(), pattern_sum(10_000));

    // Now the origin aborts.
    origin.open_gate();
    let end = bounded("the end of the response body", async {
        loop {
            match body.data().await {
                Some(Ok(d)) => got.update(&d),
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            }
        }
    })
    .await;
    let err = end.expect_err("the client must see the stream reset, not a clean end");
    assert!(
        err.is_reset(),
        "expected RST_STREAM from the proxy, got {err:?}"
    );
    assert!(
        matches!(
            err.reason(),
            Some(h2::Reason::INTERNAL_ERROR | h2::Reason::CANCEL)
        ),
        "reset reason {:?}",
        err.reason()
    );
    assert_eq!(got.len, 10_000, "nothing after the abort");

    // The proxy logged the failure and keeps serving, on the same client connection...
    wait_until("the failed request to be logged", || {
        !proxy.app().errors().is_empty()
    })
    .await;
    let out = h2_exchange(
        &send,
        &Exchange::get("/after?n=100000&trailers=1"),
        PROXY_NAME,
    )
    .await;
    assert!(out.complete, "{out:?}");
    assert_eq!(out.status, 200);
    assert_eq!(out.body.hex(), pattern_sum(100_000));
    assert_eq!(
        out.trailer("x-checksum"),
        Some(pattern_sum(100_000).as_str())
    );
    // ... and on a new one.
    let mut fresh = DownClient::connect(down, &proxy, &pki).await;
    let out = fresh.exchange(&Exchange::get("/fresh?n=10")).await;
    assert!(out.complete && out.status == 200, "{out:?}");

    if origin.proto == Proto::H2 {
        // A stream reset is not a connection failure: the shared connection stays.
        assert_eq!(
            origin.accepts(),
            1,
            "an upstream RST_STREAM must not cost the shared HTTP/2 connection"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_origin_rst_stream_mid_body_resets_the_client_stream() {
    upstream_abort_resets_the_h2_stream("h2c", Down::H2c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_tls_origin_rst_stream_mid_body_resets_the_client_stream() {
    upstream_abort_resets_the_h2_stream("h2-tls", Down::H2Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_origin_close_mid_body_resets_the_client_stream() {
    upstream_abort_resets_the_h2_stream("h1", Down::H2c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_tls_origin_close_mid_body_resets_the_client_stream() {
    upstream_abort_resets_the_h2_stream("h1-tls", Down::H2Tls).await;
}

/// The same aborts seen by an HTTP/1.1 client: the proxy closes the connection before
/// the declared length (or the last chunk), so the response cannot pass for complete;
/// a new connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_abort_mid_body_truncates_for_an_http1_client() {
    for up in ["h1", "h2c"] {
        let pki = Pki::new("reset-h1");
        let origin = TestOrigin::start(origin_config(up, &pki)).await;
        let peer: HttpPeer = origin.peer(&pki);
        let proxy = run_proxy(RouteProxy::new([("up".to_string(), peer)]), None, |b| b).await;
        // The gate is opened first: the origin aborts right after its 10000 bytes.
        origin.open_gate();
        let mut c = DownClient::connect(Down::H1, &proxy, &pki).await;
        let out = c.exchange(&Exchange::get("/rst")).await;
        assert!(
            out.status == 502 || (out.status == 200 && !out.complete),
            "{up}: an aborted response must not look complete: {out:?}"
        );
        if out.status == 200 {
            assert!(out.body.len <= 10_000, "{up}: {out:?}");
        }
        let mut fresh = DownClient::connect(Down::H1, &proxy, &pki).await;
        let out = fresh.exchange(&Exchange::get("/fresh?n=10")).await;
        assert!(out.complete && out.status == 200, "{up}: {out:?}");
    }
}

/// A client resets its stream while the proxy waits for the origin's answer: the proxy
/// must give the upstream request up (HTTP/2 origin: RST_STREAM; HTTP/1 origin: close
/// the connection) rather than hold it until the peer's read timeout (60 s) — else
/// every reset stream keeps an upstream request alive with no stream counted against
/// the client (the rapid-reset amplification).
async fn client_reset_cancels_the_upstream_request(up: &str) {
    let pki = Pki::new("cancel");
    let origin = TestOrigin::start(origin_config(up, &pki)).await;
    let proxy = run_proxy(
        RouteProxy::new([("up".to_string(), origin.peer(&pki))]),
        None,
        |b| b,
    )
    .await;
    let DownClient::H2(send) = DownClient::connect(Down::H2c, &proxy, &pki).await else {
        unreachable!("an HTTP/2 client")
    };
    let req = http::Request::get(format!("http://{PROXY_NAME}/hold"))
        .body(())
        .unwrap();
    let mut ready = bounded("a stream slot", send.clone().ready())
        .await
        .unwrap();
    let (response, body_tx) = ready.send_request(req, true).unwrap();
    wait_until("the request to reach the origin", || origin.requests() == 1).await;
    // Dropping every handle of the stream resets it (RST_STREAM CANCEL).
    drop(response);
    drop(body_tx);
    wait_until("the proxy to give up the upstream request", || {
        origin.cancelled() == 1
    })
    .await;
    // The connection still serves.
    let out = h2_exchange(&send, &Exchange::get("/after?n=10"), PROXY_NAME).await;
    assert!(out.complete && out.status == 200, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reset_cancels_the_h2_upstream_request() {
    client_reset_cancels_the_upstream_request("h2c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reset_cancels_the_h1_upstream_request() {
    client_reset_cancels_the_upstream_request("h1").await;
}

/// Slow clients must not stall the other streams of a shared upstream HTTP/2
/// connection. Three HTTP/1.1 clients, each on its own connection with a small socket
/// receive buffer (and the proxy's client-side sockets with a small send buffer), ask
/// an h2c origin for 8 MiB and never read: their responses stop at the proxy, and the
/// DATA the proxy has received but cannot forward stays counted against the upstream
/// connection's flow-control window. A fourth client then asks for 1000 bytes on the
/// same upstream connection and must get them, complete and correct — the stalled
/// streams may hold back the origin only through their own stream windows, never by
/// using up the connection window the other streams need. (With a connection window of
/// twice the stream window, two stalled clients block every stream on the connection.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_do_not_block_other_streams_on_the_shared_h2_upstream() {
    const STALLED: usize = 3;
    const BIG: u64 = 8 << 20;
    const SMALL: u64 = 1000;
    let pki = Pki::new("stalled");
    let origin = TestOrigin::start(OriginConfig::plain(Proto::H2)).await;
    let proxy = run_proxy_on(
        RouteProxy::new([("h2c".to_string(), origin.peer(&pki))]),
        small_sndbuf_listener(),
        None,
        |b| b,
    )
    .await;

    // The stalled clients: a request for a large body, then no reading at all.
    let mut stalled = Vec::new();
    for i in 0..STALLED {
        let mut sock = tcp_small_rcvbuf(proxy.plain).await;
        let req = format!("GET /stalled/{i}?n={BIG} HTTP/1.1\r\nHost: {PROXY_NAME}\r\n\r\n");
        bounded(
            "sending a stalled client's request",
            sock.write_all(req.as_bytes()),
        )
        .await
        .unwrap();
        stalled.push(sock);
    }
    wait_until(
        "the origin to receive the stalled clients' requests",
        || origin.requests() == STALLED,
    )
    .await;
    // Each response has started to reach its client (peeked at, not read).
    for sock in &stalled {
        let mut first = [0u8; 1];
        let n = bounded(
            "a stalled client's response to arrive",
            sock.peek(&mut first),
        )
        .await
        .unwrap();
        assert_eq!(n, 1, "a stalled client's connection was closed");
    }

    // Another client, another stream on the same upstream connection. (Its exchange
    // runs in a task so that a stall fails the test with one message, whichever of its
    // bounded waits gives up first.)
    let mut c = DownClient::connect(Down::H1, &proxy, &pki).await;
    let small = tokio::spawn(async move {
        c.exchange(&Exchange::get(format!("/small?n={SMALL}")))
            .await
    });
    let out = match tokio::time::timeout(SAFETY, small).await {
        Ok(Ok(out)) => out,
        stuck => panic!(
            "a small response behind {STALLED} stalled clients did not come through the \
             shared upstream HTTP/2 connection ({stuck:?}; proxy errors: {:?})",
            proxy.app().errors()
        ),
    };
    assert!(out.complete, "{out:?}");
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(out.body.len, SMALL, "{out:?}");
    assert_eq!(out.body.hex(), pattern_sum(SMALL), "{out:?}");
    assert_eq!(
        origin.requests(),
        STALLED + 1,
        "one origin request per client"
    );
    assert_eq!(
        origin.accepts(),
        1,
        "every stream shares one upstream HTTP/2 connection"
    );
    drop(stalled);
}
