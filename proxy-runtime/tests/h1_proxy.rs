//! HTTP/1.1 proxying over real loopback sockets: connection reuse both ways,
//! pipelining, chunked bodies and trailers, streaming of large bodies, `Expect`,
//! upgrades, bodiless responses, re-framing, and hop-by-hop headers.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;

const GET_ECHO: &str = "GET /echo HTTP/1.1\r\nHost: test\r\n\r\n";

#[tokio::test]
async fn keep_alive_reuses_the_client_and_the_origin_connection() {
    let (origin, addr, proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    for i in 0..5 {
        c.send(format!("GET /echo?i={i} HTTP/1.1\r\nHost: test\r\n\r\n"))
            .await;
        let r = c.read_response().await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text(), format!("GET /echo?i={i}"));
        assert!(
            !r.head.has_token("connection", "close"),
            "keep-alive response must not close: {}",
            r.head.raw
        );
        assert_eq!(r.header("x-origin-conn"), Some("1"));
        assert_eq!(
            r.header("x-origin-seq"),
            Some(format!("{}", i + 1).as_str())
        );
    }
    assert_eq!(
        origin.accepts(),
        1,
        "one origin connection for five requests"
    );
    assert_eq!(
        proxy.app().connections(),
        [false, true, true, true, true],
        "the first request connects, the others reuse the pooled connection"
    );
}

#[tokio::test]
async fn pooled_origin_connections_are_shared_by_successive_clients() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    for _ in 0..3 {
        let r = request(addr, GET_ECHO).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(origin.accepts(), 1);
    assert_eq!(origin.requests().len(), 3);
}

#[tokio::test]
async fn post_with_content_length_is_forwarded_and_echoed() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let r = request(
        addr,
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\n\r\nhello world",
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "hello world");
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].header("content-length"), Some("11"));
    assert!(reqs[0].body_complete);
}

#[tokio::test]
async fn a_repeated_identical_content_length_reaches_the_origin_once() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    // Repeated as fields, and as a list in one field.
    for (i, lengths) in [
        "Content-Length: 5\r\nContent-Length: 5",
        "Content-Length: 5, 5",
    ]
    .into_iter()
    .enumerate()
    {
        let r = request(
            addr,
            &format!("POST /echo HTTP/1.1\r\nHost: test\r\n{lengths}\r\n\r\nhello"),
        )
        .await;
        assert_eq!((r.status(), r.text().as_str()), (200, "hello"));
        let reqs = origin.requests();
        let seen: Vec<&str> = reqs[i]
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(seen, ["5"], "{lengths:?}: {}", reqs[i].head);
        assert!(!reqs[i].has_header("transfer-encoding"), "{}", reqs[i].head);
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send(concat!(
        "GET /first HTTP/1.1\r\nHost: test\r\n\r\n",
        "POST /second HTTP/1.1\r\nHost: test\r\nContent-Length: 6\r\n\r\nsecond",
        "HEAD /third HTTP/1.1\r\nHost: test\r\n\r\n",
        "POST /fourth HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfou\r\n3\r\nrth\r\n0\r\n\r\n",
        "GET /fifth HTTP/1.1\r\nHost: test\r\n\r\n",
    ))
    .await;
    let r1 = c.read_response().await;
    let r2 = c.read_response().await;
    let r3 = c.read_head_response().await;
    let r4 = c.read_response().await;
    let r5 = c.read_response().await;
    assert_eq!(r1.text(), "GET /first");
    assert_eq!(r2.text(), "second");
    assert_eq!(r3.status(), 200);
    assert!(r3.body.is_empty());
    assert_eq!(
        r3.header("content-length"),
        Some("11"),
        "HEAD keeps the GET's length"
    );
    assert_eq!(r4.text(), "fourth");
    assert_eq!(r5.text(), "GET /fifth");
    let paths: Vec<String> = origin
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(paths, ["/first", "/second", "/third", "/fourth", "/fifth"]);
    assert_eq!(origin.accepts(), 1);
}

#[tokio::test]
async fn chunked_request_body_and_trailers_reach_the_origin() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let r = request(
        addr,
        concat!(
            "POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n",
            "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Sum: 42\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "hello world");
    let reqs = origin.requests();
    assert_eq!(reqs.len(), 1);
    let up = &reqs[0];
    assert!(up.body_complete);
    assert_eq!(up.body, b"hello world");
    assert!(
        up.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    );
    assert!(!up.has_header("content-length"));
    assert_eq!(
        up.trailers,
        [("x-sum".to_string(), "42".to_string())],
        "request trailers are forwarded: {:?}",
        up.trailers
    );
}

#[tokio::test]
async fn chunked_response_and_trailers_reach_the_client() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /chunked HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.framing, Framing::Chunked);
    assert!(r.complete);
    assert_eq!(r.text(), "hello chunked world");
    let names: Vec<String> = r.trailers.iter().map(|(n, _)| n.to_lowercase()).collect();
    assert_eq!(names, ["x-checksum", "x-trailer-two"], "{:?}", r.trailers);
    assert_eq!(r.trailers[0].1, "abc123");
    // The connection carries the next request.
    c.send(GET_ECHO).await;
    assert_eq!(c.read_response().await.text(), "GET /echo");
}

#[tokio::test]
async fn large_chunked_bodies_stream_both_ways() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    // Upload 3 MiB in uneven chunks.
    let total: u64 = 3 * 1024 * 1024 + 17;
    c.send("POST /sink HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    let mut sent = 0u64;
    let mut step = 1usize;
    while sent < total {
        let len = ((total - sent) as usize).min(step).min(60_000);
        let mut piece = format!("{len:x}\r\n").into_bytes();
        piece.extend_from_slice(pattern_at(sent, len));
        piece.extend_from_slice(b"\r\n");
        c.send(&piece).await;
        sent += len as u64;
        step = (step * 3 + 1).min(1 << 20);
    }
    c.send("0\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), format!("len={total} pattern_ok=true"));

    // Download 3 MiB chunked on the same connection.
    c.send(format!(
        "GET /big-chunked?n={total} HTTP/1.1\r\nHost: test\r\n\r\n"
    ))
    .await;
    let r = c.read_response_opts(false, false).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.framing, Framing::Chunked);
    assert!(r.complete);
    assert_eq!(r.digest.len, total);
    assert!(r.digest.pattern_ok);
    assert_eq!(origin.accepts(), 1);
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send(
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    let interim = c.read_head().await;
    assert_eq!(interim.status, 100, "{}", interim.raw);
    c.send("payload").await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "payload");
    assert!(origin.requests()[0].body_complete);
    // Still a keep-alive connection.
    c.send(GET_ECHO).await;
    assert_eq!(c.read_response().await.status(), 200);
}

#[tokio::test]
async fn origin_answering_before_the_upload_ends_closes_the_client_connection() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    // Only part of the announced body is sent: the origin answers anyway.
    c.send("POST /upload-denied HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\npartial")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.text(), "denied");
    // The rest of the body is still on the wire: the connection cannot be reused.
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn websocket_upgrade_tunnels_raw_bytes_after_the_origins_101() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send(concat!(
        "GET /ws HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ))
    .await;
    let head = c.read_head().await;
    assert_eq!(head.status, 101, "{}", head.raw);
    assert_eq!(head.header("upgrade"), Some("websocket"));
    assert!(head.has_token("connection", "upgrade"));
    let up = &origin.requests()[0];
    assert_eq!(up.header("upgrade"), Some("websocket"));
    assert!(
        up.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("upgrade"))
    );
    assert_eq!(
        up.header("sec-websocket-key"),
        Some("dGhlIHNhbXBsZSBub25jZQ==")
    );
    // What the origin sent right behind its 101 comes through first.
    assert_eq!(c.read_exact_raw(7).await, b"welcome");

    // Raw bytes both ways, including bytes that look like HTTP.
    for msg in [
        &b"\x81\x05hello"[..],
        b"GET /not-a-request HTTP/1.1\r\n\r\n",
        b"\x00\xff",
    ] {
        c.send(msg).await;
        assert_eq!(c.read_exact_raw(msg.len()).await, msg);
    }
    // Closing our side closes the tunnel end to end.
    c.shutdown_write().await;
    assert!(c.is_closed().await);
    assert_eq!(
        origin.requests().len(),
        1,
        "tunnelled bytes are not requests"
    );
}

#[tokio::test]
async fn a_101_to_a_protocol_the_client_did_not_offer_is_a_502() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    // The origin switches to `websocket` whatever was offered.
    c.send("GET /ws HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\n\r\n")
        .await;
    let head = c.read_head().await;
    assert_eq!(head.status, 502, "{}", head.raw);
    // Offered in another case, with a version: accepted.
    let mut c = Client::connect(addr).await;
    c.send(
        "GET /ws HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: WebSocket/13\r\n\r\n",
    )
    .await;
    assert_eq!(c.read_head().await.status, 101);
}

#[tokio::test]
async fn upgrade_refused_by_the_origin_is_not_tunnelled() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /ws-refuse HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert!(!r.head.has_header("upgrade"));
    // The connection still speaks HTTP: a request is a request ...
    c.send(GET_ECHO).await;
    let r = c.read_response().await;
    assert_eq!(r.text(), "GET /echo");
    // ... and raw bytes are a bad request, not tunnel payload.
    c.send(b"\x81\x05hello not http\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 400);
    assert!(c.is_closed().await);
    assert_eq!(origin.requests().len(), 2);
}

#[tokio::test]
async fn h2c_upgrade_is_never_forwarded() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send(concat!(
        "GET /echo HTTP/1.1\r\nHost: test\r\nConnection: Upgrade, HTTP2-Settings\r\n",
        "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    ))
    .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200, "served as plain HTTP/1.1");
    assert_eq!(r.text(), "GET /echo");
    let up = &origin.requests()[0];
    for name in ["upgrade", "http2-settings", "connection"] {
        assert!(!up.has_header(name), "{name} was forwarded:\n{}", up.head);
    }
    c.send(GET_ECHO).await;
    assert_eq!(c.read_response().await.status(), 200);
}

#[tokio::test]
async fn origin_101_to_a_request_that_did_not_upgrade_is_a_bad_gateway() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /force-101 HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 502);
    // No tunnel after a 101 nobody asked for: the connection goes on in HTTP/1.1.
    c.send("GET /echo HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(c.read_response().await.text(), "GET /echo");
    assert!(c.is_closed().await);
    assert!(
        !r.text().contains("welcome"),
        "nothing of the origin's new protocol leaks"
    );
    assert!(!origin.requests()[0].has_header("upgrade"));
}

#[tokio::test]
async fn head_response_carries_no_body() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("HEAD /big?n=1000 HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    c.send(GET_ECHO).await;
    let r = c.read_head_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-length"), Some("1000"));
    assert!(!r.head.has_header("transfer-encoding"));
    // If any body byte followed the HEAD answer, this would not parse.
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "GET /echo");
}

#[tokio::test]
async fn no_content_and_not_modified_responses_carry_no_body() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /status?code=204 HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 204);
    assert!(!r.head.has_header("content-length"), "{}", r.head.raw);
    assert!(!r.head.has_header("transfer-encoding"), "{}", r.head.raw);
    assert_eq!(r.header("x-origin"), Some("yes"));

    c.send("GET /status?code=304 HTTP/1.1\r\nHost: test\r\nIf-None-Match: \"v1\"\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 304);
    assert!(!r.head.has_header("transfer-encoding"), "{}", r.head.raw);
    assert_eq!(r.header("etag"), Some("\"v1\""));

    // Both left the connection clean for the next request.
    c.send(GET_ECHO).await;
    assert_eq!(c.read_response().await.text(), "GET /echo");
}

#[tokio::test]
async fn close_delimited_origin_response_is_rechunked_for_http11_clients() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /close-delimited HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.framing, Framing::Chunked, "{}", r.head.raw);
    assert!(r.complete);
    assert_eq!(r.text(), "close-delimited body");
    assert!(!r.head.has_token("connection", "close"));
    // The client connection survives; the origin connection could not.
    c.send(GET_ECHO).await;
    assert_eq!(c.read_response().await.text(), "GET /echo");
    assert_eq!(origin.accepts(), 2);
}

#[tokio::test]
async fn close_delimited_origin_response_stays_close_delimited_for_http10_clients() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /close-delimited HTTP/1.0\r\nHost: test\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.framing, Framing::Close, "{}", r.head.raw);
    assert_eq!(r.text(), "close-delimited body");
    assert!(r.head.has_token("connection", "close"));
}

#[tokio::test]
async fn http10_keep_alive_is_honoured() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    for _ in 0..2 {
        c.send("GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await;
        let r = c.read_response().await;
        assert_eq!(r.status(), 200);
        assert!(
            r.head.has_token("connection", "keep-alive"),
            "{}",
            r.head.raw
        );
    }
    // Without keep-alive, an HTTP/1.0 exchange ends the connection.
    c.send("GET /echo HTTP/1.0\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert!(c.is_closed().await);
    let up = origin.requests();
    assert_eq!(
        up[0].version, "HTTP/1.1",
        "the proxy speaks HTTP/1.1 upstream"
    );
    assert!(
        up[0].has_header("host"),
        "a Host is supplied for HTTP/1.0 clients"
    );
}

#[tokio::test]
async fn hop_by_hop_request_headers_are_stripped() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let r = request(
        addr,
        concat!(
            "GET /echo HTTP/1.1\r\nHost: test\r\n",
            "Connection: keep-alive, X-Client-Private, x-other-private\r\n",
            "X-Client-Private: secret\r\nX-Other-Private: secret2\r\n",
            "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n",
            "Trailer: X-Nothing\r\nUpgrade: foo/1\r\nX-Kept: yes\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    let up = &origin.requests()[0];
    for name in [
        "connection",
        "x-client-private",
        "x-other-private",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "transfer-encoding",
    ] {
        assert!(
            !up.has_header(name),
            "{name} reached the origin:\n{}",
            up.head
        );
    }
    assert_eq!(up.header("x-kept"), Some("yes"));
    assert_eq!(up.header("host"), Some("test"));
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_stripped() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /hop HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "hop");
    for name in [
        "x-origin-private",
        "keep-alive",
        "proxy-connection",
        "trailer",
        "upgrade",
    ] {
        assert!(
            !r.head.has_header(name),
            "{name} reached the client:\n{}",
            r.head.raw
        );
    }
    assert!(
        !r.head.has_token("connection", "x-origin-private"),
        "{}",
        r.head.raw
    );
    assert_eq!(r.header("x-kept"), Some("yes"));
    c.send(GET_ECHO).await;
    assert_eq!(c.read_response().await.status(), 200);
}

#[tokio::test]
async fn logging_runs_once_per_request_with_the_error_if_any() {
    let (_origin, addr, proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send(GET_ECHO).await;
    c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nhi")
        .await;
    c.send("GET /garbage HTTP/1.1\r\nHost: test\r\n\r\n").await;
    assert_eq!(c.read_response().await.status(), 200);
    assert_eq!(c.read_response().await.status(), 200);
    assert_eq!(c.read_response().await.status(), 502);
    wait_until("three logging calls", || proxy.app().log_calls() >= 3).await;
    let log = proxy.app().log();
    assert_eq!(proxy.app().log_calls(), 3, "{log:?}");
    assert_eq!(log[0].error, None);
    assert_eq!(log[0].status, Some(200));
    assert_eq!(log[1].error, None);
    assert_eq!(log[2].path, "/garbage");
    assert_eq!(log[2].status, Some(502));
    assert!(
        log[2]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("InvalidUpstreamResponse")),
        "{log:?}"
    );
}

#[tokio::test]
async fn absolute_form_target_goes_upstream_in_origin_form_with_its_authority_as_host() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let r = request(
        addr,
        "GET http://a.example:8080/x?q=1 HTTP/1.1\r\nHost: b.example\r\n\r\n",
    )
    .await;
    assert_eq!(r.status(), 200);
    let up = &origin.requests()[0];
    assert_eq!(up.target, "/x?q=1", "{}", up.head);
    assert_eq!(up.header("host"), Some("a.example:8080"));
    assert_eq!(
        up.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
            .count(),
        1
    );
}

#[tokio::test]
async fn options_asterisk_is_forwarded_as_is() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let r = request(addr, "OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n").await;
    assert_eq!(r.status(), 200);
    assert_eq!(origin.requests()[0].target, "*");
}

#[tokio::test]
async fn interim_responses_reach_http11_clients_only() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /early-hints HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let interim = c.read_head().await;
    assert_eq!(interim.status, 103, "{}", interim.raw);
    assert!(interim.has_header("link"));
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "final");

    // An HTTP/1.0 client does not understand 1xx (RFC 9110 §15.2): never sent one.
    let mut c = Client::connect(addr).await;
    c.send("GET /early-hints HTTP/1.0\r\n\r\n").await;
    let head = c.read_head().await;
    assert_eq!(head.status, 200, "{}", head.raw);
    let mut c = Client::connect(addr).await;
    c.send("POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody")
        .await;
    let head = c.read_head().await;
    assert_eq!(head.status, 200, "{}", head.raw);
}

#[tokio::test]
async fn connection_close_from_the_client_does_not_close_the_origin_connection() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    for _ in 0..3 {
        let mut c = Client::connect(addr).await;
        c.send("GET /echo HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
            .await;
        let r = c.read_response().await;
        assert_eq!(r.status(), 200);
        assert!(r.head.has_token("connection", "close"));
        assert!(c.is_closed().await);
    }
    assert_eq!(origin.accepts(), 1);
    assert!(
        origin
            .requests()
            .iter()
            .all(|r| !r.has_header("connection"))
    );
}

#[tokio::test]
async fn origin_connection_with_stray_bytes_after_a_response_is_not_reused() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /extra-bytes HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.text(), "ok");
    c.send(GET_ECHO).await;
    let r = c.read_response().await;
    assert_eq!(
        r.text(),
        "GET /echo",
        "the stray response must never be served"
    );
    assert_eq!(
        origin.accepts(),
        2,
        "the connection with stray bytes was dropped"
    );
}

#[tokio::test]
async fn origin_response_with_length_and_chunked_is_read_as_chunked_and_not_reused() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /cl-and-te HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text(),
        "hello",
        "Transfer-Encoding overrides Content-Length, which must not be forwarded \
         (RFC 9112 §6.3):\n{}",
        r.head.raw
    );
    assert!(
        !(r.head.has_header("content-length") && r.head.has_header("transfer-encoding")),
        "{}",
        r.head.raw
    );
    c.send(GET_ECHO).await;
    assert_eq!(c.read_response().await.text(), "GET /echo");
    assert_eq!(
        origin.accepts(),
        2,
        "a connection with suspect framing is not reused"
    );
}

#[tokio::test]
async fn idle_client_connection_is_closed_after_the_keepalive_timeout() {
    let origin = Origin::start().await;
    let (addr, _proxy) = start_proxy(TestProxy::new(origin.addr), |b| {
        b.keepalive_timeout(std::time::Duration::from_millis(200))
    })
    .await;
    let mut c = Client::connect(addr).await;
    c.send(GET_ECHO).await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert!(c.is_closed().await, "closed silently once idle");
}

#[tokio::test]
async fn client_half_close_after_a_complete_request_still_gets_the_response() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 4\r\n\r\nbody")
        .await;
    c.shutdown_write().await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), "body");
    assert!(c.is_closed().await);
}

#[tokio::test]
async fn a_hundred_pipelined_requests_are_answered_in_order() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    let mut all = String::new();
    for i in 0..100 {
        if i % 2 == 0 {
            all.push_str(&format!("GET /echo?{i} HTTP/1.1\r\nHost: test\r\n\r\n"));
        } else {
            let body = format!("body {i}");
            all.push_str(&format!(
                "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        }
    }
    c.send(all).await;
    for i in 0..100 {
        let r = c.read_response().await;
        let want = if i % 2 == 0 {
            format!("GET /echo?{i}")
        } else {
            format!("body {i}")
        };
        assert_eq!(r.text(), want);
    }
    assert_eq!(origin.accepts(), 1);
}

#[tokio::test]
async fn expect_100_continue_refused_by_the_origin_closes_the_client_connection() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send(
        "POST /upload-denied HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    let r = c.read_response().await;
    assert_eq!(
        r.status(),
        403,
        "the final answer comes without a 100 Continue"
    );
    // The body was never sent, so the connection cannot be reused as is.
    assert!(c.is_closed().await);
    assert!(!origin.requests()[0].body_complete);
}

#[tokio::test]
async fn a_body_sent_by_the_origin_where_none_is_allowed_never_reaches_the_client() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("HEAD /buggy-head HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    c.send("GET /buggy-204 HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    c.send(GET_ECHO).await;
    let r = c.read_head_response().await;
    assert_eq!(r.status(), 200);
    let r = c.read_response().await;
    assert_eq!(r.status(), 204);
    assert!(!r.head.has_header("content-length"), "{}", r.head.raw);
    let r = c.read_response().await;
    assert_eq!(
        r.text(),
        "GET /echo",
        "stray body bytes would have shown up here"
    );
    assert_eq!(
        origin.accepts(),
        3,
        "connections with leftover bytes are not reused"
    );
}

#[tokio::test]
async fn chunked_response_to_an_http10_client_is_close_delimited_without_trailers() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("GET /chunked HTTP/1.0\r\n\r\n").await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.framing, Framing::Close, "{}", r.head.raw);
    assert_eq!(r.text(), "hello chunked world");
}
