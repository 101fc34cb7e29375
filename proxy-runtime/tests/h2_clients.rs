//! Real HTTP/2 clients against the proxy: `curl --http2-prior-knowledge` (h2c),
//! `curl --http2` over TLS with `--cacert`, `nghttp` (nghttp2-client), cleartext and
//! over TLS, to every origin side, and `h2load` with many concurrent streams per
//! connection. A test whose tool is missing prints `SKIPPED: <tool> not installed` and
//! returns (CI installs them all: see `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod h2common;

use std::path::PathBuf;

use h2common::*;
use tokio::process::Command;

/// The origin sides, by route name.
const ROUTES: [(&str, Proto, bool); 4] = [
    ("h1", Proto::H1, false),
    ("h2c", Proto::H2, false),
    ("h1-tls", Proto::H1, true),
    ("h2-tls", Proto::H2, true),
];

struct World {
    pki: Pki,
    _origins: Vec<TestOrigin>,
    proxy: RunningProxy<RouteProxy>,
}

async fn world(label: &str) -> World {
    let pki = Pki::new(label);
    let mut origins = Vec::new();
    let mut routes = Vec::new();
    for (name, proto, tls) in ROUTES {
        let cfg = if tls {
            OriginConfig::tls(proto, &pki)
        } else {
            OriginConfig::plain(proto)
        };
        let o = TestOrigin::start(cfg).await;
        routes.push((name.to_string(), o.peer(&pki)));
        origins.push(o);
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

struct ToolOutput {
    stdout: Vec<u8>,
    stderr: String,
    code: Option<i32>,
}

impl ToolOutput {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

async fn run_tool(tool: &str, args: &[String]) -> ToolOutput {
    let out = bounded(
        &format!("{tool} {args:?}"),
        Command::new(tool).args(args).kill_on_drop(true).output(),
    )
    .await
    .unwrap_or_else(|e| panic!("{tool} could not be started: {e}"));
    ToolOutput {
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// curl with no proxy from the environment and a bounded run time.
async fn curl(args: &[String]) -> ToolOutput {
    let mut all: Vec<String> = [
        "--silent",
        "--show-error",
        "--noproxy",
        "*",
        "--max-time",
        "8",
    ]
    .map(String::from)
    .to_vec();
    all.extend_from_slice(args);
    run_tool("curl", &all).await
}

fn sum_of(data: &[u8]) -> Sum {
    let mut s = Sum::default();
    s.update(data);
    s
}

/// A file of `n` pattern bytes in the PKI's directory.
fn pattern_file(pki: &Pki, name: &str, n: u64) -> PathBuf {
    let path = pki.dir.join(name);
    let mut data = Vec::with_capacity(n as usize);
    for piece in pattern_pieces(n) {
        data.extend_from_slice(&piece);
    }
    std::fs::write(&path, data).unwrap();
    path
}

/// `name: value` header lines of a curl `-D` dump, lowercase names.
fn dumped_fields(dump: &str) -> Vec<(String, String)> {
    dump.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn s(v: impl Into<String>) -> String {
    v.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http2_prior_knowledge_to_every_origin() {
    if !tool_available("curl") {
        return;
    }
    let w = world("curl-h2c").await;
    let n = 300_000u64;
    let upload = pattern_file(&w.pki, "upload", 1 << 20);
    for (route, proto, _) in ROUTES {
        let body = w.pki.dir.join(format!("body-{route}"));
        let dump = w.pki.dir.join(format!("headers-{route}"));
        let url = format!("http://{}/curl?n={n}&trailers=1", w.proxy.plain);
        let out = curl(&[
            s("--http2-prior-knowledge"),
            s("-H"),
            format!("x-route: {route}"),
            s("-H"),
            s("x-test: curl-h2c"),
            s("-o"),
            path_of(&body).to_string(),
            s("-D"),
            path_of(&dump).to_string(),
            s("-w"),
            s("%{http_version} %{http_code} %{size_download}"),
            url,
        ])
        .await;
        assert_eq!(out.code, Some(0), "{route}: {}", out.stderr);
        assert_eq!(out.text(), format!("2 200 {n}"), "{route}");
        let got = std::fs::read(&body).unwrap();
        assert_eq!(sum_of(&got).len, n, "{route}");
        assert_eq!(sum_of(&got).hex(), pattern_sum(n), "{route}");
        let fields = dumped_fields(&std::fs::read_to_string(&dump).unwrap());
        assert_eq!(
            field(&fields, "x-origin-proto"),
            Some(proto.as_str()),
            "{route}"
        );
        assert_eq!(field(&fields, "x-echo"), Some("curl-h2c"), "{route}");
        // curl writes trailers to the header dump, after the head.
        assert_eq!(
            field(&fields, "x-checksum"),
            Some(pattern_sum(n).as_str()),
            "{route}: trailers in {fields:?}"
        );

        // An upload: the origin saw every byte.
        let out = curl(&[
            s("--http2-prior-knowledge"),
            s("-H"),
            format!("x-route: {route}"),
            s("--data-binary"),
            format!("@{}", path_of(&upload)),
            s("-D"),
            s("-"),
            s("-o"),
            s("/dev/null"),
            format!("http://{}/curl-upload?status=201", w.proxy.plain),
        ])
        .await;
        assert_eq!(out.code, Some(0), "{route}: {}", out.stderr);
        let fields = dumped_fields(&out.text());
        assert!(
            out.text().starts_with("HTTP/2 201"),
            "{route}: {}",
            out.text()
        );
        assert_eq!(field(&fields, "x-req-len"), Some("1048576"), "{route}");
        assert_eq!(
            field(&fields, "x-req-sum"),
            Some(pattern_sum(1 << 20).as_str()),
            "{route}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_http2_over_tls_with_cacert() {
    if !tool_available("curl") {
        return;
    }
    let w = world("curl-tls").await;
    let port = w.proxy.tls_addr().port();
    let resolve = format!("{PROXY_NAME}:{port}:127.0.0.1");
    let n = 100_000u64;
    for (route, proto, _) in ROUTES {
        for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
            let body = w.pki.dir.join(format!("tls-body-{route}{flag}"));
            let out = curl(&[
                s(flag),
                s("--cacert"),
                path_of(&w.pki.ca_file).to_string(),
                s("--resolve"),
                resolve.clone(),
                s("-H"),
                format!("x-route: {route}"),
                s("-o"),
                path_of(&body).to_string(),
                s("-D"),
                s("-"),
                s("-w"),
                s("\n%{http_version} %{http_code} %{size_download}"),
                format!("https://{PROXY_NAME}:{port}/curl-tls?n={n}"),
            ])
            .await;
            assert_eq!(out.code, Some(0), "{route} {flag}: {}", out.stderr);
            let text = out.text();
            assert!(
                text.ends_with(&format!("\n{version} 200 {n}")),
                "{route} {flag}: {text}"
            );
            let fields = dumped_fields(&text);
            assert_eq!(field(&fields, "x-origin-proto"), Some(proto.as_str()));
            assert_eq!(sum_of(&std::fs::read(&body).unwrap()).hex(), pattern_sum(n));
        }
    }
    // Without the test CA, curl refuses the proxy's certificate.
    let out = curl(&[
        s("--http2"),
        s("--resolve"),
        resolve,
        format!("https://{PROXY_NAME}:{port}/curl-tls"),
    ])
    .await;
    assert_eq!(
        out.code,
        Some(60),
        "curl must not trust the test certificate without --cacert: {}",
        out.stderr
    );
}

/// `nghttp -v` output: the received header and trailer lines (of the one request), as
/// (name, value).
fn nghttp_received(verbose: &str) -> Vec<(String, String)> {
    verbose
        .lines()
        .filter_map(|l| l.split_once("recv (stream_id="))
        .filter_map(|(_, rest)| rest.split_once(") "))
        .filter_map(|(_, rest)| {
            let rest = rest.trim();
            // Pseudo-headers start with ':' themselves.
            let (n, v) = match rest.strip_prefix(':') {
                Some(p) => {
                    let (n, v) = p.split_once(':')?;
                    (format!(":{n}"), v)
                }
                None => {
                    let (n, v) = rest.split_once(':')?;
                    (n.to_string(), v)
                }
            };
            Some((n.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nghttp_cleartext_and_tls_to_every_origin() {
    if !tool_available("nghttp") {
        return;
    }
    let w = world("nghttp").await;
    let n = 200_000u64;
    let upload = pattern_file(&w.pki, "nghttp-upload", 300_000);
    for (route, proto, _) in ROUTES {
        for base in [
            format!("http://{}", w.proxy.plain),
            format!("https://127.0.0.1:{}", w.proxy.tls_addr().port()),
        ] {
            let url = format!("{base}/nghttp?n={n}&trailers=1");
            let common = [
                s("-y"),
                s("-t"),
                s("8"),
                s("-H"),
                format!("x-route: {route}"),
            ];
            // The body, alone on stdout.
            let mut args = common.to_vec();
            args.push(url.clone());
            let out = run_tool("nghttp", &args).await;
            assert_eq!(out.code, Some(0), "{route} {base}: {}", out.stderr);
            assert_eq!(sum_of(&out.stdout).len, n, "{route} {base}");
            assert_eq!(sum_of(&out.stdout).hex(), pattern_sum(n), "{route} {base}");
            // Headers and trailers, from the frame log.
            let mut args = common.to_vec();
            args.extend([s("-v"), s("-n"), url]);
            let out = run_tool("nghttp", &args).await;
            assert_eq!(out.code, Some(0), "{route} {base}: {}", out.stderr);
            let text = out.text();
            if base.starts_with("https") {
                assert!(
                    text.contains("The negotiated protocol: h2"),
                    "{route}: ALPN h2 expected:\n{text}"
                );
            }
            let got = nghttp_received(&text);
            assert_eq!(
                field(&got, ":status"),
                Some("200"),
                "{route} {base}:\n{text}"
            );
            assert_eq!(field(&got, "x-origin-proto"), Some(proto.as_str()));
            assert_eq!(
                field(&got, "x-checksum"),
                Some(pattern_sum(n).as_str()),
                "{route} {base}: trailer expected:\n{text}"
            );
            // An upload with a trailer.
            let mut args = common.to_vec();
            args.extend([
                s("-v"),
                s("-n"),
                s("-d"),
                path_of(&upload).to_string(),
                s("--trailer"),
                format!("x-checksum: {}", pattern_sum(300_000)),
                format!("{base}/nghttp-upload?status=201"),
            ]);
            let out = run_tool("nghttp", &args).await;
            assert_eq!(out.code, Some(0), "{route} {base}: {}", out.stderr);
            let text = out.text();
            let got = nghttp_received(&text);
            assert_eq!(
                field(&got, ":status"),
                Some("201"),
                "{route} {base}:\n{text}"
            );
            assert_eq!(field(&got, "x-req-len"), Some("300000"), "{route} {base}");
            assert_eq!(
                field(&got, "x-req-sum"),
                Some(pattern_sum(300_000).as_str()),
                "{route} {base}"
            );
            // nghttp declares the body's length *and* sends trailers: an HTTP/1 origin
            // gets the body by `Content-Length`, which cannot carry them (see the ignored
            // `h2_request_trailers_with_a_length_reach_an_http1_origin` in h2_matrix.rs).
            if proto == Proto::H2 {
                assert_eq!(
                    field(&got, "x-req-trailer"),
                    Some(pattern_sum(300_000).as_str()),
                    "{route} {base}: the request trailer reaches the origin"
                );
            }
        }
    }
}

/// The number in parentheses before `label` on h2load's `traffic:` line
/// (`..., 1.95MB (2048000) data`).
fn h2load_traffic(out: &str, label: &str) -> Option<u64> {
    let line = out.lines().find(|l| l.starts_with("traffic:"))?;
    let before = &line[..line.find(&format!(") {label}"))?];
    before[before.rfind('(')? + 1..].parse().ok()
}

/// Many streams at once on few connections: the responses of streams that finish
/// together leave in shared writes (`protocols::h2::coalesce`); every one must arrive
/// whole, over h2c and TLS, from every origin side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_many_concurrent_streams_to_every_origin() {
    if !tool_available("h2load") {
        return;
    }
    let w = world("h2load").await;
    const REQUESTS: u64 = 600;
    for (route, _, _) in ROUTES {
        for (body, base) in [
            (1_024u64, format!("http://{}", w.proxy.plain)),
            (
                1_024,
                format!("https://127.0.0.1:{}", w.proxy.tls_addr().port()),
            ),
            (40_000, format!("http://{}", w.proxy.plain)),
        ] {
            let args = [
                s("-n"),
                REQUESTS.to_string(),
                s("-c"),
                s("3"),
                s("-m"),
                s("16"),
                s("-H"),
                format!("x-route: {route}"),
                format!("{base}/h2load?n={body}"),
            ];
            let out = run_tool("h2load", &args).await;
            let text = out.text();
            assert_eq!(out.code, Some(0), "{route} {base}: {}\n{text}", out.stderr);
            assert!(
                text.contains(&format!("{REQUESTS} succeeded, 0 failed, 0 errored")),
                "{route} {base} {body}:\n{text}"
            );
            assert!(
                text.contains(&format!("status codes: {REQUESTS} 2xx")),
                "{route} {base} {body}:\n{text}"
            );
            assert_eq!(
                h2load_traffic(&text, "data"),
                Some(REQUESTS * body),
                "every body byte arrives ({route} {base}):\n{text}"
            );
        }
    }
}
