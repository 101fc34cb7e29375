//! What the harness reads from `/proc`: process trees, CPU time, memory, per-core busy
//! time, the open-files limit (raised with `prlimit(1)`: the workspace forbids
//! `unsafe`, so `libc::setrlimit` is not an option), the file system a directory is
//! on (`/proc/self/mounts`: is nginx's cache on tmpfs?) and the CPUs the harness may
//! run on before it pins itself (`Cpus_allowed_list`).

use std::fs;
use std::path::Path;
use std::process::Command;

/// The fields of `/proc/PID/stat` the harness uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 4.
    pub ppid: u32,
    /// Field 5: the process group.
    pub pgrp: u32,
    /// Field 14: user time, clock ticks.
    pub utime: u64,
    /// Field 15: system time, clock ticks.
    pub stime: u64,
}

/// Parse one `/proc/PID/stat` line. The command name (field 2) is in parentheses and
/// may hold spaces and `)`, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // rest starts with field 3 (state): field n is f[n - 3].
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
    })
}

/// `/proc/PID/stat` of one process (`None` once it is gone).
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn all_processes() -> Vec<(u32, Stat)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        Some((pid, stat(pid)?))
    })
    .collect()
}

/// `root` and all its descendants (nginx: master and worker), `root` first; empty if
/// `root` is gone.
pub fn process_tree(root: u32) -> Vec<u32> {
    if stat(root).is_none() {
        return Vec::new();
    }
    let all = all_processes();
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            all.iter()
                .filter(|(pid, s)| s.ppid == parent && *pid != parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    tree
}

/// Processes of process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    all_processes()
        .into_iter()
        .filter(|(_, s)| s.pgrp == pgid)
        .map(|(pid, _)| pid)
        .collect()
}

/// (utime, stime) in clock ticks, summed over the tree of `root` (all threads
/// included: the per-process figures of `/proc/PID/stat` cover every thread).
pub fn tree_cpu_ticks(root: u32) -> Result<(u64, u64), String> {
    let tree = process_tree(root);
    if tree.is_empty() {
        return Err(format!("process {root} is gone"));
    }
    Ok(tree
        .iter()
        .filter_map(|&p| stat(p))
        .fold((0, 0), |(u, s), st| (u + st.utime, s + st.stime)))
}

/// A `kB` field of `/proc/PID/status` (`VmHWM`, `VmRSS`), summed over the tree of
/// `root`, in KiB.
pub fn tree_status_kib(root: u32, field: &str) -> u64 {
    process_tree(root)
        .iter()
        .filter_map(|&p| fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|text| status_field_kib(&text, field))
        .sum()
}

/// `field` (for instance `VmHWM`) of a `/proc/PID/status` text, in KiB.
pub fn status_field_kib(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// A text field of a `/proc/PID/status` text (`Cpus_allowed_list` → `0-1`), trimmed.
pub fn status_field(text: &str, field: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(field)?.strip_prefix(':')?.trim();
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// The CPUs this process may run on (`Cpus_allowed_list` of `/proc/self/status`, a
/// `taskset -c` list such as `0-1`). Read before the harness pins itself, so that the
/// PGO builds it starts later can be given every CPU again.
pub fn cpus_allowed_list() -> Option<String> {
    status_field(
        &fs::read_to_string("/proc/self/status").ok()?,
        "Cpus_allowed_list",
    )
}

/// Reset the peak RSS (`VmHWM`) of every process of the tree: `5` into
/// `/proc/PID/clear_refs`. The error names the first process that refused.
pub fn reset_peak_rss(root: u32) -> Result<(), String> {
    for p in process_tree(root) {
        fs::write(format!("/proc/{p}/clear_refs"), "5")
            .map_err(|e| format!("cannot reset VmHWM of pid {p} (/proc/{p}/clear_refs): {e}"))?;
    }
    Ok(())
}

/// Clock ticks per second, the unit of `/proc/PID/stat` and `/proc/stat`
/// (`getconf CLK_TCK`; 100 if that fails, the value on every Linux port in use).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Busy and total ticks of one core, from `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreTicks {
    /// Everything but idle and iowait.
    pub busy: u64,
    /// All states.
    pub total: u64,
}

/// Per-core ticks (`cpu0`, `cpu1`, ... lines of `/proc/stat`), indexed by core number.
pub fn core_ticks() -> Vec<CoreTicks> {
    let Ok(text) = fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    parse_core_ticks(&text)
}

/// Parse the `cpuN` lines of a `/proc/stat` text.
pub fn parse_core_ticks(text: &str) -> Vec<CoreTicks> {
    let mut cores = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(name) = f.next() else { continue };
        let Some(n) = name
            .strip_prefix("cpu")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal [guest guest_nice: already in user]
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        if cores.len() <= n {
            cores.resize(n + 1, CoreTicks::default());
        }
        cores[n] = CoreTicks {
            busy: total.saturating_sub(idle),
            total,
        };
    }
    cores
}

/// Soft and hard limits of open files of this process (`/proc/self/limits`).
pub fn nofile_limit() -> Option<(u64, u64)> {
    let text = fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut f = line["Max open files".len()..].split_whitespace();
    let parse = |s: Option<&str>| match s? {
        "unlimited" => Some(u64::MAX),
        x => x.parse().ok(),
    };
    Some((parse(f.next())?, parse(f.next())?))
}

/// Raise this process's open-files limit to at least `want` (children inherit it:
/// `forward`, `wrk`, the idle client). Soft goes up to the hard limit; the hard limit
/// itself only goes up with the privilege to do so (root). Returns the new limits.
pub fn raise_nofile(want: u64) -> Result<(u64, u64), String> {
    let (soft, hard) = nofile_limit().ok_or("cannot read /proc/self/limits")?;
    if soft >= want {
        return Ok((soft, hard));
    }
    let pid = std::process::id().to_string();
    let try_set = |s: u64, h: u64| {
        Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={s}:{h}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !try_set(want, want.max(hard)) && !try_set(want.min(hard), hard) {
        return Err(format!(
            "prlimit could not raise the open-files limit (soft {soft}, hard {hard}) to {want}"
        ));
    }
    let now = nofile_limit().ok_or("cannot read /proc/self/limits")?;
    if now.0 < want {
        return Err(format!(
            "open-files limit is {} (hard {}), {want} wanted: run as root or raise `ulimit -Hn`",
            now.0, now.1
        ));
    }
    Ok(now)
}

/// The file-system type (`tmpfs`, `ext4`, ...) of the mount holding `path`, from the
/// text of `/proc/self/mounts`: the longest mount point that is `path` or one of its
/// ancestors (`path` absolute; a later mount on the same point wins, as it hides the
/// earlier one).
pub fn mount_fs_type(mounts: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(_dev), Some(point), Some(fs_type)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        // Spaces and the like are octal escapes (`\040`); such points are not ours.
        if path.starts_with(point) && best.is_none_or(|(len, _)| point.len() >= len) {
            best = Some((point.len(), fs_type));
        }
    }
    best.map(|(_, t)| t.to_string())
}

/// The file-system type of the mount holding `path` (its nearest existing ancestor when
/// `path` does not exist yet); `None` if `/proc/self/mounts` cannot be read.
pub fn fs_type(path: &Path) -> Option<String> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    let real = path
        .ancestors()
        .find_map(|p| fs::canonicalize(p).ok())
        .unwrap_or_else(|| path.to_path_buf());
    mount_fs_type(&mounts, &real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_the_name() {
        let s = "1234 (nginx: worker (x)) S 1200 1200 1200 0 -1 4194624 300 0 0 0 57 31 0 0 20 0 1 0 100 0 0";
        let st = parse_stat(s).expect("parses");
        assert_eq!(st.ppid, 1200);
        assert_eq!(st.pgrp, 1200);
        assert_eq!(st.utime, 57);
        assert_eq!(st.stime, 31);
    }

    #[test]
    fn cores() {
        let t = "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 0 5 50 1 0 1 0 0 0\ncpu1 5 0 5 50 0 0 0 0 0 0\nintr 1\n";
        let c = parse_core_ticks(t);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0],
            CoreTicks {
                busy: 11,
                total: 62
            }
        );
    }

    #[test]
    fn mounts() {
        let t = "/dev/vda / ext4 rw,relatime 0 0\ntmpfs /dev/shm tmpfs rw 0 0\n\
                 proc /proc proc rw 0 0\ntmpfs /dev/shmem tmpfs rw 0 0\n";
        let at = |p: &str| mount_fs_type(t, Path::new(p));
        assert_eq!(at("/dev/shm/x/cache").as_deref(), Some("tmpfs"));
        assert_eq!(at("/dev/shm").as_deref(), Some("tmpfs"));
        assert_eq!(at("/tmp/proxy-loadbench").as_deref(), Some("ext4"));
        assert_eq!(
            at("/dev/shmx").as_deref(),
            Some("ext4"),
            "components, not bytes"
        );
        assert_eq!(mount_fs_type("", Path::new("/tmp")), None);
    }

    #[test]
    fn status_fields() {
        let t = "Name:\tnginx\nVmHWM:\t    4321 kB\nVmRSS:\t    1234 kB\n";
        assert_eq!(status_field_kib(t, "VmHWM"), Some(4321));
        assert_eq!(status_field_kib(t, "VmRSS"), Some(1234));
        assert_eq!(status_field_kib(t, "VmSwap"), None);
        let t = "Name:\tforward\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\n";
        assert_eq!(status_field(t, "Cpus_allowed_list").as_deref(), Some("0-1"));
        assert_eq!(status_field(t, "Cpus_allowed").as_deref(), Some("3"));
        assert_eq!(status_field(t, "Mems_allowed"), None);
    }
}
