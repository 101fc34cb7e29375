//! Origins that fail: refused, reset, truncated, stalled, speaking garbage, closing
//! pooled connections. Each test checks what the client observes, what the origin saw,
//! and that the proxy keeps serving afterwards. Also: retries and the `logging` phase.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;

/// A fresh client connection still gets proxied.
async fn assert_still_serving(addr: SocketAddr) {
    let r = get(addr, "/echo?after-fault").await;
    assert_eq!(r.status(), 200, "the proxy stopped serving after a fault");
    assert_eq!(r.text(), "GET /echo?after-fault");
}

/// The client's connection, answered with an error page, carries its next request
/// (the request was read whole and the client did nothing wrong).
async fn next_request_answered_on(c: &mut Client) {
    c.send("GET /echo?after-fault HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(
        r.text(),
        "GET /echo?after-fault",
        "the connection did not go on"
    );
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn connection_refused_is_a_502_after_every_try() {
    let origin = Origin::start().await;
    let dead = closed_port().await;
    let (addr, proxy) = start_proxy(TestProxy::new(dead), |b| b.max_retries(2)).await;
    let mut c = Client::connect(addr).await;
    c.send("GET /echo HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.head.status_line, "HTTP/1.1 502 Bad Gateway");
    let app = proxy.app();
    assert_eq!(app.peer_calls(), 3, "one upstream_peer call per try");
    assert_eq!(app.fail_to_connect_calls.load(Ordering::SeqCst), 3);
    wait_until("logging", || app.log_calls() == 1).await;
    let log = app.log();
    assert!(
        log[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("ConnectRefused")),
        "{log:?}"
    );

    app.set_default_peer(origin.addr);
    assert_still_serving(addr).await;
    next_request_answered_on(&mut c).await;
}

#[tokio::test]
async fn a_refused_first_peer_is_retried_on_the_next_peer() {
    let origin = Origin::start().await;
    let dead = closed_port().await;
    let (addr, proxy) =
        start_proxy(TestProxy::new(origin.addr).with_first_peers([dead]), |b| b).await;
    let mut c = Client::connect(addr).await;
    c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "hello", "the body is replayed to the second peer");
    let app = proxy.app();
    assert_eq!(
        app.peer_calls(),
        2,
        "upstream_peer is asked again for the retry"
    );
    assert_eq!(app.fail_to_connect_calls.load(Ordering::SeqCst), 1);
    assert_eq!(origin.requests().len(), 1);
    // The retry is invisible to the client: same connection, next request.
    c.send("GET /echo HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(c.read_response().await.status(), 200);
    assert!(c.is_closed().await);
    wait_until("logging", || app.log_calls() == 2).await;
    assert!(
        app.log().iter().all(|l| l.error.is_none()),
        "{:?}",
        app.log()
    );
}

#[tokio::test]
async fn retries_stop_after_max_retries() {
    let origin = Origin::start().await;
    let dead = closed_port().await;
    let (addr, proxy) = start_proxy(
        TestProxy::new(origin.addr).with_first_peers([dead, dead]),
        |b| b.max_retries(1),
    )
    .await;
    let r = get(addr, "/echo").await;
    assert_eq!(r.status(), 502, "two tries, both refused");
    assert_eq!(proxy.app().peer_calls(), 2);
    assert_eq!(origin.accepts(), 0);
}

#[tokio::test]
async fn reset_before_the_response_head_is_a_502() {
    let (origin, addr, proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /reset-before-head HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.head.status_line, "HTTP/1.1 502 Bad Gateway");
    assert_eq!(
        origin.requests().len(),
        1,
        "a fresh connection that fails is not retried"
    );
    assert_eq!(proxy.app().peer_calls(), 1);
    assert_still_serving(addr).await;
    next_request_answered_on(&mut c).await;
}

#[tokio::test]
async fn reset_in_the_middle_of_a_content_length_body_truncates_and_closes() {
    let (origin, addr, proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /reset-mid-body HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let head = c.read_head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1000000"));
    let mut body = c.read_some().await;
    assert!(
        !body.is_empty(),
        "some of the body arrives before the reset"
    );
    origin.open_gate();
    body.extend(c.read_to_end().await);
    assert!(
        body.len() < 1_000_000,
        "the client must see the body cut short, got {} bytes",
        body.len()
    );
    assert_eq!(body[..], pattern_at(0, body.len())[..]);
    wait_until("logging", || proxy.app().log_calls() == 1).await;
    assert!(proxy.app().log()[0].error.is_some());
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn reset_in_the_middle_of_a_chunked_body_never_sends_the_last_chunk() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /reset-mid-chunked HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let head = c.read_head().await;
    assert_eq!(head.status, 200);
    assert!(head.has_token("transfer-encoding", "chunked"));
    let mut raw = c.read_some().await;
    assert!(!raw.is_empty());
    origin.open_gate();
    raw.extend(c.read_to_end().await);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("5\r\nfirst\r\n"), "{text:?}");
    assert!(
        !text.contains("\r\n0\r\n") && !text.starts_with("0\r\n"),
        "a truncated body must not be completed with a last chunk: {text:?}"
    );
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn origin_closing_in_the_middle_of_the_body_truncates_and_closes() {
    let (origin, addr, proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /truncate HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let r = c.read_response_opts(false, false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.framing, Framing::Length(1_000_000));
    assert!(!r.complete, "the body must end short");
    assert_eq!(
        r.digest.len, 10_000,
        "everything the origin sent is relayed"
    );
    assert!(r.digest.pattern_ok);
    assert!(c.is_closed().await, "the client connection cannot go on");
    // The rest of the body was awaited by the kernel relay (`splice`) where available.
    wait_until("logging", || proxy.app().log_calls() == 1).await;
    let error = proxy.app().log()[0]
        .error
        .clone()
        .expect("the exchange failed");
    assert!(
        error.contains("before the response body was complete"),
        "{error}"
    );
    origin.wait_all_closed().await;
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn origin_stalling_past_the_read_timeout_is_a_504() {
    let origin = Origin::start().await;
    let (addr, proxy) = start_proxy(
        TestProxy::new(origin.addr).with_read_timeout(Duration::from_millis(300)),
        |b| b,
    )
    .await;
    let mut c = Client::connect(addr).await;
    c.send("GET /stall HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.head.status_line, "HTTP/1.1 504 Gateway Timeout");
    // The stalled origin connection is given up, not pooled.
    origin.wait_all_closed().await;
    assert_eq!(origin.requests().len(), 1, "a timeout is not retried");
    wait_until("logging", || proxy.app().log_calls() == 1).await;
    assert!(
        proxy.app().log()[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("ReadTimedout")),
        "{:?}",
        proxy.app().log()
    );
    assert_still_serving(addr).await;
    next_request_answered_on(&mut c).await;
}

#[tokio::test]
async fn garbage_instead_of_http_is_a_502() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let r = get(addr, "/garbage").await;
    assert_eq!(r.head.status_line, "HTTP/1.1 502 Bad Gateway");
    assert!(
        !r.text().contains("SSH"),
        "none of the garbage reaches the client"
    );
    assert_eq!(origin.requests().len(), 1);
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn a_status_line_without_a_reason_phrase_is_relayed() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    for _ in 0..2 {
        let r = get(addr, "/no-reason").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text(), "ok");
        assert_eq!(r.head.header("x-empty"), Some(""));
    }
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn an_interim_response_loses_its_content_length() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /interim-with-length HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let interim = c.read_head().await;
    assert!(
        interim.status_line.starts_with("HTTP/1.1 103"),
        "{interim:?}"
    );
    assert_eq!(interim.header("link"), Some("</a.css>"));
    assert_eq!(interim.header("content-length"), None, "{interim:?}");
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "final");
}

#[tokio::test]
async fn an_origin_flooding_interim_responses_gets_a_502() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /interim-flood HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let mut interim = 0;
    let last = loop {
        let head = c.read_head().await;
        if !head.status_line.starts_with("HTTP/1.1 1") {
            break head;
        }
        interim += 1;
    };
    assert!(last.status_line.starts_with("HTTP/1.1 502"), "{last:?}");
    assert!(interim <= 16, "{interim} interim heads relayed");
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn conflicting_content_length_from_the_origin_is_a_502() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let r = get(addr, "/bad-length").await;
    assert_eq!(r.status(), 502);
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn pooled_connection_closed_by_the_origin_while_idle_is_replaced() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    for _ in 0..3 {
        c.send("GET /idle-close HTTP/1.1\r\nHost: test\r\n\r\n")
            .await;
        let r = c.read_response().await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text(), "GET /idle-close");
    }
    assert_eq!(origin.accepts(), 3, "each closed connection is replaced");
    assert_eq!(origin.requests().len(), 3);
}

#[tokio::test]
async fn get_on_a_pooled_connection_that_the_origin_closes_is_retried_transparently() {
    let (origin, addr, proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /close-if-reused HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    assert_eq!(c.read_response().await.status(), 200);
    // Goes out on the pooled connection, which the origin closes unanswered.
    c.send("GET /close-if-reused HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(
        r.status(),
        200,
        "the failure on the reused connection is retried"
    );
    let app = proxy.app();
    assert_eq!(app.peer_calls(), 3);
    assert_eq!(app.connections(), [false, true, false]);
    let seen: Vec<(usize, usize)> = origin.requests().iter().map(|r| (r.conn, r.seq)).collect();
    assert_eq!(seen, [(1, 1), (1, 2), (2, 1)]);
    // Still the same client connection.
    c.send("GET /echo HTTP/1.1\r\nHost: test\r\n\r\n").await;
    assert_eq!(c.read_response().await.status(), 200);
}

#[tokio::test]
async fn post_on_a_fresh_connection_that_the_origin_closes_unanswered_is_a_502_sent_once() {
    let (origin, addr, proxy) = origin_and_proxy().await;
    let r = request(
        addr,
        "POST /no-answer HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!(r.head.status_line, "HTTP/1.1 502 Bad Gateway");
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 1, "the POST reached the origin exactly once");
    assert!(reqs[0].body_complete);
    assert_eq!(proxy.app().peer_calls(), 1);
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn post_on_a_pooled_connection_that_the_origin_closes_unanswered_is_not_replayed() {
    let (origin, addr, proxy) = origin_and_proxy().await;
    assert_eq!(get(addr, "/close-if-reused").await.status(), 200);
    let r = request(
        addr,
        "POST /close-if-reused HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!(
        r.status(),
        502,
        "the origin may have acted on a non-idempotent request: no automatic retry"
    );
    let posts = origin
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1);
    assert_eq!(proxy.app().connections(), [false, true]);
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn logging_runs_exactly_once_per_request_through_retries_and_failures() {
    let origin = Origin::start().await;
    let dead = closed_port().await;
    let (addr, proxy) =
        start_proxy(TestProxy::new(origin.addr).with_first_peers([dead]), |b| b).await;
    // A retried success, a plain success, a failure (each on its own connection).
    for path in ["/echo?1", "/echo?2", "/garbage"] {
        let mut c = Client::connect(addr).await;
        c.send(format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        ))
        .await;
        let _ = c.read_response().await;
        // The connection closes only after the request's logging phase.
        assert!(c.is_closed().await);
    }
    let app = proxy.app();
    assert_eq!(app.log_calls(), 3, "{:?}", app.log());
    let log = app.log();
    assert_eq!(log[0].error, None, "a successful retry is not an error");
    assert_eq!(log[1].error, None);
    assert!(log[2].error.is_some());
    assert_eq!(app.peer_calls(), 4, "two tries for the first request");
}

#[tokio::test]
async fn an_idempotent_request_retried_after_a_pooled_connection_failed_replays_its_body() {
    let (origin, addr, proxy) = origin_and_proxy().await;
    assert_eq!(get(addr, "/close-if-reused").await.status(), 200);
    let r = request(
        addr,
        "PUT /close-if-reused HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n again\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(
        r.status(),
        200,
        "PUT is idempotent: retried on a fresh connection"
    );
    assert_eq!(r.text(), "hello again", "the body is replayed in full");
    let puts: Vec<Recorded> = origin
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2);
    assert!(
        puts.iter()
            .all(|p| p.body == b"hello again" && p.body_complete)
    );
    assert_eq!(proxy.app().connections(), [false, true, false]);
}

#[tokio::test]
async fn a_request_body_larger_than_the_retry_buffer_is_not_replayed() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    assert_eq!(get(addr, "/close-if-reused").await.status(), 200);
    let n = 200 * 1024;
    let mut req =
        format!("PUT /close-if-reused HTTP/1.1\r\nHost: test\r\nContent-Length: {n}\r\n\r\n")
            .into_bytes();
    req.extend_from_slice(&pattern_vec(n));
    let r = request(addr, req).await;
    assert_eq!(r.status(), 502, "the body cannot be sent again");
    let puts = origin
        .requests()
        .iter()
        .filter(|r| r.method == "PUT")
        .count();
    assert_eq!(puts, 1);
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn origin_response_with_a_transfer_coding_the_proxy_cannot_relay_is_a_502() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    for path in ["/te-gzip", "/te-gzip-chunked"] {
        let r = get(addr, path).await;
        assert_eq!(
            r.status(),
            502,
            "{path}: relaying gzip-coded bytes without their Transfer-Encoding corrupts the body\n{}{:?}",
            r.head.raw,
            r.text()
        );
    }
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn http10_origin_response_with_transfer_encoding_is_treated_as_faulty() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let r = get(addr, "/http10-chunked").await;
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing.
    assert_eq!(r.status(), 502, "{}{:?}", r.head.raw, r.text());
    assert_still_serving(addr).await;
}

#[tokio::test]
async fn an_error_page_before_the_request_body_was_read_says_connection_close() {
    let dead = closed_port().await;
    let (addr, _proxy) = start_proxy(TestProxy::new(dead), |b| b.max_retries(0)).await;
    let mut c = Client::connect(addr).await;
    // The origin cannot be reached before the body is read: the connection cannot go on,
    // and the error page says so (RFC 9112 §9.6).
    c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.head.header("connection"), Some("close"));
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn a_close_delimited_body_cut_short_ends_with_a_reset_not_a_clean_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (origin, addr, _proxy) = origin_and_proxy().await;
    // An HTTP/1.0 client: the body is delimited by the close, so a FIN would tell it
    // the body is complete.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /reset-mid-chunked HTTP/1.0\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.ends_with(b"firstsecond") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("the first pieces arrive")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
    assert!(raw.starts_with(b"HTTP/1.1 200"));
    origin.open_gate(); // the origin resets mid-body
    let end = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("the connection ends");
    assert_eq!(
        end.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "a truncated close-delimited body must not end like a complete one"
    );
}
