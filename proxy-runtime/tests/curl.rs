//! `curl` as a real client of the proxy (skipped, loudly, where curl is not installed).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;

use common::*;
use tokio::process::Command;
use tokio::time::timeout;

/// Whether curl can run here; prints the skip notice when it cannot.
fn curl_available() -> bool {
    let ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: curl not installed");
    }
    ok
}

struct CurlOutput {
    stdout: String,
    stderr: String,
    success: bool,
}

/// Run curl with `args` (no proxy from the environment, bounded time).
async fn curl(args: &[&str]) -> CurlOutput {
    let out = timeout(
        SAFETY * 2,
        Command::new("curl")
            .args([
                "--silent",
                "--show-error",
                "--noproxy",
                "*",
                "--max-time",
                "15",
            ])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("curl did not finish")
    .expect("curl could not be started");
    CurlOutput {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        success: out.status.success(),
    }
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// A file in the temp directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("proxy-runtime-curl-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn curl_gets_a_response_through_the_proxy() {
    if !curl_available() {
        return;
    }
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let out = curl(&["-w", "\n%{http_code}", &url(addr, "/echo?from=curl")]).await;
    assert!(out.success, "{}", out.stderr);
    assert_eq!(out.stdout, "GET /echo?from=curl\n200");
}

#[tokio::test]
async fn curl_reuses_one_connection_for_several_urls() {
    if !curl_available() {
        return;
    }
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let out = curl(&[
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}:%{num_connects} ",
        &url(addr, "/echo?1"),
        &url(addr, "/close-delimited"),
        &url(addr, "/chunked"),
    ])
    .await;
    assert!(out.success, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        "200:1 200:0 200:0",
        "curl connects once and reuses the connection"
    );
    assert_eq!(
        origin.accepts(),
        2,
        "the close-delimited answer cost the proxy its origin connection, nothing else did"
    );
}

#[tokio::test]
async fn curl_uploads_a_chunked_body_with_expect_100_continue() {
    if !curl_available() {
        return;
    }
    let (origin, addr, _proxy) = origin_and_proxy().await;
    let n = 2 * 1024 * 1024 + 3;
    let file = TempFile::new("chunked-upload", &pattern_vec(n));
    let out = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", file.path()),
        &url(addr, "/sink"),
    ])
    .await;
    assert!(out.success, "{}", out.stderr);
    assert_eq!(out.stdout, format!("len={n} pattern_ok=true"));
    let up = &origin.requests()[0];
    assert_eq!(up.header("expect"), Some("100-continue"));
    assert!(up.body_complete);
}

#[tokio::test]
async fn curl_uploads_a_body_with_content_length() {
    if !curl_available() {
        return;
    }
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let n = 3 * 1024 * 1024;
    let file = TempFile::new("length-upload", &pattern_vec(n));
    let out = curl(&[
        "--data-binary",
        &format!("@{}", file.path()),
        &url(addr, "/sink"),
    ])
    .await;
    assert!(out.success, "{}", out.stderr);
    assert_eq!(out.stdout, format!("len={n} pattern_ok=true"));
}

/// curl downloads `path` (`n` pattern bytes) through the proxy at `addr`, intact.
async fn curl_download(addr: SocketAddr, path: &str, n: u64) {
    let file = TempFile::new(path.trim_start_matches('/'), b"");
    let out = curl(&[
        "-o",
        file.path(),
        "-w",
        "%{http_code} %{size_download}",
        &url(addr, &format!("{path}?n={n}")),
    ])
    .await;
    assert!(out.success, "{}", out.stderr);
    assert_eq!(out.stdout, format!("200 {n}"));
    let got = std::fs::read(file.path()).unwrap();
    let mut d = Digest::default();
    d.update(&got);
    assert_eq!(d.len, n);
    assert!(d.pattern_ok);
}

#[tokio::test]
async fn curl_downloads_a_large_chunked_body() {
    if !curl_available() {
        return;
    }
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    curl_download(addr, "/big-chunked", 5_000_000).await;
}

#[tokio::test]
async fn curl_downloads_a_large_content_length_body_relayed_in_the_kernel() {
    if !curl_available() {
        return;
    }
    let (_origin, addr, proxy) = origin_and_proxy().await;
    let n = 5_000_000;
    curl_download(addr, "/big", n).await;
    wait_until("logging", || proxy.app().log_calls() == 1).await;
    let entry = &proxy.app().log()[0];
    assert_eq!(entry.sent, n);
    if cfg!(target_os = "linux") {
        assert!(entry.spliced > n / 2, "spliced {} of {n}", entry.spliced);
    }
}

#[tokio::test]
async fn curl_head_request_gets_headers_only() {
    if !curl_available() {
        return;
    }
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let out = curl(&["-I", &url(addr, "/big?n=1000")]).await;
    assert!(out.success, "{}", out.stderr);
    let lower = out.stdout.to_lowercase();
    assert!(lower.starts_with("http/1.1 200 ok\r\n"), "{}", out.stdout);
    assert!(lower.contains("content-length: 1000\r\n"), "{}", out.stdout);
}

#[tokio::test]
async fn curl_http10_gets_a_close_delimited_body() {
    if !curl_available() {
        return;
    }
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let out = curl(&["--http1.0", "-i", &url(addr, "/close-delimited")]).await;
    assert!(out.success, "{}", out.stderr);
    let lower = out.stdout.to_lowercase();
    assert!(lower.starts_with("http/1.1 200 ok\r\n"), "{}", out.stdout);
    assert!(!lower.contains("transfer-encoding"), "{}", out.stdout);
    assert!(
        out.stdout.ends_with("\r\n\r\nclose-delimited body"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn curl_sees_a_bad_gateway_when_the_origin_is_down() {
    if !curl_available() {
        return;
    }
    let dead = closed_port().await;
    let (addr, _proxy) = start_proxy(TestProxy::new(dead), |b| b).await;
    let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &url(addr, "/echo")]).await;
    assert!(out.success, "{}", out.stderr);
    assert_eq!(out.stdout, "502");
}
