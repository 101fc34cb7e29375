//! The external tools: where they are, how to install them, their versions, and what
//! `wrk` and `h2load` print.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One external program the harness runs.
#[derive(Debug, Clone)]
pub struct Tool {
    /// Program name (`wrk`).
    pub name: &'static str,
    /// Debian package that provides it.
    pub package: &'static str,
    /// What happens without it.
    pub needed_for: &'static str,
    /// Where it was found.
    pub path: Option<PathBuf>,
}

/// The tools, in the order the harness lists them.
pub const TOOLS: &[(&str, &str, &str)] = &[
    (
        "wrk",
        "wrk",
        "cannot run: it is the HTTP/1.1 load generator",
    ),
    (
        "h2load",
        "nghttp2-client",
        "the h2c measurements are skipped",
    ),
    (
        "nginx",
        "nginx-light",
        "cannot run: nginx is the origin (and the nginx target)",
    ),
    ("haproxy", "haproxy", "the haproxy target is skipped"),
    (
        "taskset",
        "util-linux",
        "nothing is pinned: the layout is not the documented one",
    ),
];

/// Look `name` up in `PATH`, then in the `sbin` directories a non-root `PATH` lacks.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Find every tool of [`TOOLS`].
pub fn find_tools() -> Vec<Tool> {
    TOOLS
        .iter()
        .map(|&(name, package, needed_for)| Tool {
            name,
            package,
            needed_for,
            path: which(name),
        })
        .collect()
}

/// The command line that installs `packages`.
pub fn install_line(packages: &[&str]) -> String {
    format!("apt-get install -y {}", packages.join(" "))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Install `packages` with apt-get (through sudo unless root). One `apt-get update`
/// and a retry if the first attempt fails (stale package lists).
pub fn install(packages: &[&str]) -> Result<(), String> {
    let apt = |args: &[&str]| -> Result<bool, String> {
        let mut cmd = if is_root() {
            Command::new("apt-get")
        } else if which("sudo").is_some() {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        } else {
            return Err(format!(
                "not root and no sudo: run as root: {}",
                install_line(packages)
            ));
        };
        eprintln!("loadbench: running apt-get {}", args.join(" "));
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
            .map_err(|e| format!("apt-get: {e}"))
    };
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend_from_slice(packages);
    if apt(&args)? {
        return Ok(());
    }
    if apt(&["update"])? && apt(&args)? {
        return Ok(());
    }
    Err(format!("apt-get failed: {}", install_line(packages)))
}

/// `program args` → first line of its output (stdout, else stderr), for the report.
pub fn version_of(program: &Path, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(o) => {
            let text = if o.stdout.iter().any(|b| !b.is_ascii_whitespace()) {
                o.stdout
            } else {
                o.stderr
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(e) => format!("unknown ({e})"),
    }
}

/// What one `wrk --latency` run printed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WrkResult {
    /// Completed requests (`N requests in ...`).
    pub requests: u64,
    /// Run time wrk reports.
    pub seconds: f64,
    /// `Requests/sec:`.
    pub rps: f64,
    /// `Transfer/sec:` in bytes.
    pub bytes_per_sec: f64,
    /// Latency percentiles (wrk's `Latency Distribution`), milliseconds.
    pub p50_ms: Option<f64>,
    /// 75th percentile, ms.
    pub p75_ms: Option<f64>,
    /// 90th percentile, ms.
    pub p90_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Sum of `Socket errors: connect, read, write, timeout`.
    pub socket_errors: u64,
    /// `Non-2xx or 3xx responses:`.
    pub non_2xx: u64,
}

/// `1.23ms`, `456.78us`, `1.00s`, `2.00m` → milliseconds.
pub fn parse_wrk_time(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        return None;
    };
    Some(num.parse::<f64>().ok()? * mul)
}

/// `2.34MB`, `980.12KB`, `12B` → bytes (wrk's units are powers of 1024).
pub fn parse_wrk_bytes(s: &str) -> Option<f64> {
    let s = s.trim();
    for (suffix, mul) in [
        ("TB", 1024f64.powi(4)),
        ("GB", 1024f64.powi(3)),
        ("MB", 1024f64.powi(2)),
        ("KB", 1024.0),
        ("B", 1.0),
    ] {
        if let Some(n) = s.strip_suffix(suffix) {
            return Some(n.parse::<f64>().ok()? * mul);
        }
    }
    None
}

/// Parse the output of `wrk --latency`.
pub fn parse_wrk(text: &str) -> Result<WrkResult, String> {
    let mut r = WrkResult::default();
    let mut seen_requests = false;
    let mut seen_rps = false;
    let mut in_dist = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Latency Distribution") {
            in_dist = true;
            continue;
        }
        if in_dist {
            if let Some((pct, val)) = t.split_once('%') {
                let v = parse_wrk_time(val);
                match pct.trim() {
                    "50" => r.p50_ms = v,
                    "75" => r.p75_ms = v,
                    "90" => r.p90_ms = v,
                    "99" => r.p99_ms = v,
                    _ => {}
                }
                continue;
            }
            in_dist = false;
        }
        if let Some((n, rest)) = t.split_once(" requests in ") {
            r.requests = n
                .trim()
                .parse()
                .map_err(|_| format!("wrk: bad request count in {t:?}"))?;
            let secs = rest.split(',').next().unwrap_or("");
            r.seconds = parse_wrk_time(secs).map_or(0.0, |ms| ms / 1000.0);
            seen_requests = true;
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.rps = v
                .trim()
                .parse()
                .map_err(|_| format!("wrk: bad Requests/sec in {t:?}"))?;
            seen_rps = true;
        } else if let Some(v) = t.strip_prefix("Transfer/sec:") {
            r.bytes_per_sec = parse_wrk_bytes(v).unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            r.socket_errors = v
                .split(',')
                .filter_map(|kv| kv.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().unwrap_or(0);
        }
    }
    if !seen_requests || !seen_rps {
        return Err(format!(
            "wrk: no `requests in` / `Requests/sec` in its output:\n{text}"
        ));
    }
    Ok(r)
}

/// What one `h2load` run printed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct H2Result {
    /// `finished in ..., N req/s`.
    pub rps: f64,
    /// Requests that got a response (`succeeded`).
    pub succeeded: u64,
    /// `failed` + `errored` + `timeout`.
    pub failed: u64,
    /// `Application protocol:`.
    pub protocol: String,
}

/// Parse the output of `h2load`.
pub fn parse_h2load(text: &str) -> Result<H2Result, String> {
    let mut r = H2Result::default();
    let mut seen_finished = false;
    let mut seen_requests = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("finished in ") {
            let rps = rest
                .split(',')
                .nth(1)
                .and_then(|f| f.trim().strip_suffix(" req/s"))
                .and_then(|n| n.trim().parse().ok())
                .ok_or_else(|| format!("h2load: bad `finished in` line {t:?}"))?;
            r.rps = rps;
            seen_finished = true;
        } else if let Some(rest) = t.strip_prefix("requests:") {
            for kv in rest.split(',') {
                let mut f = kv.split_whitespace();
                let (Some(n), Some(what)) = (f.next(), f.next()) else {
                    continue;
                };
                let n: u64 = n.parse().unwrap_or(0);
                match what {
                    "succeeded" => r.succeeded = n,
                    "failed" | "errored" | "timeout" => r.failed += n,
                    _ => {}
                }
            }
            seen_requests = true;
        } else if let Some(p) = t.strip_prefix("Application protocol:") {
            r.protocol = p.trim().to_string();
        }
    }
    if !seen_finished || !seen_requests {
        return Err(format!(
            "h2load: no `finished in` / `requests:` in its output:\n{text}"
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 5s test @ http://127.0.0.1:28300/1k
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.01ms  310.12us   9.87ms   91.20%
    Req/Sec    32.01k     1.02k   34.00k    70.00%
  Latency Distribution
     50%    1.98ms
     75%    2.10ms
     90%    2.30ms
     99%  850.00us
  159286 requests in 5.00s, 190.35MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  31857.20
Transfer/sec:     38.07MB
";

    #[test]
    fn wrk_output() {
        let r = parse_wrk(WRK).expect("parses");
        assert_eq!(r.requests, 159_286);
        assert!((r.seconds - 5.0).abs() < 1e-9);
        assert!((r.rps - 31_857.2).abs() < 1e-9);
        assert_eq!(r.p50_ms, Some(1.98));
        assert_eq!(r.p99_ms, Some(0.85));
        assert_eq!(r.socket_errors, 3);
        assert_eq!(r.non_2xx, 4);
        assert!((r.bytes_per_sec - 38.07 * 1024.0 * 1024.0).abs() < 1.0);
    }

    #[test]
    fn wrk_garbage() {
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(parse_wrk_time("1.00s"), Some(1000.0));
        assert_eq!(parse_wrk_time("2.00m"), Some(120_000.0));
        assert_eq!(parse_wrk_time("x"), None);
    }

    #[test]
    fn h2load_output() {
        let t = "starting benchmark...
Application protocol: h2c
finished in 5.00s, 40123.40 req/s, 44.12MB/s
requests: 200617 total, 200681 started, 200617 done, 200610 succeeded, 7 failed, 1 errored, 0 timeout
status codes: 200610 2xx, 0 3xx, 0 4xx, 0 5xx
";
        let r = parse_h2load(t).expect("parses");
        assert!((r.rps - 40_123.4).abs() < 1e-9);
        assert_eq!(r.succeeded, 200_610);
        assert_eq!(r.failed, 8);
        assert_eq!(r.protocol, "h2c");
    }
}
