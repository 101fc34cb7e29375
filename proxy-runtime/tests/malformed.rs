//! Malformed and ambiguous requests over raw TCP (RFC 9112 framing and the classic
//! request-smuggling vectors): each gets the right status, a closed connection, and
//! nothing that should not reach the origin reaches it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::*;
use proxy_runtime::prelude::StatusCode;

/// What must happen to a malformed request.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// The head is rejected with this status: the origin never even sees a connection.
    Rejected(u16),
    /// The head is fine but the chunked body is not: the client gets this status, and the
    /// origin may have seen the head but never a complete body.
    BadBody(u16),
}

struct Case {
    name: &'static str,
    raw: Vec<u8>,
    outcome: Outcome,
}

/// A request that smuggles a second one after what a lenient parser would call the end.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: test\r\n\r\n";

fn post(headers: &str, body: &str) -> Vec<u8> {
    format!("POST /echo HTTP/1.1\r\nHost: test\r\n{headers}\r\n{body}").into_bytes()
}

fn get_with(headers: &str) -> Vec<u8> {
    format!("GET /echo HTTP/1.1\r\nHost: test\r\n{headers}\r\n").into_bytes()
}

fn chunked(body: &str) -> Vec<u8> {
    post("Transfer-Encoding: chunked\r\n", body)
}

fn rejected(name: &'static str, raw: impl Into<Vec<u8>>, status: u16) -> Case {
    Case {
        name,
        raw: raw.into(),
        outcome: Outcome::Rejected(status),
    }
}

fn bad_body(name: &'static str, body: &str) -> Case {
    Case {
        name,
        raw: chunked(body),
        outcome: Outcome::BadBody(400),
    }
}

fn cases() -> Vec<Case> {
    let smuggle_after_chunked = format!("0\r\n\r\n{SMUGGLED}");
    vec![
        // ---- Content-Length
        rejected(
            "conflicting Content-Length fields",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
            400,
        ),
        rejected(
            "conflicting Content-Length list",
            post("Content-Length: 5, 6\r\n", "hello!"),
            400,
        ),
        rejected(
            "Content-Length with a plus sign",
            post("Content-Length: +5\r\n", "hello"),
            400,
        ),
        rejected(
            "negative Content-Length",
            post("Content-Length: -5\r\n", "hello"),
            400,
        ),
        rejected(
            "Content-Length with trailing garbage",
            post("Content-Length: 5x\r\n", "hello"),
            400,
        ),
        rejected(
            "Content-Length in hex",
            post("Content-Length: 0x5\r\n", "hello"),
            400,
        ),
        rejected(
            "Content-Length overflowing 64 bits",
            post("Content-Length: 99999999999999999999\r\n", "hello"),
            400,
        ),
        rejected(
            "empty Content-Length",
            post("Content-Length: \r\n", "hello"),
            400,
        ),
        // ---- Transfer-Encoding
        rejected(
            "Transfer-Encoding on HTTP/1.0",
            format!(
                "POST /echo HTTP/1.0\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n{smuggle_after_chunked}"
            ),
            400,
        ),
        rejected(
            "final transfer coding is not chunked",
            post(
                "Transfer-Encoding: chunked, gzip\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            400,
        ),
        rejected(
            "only transfer coding is gzip",
            post("Transfer-Encoding: gzip\r\n", "hello"),
            400,
        ),
        rejected(
            "Content-Length and Transfer-Encoding (CL.TE)",
            post(
                "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
                &smuggle_after_chunked,
            ),
            400,
        ),
        rejected(
            "Transfer-Encoding and Content-Length (TE.CL)",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
                &format!("5c\r\n{SMUGGLED}\r\n0\r\n\r\n"),
            ),
            400,
        ),
        rejected(
            "chunked twice in one field",
            post(
                "Transfer-Encoding: chunked, chunked\r\n",
                &smuggle_after_chunked,
            ),
            400,
        ),
        rejected(
            "chunked twice in two fields",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                &smuggle_after_chunked,
            ),
            400,
        ),
        rejected(
            "obfuscated TE: xchunked",
            post("Transfer-Encoding: xchunked\r\n", &smuggle_after_chunked),
            400,
        ),
        rejected(
            "obfuscated TE: quoted chunked",
            post("Transfer-Encoding: \"chunked\"\r\n", &smuggle_after_chunked),
            400,
        ),
        rejected(
            "obfuscated TE: chunked with a parameter",
            post(
                "Transfer-Encoding: chunked;q=1.0\r\n",
                &smuggle_after_chunked,
            ),
            400,
        ),
        rejected(
            "obfuscated TE: space before the colon",
            post("Transfer-Encoding : chunked\r\n", &smuggle_after_chunked),
            400,
        ),
        rejected(
            "obfuscated TE: vertical tab before the value",
            post("Transfer-Encoding:\x0bchunked\r\n", &smuggle_after_chunked),
            400,
        ),
        rejected(
            "obfuscated TE: value folded onto the next line",
            post("Transfer-Encoding:\r\n chunked\r\n", &smuggle_after_chunked),
            400,
        ),
        rejected(
            "obfuscated TE: empty value",
            post("Transfer-Encoding: \r\n", &smuggle_after_chunked),
            400,
        ),
        rejected(
            "obfuscated TE: only a comma",
            post("Transfer-Encoding: ,\r\n", &smuggle_after_chunked),
            400,
        ),
        rejected(
            "unknown transfer coding under chunked",
            post(
                "Transfer-Encoding: gzip, chunked\r\n",
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            501,
        ),
        // ---- chunked body framing
        bad_body(
            "chunk size is not hex",
            &format!("zz\r\nhello\r\n{smuggle_after_chunked}"),
        ),
        bad_body(
            "chunk size overflows 64 bits",
            &format!("1ffffffffffffffff\r\nhello\r\n{smuggle_after_chunked}"),
        ),
        bad_body(
            "chunk size with 0x prefix",
            &format!("0x5\r\nhello\r\n{smuggle_after_chunked}"),
        ),
        bad_body(
            "negative chunk size",
            &format!("-5\r\nhello\r\n{smuggle_after_chunked}"),
        ),
        bad_body(
            "chunk size line ends in a bare LF",
            &format!("5\nhello\r\n{smuggle_after_chunked}"),
        ),
        bad_body(
            "chunk data not followed by CRLF",
            &format!("5\r\nhelloXX{smuggle_after_chunked}"),
        ),
        bad_body(
            "chunk size followed by junk",
            &format!("5 x\r\nhello\r\n{smuggle_after_chunked}"),
        ),
        bad_body(
            "chunk extension too long",
            &format!("5;{}\r\nhello\r\n{smuggle_after_chunked}", "e".repeat(5000)),
        ),
        bad_body(
            "obs-fold in a trailer",
            &format!("5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n{SMUGGLED}"),
        ),
        bad_body(
            "trailer section too large",
            &format!(
                "5\r\nhello\r\n0\r\n{}\r\n{SMUGGLED}",
                "X-Trailer-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(400)
            ),
        ),
        // ---- header syntax
        rejected(
            "obs-fold in a header",
            get_with("X-Folded: a\r\n b\r\n"),
            400,
        ),
        rejected("NUL in a header value", get_with("X-Nul: a\0b\r\n"), 400),
        rejected("bare CR in a header value", get_with("X-Cr: a\rb\r\n"), 400),
        rejected(
            "invalid character in a header name",
            get_with("X(Bad): a\r\n"),
            400,
        ),
        rejected("space inside a header name", get_with("X Bad: a\r\n"), 400),
        rejected("space before the colon", get_with("X-Foo : a\r\n"), 400),
        rejected("tab before the colon", get_with("X-Foo\t: a\r\n"), 400),
        rejected("DEL in a header value", get_with("X-Del: a\x7fb\r\n"), 400),
        rejected(
            "header line without a colon",
            get_with("NoColonHere\r\n"),
            400,
        ),
        rejected(
            "whitespace before the first header",
            "GET /echo HTTP/1.1\r\n X-Lead: a\r\nHost: test\r\n\r\n",
            400,
        ),
        // ---- request line and Host
        rejected(
            "invalid method token",
            "G(T /echo HTTP/1.1\r\nHost: test\r\n\r\n",
            400,
        ),
        rejected(
            "two spaces in the request line",
            "GET  /echo HTTP/1.1\r\nHost: test\r\n\r\n",
            400,
        ),
        rejected(
            "NUL in the request target",
            "GET /ec\0ho HTTP/1.1\r\nHost: test\r\n\r\n",
            400,
        ),
        rejected(
            "missing Host on HTTP/1.1",
            "GET /echo HTTP/1.1\r\n\r\n",
            400,
        ),
        rejected(
            "two Host fields",
            "GET /echo HTTP/1.1\r\nHost: test\r\nHost: other\r\n\r\n",
            400,
        ),
        rejected(
            "Host with userinfo",
            "GET /echo HTTP/1.1\r\nHost: user@test\r\n\r\n",
            400,
        ),
        rejected(
            "fragment in the request target",
            "GET /echo#frag HTTP/1.1\r\nHost: test\r\n\r\n",
            400,
        ),
        rejected(
            "request target without a leading slash",
            "GET echo HTTP/1.1\r\nHost: test\r\n\r\n",
            400,
        ),
        rejected(
            "absolute-form with an unsupported scheme",
            "GET ftp://test/echo HTTP/1.1\r\nHost: test\r\n\r\n",
            400,
        ),
        rejected(
            "absolute-form with userinfo",
            "GET http://user@test/echo HTTP/1.1\r\nHost: test\r\n\r\n",
            400,
        ),
        rejected(
            "absolute-form with a port out of range",
            "GET http://test:99999/echo HTTP/1.1\r\nHost: test\r\n\r\n",
            400,
        ),
        rejected(
            "absolute-form with a port that is not a number",
            "GET http://test:8x/echo HTTP/1.1\r\nHost: test\r\n\r\n",
            400,
        ),
        rejected(
            "HTTP/2.0 version",
            "GET /echo HTTP/2.0\r\nHost: test\r\n\r\n",
            505,
        ),
        rejected(
            "HTTP/1.2 version",
            "GET /echo HTTP/1.2\r\nHost: test\r\n\r\n",
            505,
        ),
        rejected(
            "HTTP/3.0 version",
            "GET /echo HTTP/3.0\r\nHost: test\r\n\r\n",
            505,
        ),
        rejected(
            "garbage version",
            "GET /echo HTTX/1.1\r\nHost: test\r\n\r\n",
            400,
        ),
        rejected(
            "two-digit minor version",
            "GET /echo HTTP/1.10\r\nHost: test\r\n\r\n",
            400,
        ),
        rejected(
            "lower-case version",
            "GET /echo http/1.1\r\nHost: test\r\n\r\n",
            400,
        ),
        rejected(
            "CONNECT",
            "CONNECT test:443 HTTP/1.1\r\nHost: test:443\r\n\r\n",
            405,
        ),
        rejected(
            "Expect other than 100-continue",
            post("Expect: 200-ok\r\nContent-Length: 5\r\n", "hello"),
            417,
        ),
        // ---- limits
        rejected(
            "request head too large",
            get_with(
                &"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
                    .repeat(1200),
            ),
            431,
        ),
        rejected(
            "too many header fields",
            get_with(&"X-A: a\r\n".repeat(200)),
            431,
        ),
        rejected(
            "request line too long",
            format!("GET /{} HTTP/1.1\r\nHost: test\r\n\r\n", "a".repeat(9000)),
            414,
        ),
    ]
}

fn status_line(code: u16) -> String {
    let reason = StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("HTTP/1.1 {code} {reason}")
}

/// Run one case against a fresh origin and proxy; `Err` describes what went wrong.
async fn run_case(case: &Case) -> Result<(), String> {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    // The proxy may stop reading once it has seen enough to reject.
    let _ = c.try_send(&case.raw).await;
    let Some(head) = c.try_read_head().await else {
        return Err("no response at all".into());
    };
    let status = match case.outcome {
        Outcome::Rejected(s) | Outcome::BadBody(s) => s,
    };
    if head.status_line != status_line(status) {
        return Err(format!(
            "expected {:?}, got {:?}",
            status_line(status),
            head.status_line
        ));
    }
    if !head.has_token("connection", "close") {
        return Err(format!(
            "response does not announce the close:\n{}",
            head.raw
        ));
    }
    let r = c.read_body(head, false, true).await;
    if !r.complete {
        return Err("error response body cut short".into());
    }
    let rest = c.read_to_end().await;
    if !rest.is_empty() {
        return Err(format!(
            "bytes after the error response: {:?}",
            String::from_utf8_lossy(&rest)
        ));
    }
    match case.outcome {
        Outcome::Rejected(_) => {
            if origin.accepts() != 0 || !origin.requests().is_empty() {
                return Err(format!(
                    "the origin was reached: {} connection(s), requests {:?}",
                    origin.accepts(),
                    origin.requests()
                ));
            }
        }
        Outcome::BadBody(_) => {
            origin.wait_all_closed().await;
            let reqs = origin.requests();
            if reqs.len() > 1 || reqs.iter().any(|r| r.body_complete) {
                return Err(format!("the origin received a complete request: {reqs:?}"));
            }
            if reqs.iter().any(|r| r.path() == "/smuggled") {
                return Err("the smuggled request reached the origin".into());
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn malformed_input_matrix() {
    let cases = cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for case in &cases {
        let result = run_case(case).await;
        eprintln!(
            "{:<55} {:?}: {}",
            case.name,
            case.outcome,
            match &result {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("FAILED: {e}"),
            }
        );
        if let Err(e) = result {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} malformed-input cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn a_malformed_request_after_a_good_one_fails_only_itself() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send(concat!(
        "GET /echo HTTP/1.1\r\nHost: test\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: test\r\n\r\n",
    ))
    .await;
    let first = c.read_response().await;
    assert_eq!(first.status(), 200);
    let second = c.read_response().await;
    assert_eq!(second.head.status_line, "HTTP/1.1 400 Bad Request");
    assert!(c.is_closed().await);
    let paths: Vec<String> = origin
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(
        paths,
        ["/echo"],
        "only the valid request reached the origin"
    );
}

#[tokio::test]
async fn client_that_sends_half_a_head_and_stalls_gets_408() {
    let origin = Origin::start().await;
    let (addr, _proxy) = start_proxy(TestProxy::new(origin.addr), |b| {
        b.header_read_timeout(Duration::from_millis(300))
    })
    .await;
    let mut c = Client::connect(addr).await;
    c.send("GET /echo HTTP/1.1\r\nHost: test\r\nX-Slow: ").await;
    let r = c.read_response().await;
    assert_eq!(r.head.status_line, "HTTP/1.1 408 Request Timeout");
    assert!(r.head.has_token("connection", "close"));
    assert!(c.is_closed().await);
    assert_eq!(origin.accepts(), 0);
    // The proxy keeps serving.
    assert_eq!(get(addr, "/echo").await.status(), 200);
}

#[tokio::test]
async fn client_that_stalls_in_the_body_gets_408_and_the_origin_no_complete_request() {
    let origin = Origin::start().await;
    let (addr, _proxy) = start_proxy(TestProxy::new(origin.addr), |b| {
        b.body_read_timeout(Duration::from_millis(300))
    })
    .await;
    let mut c = Client::connect(addr).await;
    c.send("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc")
        .await;
    let r = c.read_response().await;
    assert_eq!(r.head.status_line, "HTTP/1.1 408 Request Timeout");
    assert!(c.is_closed().await);
    origin.wait_all_closed().await;
    assert!(origin.requests().iter().all(|r| !r.body_complete));
    assert_eq!(get(addr, "/echo").await.status(), 200);
}

#[tokio::test]
async fn client_that_opens_a_connection_and_sends_nothing_is_closed_silently() {
    let origin = Origin::start().await;
    let (addr, _proxy) = start_proxy(TestProxy::new(origin.addr), |b| {
        b.header_read_timeout(Duration::from_millis(300))
    })
    .await;
    let mut c = Client::connect(addr).await;
    assert!(
        c.read_to_end().await.is_empty(),
        "an idle connection is closed without a response"
    );
}

#[tokio::test]
async fn client_that_closes_in_the_middle_of_the_body_never_delivers_a_complete_request() {
    let (origin, addr, proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send("POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        .await;
    c.shutdown_write().await;
    assert!(
        c.read_to_end().await.is_empty(),
        "nobody is left to answer: the connection just closes"
    );
    origin.wait_all_closed().await;
    assert!(origin.requests().iter().all(|r| !r.body_complete));
    wait_until("logging", || proxy.app().log_calls() == 1).await;
    assert!(proxy.app().log()[0].error.is_some());
    assert_eq!(get(addr, "/echo").await.status(), 200);
}

#[tokio::test]
async fn client_that_stops_reading_is_dropped_after_the_write_timeout_with_its_origin_connection() {
    let origin = Origin::start().await;
    let (addr, proxy) = start_proxy(TestProxy::new(origin.addr), |b| {
        b.write_timeout(Duration::from_millis(300))
    })
    .await;
    let mut c = Client::connect(addr).await;
    c.send("GET /big?n=200000000 HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    // Never read: the proxy's writes stall, and it must give up on both connections.
    origin.wait_all_closed().await;
    wait_until("logging", || proxy.app().log_calls() == 1).await;
    let log = proxy.app().log();
    assert!(
        log[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("WriteTimedout")),
        "{log:?}"
    );
    drop(c);
    assert_eq!(get(addr, "/echo").await.status(), 200);
}

#[tokio::test]
async fn an_unread_body_of_a_locally_answered_request_is_never_parsed_as_a_request() {
    let (origin, addr, proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    let body = "GET /smuggled HTTP/1.1\r\nHost: test\r\n\r\n";
    c.send(format!(
        "POST /deny HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ))
    .await;
    let r = c.read_response().await;
    assert_eq!(r.head.status_line, "HTTP/1.1 403 Forbidden");
    assert!(r.head.has_token("connection", "close"));
    assert!(
        c.is_closed().await,
        "the unread body leaves the connection unusable"
    );
    assert_eq!(
        origin.accepts(),
        0,
        "the smuggled request never reaches the origin"
    );
    assert_eq!(proxy.app().log_calls(), 1);
    assert_eq!(proxy.app().log()[0].error, None);
    assert_eq!(proxy.app().log()[0].status, Some(403));
}

#[tokio::test]
async fn framing_headers_named_in_connection_do_not_desynchronise_the_origin() {
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    // Each body carries what a desynchronised origin would take for a second request.
    let smuggle = "GET /smuggled HTTP/1.1\r\nHost: test\r\n\r\n";
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nConnection: Content-Length\r\nContent-Length: {}\r\n\r\n{smuggle}",
        smuggle.len()
    ))
    .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), smuggle);
    let chunk = format!("{:x}\r\n{smuggle}\r\n0\r\n\r\n", smuggle.len());
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}"
    ))
    .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), smuggle);
    c.send(format!(
        "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: {n}, {n}\r\n\r\n{smuggle}",
        n = smuggle.len()
    ))
    .await;
    let r = c.read_response().await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text(), smuggle);

    let reqs = origin.requests();
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    for up in &reqs {
        assert!(up.body_complete);
        assert_eq!(up.body, smuggle.as_bytes());
        // Exactly one framing header reaches the origin.
        assert!(
            up.has_header("content-length") != up.has_header("transfer-encoding"),
            "{}",
            up.head
        );
    }
    assert!(reqs.iter().all(|r| r.path() != "/smuggled"));
}

#[tokio::test]
async fn a_request_line_of_exactly_the_limit_is_accepted_and_one_more_byte_is_414() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    // `GET /a…a HTTP/1.1` of 8 KiB, the default `max_request_line`, CRLF not counted.
    let line = |len: usize| format!("GET /echo?{} HTTP/1.1", "a".repeat(len - 19));
    assert_eq!(line(8192).len(), 8192);
    let r = request(addr, &format!("{}\r\nHost: test\r\n\r\n", line(8192))).await;
    assert_eq!(r.status(), 200);
    let r = request(addr, &format!("{}\r\nHost: test\r\n\r\n", line(8193))).await;
    assert_eq!(r.status(), 414);
}

#[tokio::test]
async fn the_first_head_is_due_within_the_header_timeout_of_the_connection_s_start() {
    let origin = Origin::start().await;
    let (addr, _proxy) = start_proxy(TestProxy::new(origin.addr), |b| {
        b.header_read_timeout(Duration::from_millis(400))
    })
    .await;
    let mut c = Client::connect(addr).await;
    // Silent for most of the timeout, then a byte at a time: each read comes well
    // within the timeout, and the head would be complete within the timeout of its
    // first byte, but not of the connection's start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let head = "GET /echo HTTP/1.1\r\nHost: test\r\n\r\n";
    let mut cut = false;
    for b in head.bytes() {
        if c.try_send(&[b]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if !cut {
        let r = c.read_response().await;
        assert_eq!(r.head.status_line, "HTTP/1.1 408 Request Timeout");
    }
    assert_eq!(origin.accepts(), 0, "the late head reached the origin");
}
