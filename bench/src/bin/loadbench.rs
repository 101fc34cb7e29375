//! `loadbench`: our `forward` proxy side by side with nginx and haproxy (and the origin
//! alone), on loopback, in one run, interleaved round by round; and on cache hits,
//! `forward --cache` against nginx's `proxy_cache`, in the same rounds. With `--pgo`,
//! also `forward` built with profile-guided optimisation (`forward-pgo`).
//!
//! ```text
//! cargo run --release -p proxy-bench --bin loadbench -- [--quick] [--rounds N] ...
//! ```
//!
//! See the "Load benchmark" section of `bench/README.md` for what is measured, and
//! `proxy_bench::load` for the parts. This file holds the options, the set-up (tools,
//! the `forward` build, pinning, limits, the origin, the PGO build), the rounds, and
//! the output.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_bench::load::child::{install_interrupt_handler, interrupted, run_visible_bounded};
use proxy_bench::load::pgo::{self, PgoDirs, ProfData};
use proxy_bench::load::procfs;
use proxy_bench::load::report::{self, Record, RunInfo, Variant, summary_of};
use proxy_bench::load::run::{
    Bench, CACHED, FORWARD_CACHE_SIZE, Kind, Ports, cache_warnings, nginx_cache_dir, port_free,
    profraw_files,
};
use proxy_bench::load::svg::{self, Chart, Series};
use proxy_bench::load::tools::{self, Tool};

const USAGE: &str = "\
loadbench: our forward proxy against nginx and haproxy on loopback, interleaved rounds

usage: cargo run --release -p proxy-bench --bin loadbench -- [options]

  --rounds N           rounds (default 3); every round measures every target once
  --duration S         seconds per measured wrk/h2load run (default 5)
  --conns C            wrk connections (default 64)
  --idle-conns N       idle keep-alive connections for the memory step (default 5000; 0 skips)
  --targets LIST       comma-separated, in round order (default
                       direct,forward,nginx,haproxy,forward-cache,nginx-cache; the last two
                       are measured on cache hits: forward --cache, nginx proxy_cache;
                       forward-pgo needs --pgo or --forward-pgo-bin)
  --work DIR           work dir: configs, logs, results-*.jsonl (default $TMPDIR/proxy-loadbench)
  --forward-bin PATH   the forward binary to measure (default: build it next to loadbench)
  --no-build           do not build forward; use the one next to loadbench (with --pgo:
                       the PGO build an earlier --pgo run left in TARGET/pgo-use)
  --pgo                also measure forward-pgo, forward built with profile-guided
                       optimisation, right after forward: instrumented build
                       (TARGET/pgo-generate), trained against the origin (wrk 1 KiB,
                       wrk 100 KiB, h2load h2c, 5 s each), profile merged with
                       llvm-profdata (rustup component add llvm-tools), rebuilt
                       (TARGET/pgo-use); TARGET is loadbench's own target dir
  --forward-pgo-bin PATH
                       measure PATH as forward-pgo (a ready-made PGO build; nothing built)
  --quick              smoke run: 1 round, 2 s runs, 1000 idle connections
  --install            apt-get install missing tools (sudo unless root); with --pgo,
                       also rustup component add llvm-tools if llvm-profdata is missing
  --base-port P        ports used: P+81/82/89 origin (h1/h2c/status), P+100/101 nginx,
                       P+110 nginx-cache, P+200 haproxy, P+300 forward, P+310 forward-cache,
                       P+320 forward-pgo (default 28000)
  --h2-conns C         h2load connections (default 8)
  --h2-streams M       h2load streams per connection (default 8)
  --client-cpu LIST    taskset -c list of the load generator (default 1)
  --server-cpu LIST    taskset -c list of proxy and origin (default 0)
  --docs DIR           where docs/performance-results.md and docs/src/perf-*.svg go
                       (default: this workspace's docs/)
  --no-docs            write the Markdown and the charts to the work dir only
  -h, --help           this text
";

/// Where the `forward-pgo` target's binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pgo {
    /// `--pgo`: built and trained by this run (with `--no-build`: the build an earlier
    /// run left behind).
    Build,
    /// `--forward-pgo-bin PATH`: measured as given.
    Bin(PathBuf),
}

#[derive(Debug, Clone)]
struct Opts {
    rounds: u32,
    duration: u64,
    conns: usize,
    idle_conns: usize,
    targets: Vec<Kind>,
    work: PathBuf,
    forward_bin: Option<PathBuf>,
    no_build: bool,
    quick: bool,
    install: bool,
    base_port: u16,
    h2_conns: usize,
    h2_streams: usize,
    client_cpu: String,
    server_cpu: String,
    docs: Option<PathBuf>,
    pgo: Option<Pgo>,
}

fn parse_args(args: &[String]) -> Result<Option<Opts>, String> {
    let mut rounds = None;
    let mut duration = None;
    let mut idle = None;
    let mut o = Opts {
        rounds: 3,
        duration: 5,
        conns: 64,
        idle_conns: 5000,
        targets: Kind::DEFAULT.to_vec(),
        work: std::env::temp_dir().join("proxy-loadbench"),
        forward_bin: None,
        no_build: false,
        quick: false,
        install: false,
        base_port: 28000,
        h2_conns: 8,
        h2_streams: 8,
        client_cpu: "1".into(),
        server_cpu: "0".into(),
        docs: Some(workspace_root().join("docs")),
        pgo: None,
    };
    let mut pgo_build = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{flag}: not a number: {v:?}"))
        }
        match flag {
            "-h" | "--help" => return Ok(None),
            "--rounds" => rounds = Some(num(flag, value()?)?),
            "--duration" => duration = Some(num(flag, value()?)?),
            "--conns" => o.conns = num(flag, value()?)?,
            "--idle-conns" => idle = Some(num(flag, value()?)?),
            "--targets" => {
                o.targets = value()?
                    .split(',')
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| {
                        Kind::parse(t.trim()).ok_or_else(|| {
                            let known: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                            format!("--targets: unknown target {t:?} ({})", known.join(", "))
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--work" => o.work = PathBuf::from(value()?),
            "--forward-bin" => o.forward_bin = Some(PathBuf::from(value()?)),
            "--no-build" => o.no_build = true,
            "--pgo" => pgo_build = true,
            "--forward-pgo-bin" => o.pgo = Some(Pgo::Bin(PathBuf::from(value()?))),
            "--quick" => o.quick = true,
            "--install" => o.install = true,
            "--base-port" => o.base_port = num(flag, value()?)?,
            "--h2-conns" => o.h2_conns = num(flag, value()?)?,
            "--h2-streams" => o.h2_streams = num(flag, value()?)?,
            "--client-cpu" => o.client_cpu = value()?,
            "--server-cpu" => o.server_cpu = value()?,
            "--docs" => o.docs = Some(PathBuf::from(value()?)),
            "--no-docs" => o.docs = None,
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    // --quick sets the defaults; explicit options win whatever their position.
    o.rounds = rounds.unwrap_or(if o.quick { 1 } else { 3 });
    o.duration = duration.unwrap_or(if o.quick { 2 } else { 5 });
    o.idle_conns = idle.unwrap_or(if o.quick { 1000 } else { 5000 });
    if o.rounds == 0 || o.duration == 0 || o.conns == 0 {
        return Err("--rounds, --duration and --conns must be at least 1".into());
    }
    // --forward-pgo-bin wins over --pgo: nothing to build then.
    if pgo_build && o.pgo.is_none() {
        o.pgo = Some(Pgo::Build);
    }
    if o.pgo.is_some() && !o.targets.contains(&Kind::ForwardPgo) {
        // Right after forward (the pair is the comparison), else last.
        let at = o
            .targets
            .iter()
            .position(|&k| k == Kind::Forward)
            .map_or(o.targets.len(), |i| i + 1);
        o.targets.insert(at, Kind::ForwardPgo);
    }
    if o.pgo.is_none() && o.targets.contains(&Kind::ForwardPgo) {
        return Err(
            "--targets: forward-pgo needs --pgo (build it) or --forward-pgo-bin PATH".into(),
        );
    }
    if o.targets.is_empty() {
        return Err("--targets: no target".into());
    }
    for (i, t) in o.targets.iter().enumerate() {
        if o.targets[..i].contains(t) {
            return Err(format!("--targets: {} given twice", t.name()));
        }
    }
    if o.base_port > 65_000 {
        return Err("--base-port: at most 65000".into());
    }
    Ok(Some(o))
}

/// The workspace root (this crate is `bench/` in it).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// (`20260501-123456`, `2026-05-01 12:34:56 UTC`) for now.
fn utc_now() -> (String, String) {
    utc(SystemTime::now())
}

/// (`20260501-123456`, `2026-05-01 12:34:56 UTC`) for `t`.
fn utc(t: SystemTime) -> (String, String) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}{m:02}{d:02}-{h:02}{mi:02}{s:02}"),
        format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC"),
    )
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_string()
}

fn read_trim(path: &str) -> String {
    fs::read_to_string(path).map_or_else(|_| "?".into(), |s| s.trim().to_string())
}

/// Extra settings of a `forward` build (the PGO ones).
#[derive(Debug, Clone, Copy, Default)]
struct BuildWith<'a> {
    /// A rustc flag added to the caller's `RUSTFLAGS` (`-Cprofile-generate=...`).
    rustflag: Option<&'a str>,
    /// `taskset` and the CPU list to run cargo on: builds started after the harness
    /// pinned itself get back every CPU it was allowed at start.
    cpus: Option<(&'a Path, &'a str)>,
}

/// Build `forward` into `target_dir`: the target dir `loadbench` itself runs from, so
/// that `cargo run --release -p proxy-bench --bin loadbench` measures the current
/// source; or, for `--pgo`, one of [`PgoDirs`]'s, with a profile flag.
fn build_forward(target_dir: &Path, with: BuildWith<'_>) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "loadbench: building forward: {}cargo build --release -p examples --bin forward (CARGO_TARGET_DIR={})",
        with.rustflag
            .map_or_else(String::new, |f| format!("RUSTFLAGS+={f} ")),
        target_dir.display()
    );
    let mut cmd = match with.cpus {
        Some((taskset, cpus)) => {
            let mut c = Command::new(taskset);
            c.arg("-c").arg(cpus).arg(&cargo);
            c
        }
        None => Command::new(&cargo),
    };
    // `cargo run` gives loadbench the variables of *its* package; build scripts that
    // watch one (ring: CARGO_MANIFEST_DIR) would rebuild on every switch between this
    // build and the next `cargo run`. Drop them: the build sees the user's environment.
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&k.as_ref())
        {
            cmd.env_remove(&key);
        }
    }
    if let Some(flag) = with.rustflag {
        let var = |k: &str| std::env::var(k).ok();
        let flags = pgo::encoded_rustflags(
            var("CARGO_ENCODED_RUSTFLAGS").as_deref(),
            var("RUSTFLAGS").as_deref(),
            flag,
        );
        cmd.env("CARGO_ENCODED_RUSTFLAGS", flags)
            .env_remove("RUSTFLAGS");
    }
    cmd.current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir)
        .args(["build", "--release", "-p", "examples", "--bin", "forward"]);
    run_visible_bounded("cargo build (forward)", &mut cmd, Duration::from_secs(1800))
}

/// `--pgo`: build the instrumented `forward`, train it against the running origin
/// ([`Bench::train_pgo`]), merge its profile, build the optimised `forward` (the
/// `forward-pgo` binary, [`PgoDirs::optimised_bin`]). Returns how it was built, for
/// the report's settings.
fn build_pgo(
    bench: &Bench,
    dirs: &PgoDirs,
    profdata: &ProfData,
    cpus: Option<(&Path, &str)>,
) -> Result<String, String> {
    let started = std::time::Instant::now();
    pgo::reset_dir(&dirs.profiles)?;
    let generate = dirs.generate_flag();
    build_forward(
        &dirs.generate,
        BuildWith {
            rustflag: Some(&generate),
            cpus,
        },
    )
    .map_err(|e| format!("instrumented build: {e}"))?;
    // The build scripts of the instrumented build wrote profiles too: a fresh, empty
    // directory for the training run.
    pgo::reset_dir(&dirs.profiles)?;
    eprintln!(
        "loadbench: PGO training: the instrumented forward on 127.0.0.1:{}, {} s per load",
        bench.ports.forward_pgo,
        pgo::TRAIN_SECS
    );
    let runs = bench.train_pgo(&dirs.instrumented_bin(), &dirs.profiles, pgo::TRAIN_SECS)?;
    let raw = profraw_files(&dirs.profiles);
    pgo::merge(profdata, &raw, &dirs.profdata)?;
    let use_flag = dirs.use_flag();
    build_forward(
        &dirs.use_dir,
        BuildWith {
            rustflag: Some(&use_flag),
            cpus,
        },
    )
    .map_err(|e| format!("optimised build: {e}"))?;
    eprintln!(
        "loadbench: PGO build done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(format!(
        "`forward` of this workspace built with profile-guided optimisation by this run \
         (same release profile as `forward`): (1) `cargo build --release -p examples --bin \
         forward` with `{generate}` (target dir `{}`); (2) that instrumented binary, \
         started and pinned like the targets, trained against this run's origin with {}, \
         then stopped with SIGTERM; (3) its {} `.profraw` merged with `llvm-profdata merge` \
         (LLVM {}); (4) the same build with `{use_flag}` (target dir `{}`). The cache path \
         (`--cache`) is not part of the training",
        dirs.generate.display(),
        runs.join(", "),
        raw.len(),
        profdata.llvm,
        dirs.use_dir.display()
    ))
}

/// Pin this process (all its threads: the idle client runs here) to the client CPU.
fn pin_self(taskset: &Path, cpu: &str) -> Result<(), String> {
    let out = Command::new(taskset)
        .args(["-a", "-p", "-c", cpu, &std::process::id().to_string()])
        .output()
        .map_err(|e| format!("taskset: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "taskset -a -p -c {cpu}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn loud(warnings: &mut Vec<String>, msg: String) {
    eprintln!("\n!!! loadbench: {msg}\n");
    warnings.push(msg);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("loadbench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts, &args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(_) if interrupted() => ExitCode::from(130),
        Err(e) => {
            eprintln!("loadbench: error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The whole run; `Ok(false)` if some measurement failed (the report is written).
fn run(opts: &Opts, args: &[String]) -> Result<bool, String> {
    install_interrupt_handler().map_err(|e| format!("set-up: {e}"))?;
    let mut warnings = Vec::new();

    // 1. Tools.
    let mut found = tools::find_tools();
    let missing: Vec<&str> = found
        .iter()
        .filter(|t| t.path.is_none())
        .map(|t| t.package)
        .collect();
    if !missing.is_empty() {
        let line = tools::install_line(&missing);
        if opts.install {
            tools::install(&missing).map_err(|e| format!("set-up, installing tools: {e}"))?;
            found = tools::find_tools();
        } else {
            eprintln!(
                "loadbench: missing tools; install them with:\n\n    {line}\n\n(or run with --install)"
            );
        }
    }
    let tool = |name: &str| -> Option<&Tool> { found.iter().find(|t| t.name == name) };
    let path_of = |name: &str| tool(name).and_then(|t| t.path.clone());
    for t in found.iter().filter(|t| t.path.is_none()) {
        loud(
            &mut warnings,
            format!(
                "`{}` not found (package {}: `{}`): {}",
                t.name,
                t.package,
                tools::install_line(&[t.package]),
                t.needed_for
            ),
        );
    }
    let wrk = path_of("wrk").ok_or("set-up: wrk is required")?;
    let nginx = path_of("nginx").ok_or("set-up: nginx is required (it is the origin)")?;
    let haproxy = path_of("haproxy");
    let h2load = path_of("h2load");
    let taskset = path_of("taskset");
    let mut targets = opts.targets.clone();
    if haproxy.is_none() && targets.contains(&Kind::Haproxy) {
        targets.retain(|&k| k != Kind::Haproxy);
        loud(
            &mut warnings,
            "SKIPPING target haproxy: haproxy is not installed".into(),
        );
    }

    // 1b. --pgo: llvm-profdata, before anything is built.
    let build_pgo_now = opts.pgo == Some(Pgo::Build) && !opts.no_build;
    let profdata = if build_pgo_now {
        let found = match pgo::find_llvm_profdata(&pgo::rustc()) {
            Err(e) if opts.install => {
                eprintln!("loadbench: {e}");
                pgo::install_llvm_tools()
                    .map_err(|e| format!("set-up, installing llvm-tools: {e}"))?;
                pgo::find_llvm_profdata(&pgo::rustc())
            }
            found => found,
        };
        let found = found.map_err(|e| format!("set-up: {e}"))?;
        eprintln!(
            "loadbench: --pgo: llvm-profdata {} (LLVM {})",
            found.path.display(),
            found.llvm
        );
        Some(found)
    } else {
        None
    };

    // 2. The forward binaries.
    let exe = std::env::current_exe().map_err(|e| format!("set-up: current_exe: {e}"))?;
    let release_dir = exe.parent().ok_or("set-up: loadbench has no directory")?;
    let target_dir = release_dir.parent().unwrap_or(release_dir);
    let pgo_dirs = PgoDirs::new(target_dir, &opts.work);
    let mut forward = None;
    if targets.iter().any(|k| k.uses_forward()) {
        let path = match &opts.forward_bin {
            Some(p) => p.clone(),
            None => {
                if !opts.no_build {
                    build_forward(target_dir, BuildWith::default())
                        .map_err(|e| format!("set-up, building forward: {e}"))?;
                }
                release_dir.join("forward")
            }
        };
        if !path.is_file() {
            return Err(format!(
                "set-up: no forward binary at {} (build it: `cargo build --release -p examples \
                 --bin forward`, or give --forward-bin PATH)",
                path.display()
            ));
        }
        forward = Some(path);
    }
    let forward_pgo = match &opts.pgo {
        None => None,
        Some(Pgo::Bin(p)) => Some(p.clone()),
        Some(Pgo::Build) => Some(pgo_dirs.optimised_bin()),
    };
    if let Some(p) = &forward_pgo
        && !build_pgo_now
        && !p.is_file()
    {
        return Err(format!(
            "set-up: no PGO build of forward at {} ({})",
            p.display(),
            if opts.pgo == Some(Pgo::Build) {
                "--no-build uses the one an earlier --pgo run left there; run without --no-build"
            } else {
                "--forward-pgo-bin"
            }
        ));
    }

    // 3. Layout: this process (and so the idle client) on the client CPU.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (mut client_cpu, mut server_cpu) = (opts.client_cpu.clone(), opts.server_cpu.clone());
    if cores < 2 && client_cpu != server_cpu {
        loud(
            &mut warnings,
            format!("only {cores} CPU: client and server share CPU 0"),
        );
        client_cpu = "0".into();
        server_cpu = "0".into();
    }
    // The PGO builds run after the harness pinned itself: they get these CPUs back.
    let all_cpus = procfs::cpus_allowed_list();
    let pinned = match &taskset {
        Some(ts) => match pin_self(ts, &client_cpu) {
            Ok(()) => true,
            Err(e) => {
                loud(&mut warnings, format!("cannot pin the harness: {e}"));
                true
            }
        },
        None => {
            loud(
                &mut warnings,
                "NOT PINNED: taskset missing; the layout below does not hold".into(),
            );
            false
        }
    };

    // 4. Limits: the idle client and forward (which inherits them) hold the idle
    //    connections; nginx and haproxy raise their own (configs).
    let server_conns = (opts.idle_conns + 2048).max(4096);
    let want = (opts.idle_conns as u64 + 4096).max(8192);
    match procfs::raise_nofile(want) {
        Ok((s, h)) => eprintln!("loadbench: open-files limit {s} (hard {h})"),
        Err(e) => loud(
            &mut warnings,
            format!("open-files limit: {e}; the idle step may fail"),
        ),
    }

    // 5. Work dir, ports.
    for sub in ["", "logs"] {
        fs::create_dir_all(opts.work.join(sub))
            .map_err(|e| format!("set-up: create {}: {e}", opts.work.join(sub).display()))?;
    }
    let ports = Ports::from_base(opts.base_port);
    let mut needed = vec![ports.origin, ports.origin_h2, ports.status];
    for &k in &targets {
        let (p, h2) = ports.of(k);
        needed.push(p);
        needed.extend(h2);
    }
    needed.sort_unstable();
    needed.dedup();
    let busy: Vec<u16> = needed.iter().copied().filter(|&p| !port_free(p)).collect();
    if !busy.is_empty() {
        return Err(format!(
            "set-up: ports in use on 127.0.0.1: {busy:?} (another benchmark? choose --base-port)"
        ));
    }
    let (stamp, date) = utc_now();
    let results = opts.work.join(format!("results-{stamp}.jsonl"));

    // 5b. The cache targets: where nginx keeps its cache, and on what.
    let cache_dir = nginx_cache_dir(&opts.work, opts.base_port);
    let mut cache_setup = Vec::new();
    if targets.iter().any(|k| k.is_cache()) {
        let paths: Vec<&str> = CACHED.iter().map(|(p, _)| *p).collect();
        cache_setup.push(format!(
            "paths {} (origin: `Cache-Control: max-age=3600`); 1 s `wrk` warm-up after the \
             fill",
            paths.join(", ")
        ));
        if targets.contains(&Kind::ForwardCache) {
            cache_setup.push(format!(
                "forward-cache: `forward --cache {FORWARD_CACHE_SIZE} --threads 1` (memory \
                 storage in the process)"
            ));
        }
        if targets.contains(&Kind::NginxCache) {
            let fs_type = procfs::fs_type(&cache_dir).unwrap_or_else(|| "?".into());
            cache_setup.push(format!(
                "nginx-cache: `proxy_cache_path {} levels=1:2 keys_zone=loadbench:10m \
                 use_temp_path=off` on **{fs_type}**{}, `sendfile on`, `open_file_cache`",
                cache_dir.display(),
                if fs_type == "tmpfs" {
                    " (memory-backed: a memory cache against a file cache in memory)"
                } else {
                    ""
                }
            ));
            if fs_type != "tmpfs" {
                loud(
                    &mut warnings,
                    format!(
                        "nginx's cache directory {} is on {fs_type}, not tmpfs (no /dev/shm): \
                         nginx-cache reads its hits through the page cache of that file system",
                        cache_dir.display()
                    ),
                );
            }
        }
    }

    let bench = Bench {
        work: opts.work.clone(),
        ports,
        wrk: wrk.clone(),
        h2load: h2load.clone(),
        nginx: nginx.clone(),
        haproxy: haproxy.clone(),
        taskset: if pinned { taskset.clone() } else { None },
        forward: forward.clone(),
        forward_pgo: forward_pgo.clone(),
        nginx_cache_dir: cache_dir.clone(),
        client_cpu: client_cpu.clone(),
        server_cpu: server_cpu.clone(),
        duration: opts.duration,
        conns: opts.conns,
        h2_conns: opts.h2_conns,
        h2_streams: opts.h2_streams,
        idle_conns: opts.idle_conns,
        server_conns,
        clk_tck: procfs::clock_ticks(),
    };

    // 6. Run description.
    let names: Vec<String> = targets.iter().map(|k| k.name().to_string()).collect();
    let layout = if pinned {
        vec![
            format!(
                "client (wrk, h2load, the idle client, this harness) on CPU {client_cpu} (`taskset -c {client_cpu}`)"
            ),
            format!(
                "proxy AND origin on CPU {server_cpu} (`taskset -c {server_cpu}`); one worker each: \
                 forward `--threads 1`, nginx `worker_processes 1`, haproxy `nbthread 1`, origin nginx `worker_processes 1`"
            ),
        ]
    } else {
        vec!["UNPINNED (taskset missing): client, proxy and origin share all CPUs".into()]
    };
    let mut versions = vec![
        format!("nginx: {}", tools::version_of(&nginx, &["-v"])),
        format!("wrk: {}", first_line(&tools::version_of(&wrk, &["-v"]))),
    ];
    if let Some(h) = &haproxy {
        versions.push(format!("haproxy: {}", tools::version_of(h, &["-v"])));
    }
    if let Some(h) = &h2load {
        versions.push(format!("h2load: {}", tools::version_of(h, &["--version"])));
    }
    versions.push(format!(
        "rustc: {}",
        tools::version_of(Path::new("rustc"), &["-V"])
    ));
    if let Some(f) = &forward {
        versions.push(binary_line("forward", f));
    }
    let cpu_model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let mut machine = vec![
        format!("{cores} CPUs, {cpu_model}"),
        format!("Linux {}", read_trim("/proc/sys/kernel/osrelease")),
        // Loopback senders pace themselves under BBR, which moves every proxy's numbers
        // (docs/src/performance.md): say which congestion control the run had.
        format!(
            "TCP congestion control: {}",
            read_trim("/proc/sys/net/ipv4/tcp_congestion_control")
        ),
        format!("load average at start: {}", read_trim("/proc/loadavg")),
    ];
    let settings = format!(
        "{} round(s), targets {} (interleaved: every round runs them in this order); wrk -t1 -c{} -d{}s \
         (+1 s warm-up); h2load -t1 -c{} -m{} -D {}; {} idle connections; bodies 1 KiB and 100 KiB{}",
        opts.rounds,
        names.join(", "),
        opts.conns,
        opts.duration,
        opts.h2_conns,
        opts.h2_streams,
        opts.duration,
        opts.idle_conns,
        if targets.iter().any(|k| k.is_cache()) {
            " (the *-cache targets: the two wrk runs only, on cache hits)"
        } else {
            ""
        }
    );
    let command = format!(
        "cargo run --release -p proxy-bench --bin loadbench --{}",
        args.iter().map(|a| format!(" {a}")).collect::<String>()
    );
    println!("loadbench: {settings}");
    for l in &layout {
        println!("layout: {l}");
    }
    println!(
        "work dir: {}   results: {}",
        opts.work.display(),
        results.display()
    );

    // 7. Origin, then the rounds.
    let mut origin = bench
        .start_origin()
        .map_err(|e| format!("starting the origin: {e}"))?;
    let origin_pid = origin.pid();
    println!(
        "origin: nginx pid {origin_pid} on 127.0.0.1:{} (stub_status :{})",
        ports.origin, ports.status
    );

    // 7b. --pgo: build, train and rebuild forward now that the origin is up.
    let mut variants = Vec::new();
    if let (Some(pgo_opt), Some(bin)) = (&opts.pgo, &forward_pgo) {
        let how = match (pgo_opt, &profdata) {
            (Pgo::Build, Some(profdata)) => {
                let cpus = match (&taskset, &all_cpus) {
                    (Some(ts), Some(list)) if pinned => Some((ts.as_path(), list.as_str())),
                    _ => None,
                };
                build_pgo(&bench, &pgo_dirs, profdata, cpus)
                    .map_err(|e| format!("set-up, --pgo: {e}"))?
            }
            (Pgo::Build, None) => format!(
                "`forward` built with profile-guided optimisation by an earlier `--pgo` run \
                 (`--no-build`: not rebuilt or retrained here; training load and profile as \
                 that run's report says); binary `{}`",
                bin.display()
            ),
            (Pgo::Bin(p), _) => format!(
                "the binary given with `--forward-pgo-bin {}`, built outside this run (how it \
                 was trained is not known to loadbench)",
                p.display()
            ),
        };
        versions.push(binary_line("forward-pgo", bin));
        variants.push(Variant {
            target: Kind::ForwardPgo.name().into(),
            base: Kind::Forward.name().into(),
            summary: format!(
                "the same `forward` built with profile-guided optimisation ({}; settings \
                 above); `forward` is the default release build, the one to compare",
                match pgo_opt {
                    Pgo::Build if build_pgo_now => format!(
                        "trained on wrk 1 KiB, wrk 100 KiB and h2load h2c, {} s each",
                        pgo::TRAIN_SECS
                    ),
                    Pgo::Build => "built by an earlier `--pgo` run".to_string(),
                    Pgo::Bin(_) => "a binary given with `--forward-pgo-bin`".to_string(),
                }
            ),
            how,
        });
    }
    let mut records: Vec<Record> = Vec::new();
    let mut out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&results)
        .map_err(|e| format!("open {}: {e}", results.display()))?;
    for round in 1..=opts.rounds {
        for &kind in &targets {
            if let Some(st) = origin.exited() {
                return Err(format!(
                    "the origin exited ({st}) before round {round}, {}; see {}",
                    kind.name(),
                    opts.work.join("origin/error.log").display()
                ));
            }
            println!("round {round}/{}: {} ...", opts.rounds, kind.name());
            let rec = match bench.start_target(kind, round) {
                Err(e) => Record {
                    round,
                    target: kind.name().into(),
                    error: Some(format!("{}, step start: {e}", kind.name())),
                    ..Record::default()
                },
                Ok(proc_) => {
                    let pid = proc_.as_ref().map_or(origin_pid, |g| g.pid());
                    let mut rec = bench.measure(kind, round, pid, origin_pid);
                    if let Some(mut g) = proc_ {
                        let how = g.stop("TERM", Duration::from_secs(10));
                        rec.notes.push(format!("stop: {how}"));
                    }
                    rec
                }
            };
            if interrupted() {
                return Err("interrupted".into());
            }
            print_line(&rec);
            for w in cache_warnings(&rec) {
                loud(&mut warnings, w);
            }
            writeln!(out, "{}", rec.json_line(&stamp))
                .and_then(|()| out.flush())
                .map_err(|e| format!("write {}: {e}", results.display()))?;
            records.push(rec);
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let stop = origin.stop("TERM", Duration::from_secs(10));
    eprintln!("loadbench: origin {stop}");
    if targets.contains(&Kind::NginxCache)
        && let Err(e) = bench.remove_nginx_cache_dir()
    {
        eprintln!("loadbench: {e}");
    }
    machine.push(format!(
        "load average at end: {}",
        read_trim("/proc/loadavg")
    ));

    // 8. Report.
    let failed = records.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        loud(
            &mut warnings,
            format!("{failed} measurement(s) failed; see the last section"),
        );
    }
    let info = RunInfo {
        date,
        command,
        settings,
        layout,
        machine,
        versions,
        warnings,
        results_file: results.display().to_string(),
        cache_setup,
        variants,
    };
    let (cache_names, main_names): (Vec<String>, Vec<String>) = names
        .iter()
        .cloned()
        .partition(|n| Kind::parse(n).is_some_and(Kind::is_cache));
    let md = report::markdown(&info, &records, &main_names, &cache_names);
    let cpu_svg = svg::render(&cpu_chart(&records, &names));
    let rps_svg = svg::render(&rps_chart(&records, &names));
    let mut written = Vec::new();
    let mut write = |path: PathBuf, text: &str| -> Result<(), String> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
        written.push(path.display().to_string());
        Ok(())
    };
    write(opts.work.join(format!("results-{stamp}.md")), &md)?;
    write(opts.work.join(format!("perf-cpu-{stamp}.svg")), &cpu_svg)?;
    write(opts.work.join(format!("perf-rps-{stamp}.svg")), &rps_svg)?;
    if let Some(docs) = &opts.docs {
        write(docs.join("performance-results.md"), &md)?;
        write(docs.join("src").join("perf-cpu.svg"), &cpu_svg)?;
        write(docs.join("src").join("perf-rps.svg"), &rps_svg)?;
    }
    println!("\n{md}");
    let mut files = String::new();
    for w in &written {
        let _ = writeln!(files, "  {w}");
    }
    println!("written:\n{files}  {} (appended)", results.display());
    Ok(failed == 0)
}

/// The report's line about a `forward` binary: path, build time, workspace HEAD.
fn binary_line(target: &str, bin: &Path) -> String {
    let commit = tools::version_of(
        Path::new("git"),
        &[
            "-C",
            &workspace_root().display().to_string(),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    );
    let built = fs::metadata(bin)
        .and_then(|m| m.modified())
        .map_or_else(|_| "?".to_string(), |t| utc(t).1);
    format!(
        "{target}: `{}`, built {built} (workspace HEAD now: {commit}; uncommitted changes not tracked)",
        bin.display()
    )
}

fn print_line(r: &Record) {
    let v = |k: &str, d: usize| {
        r.values
            .get(k)
            .map_or("-".to_string(), |x| report::fmt_num(*x, d))
    };
    let cache = Kind::parse(&r.target).is_some_and(Kind::is_cache);
    match &r.error {
        Some(e) => println!("  FAILED: {e}"),
        None if cache => println!(
            "  hits 1k: {} req/s p50 {} p99 {} ms, CPU {} ms/1k | hits 100k: {} req/s p50 {} p99 {} ms, CPU {} ms/1k | hits verified: {} | origin requests during the runs: {}",
            v("rps_hit_1k", 0),
            v("p50_ms_hit_1k", 2),
            v("p99_ms_hit_1k", 2),
            v("cpu_ms_per_1k_hit_1k", 2),
            v("rps_hit_100k", 0),
            v("p50_ms_hit_100k", 2),
            v("p99_ms_hit_100k", 2),
            v("cpu_ms_per_1k_hit_100k", 2),
            if r.values.get("hits_verified") == Some(&1.0) {
                "yes"
            } else {
                "NO"
            },
            v("origin_requests_hit", 0),
        ),
        None => println!(
            "  1k: {} req/s p50 {} p99 {} ms, CPU {} ms/1k | 100k: {} req/s, CPU {} ms/1k | h2c: {} | peak RSS {} MiB, idle {} MiB | origin conns/10k {}",
            v("rps_1k", 0),
            v("p50_ms_1k", 2),
            v("p99_ms_1k", 2),
            v("cpu_ms_per_1k_1k", 2),
            v("rps_100k", 0),
            v("cpu_ms_per_1k_100k", 2),
            r.missing.get("rps_h2c").map_or_else(
                || format!("{} req/s", v("rps_h2c", 0)),
                |m| m.replace("h2c: ", "")
            ),
            v("peak_rss_mib", 1),
            v("idle_rss_mib", 1),
            v("upstream_conns_per_10k", 2),
        ),
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
}

/// One series of a chart: `key` of every target; for a cache target, its cache-hit
/// figure ([`report::hit_key`]; none for h2c).
fn series(
    records: &[Record],
    names: &[String],
    key: &str,
    name: &str,
    color: &'static str,
) -> Series {
    Series {
        name: name.into(),
        color,
        values: names
            .iter()
            .map(|t| {
                if Kind::parse(t).is_some_and(Kind::is_cache) {
                    summary_of(records, t, &report::hit_key(key))
                } else {
                    summary_of(records, t, key)
                }
            })
            .collect(),
    }
}

fn rounds_text(records: &[Record]) -> String {
    let n = records.iter().map(|r| r.round).max().unwrap_or(0);
    format!("median of {n} round(s); whiskers: min–max")
}

/// A second subtitle line when a chart has a cache target's group or `forward-pgo`.
fn notes_text(names: &[String]) -> String {
    let has = |f: fn(Kind) -> bool| names.iter().any(|n| Kind::parse(n).is_some_and(f));
    let mut notes = Vec::new();
    if has(Kind::is_cache) {
        notes.push("*-cache: cache hits, HTTP/1.1 only (forward --cache; nginx proxy_cache)");
    }
    if has(|k| k == Kind::ForwardPgo) {
        notes.push("forward-pgo: forward built with PGO");
    }
    if notes.is_empty() {
        String::new()
    } else {
        format!("\n{}", notes.join("; "))
    }
}

fn cpu_chart(records: &[Record], names: &[String]) -> Chart {
    Chart {
        title: "Proxy CPU time per 1,000 requests (lower is better)".into(),
        subtitle: format!(
            "ms of utime+stime, one worker, HTTP/1.1 keep-alive; direct = the origin alone; {}{}",
            rounds_text(records),
            notes_text(names)
        ),
        groups: names.to_vec(),
        series: vec![
            series(
                records,
                names,
                "cpu_ms_per_1k_1k",
                "1 KiB responses",
                "#4477aa",
            ),
            series(
                records,
                names,
                "cpu_ms_per_1k_100k",
                "100 KiB responses",
                "#ee6677",
            ),
        ],
        decimals: 1,
    }
}

fn rps_chart(records: &[Record], names: &[String]) -> Chart {
    Chart {
        title: "Requests per second (higher is better)".into(),
        subtitle: format!(
            "proxy and origin share one core; h1: 64 connections, h2c: 8×8 streams; {}{}",
            rounds_text(records),
            notes_text(names)
        ),
        groups: names.to_vec(),
        series: vec![
            series(records, names, "rps_1k", "HTTP/1.1, 1 KiB", "#4477aa"),
            series(records, names, "rps_100k", "HTTP/1.1, 100 KiB", "#ee6677"),
            series(records, names, "rps_h2c", "h2c, 1 KiB", "#228833"),
        ],
        decimals: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quick_and_explicit() {
        let o = parse_args(&args(&["--rounds", "2", "--quick"]))
            .expect("parses")
            .expect("not help");
        assert_eq!((o.rounds, o.duration, o.idle_conns), (2, 2, 1000));
        let o = parse_args(&args(&["--targets=forward,nginx", "--idle-conns", "0"]))
            .expect("parses")
            .expect("not help");
        assert_eq!(o.targets, vec![Kind::Forward, Kind::Nginx]);
        assert_eq!((o.rounds, o.duration, o.idle_conns), (3, 5, 0));
        let o = parse_args(&args(&["--targets", "nginx-cache,forward-cache"]))
            .expect("parses")
            .expect("not help");
        assert_eq!(o.targets, vec![Kind::NginxCache, Kind::ForwardCache]);
        let o = parse_args(&args(&[])).expect("parses").expect("not help");
        assert_eq!(o.targets.len(), 6, "the cache targets run by default");
        assert!(parse_args(&args(&["--targets", "apache"])).is_err());
        assert!(parse_args(&args(&["--targets", "nginx,direct,nginx"])).is_err());
        assert!(parse_args(&args(&["--rounds"])).is_err());
        assert!(parse_args(&args(&["-h"])).expect("parses").is_none());
    }

    #[test]
    fn pgo_options() {
        let parse = |a: &[&str]| parse_args(&args(a)).expect("parses").expect("not help");
        let names = |o: &Opts| -> Vec<&str> { o.targets.iter().map(|k| k.name()).collect() };
        // Without --pgo nothing changes.
        let o = parse(&[]);
        assert_eq!(o.pgo, None);
        assert_eq!(o.targets, Kind::DEFAULT.to_vec());
        // --pgo: forward-pgo right after forward.
        let o = parse(&["--pgo"]);
        assert_eq!(o.pgo, Some(Pgo::Build));
        assert_eq!(
            names(&o),
            [
                "direct",
                "forward",
                "forward-pgo",
                "nginx",
                "haproxy",
                "forward-cache",
                "nginx-cache"
            ]
        );
        let o = parse(&["--pgo", "--targets", "nginx,forward,direct"]);
        assert_eq!(names(&o), ["nginx", "forward", "forward-pgo", "direct"]);
        let o = parse(&[
            "--targets=direct,forward,forward-pgo,nginx",
            "--pgo",
            "--quick",
        ]);
        assert_eq!(names(&o), ["direct", "forward", "forward-pgo", "nginx"]);
        // An explicit position is kept; without forward, last.
        let o = parse(&["--targets", "forward-pgo,nginx,forward", "--pgo"]);
        assert_eq!(names(&o), ["forward-pgo", "nginx", "forward"]);
        let o = parse(&["--pgo", "--targets", "direct,nginx"]);
        assert_eq!(names(&o), ["direct", "nginx", "forward-pgo"]);
        // A ready-made binary: the target, nothing to build; it wins over --pgo.
        let o = parse(&[
            "--forward-pgo-bin",
            "/x/forward",
            "--targets",
            "forward,nginx",
        ]);
        assert_eq!(o.pgo, Some(Pgo::Bin(PathBuf::from("/x/forward"))));
        assert_eq!(names(&o), ["forward", "forward-pgo", "nginx"]);
        let o = parse(&["--pgo", "--forward-pgo-bin=/y"]);
        assert_eq!(o.pgo, Some(Pgo::Bin(PathBuf::from("/y"))));
        let o = parse(&["--pgo", "--no-build"]);
        assert_eq!((o.pgo, o.no_build), (Some(Pgo::Build), true));
        // forward-pgo without a source of its binary; a missing value; twice.
        let e = parse_args(&args(&["--targets", "forward,forward-pgo"])).expect_err("no --pgo");
        assert!(e.contains("--pgo"), "{e}");
        assert!(parse_args(&args(&["--forward-pgo-bin"])).is_err());
        assert!(parse_args(&args(&["--pgo", "--targets", "forward-pgo,forward-pgo"])).is_err());
    }

    #[test]
    fn chart_notes() {
        let n = |a: &[&str]| notes_text(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(n(&["direct", "forward", "nginx"]), "");
        assert_eq!(
            n(&["forward", "forward-pgo"]),
            "\nforward-pgo: forward built with PGO"
        );
        assert!(n(&["forward-pgo", "nginx-cache"]).starts_with("\n*-cache: "));
    }

    #[test]
    fn dates() {
        let (stamp, human) = utc_now();
        assert_eq!(stamp.len(), 15);
        assert!(human.ends_with(" UTC"));
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723); // 2000-02-29 01:02:03
        assert_eq!(utc(t).1, "2000-02-29 01:02:03 UTC");
    }
}
