//! Profile-guided optimisation of `forward` for `loadbench --pgo`: where the two PGO
//! builds and the profiles go, finding `llvm-profdata` (rustup's `llvm-tools`
//! component), the `RUSTFLAGS` of the builds, and merging the training profiles.
//!
//! The steps (the binary runs them once the origin is up): build `forward` with
//! `-Cprofile-generate` into [`PgoDirs::generate`]; empty [`PgoDirs::profiles`]; train
//! the instrumented binary with the benchmark's loads
//! ([`Bench::train_pgo`](crate::load::run::Bench::train_pgo)); merge its `.profraw`
//! files into [`PgoDirs::profdata`] ([`merge`]); build `forward` again with
//! `-Cprofile-use` into [`PgoDirs::use_dir`]. That binary is the `forward-pgo` target.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::load::child::{run_bounded, run_visible_bounded};
use crate::load::tools::which;

/// Seconds of each training load run (`wrk` 1 KiB, `wrk` 100 KiB, `h2load` h2c).
pub const TRAIN_SECS: u64 = 5;

/// The line that installs `llvm-profdata` for the active toolchain.
pub const LLVM_TOOLS_INSTALL: &str = "rustup component add llvm-tools";

/// Where the PGO builds and profiles live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgoDirs {
    /// Cargo target dir of the instrumented build (`TARGET/pgo-generate`).
    pub generate: PathBuf,
    /// Cargo target dir of the optimised build (`TARGET/pgo-use`).
    pub use_dir: PathBuf,
    /// Where the instrumented `forward` writes its `.profraw` files (`WORK/pgo/profraw`;
    /// emptied before every training run).
    pub profiles: PathBuf,
    /// The merged profile (`WORK/pgo/forward.profdata`).
    pub profdata: PathBuf,
}

impl PgoDirs {
    /// The directories for cargo target dir `target_dir` (the one `loadbench` runs
    /// from) and work dir `work`.
    pub fn new(target_dir: &Path, work: &Path) -> PgoDirs {
        PgoDirs {
            generate: target_dir.join("pgo-generate"),
            use_dir: target_dir.join("pgo-use"),
            profiles: work.join("pgo").join("profraw"),
            profdata: work.join("pgo").join("forward.profdata"),
        }
    }

    /// The instrumented `forward`.
    pub fn instrumented_bin(&self) -> PathBuf {
        self.generate.join("release").join("forward")
    }

    /// The optimised `forward`: the `forward-pgo` target.
    pub fn optimised_bin(&self) -> PathBuf {
        self.use_dir.join("release").join("forward")
    }

    /// The rustc flag of the instrumented build.
    pub fn generate_flag(&self) -> String {
        format!("-Cprofile-generate={}", self.profiles.display())
    }

    /// The rustc flag of the optimised build.
    pub fn use_flag(&self) -> String {
        format!("-Cprofile-use={}", self.profdata.display())
    }
}

/// The flags of a PGO build as a `CARGO_ENCODED_RUSTFLAGS` value (flags separated by
/// `0x1f`, so that paths may hold spaces): the caller's own flags (the value of
/// `CARGO_ENCODED_RUSTFLAGS` if set, else `RUSTFLAGS` split on white space: cargo's
/// order) followed by `extra`. Both builds of `forward` thus get
/// the same flags but for the PGO one. (Like `RUSTFLAGS`, this variable makes cargo
/// ignore `build.rustflags` of its configuration files; this workspace sets none.)
pub fn encoded_rustflags(encoded: Option<&str>, plain: Option<&str>, extra: &str) -> String {
    let mut flags: Vec<&str> = match (encoded, plain) {
        (Some(""), _) => Vec::new(),
        (Some(e), _) => e.split('\x1f').collect(),
        (_, Some(p)) => p.split_whitespace().collect(),
        _ => Vec::new(),
    };
    flags.push(extra);
    flags.join("\x1f")
}

/// The LLVM version in `rustc -vV` (`LLVM version: 22.1.2`) or `llvm-profdata
/// --version` (`LLVM version 22.1.2-rust-1.95.0-stable`, `Debian LLVM version 14.0.6`)
/// output: `22.1.2`.
pub fn llvm_version(text: &str) -> Option<String> {
    const KEY: &str = "LLVM version";
    text.lines().find_map(|l| {
        let v = &l[l.find(KEY)? + KEY.len()..];
        let v = v.trim_start_matches(':').split_whitespace().next()?;
        let v = v.split('-').next()?;
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// The major number of an LLVM version (`22.1.2` → `22`).
fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

/// What `rustc -vV` says: (host triple, LLVM version).
pub fn parse_rustc_vv(text: &str) -> (Option<String>, Option<String>) {
    let host = text
        .lines()
        .find_map(|l| l.strip_prefix("host:"))
        .map(|h| h.trim().to_string());
    (host, llvm_version(text))
}

/// `llvm-profdata` and the LLVM version it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfData {
    /// The program.
    pub path: PathBuf,
    /// Its LLVM version (`22.1.2`).
    pub llvm: String,
}

/// Run `program args` and return stdout and stderr together (`None` if it cannot run).
fn output_text(program: &Path, args: &[&str]) -> Option<String> {
    let o = Command::new(program).args(args).output().ok()?;
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    ))
}

/// The `rustc` cargo builds with: `$RUSTC`, else `rustc` (rustup's proxy picks the
/// same toolchain for it as for cargo).
pub fn rustc() -> PathBuf {
    std::env::var_os("RUSTC").map_or_else(|| PathBuf::from("rustc"), PathBuf::from)
}

/// Find an `llvm-profdata` that reads the profiles `rustc` writes: rustup's
/// `llvm-tools` (`SYSROOT/lib/rustlib/HOST/bin/llvm-profdata`), else one in `PATH`
/// (`llvm-profdata-MAJOR`, `llvm-profdata`) of the same LLVM major version as `rustc`
/// (a distribution's older LLVM cannot read newer `.profraw` files). The error says
/// what was found and how to install the right one.
pub fn find_llvm_profdata(rustc: &Path) -> Result<ProfData, String> {
    let vv = output_text(rustc, &["-vV"])
        .ok_or_else(|| format!("cannot run `{} -vV`", rustc.display()))?;
    let (host, rustc_llvm) = parse_rustc_vv(&vv);
    let sysroot = output_text(rustc, &["--print", "sysroot"])
        .map(|s| PathBuf::from(s.lines().next().unwrap_or("").trim()))
        .filter(|p| p.is_dir());
    let mut candidates = Vec::new();
    if let (Some(root), Some(host)) = (&sysroot, &host) {
        candidates.push(
            root.join("lib")
                .join("rustlib")
                .join(host)
                .join("bin")
                .join("llvm-profdata"),
        );
    }
    let rustup_path = candidates.first().cloned();
    if let Some(v) = &rustc_llvm {
        candidates.extend(which(&format!("llvm-profdata-{}", major(v))));
    }
    candidates.extend(which("llvm-profdata"));
    let mut rejected = Vec::new();
    for path in candidates.into_iter().filter(|p| p.is_file()) {
        // Older ones (LLVM 14) know `--version` only after a command.
        let version = |args: &[&str]| output_text(&path, args).and_then(|t| llvm_version(&t));
        let Some(llvm) = version(&["--version"]).or_else(|| version(&["merge", "--version"]))
        else {
            rejected.push(format!("{} (no version)", path.display()));
            continue;
        };
        let fits = match &rustc_llvm {
            Some(want) => major(want) == major(&llvm),
            // rustc did not say: only rustup's own copy is known to fit.
            None => Some(&path) == rustup_path.as_ref(),
        };
        if fits {
            return Ok(ProfData { path, llvm });
        }
        rejected.push(format!("{} (LLVM {llvm})", path.display()));
    }
    Err(format!(
        "--pgo needs llvm-profdata for rustc's LLVM {} and found {}: run `{LLVM_TOOLS_INSTALL}` \
         (it installs {}), or give loadbench --install to run it",
        rustc_llvm.as_deref().unwrap_or("?"),
        if rejected.is_empty() {
            "none".to_string()
        } else {
            format!("only {}", rejected.join(", "))
        },
        rustup_path.map_or_else(
            || "SYSROOT/lib/rustlib/HOST/bin/llvm-profdata".to_string(),
            |p| p.display().to_string()
        )
    ))
}

/// Run `rustup component add llvm-tools` (for the toolchain `rustc` resolves to here).
pub fn install_llvm_tools() -> Result<(), String> {
    let rustup = which("rustup").ok_or_else(|| {
        format!("`{LLVM_TOOLS_INSTALL}`: rustup not found; install llvm-profdata of rustc's LLVM version")
    })?;
    eprintln!("loadbench: running {LLVM_TOOLS_INSTALL}");
    let mut cmd = Command::new(rustup);
    cmd.args(["component", "add", "llvm-tools"]);
    run_visible_bounded(LLVM_TOOLS_INSTALL, &mut cmd, Duration::from_secs(600))
}

/// Empty `dir` (remove it and create it again).
pub fn reset_dir(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("remove {}: {e}", dir.display()));
        }
        _ => {}
    }
    fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))
}

/// `llvm-profdata merge -o OUT INPUTS...`.
pub fn merge(profdata: &ProfData, inputs: &[PathBuf], out: &Path) -> Result<(), String> {
    if inputs.is_empty() {
        return Err("llvm-profdata merge: no .profraw to merge".into());
    }
    let mut cmd = Command::new(&profdata.path);
    cmd.arg("merge").arg("-o").arg(out).args(inputs);
    let o = run_bounded("llvm-profdata merge", &mut cmd, Duration::from_secs(300))?;
    if !o.status.success() {
        return Err(format!(
            "llvm-profdata merge exited with {}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    match fs::metadata(out) {
        Ok(m) if m.len() > 0 => Ok(()),
        _ => Err(format!("llvm-profdata merge wrote no {}", out.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let vv = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\n\
                  host: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
        assert_eq!(
            parse_rustc_vv(vv),
            (
                Some("x86_64-unknown-linux-gnu".into()),
                Some("22.1.2".into())
            )
        );
        let rustup = "LLVM (http://llvm.org/):\n  LLVM version 22.1.2-rust-1.95.0-stable\n  Optimized build.\n";
        assert_eq!(llvm_version(rustup).as_deref(), Some("22.1.2"));
        let debian = "Debian LLVM version 14.0.6\n  Optimized build.\n";
        assert_eq!(llvm_version(debian).as_deref(), Some("14.0.6"));
        assert_eq!(major("22.1.2"), "22");
        assert_eq!(llvm_version("llvm-profdata: Unknown command!"), None);
    }

    #[test]
    fn rustflags() {
        let f = "-Cprofile-use=/tmp/a b/forward.profdata";
        assert_eq!(encoded_rustflags(None, None, f), f);
        assert_eq!(
            encoded_rustflags(None, Some(" -Ctarget-cpu=native  -g "), f),
            format!("-Ctarget-cpu=native\x1f-g\x1f{f}")
        );
        assert_eq!(
            encoded_rustflags(Some("-Ca=b c"), Some("-g"), f),
            format!("-Ca=b c\x1f{f}"),
            "the encoded variable wins, as in cargo"
        );
        assert_eq!(encoded_rustflags(Some(""), Some("-g"), f), f);
    }

    #[test]
    fn dirs() {
        let d = PgoDirs::new(Path::new("/t"), Path::new("/w"));
        assert_eq!(
            d.instrumented_bin(),
            Path::new("/t/pgo-generate/release/forward")
        );
        assert_eq!(d.optimised_bin(), Path::new("/t/pgo-use/release/forward"));
        assert_eq!(d.generate_flag(), "-Cprofile-generate=/w/pgo/profraw");
        assert_eq!(d.use_flag(), "-Cprofile-use=/w/pgo/forward.profdata");
    }
}
