//! Starting the origin and the targets, and the measurement steps of one (round,
//! target): warm-up, (a) 1 KiB h1, (f) origin connections, (c) 100 KiB h1, (d) h2c,
//! peak RSS, (e) idle connections; for the cache targets (`forward-cache`,
//! `nginx-cache`): fill, hit check, warm-up, 1 KiB and 100 KiB cache hits with the
//! origin's request count; and the training load of the `--pgo` build
//! ([`Bench::train_pgo`]). The binary decides the order of rounds and targets.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::load::child::{Guarded, run_bounded};
use crate::load::conf;
use crate::load::http::{self, StubStatus};
use crate::load::idle::{IdlePlan, hold_idle};
use crate::load::procfs::{self, CoreTicks};
use crate::load::report::Record;
use crate::load::tools::{H2Result, WrkResult, parse_h2load, parse_wrk};

/// Bytes of `/1k`.
pub const SMALL: usize = 1024;
/// Bytes of `/100k`.
pub const LARGE: usize = 102_400;

/// The cache-hit paths and their sizes: the origin serves the same files there with
/// `Cache-Control: max-age=3600` (`bench/load/origin-nginx.conf`).
pub const CACHED: [(&str, usize); 2] = [("/cached/1k", SMALL), ("/cached/100k", LARGE)];

/// The response header that tells a cache hit: `forward`'s `x-cache-status` (`hit`)
/// and the one `nginx-cache` adds from `$upstream_cache_status` (`HIT`).
pub const CACHE_STATUS: &str = "x-cache-status";

/// `forward --cache` of the `forward-cache` target: far more than the two bodies (a
/// sixteenth of it is the largest object stored).
pub const FORWARD_CACHE_SIZE: &str = "64MiB";

/// The kinds of target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The origin itself: the limit.
    Direct,
    /// Our proxy (`examples` crate, `forward` binary).
    Forward,
    /// nginx as a reverse proxy.
    Nginx,
    /// haproxy as a reverse proxy.
    Haproxy,
    /// Our proxy with its memory cache (`forward --cache`), on cache hits.
    ForwardCache,
    /// nginx with `proxy_cache`, on cache hits.
    NginxCache,
    /// Our proxy built with profile-guided optimisation (`loadbench --pgo` or
    /// `--forward-pgo-bin`): the same `forward`, measured like it.
    ForwardPgo,
}

impl Kind {
    /// Parse a target name.
    pub fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "direct" => Kind::Direct,
            "forward" => Kind::Forward,
            "nginx" => Kind::Nginx,
            "haproxy" => Kind::Haproxy,
            "forward-cache" => Kind::ForwardCache,
            "nginx-cache" => Kind::NginxCache,
            "forward-pgo" => Kind::ForwardPgo,
            _ => return None,
        })
    }

    /// The targets measured by default, in round order.
    pub const DEFAULT: [Kind; 6] = [
        Kind::Direct,
        Kind::Forward,
        Kind::Nginx,
        Kind::Haproxy,
        Kind::ForwardCache,
        Kind::NginxCache,
    ];

    /// Every kind: [`Kind::DEFAULT`] and `forward-pgo`, which only `--pgo` (or
    /// `--forward-pgo-bin`) adds.
    pub const ALL: [Kind; 7] = [
        Kind::Direct,
        Kind::Forward,
        Kind::ForwardPgo,
        Kind::Nginx,
        Kind::Haproxy,
        Kind::ForwardCache,
        Kind::NginxCache,
    ];

    /// Whether the target is measured on cache hits (its own steps and table).
    pub fn is_cache(self) -> bool {
        matches!(self, Kind::ForwardCache | Kind::NginxCache)
    }

    /// Whether the target runs the `forward` binary of the default build.
    pub fn uses_forward(self) -> bool {
        matches!(self, Kind::Forward | Kind::ForwardCache)
    }

    /// Whether the target runs a `forward` binary (the default build or the PGO one):
    /// its h2c step is skipped with "not supported" rather than a configuration note.
    pub fn is_forward(self) -> bool {
        matches!(self, Kind::Forward | Kind::ForwardCache | Kind::ForwardPgo)
    }

    /// The target's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Forward => "forward",
            Kind::Nginx => "nginx",
            Kind::Haproxy => "haproxy",
            Kind::ForwardCache => "forward-cache",
            Kind::NginxCache => "nginx-cache",
            Kind::ForwardPgo => "forward-pgo",
        }
    }
}

/// Fixed loopback ports, all derived from one base.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Origin, HTTP/1.1.
    pub origin: u16,
    /// Origin, h2c prior knowledge.
    pub origin_h2: u16,
    /// Origin `stub_status`.
    pub status: u16,
    /// nginx proxy, HTTP/1.1 (+1: h2c).
    pub nginx: u16,
    /// haproxy proxy (h1 and h2c on one port).
    pub haproxy: u16,
    /// `forward`.
    pub forward: u16,
    /// nginx with `proxy_cache`.
    pub nginx_cache: u16,
    /// `forward --cache`.
    pub forward_cache: u16,
    /// `forward` built with PGO (h1 and h2c on one port); also the instrumented
    /// build's port while it is trained.
    pub forward_pgo: u16,
}

impl Ports {
    /// The ports used from `base`.
    pub fn from_base(base: u16) -> Ports {
        Ports {
            origin: base + 81,
            origin_h2: base + 82,
            status: base + 89,
            nginx: base + 100,
            haproxy: base + 200,
            forward: base + 300,
            nginx_cache: base + 110,
            forward_cache: base + 310,
            forward_pgo: base + 320,
        }
    }

    /// (HTTP/1.1 port, port to try h2c on) of a target. Whether the target really
    /// speaks h2c there is probed before step (d); the cache targets have no h2c step.
    pub fn of(&self, kind: Kind) -> (u16, Option<u16>) {
        match kind {
            Kind::Direct => (self.origin, Some(self.origin_h2)),
            Kind::Forward => (self.forward, Some(self.forward)),
            Kind::ForwardPgo => (self.forward_pgo, Some(self.forward_pgo)),
            Kind::Nginx => (self.nginx, Some(self.nginx + 1)),
            Kind::Haproxy => (self.haproxy, Some(self.haproxy)),
            Kind::ForwardCache => (self.forward_cache, None),
            Kind::NginxCache => (self.nginx_cache, None),
        }
    }
}

/// Whether nothing listens on 127.0.0.1:`port`.
pub fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Wait (up to `limit`) until `port` is free; the error says who may hold it.
pub fn wait_port_free(port: u16, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !port_free(port) {
        if Instant::now() >= deadline {
            return Err(format!(
                "port 127.0.0.1:{port} is in use (see `ss -ltnp sport = :{port}`; \
                 pick other ports with --base-port)"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Everything the steps need, fixed for the whole run.
#[derive(Debug, Clone)]
pub struct Bench {
    /// Work directory (configs, logs, results).
    pub work: PathBuf,
    /// Ports.
    pub ports: Ports,
    /// `wrk`.
    pub wrk: PathBuf,
    /// `h2load`, if found.
    pub h2load: Option<PathBuf>,
    /// `nginx`.
    pub nginx: PathBuf,
    /// `haproxy`, if found.
    pub haproxy: Option<PathBuf>,
    /// `taskset`, if found (else nothing is pinned).
    pub taskset: Option<PathBuf>,
    /// The `forward` binary.
    pub forward: Option<PathBuf>,
    /// The `forward` binary built with PGO (`forward-pgo`); with `--pgo` it is built
    /// (after [`Bench::train_pgo`]) before the first round.
    pub forward_pgo: Option<PathBuf>,
    /// `proxy_cache_path` of `nginx-cache` (see [`nginx_cache_dir`]); emptied before
    /// every round.
    pub nginx_cache_dir: PathBuf,
    /// `taskset -c` list of the load generator.
    pub client_cpu: String,
    /// `taskset -c` list of the proxy and the origin.
    pub server_cpu: String,
    /// Seconds per measured wrk/h2load run.
    pub duration: u64,
    /// wrk connections.
    pub conns: usize,
    /// h2load connections and streams per connection.
    pub h2_conns: usize,
    /// Streams per h2 connection.
    pub h2_streams: usize,
    /// Idle connections (0: skip).
    pub idle_conns: usize,
    /// `worker_connections` / `maxconn` of the nginx and haproxy configs.
    pub server_conns: usize,
    /// Clock ticks per second.
    pub clk_tck: u64,
}

impl Bench {
    /// `program args...`, pinned to `cpu` when `taskset` exists.
    pub fn pinned(&self, cpu: &str, program: &Path) -> Command {
        match &self.taskset {
            Some(ts) => {
                let mut c = Command::new(ts);
                c.arg("-c").arg(cpu).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    fn log_file(&self, name: &str) -> Result<(fs::File, PathBuf), String> {
        let path = self.work.join("logs").join(format!("{name}.log"));
        let f = fs::File::create(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok((f, path))
    }

    fn spawn_logged(&self, name: &str, mut cmd: Command) -> Result<(Guarded, PathBuf), String> {
        let (out, path) = self.log_file(name)?;
        let err = out
            .try_clone()
            .map_err(|e| format!("log {}: {e}", path.display()))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        Ok((Guarded::spawn(name, &mut cmd)?, path))
    }

    fn render_conf(
        &self,
        template: &str,
        dir: &Path,
        file: &str,
        port: u16,
        h2_port: u16,
    ) -> Result<PathBuf, String> {
        for sub in ["tmp", "www"] {
            fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("create {}: {e}", dir.join(sub).display()))?;
        }
        let vars = [
            ("DIR", dir.display().to_string()),
            ("PORT", port.to_string()),
            ("H2_PORT", h2_port.to_string()),
            ("STATUS_PORT", self.ports.status.to_string()),
            ("ORIGIN_PORT", self.ports.origin.to_string()),
            ("CONNS", self.server_conns.to_string()),
            ("NOFILE", (2 * self.server_conns + 256).to_string()),
            ("CACHE_DIR", self.nginx_cache_dir.display().to_string()),
        ];
        let text = conf::render(template, &vars)?;
        let path = dir.join(file);
        fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Start the origin (nginx, pinned to the server CPU) and wait until it serves both
    /// bodies and its `stub_status`.
    pub fn start_origin(&self) -> Result<Guarded, String> {
        let dir = self.work.join("origin");
        let conf = self.render_conf(
            conf::ORIGIN_NGINX,
            &dir,
            "nginx.conf",
            self.ports.origin,
            self.ports.origin_h2,
        )?;
        let www = dir.join("www");
        fs::write(www.join("1k"), body(SMALL)).map_err(|e| format!("write /1k: {e}"))?;
        fs::write(www.join("100k"), body(LARGE)).map_err(|e| format!("write /100k: {e}"))?;
        for p in [self.ports.origin, self.ports.origin_h2, self.ports.status] {
            wait_port_free(p, Duration::from_secs(5))?;
        }
        let mut cmd = self.pinned(&self.server_cpu, &self.nginx);
        cmd.arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"));
        let (mut g, log) = self.spawn_logged("origin", cmd)?;
        let logs = [log, dir.join("error.log")];
        wait_ready(&mut g, loopback(self.ports.origin), &logs)?;
        http::stub_status(loopback(self.ports.status))
            .map_err(|e| format!("origin stub_status: {e}"))?;
        Ok(g)
    }

    /// Start a proxy target (pinned to the server CPU) for one round; `None` for
    /// `direct`. Waits until it answers `/1k` and `/100k` through to the origin.
    pub fn start_target(&self, kind: Kind, round: u32) -> Result<Option<Guarded>, String> {
        let (port, h2) = self.ports.of(kind);
        if kind == Kind::Direct {
            return Ok(None);
        }
        wait_port_free(port, Duration::from_secs(10))?;
        if let Some(h2) = h2 {
            wait_port_free(h2, Duration::from_secs(10))?;
        }
        let name = format!("{}-r{round}", kind.name());
        let (mut g, logs) = match kind {
            Kind::Direct => return Ok(None),
            Kind::Forward | Kind::ForwardCache | Kind::ForwardPgo => {
                let bin = if kind == Kind::ForwardPgo {
                    self.forward_pgo
                        .as_ref()
                        .ok_or("the PGO build of forward is not available")?
                } else {
                    self.forward
                        .as_ref()
                        .ok_or("the forward binary is not available")?
                };
                let mut cmd = self.forward_command(bin, port);
                if kind == Kind::ForwardCache {
                    cmd.arg("--cache").arg(FORWARD_CACHE_SIZE);
                }
                let (g, log) = self.spawn_logged(&name, cmd)?;
                (g, vec![log])
            }
            Kind::Nginx | Kind::NginxCache => {
                let (dir, template) = if kind == Kind::NginxCache {
                    // A cold cache every round; nginx creates the directory (and gives
                    // it to its worker's user).
                    self.remove_nginx_cache_dir()?;
                    (self.work.join("nginx-cache"), conf::PROXY_NGINX_CACHE)
                } else {
                    (self.work.join("nginx"), conf::PROXY_NGINX)
                };
                let conf =
                    self.render_conf(template, &dir, "nginx.conf", port, h2.unwrap_or(port + 1))?;
                let mut cmd = self.pinned(&self.server_cpu, &self.nginx);
                cmd.arg("-p")
                    .arg(&dir)
                    .arg("-c")
                    .arg(&conf)
                    .arg("-e")
                    .arg(dir.join("error.log"));
                let (g, log) = self.spawn_logged(&name, cmd)?;
                (g, vec![log, dir.join("error.log")])
            }
            Kind::Haproxy => {
                let bin = self.haproxy.as_ref().ok_or("haproxy is not installed")?;
                let dir = self.work.join("haproxy");
                let conf =
                    self.render_conf(conf::PROXY_HAPROXY, &dir, "haproxy.cfg", port, port)?;
                let mut cmd = self.pinned(&self.server_cpu, bin);
                cmd.arg("-f").arg(&conf).arg("-db");
                let (g, log) = self.spawn_logged(&name, cmd)?;
                (g, vec![log])
            }
        };
        wait_ready(&mut g, loopback(port), &logs)?;
        Ok(Some(g))
    }

    /// `bin --listen 127.0.0.1:PORT --upstream ORIGIN --threads 1`, pinned to the server
    /// CPU: how every `forward` target (and the PGO training run) is started.
    fn forward_command(&self, bin: &Path, port: u16) -> Command {
        let mut cmd = self.pinned(&self.server_cpu, bin);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--upstream")
            .arg(format!("127.0.0.1:{}", self.ports.origin))
            .arg("--threads")
            .arg("1");
        cmd
    }

    /// The training run of `--pgo`: start the instrumented `forward` (built with
    /// `-Cprofile-generate`) on `forward-pgo`'s port in front of the origin, pinned like
    /// the targets, with `LLVM_PROFILE_FILE` in `profile_dir` (which should be empty);
    /// drive it with the loads the benchmark measures, `seconds` each and pinned like
    /// them: `wrk` on `/1k`, `wrk` on `/100k`, `h2load` (h2c) on `/1k` (skipped, with a
    /// line saying so, without h2load or h2c); then stop it with SIGTERM so that it
    /// writes its profile. Returns one line per load run; an error if a run failed or
    /// no `.profraw` was written.
    pub fn train_pgo(
        &self,
        bin: &Path,
        profile_dir: &Path,
        seconds: u64,
    ) -> Result<Vec<String>, String> {
        let port = self.ports.forward_pgo;
        wait_port_free(port, Duration::from_secs(10))?;
        let mut cmd = self.forward_command(bin, port);
        cmd.env(
            "LLVM_PROFILE_FILE",
            profile_dir.join("forward-%p.profraw").as_os_str(),
        );
        let (mut g, log) = self.spawn_logged("forward-pgo-training", cmd)?;
        wait_ready(&mut g, loopback(port), std::slice::from_ref(&log))?;
        let mut done = Vec::new();
        let conns = self.conns;
        for path in ["/1k", "/100k"] {
            let r = self
                .wrk(port, path, seconds, &format!("wrk {path}"))
                .map_err(|e| format!("PGO training, wrk {path}: {e}"))?;
            done.push(format!(
                "`wrk -t1 -c{conns} -d{seconds}s {path}` ({} requests)",
                fmt_count(r.requests)
            ));
        }
        let h2c = format!(
            "`h2load -t1 -c{} -m{} -D {seconds} /1k` (h2c)",
            self.h2_conns, self.h2_streams
        );
        match &self.h2load {
            None => done.push(format!("{h2c}: skipped, h2load missing")),
            Some(_) if !http::speaks_h2c(loopback(port), Duration::from_secs(2)) => {
                done.push(format!("{h2c}: skipped, no h2c answer"));
            }
            Some(h2load) => {
                let r = self
                    .h2load(h2load, port, seconds)
                    .map_err(|e| format!("PGO training, h2load: {e}"))?;
                done.push(format!("{h2c} ({} requests)", fmt_count(r.succeeded)));
            }
        }
        // The server's grace period is 30 s; the load generators have closed their
        // connections, so it exits at once and writes the profile at exit.
        let how = g.stop("TERM", Duration::from_secs(40));
        let written = profraw_files(profile_dir);
        if written.is_empty() {
            return Err(format!(
                "PGO training: the instrumented forward wrote no .profraw into {} ({how}; \
                 log: {})",
                profile_dir.display(),
                log.display()
            ));
        }
        Ok(done)
    }

    /// Remove `nginx-cache`'s cache directory (gone already: fine).
    pub fn remove_nginx_cache_dir(&self) -> Result<(), String> {
        match fs::remove_dir_all(&self.nginx_cache_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!(
                "remove the nginx cache {}: {e}",
                self.nginx_cache_dir.display()
            )),
            _ => Ok(()),
        }
    }

    fn wrk(&self, port: u16, path: &str, seconds: u64, step: &str) -> Result<WrkResult, String> {
        let mut cmd = self.pinned(&self.client_cpu, &self.wrk);
        cmd.arg("-t1")
            .arg(format!("-c{}", self.conns))
            .arg(format!("-d{seconds}s"))
            .arg("--latency")
            .arg(format!("http://127.0.0.1:{port}{path}"));
        let out = run_bounded(step, &mut cmd, Duration::from_secs(seconds + 30))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "wrk exited with {}: {}{}",
                out.status,
                text,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let r = parse_wrk(&text)?;
        if r.requests == 0 {
            return Err(format!("wrk completed no request:\n{text}"));
        }
        Ok(r)
    }

    fn h2load(&self, bin: &Path, port: u16, seconds: u64) -> Result<H2Result, String> {
        let mut cmd = self.pinned(&self.client_cpu, bin);
        cmd.arg("-t1")
            .arg(format!("-c{}", self.h2_conns))
            .arg(format!("-m{}", self.h2_streams))
            .arg("-D")
            .arg(seconds.to_string())
            .arg(format!("http://127.0.0.1:{port}/1k"));
        let out = run_bounded("h2load", &mut cmd, Duration::from_secs(seconds + 30))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let r = parse_h2load(&text)?;
        if r.protocol != "h2c" {
            return Err(format!(
                "h2load did not speak h2c (protocol {:?}):\n{text}",
                r.protocol
            ));
        }
        if r.succeeded == 0 {
            return Err(format!("h2load: no request succeeded:\n{text}"));
        }
        Ok(r)
    }

    /// Measure one target in one round; `proxy` is the target's process (the origin's
    /// for `direct`). Failures go into [`Record::error`] with the step's name.
    pub fn measure(&self, kind: Kind, round: u32, proxy: u32, origin: u32) -> Record {
        let mut rec = Record {
            round,
            target: kind.name().to_string(),
            ..Record::default()
        };
        let done = if kind.is_cache() {
            self.measure_cache_into(kind, proxy, origin, &mut rec)
        } else {
            self.measure_into(kind, proxy, origin, &mut rec)
        };
        if let Err(e) = done {
            rec.error = Some(e);
        }
        rec
    }

    /// The cache targets: fill the cache with one request per path, check that the next
    /// answer is a hit (`hits_verified` 1 or 0, with a note), then the 1 KiB and 100 KiB
    /// `wrk` runs on hits, with CPU as for the other targets and the requests that
    /// still reached the origin (`origin_requests_hit`: 0 when every answer was a hit).
    fn measure_cache_into(
        &self,
        kind: Kind,
        proxy: u32,
        origin: u32,
        rec: &mut Record,
    ) -> Result<(), String> {
        let (port, _) = self.ports.of(kind);
        let t = kind.name();
        let step = |s: &str| step_error(t, s);
        let mut verified = true;
        for (path, len) in CACHED {
            let check = check_hit(loopback(port), path, len).map_err(step("fill and hit check"))?;
            rec.notes.push(check.note());
            verified &= check.hit;
        }
        rec.set("hits_verified", if verified { 1.0 } else { 0.0 });
        self.wrk(port, CACHED[0].0, 1, "wrk warm-up")
            .map_err(step("warm-up (wrk 1 s /cached/1k)"))?;

        let mut errors = 0;
        let mut origin_requests = 0;
        for ((path, _), tag) in CACHED.iter().zip(["hit_1k", "hit_100k"]) {
            let st0 = http::stub_status(loopback(self.ports.status))
                .map_err(step("stub_status before"))?;
            let s0 = self
                .snap(proxy, origin)
                .map_err(step(&format!("CPU before {path}")))?;
            let r = self
                .wrk(port, path, self.duration, &format!("wrk {path}"))
                .map_err(step(&format!("wrk {path}")))?;
            let s1 = self
                .snap(proxy, origin)
                .map_err(step(&format!("CPU after {path}")))?;
            let st1 = http::stub_status(loopback(self.ports.status))
                .map_err(step("stub_status after"))?;
            rec.set(&format!("rps_{tag}"), r.rps);
            rec.set(&format!("requests_{tag}"), r.requests as f64);
            rec.set(
                &format!("mib_per_s_{tag}"),
                r.bytes_per_sec / (1024.0 * 1024.0),
            );
            for (k, v) in [("p50", r.p50_ms), ("p99", r.p99_ms)] {
                if let Some(v) = v {
                    rec.set(&format!("{k}_ms_{tag}"), v);
                }
            }
            self.cpu_figures(rec, tag, &s0, &s1, r.requests, false);
            let (accepts, requests) = stub_delta(st0, st1);
            rec.set(&format!("origin_accepts_{tag}"), accepts as f64);
            rec.set(&format!("origin_requests_{tag}"), requests as f64);
            origin_requests += requests;
            errors += r.socket_errors + r.non_2xx;
        }
        rec.set("origin_requests_hit", origin_requests as f64);
        rec.set("errors", errors as f64);
        Ok(())
    }

    fn measure_into(
        &self,
        kind: Kind,
        proxy: u32,
        origin: u32,
        rec: &mut Record,
    ) -> Result<(), String> {
        let (port, h2_port) = self.ports.of(kind);
        let t = kind.name();
        let step = |s: &str| step_error(t, s);
        if let Err(e) = procfs::reset_peak_rss(proxy) {
            rec.notes.push(format!("peak RSS not reset: {e}"));
        }
        self.wrk(port, "/1k", 1, "wrk warm-up")
            .map_err(step("warm-up (wrk 1 s /1k)"))?;

        // (a) 1 KiB keep-alive, latency; (b) CPU; (f) origin connections.
        let st0 = http::stub_status(loopback(self.ports.status))
            .map_err(step("(f) stub_status before"))?;
        let s0 = self
            .snap(proxy, origin)
            .map_err(step("(b) CPU before (a)"))?;
        let a = self
            .wrk(port, "/1k", self.duration, "wrk /1k")
            .map_err(step("(a) wrk /1k"))?;
        let s1 = self
            .snap(proxy, origin)
            .map_err(step("(b) CPU after (a)"))?;
        let st1 = http::stub_status(loopback(self.ports.status))
            .map_err(step("(f) stub_status after"))?;
        rec.set("rps_1k", a.rps);
        rec.set("requests_1k", a.requests as f64);
        for (k, v) in [
            ("p50_ms_1k", a.p50_ms),
            ("p75_ms_1k", a.p75_ms),
            ("p90_ms_1k", a.p90_ms),
            ("p99_ms_1k", a.p99_ms),
        ] {
            if let Some(v) = v {
                rec.set(k, v);
            }
        }
        self.cpu_figures(rec, "1k", &s0, &s1, a.requests, kind == Kind::Direct);
        let (accepts, origin_requests) = stub_delta(st0, st1);
        rec.set("origin_accepts_1k", accepts as f64);
        rec.set("origin_requests_1k", origin_requests as f64);
        rec.set(
            "upstream_conns_per_10k",
            accepts as f64 * 10_000.0 / a.requests as f64,
        );
        let mut errors = a.socket_errors + a.non_2xx;

        // (c) 100 KiB.
        let s0 = self
            .snap(proxy, origin)
            .map_err(step("(b) CPU before (c)"))?;
        let c = self
            .wrk(port, "/100k", self.duration, "wrk /100k")
            .map_err(step("(c) wrk /100k"))?;
        let s1 = self
            .snap(proxy, origin)
            .map_err(step("(b) CPU after (c)"))?;
        rec.set("rps_100k", c.rps);
        rec.set("requests_100k", c.requests as f64);
        rec.set("mib_per_s_100k", c.bytes_per_sec / (1024.0 * 1024.0));
        if let Some(p) = c.p99_ms {
            rec.set("p99_ms_100k", p);
        }
        self.cpu_figures(rec, "100k", &s0, &s1, c.requests, kind == Kind::Direct);
        errors += c.socket_errors + c.non_2xx;

        // (d) h2c, where the target answers an HTTP/2 preface.
        let h2_port = h2_port.filter(|&p| http::speaks_h2c(loopback(p), Duration::from_secs(2)));
        if h2_port.is_none() && !kind.is_forward() {
            rec.notes
                .push(format!("{t} did not answer h2c (check its configuration)"));
        }
        match (h2_port, &self.h2load) {
            (None, _) => {
                let why = format!("h2c: not supported by {t} yet");
                rec.skip("rps_h2c", &why);
                rec.skip("cpu_ms_per_1k_h2c", &why);
            }
            (Some(_), None) => {
                rec.skip("rps_h2c", "h2load missing");
                rec.skip("cpu_ms_per_1k_h2c", "h2load missing");
            }
            (Some(h2), Some(bin)) => {
                let s0 = self
                    .snap(proxy, origin)
                    .map_err(step("(b) CPU before (d)"))?;
                let d = self
                    .h2load(bin, h2, self.duration)
                    .map_err(step("(d) h2load"))?;
                let s1 = self
                    .snap(proxy, origin)
                    .map_err(step("(b) CPU after (d)"))?;
                rec.set("rps_h2c", d.rps);
                rec.set("requests_h2c", d.succeeded as f64);
                self.cpu_figures(rec, "h2c", &s0, &s1, d.succeeded, kind == Kind::Direct);
                errors += d.failed;
            }
        }

        // Peak RSS over (a)-(d).
        rec.set(
            "peak_rss_mib",
            procfs::tree_status_kib(proxy, "VmHWM") as f64 / 1024.0,
        );

        // (e) idle keep-alive connections.
        if self.idle_conns > 0 {
            let before = procfs::tree_status_kib(proxy, "VmRSS");
            let plan = IdlePlan {
                addr: loopback(port),
                path: "/1k".into(),
                conns: self.idle_conns,
                in_flight: 64,
                idle: Duration::from_secs(2),
                limit: Duration::from_secs(60),
            };
            let (out, rss) = hold_idle(&plan, || procfs::tree_status_kib(proxy, "VmRSS"))
                .map_err(step("(e) idle connections"))?;
            rec.set("rss_before_idle_mib", before as f64 / 1024.0);
            rec.set("idle_rss_mib", rss as f64 / 1024.0);
            rec.set("idle_open", out.still_open as f64);
            if out.opened > 0 {
                rec.set(
                    "idle_kib_per_conn",
                    (rss as f64 - before as f64) / out.opened as f64,
                );
            }
            errors += out.failed as u64;
            if out.failed > 0 || out.still_open < self.idle_conns {
                rec.notes.push(format!(
                    "idle: {} of {} opened, {} still open after 2 s, {} failed (first: {})",
                    out.opened,
                    self.idle_conns,
                    out.still_open,
                    out.failed,
                    out.first_error.as_deref().unwrap_or("-")
                ));
            }
        } else {
            rec.skip("idle_rss_mib", "skipped (--idle-conns 0)");
        }
        rec.set("errors", errors as f64);
        Ok(())
    }

    fn snap(&self, proxy: u32, origin: u32) -> Result<Snap, String> {
        Ok(Snap {
            at: Instant::now(),
            proxy: procfs::tree_cpu_ticks(proxy).map_err(|e| format!("proxy: {e}"))?,
            origin: procfs::tree_cpu_ticks(origin).map_err(|e| format!("origin: {e}"))?,
            cores: procfs::core_ticks(),
        })
    }

    /// CPU figures of one load run: proxy and origin CPU per 1,000 requests; for the
    /// 1 KiB runs (`1k`, `hit_1k`) also how busy each core was.
    fn cpu_figures(
        &self,
        rec: &mut Record,
        tag: &str,
        s0: &Snap,
        s1: &Snap,
        requests: u64,
        direct: bool,
    ) {
        let tick_ms = 1000.0 / self.clk_tck as f64;
        let user = s1.proxy.0.saturating_sub(s0.proxy.0);
        let sys = s1.proxy.1.saturating_sub(s0.proxy.1);
        let proxy = user + sys;
        let origin = (s1.origin.0 + s1.origin.1).saturating_sub(s0.origin.0 + s0.origin.1);
        let per_1k = |ticks: u64| ticks as f64 * tick_ms * 1000.0 / requests.max(1) as f64;
        rec.set(&format!("cpu_ms_per_1k_{tag}"), per_1k(proxy));
        rec.set(&format!("user_ms_per_1k_{tag}"), per_1k(user));
        rec.set(&format!("sys_ms_per_1k_{tag}"), per_1k(sys));
        rec.set(&format!("origin_cpu_ms_per_1k_{tag}"), per_1k(origin));
        if tag != "1k" && tag != "hit_1k" {
            return;
        }
        let secs = s1.at.duration_since(s0.at).as_secs_f64();
        rec.set(
            &format!("proxy_cpu_pct_{tag}"),
            proxy as f64 * tick_ms / 10.0 / secs.max(1e-3),
        );
        let core = |list: &str| list.parse::<usize>().ok();
        let busy = |n: usize| -> Option<(u64, u64)> {
            let (a, b) = (s0.cores.get(n)?, s1.cores.get(n)?);
            Some((
                b.busy.saturating_sub(a.busy),
                b.total.saturating_sub(a.total),
            ))
        };
        if let Some((b, total)) = core(&self.server_cpu).and_then(busy)
            && total > 0
        {
            let ours = if direct { origin } else { proxy + origin };
            rec.set(
                &format!("server_core_busy_pct_{tag}"),
                100.0 * b as f64 / total as f64,
            );
            rec.set(
                &format!("server_core_other_pct_{tag}"),
                100.0 * b.saturating_sub(ours) as f64 / total as f64,
            );
        }
        if let Some((b, total)) = core(&self.client_cpu).and_then(busy)
            && total > 0
        {
            rec.set(
                &format!("client_core_busy_pct_{tag}"),
                100.0 * b as f64 / total as f64,
            );
        }
    }
}

/// CPU counters at one instant.
#[derive(Debug, Clone)]
struct Snap {
    at: Instant,
    /// (utime, stime) ticks of the proxy's tree.
    proxy: (u64, u64),
    /// (utime, stime) ticks of the origin's tree.
    origin: (u64, u64),
    cores: Vec<CoreTicks>,
}

/// Accepted connections and requests between two `stub_status` reads, without the
/// second read's own connection and request.
pub fn stub_delta(before: StubStatus, after: StubStatus) -> (u64, u64) {
    (
        after
            .accepts
            .saturating_sub(before.accepts)
            .saturating_sub(1),
        after
            .requests
            .saturating_sub(before.requests)
            .saturating_sub(1),
    )
}

/// The `.profraw` files in `dir`, sorted (none if `dir` is missing).
pub fn profraw_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "profraw"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `1234567` → `1,234,567`.
fn fmt_count(n: u64) -> String {
    crate::load::report::fmt_num(n as f64, 0)
}

/// Where `nginx-cache` keeps its cache: on tmpfs (`/dev/shm`) when the machine has it,
/// else in the work dir. Named after the base port: two runs cannot share ports, and a
/// run left behind by a crash is cleaned by the next one on the same ports.
pub fn nginx_cache_dir(work: &Path, base_port: u16) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.join(format!("proxy-loadbench-{base_port}-nginx-cache"))
    } else {
        work.join("nginx-cache").join("cache")
    }
}

/// The outcome of [`check_hit`] for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitCheck {
    /// The path.
    pub path: String,
    /// [`CACHE_STATUS`] of the filling request (`-`: none).
    pub fill: String,
    /// [`CACHE_STATUS`] of the last check (`-`: none).
    pub last: String,
    /// Requests after the fill until a hit (or the last try).
    pub tries: u32,
    /// Whether a check answered a hit.
    pub hit: bool,
}

impl HitCheck {
    /// One line for the record's notes.
    pub fn note(&self) -> String {
        if self.hit {
            format!(
                "cache check {}: fill {CACHE_STATUS}: {}, then {} ({} request(s))",
                self.path, self.fill, self.last, self.tries
            )
        } else {
            format!(
                "NOT A HIT: {} answered {CACHE_STATUS}: {} after the fill ({}) and {} more \
                 request(s): the figures below measure the proxy path, not the cache",
                self.path, self.last, self.fill, self.tries
            )
        }
    }
}

/// Whether a [`CACHE_STATUS`] value says hit (`hit`, `HIT`).
pub fn is_hit(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("hit")
}

/// Fill `path` in the cache at `addr` with one `GET` (200 with `len` bytes, else an
/// error), then ask again until [`CACHE_STATUS`] says hit: up to 20 times, 50 ms apart
/// (a fill may become visible just after its last byte is sent).
pub fn check_hit(addr: SocketAddr, path: &str, len: usize) -> Result<HitCheck, String> {
    let get = || -> Result<String, String> {
        let r = http::get_response(addr, path, Duration::from_secs(5))?;
        if r.status != 200 || r.body.len() != len {
            return Err(format!(
                "GET {path}: status {}, {} bytes (want 200, {len} bytes)",
                r.status,
                r.body.len()
            ));
        }
        Ok(r.header(CACHE_STATUS).unwrap_or("-").to_string())
    };
    let mut c = HitCheck {
        path: path.to_string(),
        fill: get()?,
        last: String::new(),
        tries: 0,
        hit: false,
    };
    while c.tries < 20 {
        if c.tries > 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
        c.tries += 1;
        c.last = get()?;
        if is_hit(&c.last) {
            c.hit = true;
            break;
        }
    }
    Ok(c)
}

/// The warnings a cache target's record calls for: answers that were not hits, and
/// requests that reached the origin during the hit runs.
pub fn cache_warnings(rec: &Record) -> Vec<String> {
    let mut w = Vec::new();
    let who = format!("{}, round {}", rec.target, rec.round);
    if rec.values.get("hits_verified") == Some(&0.0) {
        w.push(format!(
            "{who}: responses were NOT cache hits ({CACHE_STATUS} did not say hit after the \
             fill; see the notes in the JSON line): its cache-hit figures measure the proxy \
             path, not the cache"
        ));
    }
    if let Some(&n) = rec.values.get("origin_requests_hit")
        && n > 0.0
    {
        w.push(format!(
            "{who}: the origin served {n:.0} request(s) during the cache-hit runs \
                 (expected 0): not every answer was a hit"
        ));
    }
    w
}

/// A body of `n` bytes: printable, line-structured, no two lines alike at the start.
pub fn body(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n);
    let mut line = 0usize;
    while v.len() < n {
        let s = format!("{line:06} abcdefghijklmnopqrstuvwxyz0123456789\n");
        v.extend_from_slice(s.as_bytes());
        line += 1;
    }
    v.truncate(n);
    v
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Wait (bounded: 15 s) until `addr` serves `/1k` (1,024 bytes) and `/100k` (102,400
/// bytes) with status 200; fail early if the process exits. Errors carry the tails of
/// `logs`.
pub fn wait_ready(g: &mut Guarded, addr: SocketAddr, logs: &[PathBuf]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let logs_text = |logs: &[PathBuf]| {
        logs.iter()
            .map(|p| format!("--- {} ---\n{}", p.display(), tail(p, 15)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    loop {
        if let Some(st) = g.exited() {
            return Err(format!(
                "{} exited at start-up ({st})\n{}",
                g.name(),
                logs_text(logs)
            ));
        }
        let check = || -> Result<(), String> {
            for (path, len) in [("/1k", SMALL), ("/100k", LARGE)] {
                let (status, b) = http::get(addr, path, Duration::from_secs(2))?;
                if status != 200 || b.len() != len {
                    return Err(format!(
                        "GET {path}: status {status}, {} bytes (want 200, {len} bytes)",
                        b.len()
                    ));
                }
            }
            Ok(())
        };
        let Err(last) = check() else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "{} not ready on {addr} after 15 s (last: {last})\n{}",
                g.name(),
                logs_text(logs)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An error of one measuring step, naming the target and the step: `map_err(step(..))`.
fn step_error(target: &str, step: &str) -> impl FnOnce(String) -> String + use<> {
    let (target, step) = (target.to_string(), step.to_string());
    move |e: String| format!("{target}, step {step}: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert_eq!(body(SMALL).len(), 1024);
        assert_eq!(body(LARGE).len(), 102_400);
    }

    #[test]
    fn kinds() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.name()), Some(k));
        }
        assert!(Kind::NginxCache.is_cache() && !Kind::Nginx.is_cache());
        assert!(Kind::ForwardCache.uses_forward() && !Kind::NginxCache.uses_forward());
        assert!(!Kind::ForwardPgo.uses_forward() && Kind::ForwardPgo.is_forward());
        assert!(Kind::DEFAULT.iter().all(|k| Kind::ALL.contains(k)));
        assert!(!Kind::DEFAULT.contains(&Kind::ForwardPgo));
        let p = Ports::from_base(28000);
        let mut all: Vec<u16> = vec![p.origin, p.origin_h2, p.status];
        for k in Kind::ALL {
            let (port, h2) = p.of(k);
            all.push(port);
            all.extend(h2.filter(|&h| h != port));
        }
        // direct is the origin; every other port is one target's alone.
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n - 2, "direct's two ports are the origin's");
    }

    #[test]
    fn hits_and_warnings() {
        assert!(is_hit("hit") && is_hit("HIT") && !is_hit("miss") && !is_hit("-"));
        let mut r = Record {
            round: 2,
            target: "nginx-cache".into(),
            ..Record::default()
        };
        r.set("hits_verified", 1.0);
        r.set("origin_requests_hit", 0.0);
        assert!(cache_warnings(&r).is_empty());
        r.set("hits_verified", 0.0);
        r.set("origin_requests_hit", 3.0);
        let w = cache_warnings(&r);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("nginx-cache, round 2: responses were NOT cache hits"));
        assert!(w[1].contains("3 request(s)"));
        let c = HitCheck {
            path: "/cached/1k".into(),
            fill: "miss".into(),
            last: "hit".into(),
            tries: 1,
            hit: true,
        };
        assert_eq!(
            c.note(),
            "cache check /cached/1k: fill x-cache-status: miss, then hit (1 request(s))"
        );
    }

    #[test]
    fn stub_deltas() {
        let a = StubStatus {
            accepts: 10,
            requests: 100,
        };
        let b = StubStatus {
            accepts: 75,
            requests: 10_101,
        };
        assert_eq!(stub_delta(a, b), (64, 10_000));
    }
}
