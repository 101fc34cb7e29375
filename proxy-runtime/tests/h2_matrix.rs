//! The protocol matrix: every client side {HTTP/1.1, h2c, HTTP/1.1 over TLS, h2 over TLS}
//! × every origin side {HTTP/1.1, h2c, HTTP/1.1 over TLS, h2 over TLS}. For each pair,
//! one client connection carries a table of exchanges — uploads and downloads of 1 B,
//! 64 KiB and 10 MiB — and status, headers, body bytes (length and checksum) and
//! trailers must arrive intact.
//!
//! Trailer rules checked (see `proxy/common.rs`, `relay_response_end`): an HTTP/2
//! client always gets the origin's trailers; an HTTP/1.1 client gets them from an
//! HTTP/1.1 origin (chunked to chunked), and from an HTTP/2 origin only when it sent
//! `TE: trailers`. An HTTP/2 origin hears `te: trailers` exactly when the client said
//! it accepts trailers; an HTTP/1.1 origin never does (hop-by-hop).
//!
//! Size of the run: the full matrix, 10 MiB cases included for every pair — one test
//! per client side (so they run in parallel), each with all four origin sides and all
//! nine cases: 16 pairs × 4 × 10 MiB = 640 MiB through the proxy. That takes a few
//! seconds for the whole binary on two cores in a debug build, well under the ~30 s
//! budget, so no pair is left out of the 10 MiB cases. `H2_MATRIX_SKIP_BIG=1` leaves
//! them out for a quick run.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod h2common;

use h2common::*;

/// An origin side of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Up {
    H1,
    H2c,
    H1Tls,
    H2Tls,
}

impl Up {
    const ALL: [Up; 4] = [Up::H1, Up::H2c, Up::H1Tls, Up::H2Tls];

    fn route(self) -> &'static str {
        match self {
            Up::H1 => "h1",
            Up::H2c => "h2c",
            Up::H1Tls => "h1-tls",
            Up::H2Tls => "h2-tls",
        }
    }

    fn proto(self) -> Proto {
        match self {
            Up::H1 | Up::H1Tls => Proto::H1,
            Up::H2c | Up::H2Tls => Proto::H2,
        }
    }

    fn tls(self) -> bool {
        matches!(self, Up::H1Tls | Up::H2Tls)
    }
}

/// One exchange of the table.
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    /// Request body bytes (POST when > 0).
    up: u64,
    /// Response body bytes.
    down: u64,
    /// Declare the request body's length (else chunked / no content-length).
    content_length: bool,
    /// Send request trailers (`x-checksum` of the request body).
    req_trailers: bool,
    /// Ask the origin for response trailers.
    resp_trailers: bool,
    /// Send `TE: trailers`.
    te: bool,
    /// A 10 MiB case (left out with `H2_MATRIX_SKIP_BIG=1`).
    big: bool,
}

const KIB64: u64 = 64 * 1024;
const MIB10: u64 = 10 * 1024 * 1024;

const CASES: [Case; 9] = [
    Case {
        name: "upload 1 B with a length",
        up: 1,
        down: 0,
        content_length: true,
        req_trailers: false,
        resp_trailers: false,
        te: false,
        big: false,
    },
    Case {
        name: "upload 64 KiB without a length, with trailers both ways",
        up: KIB64,
        down: 0,
        content_length: false,
        req_trailers: true,
        resp_trailers: true,
        te: true,
        big: false,
    },
    Case {
        name: "upload 10 MiB with a length",
        up: MIB10,
        down: 0,
        content_length: true,
        req_trailers: false,
        resp_trailers: true,
        te: false,
        big: true,
    },
    Case {
        name: "upload 10 MiB without a length, with trailers both ways",
        up: MIB10,
        down: 0,
        content_length: false,
        req_trailers: true,
        resp_trailers: true,
        te: true,
        big: true,
    },
    Case {
        name: "download 1 B with trailers, no TE",
        up: 0,
        down: 1,
        content_length: true,
        req_trailers: false,
        resp_trailers: true,
        te: false,
        big: false,
    },
    Case {
        name: "download 64 KiB with a length",
        up: 0,
        down: KIB64,
        content_length: true,
        req_trailers: false,
        resp_trailers: false,
        te: false,
        big: false,
    },
    Case {
        name: "download 64 KiB with trailers and TE",
        up: 0,
        down: KIB64,
        content_length: true,
        req_trailers: false,
        resp_trailers: true,
        te: true,
        big: false,
    },
    Case {
        name: "download 10 MiB with a length",
        up: 0,
        down: MIB10,
        content_length: true,
        req_trailers: false,
        resp_trailers: false,
        te: false,
        big: true,
    },
    Case {
        name: "download 10 MiB with trailers and TE",
        up: 0,
        down: MIB10,
        content_length: true,
        req_trailers: false,
        resp_trailers: true,
        te: true,
        big: true,
    },
];

struct World {
    pki: Pki,
    _origins: Vec<TestOrigin>,
    proxy: RunningProxy<RouteProxy>,
}

async fn world() -> World {
    let pki = Pki::new("matrix");
    let mut origins = Vec::new();
    let mut routes = Vec::new();
    for up in Up::ALL {
        let cfg = if up.tls() {
            OriginConfig::tls(up.proto(), &pki)
        } else {
            OriginConfig::plain(up.proto())
        };
        let origin = TestOrigin::start(cfg).await;
        routes.push((up.route().to_string(), origin.peer(&pki)));
        origins.push(origin);
    }
    let proxy = run_proxy(
        RouteProxy::new(routes),
        Some(proxy_tls_settings(&pki)),
        |b| b,
    )
    .await;
    World {
        pki,
        _origins: origins,
        proxy,
    }
}

fn exchange_for(up: Up, case: &Case, tag: &str) -> Exchange {
    let method = if case.up > 0 { "POST" } else { "GET" };
    let status = if case.up > 0 { 201 } else { 200 };
    let mut path = format!("/matrix?n={}&status={status}", case.down);
    if case.resp_trailers {
        path.push_str("&trailers=1");
    }
    let mut ex = Exchange::get(path)
        .header("x-route", up.route())
        .header("x-test", tag);
    ex.method = method;
    ex.body_len = case.up;
    ex.content_length = case.content_length;
    ex.te_trailers = case.te;
    if case.req_trailers {
        ex.trailers = vec![("x-checksum".to_string(), pattern_sum(case.up))];
    }
    ex
}

/// Everything wrong with `out`, as readable lines (empty: all good).
fn check(down: Down, up: Up, case: &Case, tag: &str, out: &Outcome) -> Vec<String> {
    let mut bad = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            bad.push(what);
        }
    };
    if !out.complete {
        return vec![format!(
            "incomplete response (status {}): {:?}",
            out.status, out.error
        )];
    }
    let status = if case.up > 0 { 201 } else { 200 };
    expect(
        out.status == status,
        format!("status {} (want {status})", out.status),
    );
    let proto = out.header("x-origin-proto");
    expect(
        proto == Some(up.proto().as_str()),
        format!("x-origin-proto {proto:?}"),
    );
    expect(
        out.header("x-echo") == Some(tag),
        format!("x-echo {:?} (want {tag:?})", out.header("x-echo")),
    );
    expect(
        out.header("x-req-len") == Some(case.up.to_string().as_str()),
        format!(
            "request body length at the origin {:?} (want {})",
            out.header("x-req-len"),
            case.up
        ),
    );
    let want_sum = pattern_sum(case.up);
    expect(
        out.header("x-req-sum") == Some(want_sum.as_str()),
        format!(
            "request body checksum at the origin {:?}",
            out.header("x-req-sum")
        ),
    );
    let req_trailer = out.header("x-req-trailer");
    if case.req_trailers {
        expect(
            req_trailer == Some(want_sum.as_str()),
            format!("request trailer at the origin {req_trailer:?} (want {want_sum})"),
        );
    } else {
        expect(
            req_trailer.is_none(),
            format!("unexpected request trailer {req_trailer:?}"),
        );
    }
    let te_seen = out.header("x-req-te");
    let te_wanted = up.proto() == Proto::H2 && case.te;
    expect(
        te_seen == te_wanted.then_some("trailers"),
        format!(
            "TE at the origin {te_seen:?} (want {:?})",
            te_wanted.then_some("trailers")
        ),
    );
    expect(
        out.body.len == case.down,
        format!("response body length {} (want {})", out.body.len, case.down),
    );
    expect(
        out.body.hex() == pattern_sum(case.down),
        "response body checksum differs".to_string(),
    );
    if let Some(cl) = out.header("content-length") {
        expect(
            cl == case.down.to_string(),
            format!("content-length {cl} for a body of {}", case.down),
        );
    }
    let trailers_expected =
        case.resp_trailers && (down.proto() == Proto::H2 || case.te || up.proto() == Proto::H1);
    if trailers_expected {
        expect(
            out.trailer("x-checksum") == Some(pattern_sum(case.down).as_str()),
            format!("trailer x-checksum {:?}", out.trailer("x-checksum")),
        );
        expect(
            out.trailer("x-trailer-two") == Some("2"),
            format!("trailer x-trailer-two {:?}", out.trailer("x-trailer-two")),
        );
    } else {
        expect(
            out.trailers.is_empty(),
            format!("trailers not expected, got {:?}", out.trailers),
        );
    }
    bad
}

async fn run_matrix(down: Down) {
    let skip_big = std::env::var_os("H2_MATRIX_SKIP_BIG").is_some();
    let w = world().await;
    let mut failures = Vec::new();
    let mut ran = 0;
    for up in Up::ALL {
        // One client connection per pair: it carries every case in turn.
        let mut client = DownClient::connect(down, &w.proxy, &w.pki).await;
        for case in CASES.iter().filter(|c| !(skip_big && c.big)) {
            let tag = format!("{down:?}-to-{up:?}-{}", case.name.replace(' ', "_"));
            // Shown with the output of a failing test: which exchange it was on.
            eprintln!("exchange: {tag}");
            let out = client.exchange(&exchange_for(up, case, &tag)).await;
            ran += 1;
            for line in check(down, up, case, &tag, &out) {
                failures.push(format!("{down:?} -> {up:?}, {}: {line}", case.name));
            }
            if !out.complete {
                // The connection may be unusable now: go on with a fresh one.
                client = DownClient::connect(down, &w.proxy, &w.pki).await;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the checks failed ({ran} exchanges):\n{}\nproxy errors: {:?}",
        failures.len(),
        failures.join("\n"),
        w.proxy.app().errors()
    );
    assert!(
        w.proxy.app().errors().is_empty(),
        "requests failed in the proxy: {:?}",
        w.proxy.app().errors()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_from_http1_client() {
    run_matrix(Down::H1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_from_h2c_client() {
    run_matrix(Down::H2c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_from_http1_tls_client() {
    run_matrix(Down::H1Tls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_from_h2_tls_client() {
    run_matrix(Down::H2Tls).await;
}

/// An HTTP/2 client may send request trailers after a body whose length it declared
/// (nghttp does, announcing them with `Trailer`). `Content-Length` framing cannot carry
/// trailers to an HTTP/1.1 origin: when they were announced, the proxy sends the body
/// chunked so they arrive. (The matrix above sends trailers only with bodies of
/// unknown length.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_request_trailers_with_a_length_reach_an_http1_origin() {
    let w = world().await;
    for up in [Up::H1, Up::H1Tls, Up::H2c] {
        let mut c = DownClient::connect(Down::H2c, &w.proxy, &w.pki).await;
        let mut ex = exchange_for(up, &CASES[1], "trailers-with-length");
        ex.content_length = true;
        ex.headers
            .push(("trailer".to_string(), "x-checksum".to_string()));
        let out = c.exchange(&ex).await;
        assert_eq!(out.status, 201, "{up:?}: {out:?}");
        assert_eq!(out.header("x-req-len"), Some("65536"), "{up:?}");
        assert_eq!(
            out.header("x-req-trailer"),
            Some(pattern_sum(KIB64).as_str()),
            "{up:?}: the request trailer must reach the origin"
        );
    }
}
