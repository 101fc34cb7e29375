//! Records of (round, target), JSON lines, medians and the Markdown report (the cache
//! targets in their own "Cache hits" section; build variants such as `forward-pgo`
//! described in the settings and compared with their base target).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Everything measured for one target in one round.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// Round, from 1.
    pub round: u32,
    /// Target name (`direct`, `forward`, `forward-pgo`, `nginx`, `haproxy`,
    /// `forward-cache`, `nginx-cache`).
    pub target: String,
    /// Metric key (see [`METRICS`]) → value.
    pub values: BTreeMap<String, f64>,
    /// Metric key → why there is no value (`h2c: not supported by forward yet`).
    pub missing: BTreeMap<String, String>,
    /// Free-form remarks (stop outcome, warnings).
    pub notes: Vec<String>,
    /// Set if a step failed: the step and the error. The record's values are kept in
    /// the JSON line but the record does not count in the medians.
    pub error: Option<String>,
}

impl Record {
    /// Record a value (non-finite values are dropped).
    pub fn set(&mut self, key: &str, v: f64) {
        if v.is_finite() {
            self.values.insert(key.to_string(), v);
        }
    }

    /// Record why a metric has no value.
    pub fn skip(&mut self, key: &str, why: &str) {
        self.missing.insert(key.to_string(), why.to_string());
    }

    /// One JSON object on one line.
    pub fn json_line(&self, run: &str) -> String {
        let mut s = String::from("{");
        let _ = write!(
            s,
            "\"run\":{},\"round\":{},\"target\":{}",
            json_str(run),
            self.round,
            json_str(&self.target)
        );
        for (k, v) in &self.values {
            let _ = write!(s, ",{}:{}", json_str(k), json_num(*v));
        }
        s.push_str(",\"missing\":{");
        for (i, (k, v)) in self.missing.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(s, "{sep}{}:{}", json_str(k), json_str(v));
        }
        s.push_str("},\"notes\":[");
        for (i, n) in self.notes.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(s, "{sep}{}", json_str(n));
        }
        s.push_str("],\"error\":");
        s.push_str(&self.error.as_deref().map_or("null".into(), json_str));
        s.push('}');
        s
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: f64) -> String {
    if !v.is_finite() {
        "null".into()
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// A metric: its key in [`Record::values`], how it is shown, which way is better.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// Key.
    pub key: &'static str,
    /// Column header.
    pub header: &'static str,
    /// Decimals shown.
    pub decimals: usize,
    /// For the ratio table's reading direction.
    pub higher_is_better: bool,
}

const fn m(key: &'static str, header: &'static str, decimals: usize, hib: bool) -> Metric {
    Metric {
        key,
        header,
        decimals,
        higher_is_better: hib,
    }
}

/// The main table's columns.
pub const METRICS: &[Metric] = &[
    m("rps_1k", "1 KiB req/s", 0, true),
    m("p50_ms_1k", "p50 ms", 2, false),
    m("p99_ms_1k", "p99 ms", 2, false),
    m("cpu_ms_per_1k_1k", "CPU ms / 1k req (1 KiB)", 2, false),
    m("rps_100k", "100 KiB req/s", 0, true),
    m("cpu_ms_per_1k_100k", "CPU ms / 1k req (100 KiB)", 2, false),
    m("rps_h2c", "h2c req/s", 0, true),
    m("cpu_ms_per_1k_h2c", "CPU ms / 1k req (h2c)", 2, false),
    m("peak_rss_mib", "peak RSS MiB", 1, false),
    m("idle_rss_mib", "RSS MiB, idle conns open", 1, false),
    m("idle_kib_per_conn", "KiB per idle conn", 1, false),
    m(
        "upstream_conns_per_10k",
        "origin conns opened / 10k req",
        2,
        false,
    ),
];

/// The columns of the ratio table (target ÷ nginx).
pub const RATIO_METRICS: &[&str] = &[
    "rps_1k",
    "p50_ms_1k",
    "p99_ms_1k",
    "cpu_ms_per_1k_1k",
    "user_ms_per_1k_1k",
    "sys_ms_per_1k_1k",
    "rps_100k",
    "cpu_ms_per_1k_100k",
    "rps_h2c",
    "cpu_ms_per_1k_h2c",
    "peak_rss_mib",
    "idle_rss_mib",
];

/// Where the proxy's CPU time goes: user space against kernel, and the origin's
/// share of the server core.
pub const CPU_SPLIT: &[Metric] = &[
    m("user_ms_per_1k_1k", "user ms / 1k req (1 KiB)", 2, false),
    m("sys_ms_per_1k_1k", "sys ms / 1k req (1 KiB)", 2, false),
    m(
        "user_ms_per_1k_100k",
        "user ms / 1k req (100 KiB)",
        2,
        false,
    ),
    m("sys_ms_per_1k_100k", "sys ms / 1k req (100 KiB)", 2, false),
    m(
        "origin_cpu_ms_per_1k_1k",
        "origin CPU ms / 1k req (1 KiB)",
        2,
        false,
    ),
    m(
        "proxy_cpu_pct_1k",
        "proxy CPU % of a core (1 KiB)",
        0,
        false,
    ),
];

/// The run-conditions table: how trustworthy the numbers are.
pub const CONDITIONS: &[Metric] = &[
    m(
        "server_core_busy_pct_1k",
        "server core busy % (1 KiB)",
        0,
        false,
    ),
    m(
        "server_core_other_pct_1k",
        "server core: not proxy/origin %",
        1,
        false,
    ),
    m(
        "client_core_busy_pct_1k",
        "client core busy % (1 KiB)",
        0,
        false,
    ),
    m("errors", "errors", 0, false),
    m("idle_open", "idle conns still open", 0, true),
];

/// The "Cache hits" table's columns: the cache targets' figures. Their keys are the
/// main table's with `hit_` before the body size (see [`hit_key`]).
pub const CACHE_METRICS: &[Metric] = &[
    m("rps_hit_1k", "1 KiB hits req/s", 0, true),
    m("p50_ms_hit_1k", "p50 ms (1 KiB)", 2, false),
    m("p99_ms_hit_1k", "p99 ms (1 KiB)", 2, false),
    m("cpu_ms_per_1k_hit_1k", "CPU ms / 1k req (1 KiB)", 2, false),
    m("rps_hit_100k", "100 KiB hits req/s", 0, true),
    m("p50_ms_hit_100k", "p50 ms (100 KiB)", 2, false),
    m("p99_ms_hit_100k", "p99 ms (100 KiB)", 2, false),
    m(
        "cpu_ms_per_1k_hit_100k",
        "CPU ms / 1k req (100 KiB)",
        2,
        false,
    ),
    m(
        "origin_requests_hit",
        "origin requests during the runs",
        0,
        false,
    ),
    m("errors", "errors", 0, false),
    m(
        "server_core_other_pct_hit_1k",
        "server core: not proxy/origin % (1 KiB)",
        1,
        false,
    ),
];

/// The columns of the cache ratio table (`forward-cache` ÷ `nginx-cache`).
pub const CACHE_RATIO_METRICS: &[&str] = &[
    "rps_hit_1k",
    "p50_ms_hit_1k",
    "p99_ms_hit_1k",
    "cpu_ms_per_1k_hit_1k",
    "user_ms_per_1k_hit_1k",
    "sys_ms_per_1k_hit_1k",
    "rps_hit_100k",
    "p50_ms_hit_100k",
    "p99_ms_hit_100k",
    "cpu_ms_per_1k_hit_100k",
];

/// Definitions of the cache table's keys that are only in the ratio table.
const CACHE_CPU_SPLIT: &[Metric] = &[
    m(
        "user_ms_per_1k_hit_1k",
        "user ms / 1k req (1 KiB)",
        2,
        false,
    ),
    m("sys_ms_per_1k_hit_1k", "sys ms / 1k req (1 KiB)", 2, false),
];

/// The key of a cache target's figure for a main-table key: `hit_` before the last
/// part (`rps_1k` → `rps_hit_1k`, `cpu_ms_per_1k_100k` → `cpu_ms_per_1k_hit_100k`).
pub fn hit_key(key: &str) -> String {
    match key.rsplit_once('_') {
        Some((head, tag)) => format!("{head}_hit_{tag}"),
        None => format!("hit_{key}"),
    }
}

/// Median, min and max of some values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Median (mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

/// Summarize `values` (`None` if empty).
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        median,
        min: v[0],
        max: v[n - 1],
        n,
    })
}

/// The summary of `key` for `target` over the records without error.
pub fn summary_of(records: &[Record], target: &str, key: &str) -> Option<Summary> {
    let v: Vec<f64> = records
        .iter()
        .filter(|r| r.target == target && r.error.is_none())
        .filter_map(|r| r.values.get(key).copied())
        .collect();
    summarize(&v)
}

fn missing_reason(records: &[Record], target: &str, key: &str) -> Option<String> {
    records
        .iter()
        .filter(|r| r.target == target)
        .find_map(|r| r.missing.get(key).cloned())
}

/// `12345.6` → `12,346` (0 decimals) or `12,345.60` (2 decimals).
pub fn fmt_num(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), ""), |(i, f)| (i, f));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if v < 0.0 && s.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        "-"
    } else {
        ""
    };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

fn cell(records: &[Record], target: &str, metric: &Metric) -> String {
    match summary_of(records, target, metric.key) {
        Some(s) if s.n > 1 => format!(
            "{} ({}–{})",
            fmt_num(s.median, metric.decimals),
            fmt_num(s.min, metric.decimals),
            fmt_num(s.max, metric.decimals)
        ),
        Some(s) => fmt_num(s.median, metric.decimals),
        None => missing_reason(records, target, metric.key).unwrap_or_else(|| "—".into()),
    }
}

fn table(out: &mut String, records: &[Record], targets: &[String], metrics: &[Metric]) {
    out.push_str("| target |");
    for m in metrics {
        let _ = write!(out, " {} |", m.header);
    }
    out.push_str("\n|---|");
    for _ in metrics {
        out.push_str("---|");
    }
    out.push('\n');
    for t in targets {
        let _ = write!(out, "| **{t}** |");
        for m in metrics {
            let _ = write!(out, " {} |", cell(records, t, m));
        }
        out.push('\n');
    }
}

/// The ratio table: one row per (target, base) pair, median of the target ÷ median
/// of its base, for `keys` (defined in `defs`).
fn ratio_table(
    out: &mut String,
    records: &[Record],
    pairs: &[(&str, &str)],
    keys: &[&str],
    defs: &[&[Metric]],
) {
    let metrics: Vec<&Metric> = keys
        .iter()
        .filter_map(|k| defs.iter().flat_map(|d| d.iter()).find(|m| m.key == *k))
        .collect();
    out.push_str("| target |");
    for m in &metrics {
        let dir = if m.higher_is_better { "↑" } else { "↓" };
        let _ = write!(out, " {} {dir} |", m.header);
    }
    out.push_str("\n|---|");
    for _ in &metrics {
        out.push_str("---|");
    }
    out.push('\n');
    for &(t, base) in pairs {
        let _ = write!(out, "| **{t} ÷ {base}** |");
        for m in &metrics {
            let ours = summary_of(records, t, m.key);
            let theirs = summary_of(records, base, m.key);
            let text = match (ours, theirs) {
                (Some(a), Some(b)) if b.median != 0.0 => format!("{:.2}×", a.median / b.median),
                (None, _) => missing_reason(records, t, m.key).unwrap_or_else(|| "—".into()),
                _ => "—".into(),
            };
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
    }
}

/// The pairs (target, `base`) for every target but `base`.
fn against<'a>(targets: &'a [String], base: &'a str) -> Vec<(&'a str, &'a str)> {
    targets
        .iter()
        .filter(|t| t.as_str() != base)
        .map(|t| (t.as_str(), base))
        .collect()
}

/// A target that is another build of a base target's program (`forward-pgo`: `forward`
/// built with PGO). The report says how it was built and compares it with its base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variant {
    /// The variant's target name (`forward-pgo`).
    pub target: String,
    /// The target it is a build variant of (`forward`).
    pub base: String,
    /// One sentence under the medians table: what the row is.
    pub summary: String,
    /// How it was built, for the settings list (build steps, training load, tools).
    pub how: String,
}

/// What the report says about the run besides the numbers.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// `2026-05-01 12:34:56 UTC`.
    pub date: String,
    /// The command line.
    pub command: String,
    /// Settings (rounds, durations, connections), one line.
    pub settings: String,
    /// Layout lines (which CPU runs what).
    pub layout: Vec<String>,
    /// Machine lines (cores, CPU model, kernel).
    pub machine: Vec<String>,
    /// `tool: version` lines.
    pub versions: Vec<String>,
    /// Skipped steps, warnings, failed records: shown loudly.
    pub warnings: Vec<String>,
    /// The JSON-lines file.
    pub results_file: String,
    /// How the cache targets were set up (where nginx's cache lives, on what file
    /// system), shown in the "Cache hits" section.
    pub cache_setup: Vec<String>,
    /// Build variants among the targets (`forward-pgo`): a settings line each, a note
    /// under the medians table, and a ratio table against their base.
    pub variants: Vec<Variant>,
}

/// The Markdown report: header, medians table, ratio table, run conditions of
/// `targets`; then the "Cache hits" section of `cache_targets` (if any), with the ratio
/// `forward-cache` ÷ `nginx-cache`.
pub fn markdown(
    info: &RunInfo,
    records: &[Record],
    targets: &[String],
    cache_targets: &[String],
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Load benchmark results\n");
    let _ = writeln!(
        o,
        "Written by `loadbench` (`bench/src/bin/loadbench.rs`) on **{}**; overwritten by \
         every run. Method: `docs/src/performance.md`.\n",
        info.date
    );
    let _ = writeln!(o, "```text\n{}\n```\n", info.command);
    let _ = writeln!(o, "- settings: {}", info.settings);
    for v in &info.variants {
        let _ = writeln!(o, "- settings of {}: {}", v.target, v.how);
    }
    for l in &info.layout {
        let _ = writeln!(o, "- layout: {l}");
    }
    for l in &info.machine {
        let _ = writeln!(o, "- machine: {l}");
    }
    for l in &info.versions {
        let _ = writeln!(o, "- {l}");
    }
    let _ = writeln!(
        o,
        "- raw results (one JSON line per round and target): `{}`",
        info.results_file
    );
    if !info.warnings.is_empty() {
        let _ = writeln!(o, "\n**Warnings**\n");
        for w in &info.warnings {
            let _ = writeln!(o, "- ⚠ {w}");
        }
    }
    let rounds = records.iter().map(|r| r.round).max().unwrap_or(0);
    let _ = writeln!(
        o,
        "\n## Medians over {rounds} round(s) (min–max)\n\nCPU is the proxy's own \
         (utime + stime of its process tree; for `direct`, the origin's). Memory: MiB \
         summed over the proxy's processes.\n"
    );
    table(&mut o, records, targets, METRICS);
    let shown: Vec<&Variant> = info
        .variants
        .iter()
        .filter(|v| targets.contains(&v.target))
        .collect();
    if !shown.is_empty() {
        o.push('\n');
        for v in &shown {
            let _ = writeln!(o, "- **{}**: {}", v.target, v.summary);
        }
    }
    if targets.iter().any(|t| t == "nginx") {
        let _ = writeln!(
            o,
            "\n## Ratios against nginx (median ÷ median)\n\n↑: higher is better \
             (req/s); ↓: lower is better (latency, CPU, memory).\n"
        );
        ratio_table(
            &mut o,
            records,
            &against(targets, "nginx"),
            RATIO_METRICS,
            &[METRICS, CPU_SPLIT],
        );
    }
    let pairs: Vec<(&str, &str)> = shown
        .iter()
        .filter(|v| targets.contains(&v.base))
        .map(|v| (v.target.as_str(), v.base.as_str()))
        .collect();
    if !pairs.is_empty() {
        let _ = writeln!(
            o,
            "\n## Build variants against their base (median ÷ median)\n\nThe same \
             source built another way (see the settings above), measured in the same \
             rounds. ↑: higher is better; ↓: lower is better.\n"
        );
        ratio_table(
            &mut o,
            records,
            &pairs,
            RATIO_METRICS,
            &[METRICS, CPU_SPLIT],
        );
    }
    let _ = writeln!(
        o,
        "\n## Where the CPU goes (medians)\n\nThe proxy's CPU per 1,000 requests split \
         into user space (utime) and kernel (stime: sockets, syscalls); and the origin's \
         CPU, which shares the server core.\n"
    );
    table(&mut o, records, targets, CPU_SPLIT);
    let _ = writeln!(
        o,
        "\n## Run conditions (medians)\n\nA client core near 100 % means the load \
         generator, not the proxy, set the pace; \"not proxy/origin\" is time the server \
         core spent on anything else (other processes, softirq), i.e. noise.\n"
    );
    table(&mut o, records, targets, CONDITIONS);
    if !cache_targets.is_empty() {
        cache_section(&mut o, info, records, cache_targets, rounds);
    }
    let failed: Vec<&Record> = records.iter().filter(|r| r.error.is_some()).collect();
    if !failed.is_empty() {
        let _ = writeln!(o, "\n## Failed measurements (not in the medians)\n");
        for r in failed {
            let _ = writeln!(
                o,
                "- round {} `{}`: {}",
                r.round,
                r.target,
                r.error.as_deref().unwrap_or("")
            );
        }
    }
    o
}

/// The "Cache hits" section: set-up, medians, ratio against `nginx-cache`.
fn cache_section(
    o: &mut String,
    info: &RunInfo,
    records: &[Record],
    targets: &[String],
    rounds: u32,
) {
    let _ = writeln!(
        o,
        "\n## Cache hits: medians over {rounds} round(s) (min–max)\n\n\
         `forward-cache` is `forward --cache` (its memory cache, RFC 9111 defaults); \
         `nginx-cache` is nginx with `proxy_cache` (`sendfile`, `open_file_cache`), both \
         in front of the same origin, which sends `Cache-Control: max-age=3600` on \
         `/cached/1k` and `/cached/100k`. Each round starts with an empty cache: one \
         request fills each path, the next must say `x-cache-status: hit` (else a \
         warning above), then a 1 s warm-up and the same `wrk` runs and CPU accounting \
         as above, on `/cached/1k` and `/cached/100k`. \"Origin requests\" is what still \
         reached the origin during those two runs (`stub_status`): 0 when every answer \
         was a hit.\n"
    );
    for l in &info.cache_setup {
        let _ = writeln!(o, "- {l}");
    }
    if !info.cache_setup.is_empty() {
        o.push('\n');
    }
    table(o, records, targets, CACHE_METRICS);
    if targets.iter().any(|t| t == "nginx-cache") && targets.len() > 1 {
        let _ = writeln!(
            o,
            "\n### Cache hits against nginx-cache (median ÷ median)\n\n↑: higher is better; \
             ↓: lower is better.\n"
        );
        ratio_table(
            o,
            records,
            &against(targets, "nginx-cache"),
            CACHE_RATIO_METRICS,
            &[CACHE_METRICS, CACHE_CPU_SPLIT],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        let s = summarize(&[3.0, 1.0, 2.0]).expect("some");
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        let s = summarize(&[4.0, 1.0]).expect("some");
        assert_eq!(s.median, 2.5);
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt_num(1_234_567.4, 0), "1,234,567");
        assert_eq!(fmt_num(999.0, 0), "999");
        assert_eq!(fmt_num(12.345, 2), "12.35");
        assert_eq!(fmt_num(-1234.5, 1), "-1,234.5");
        assert_eq!(fmt_num(-0.001, 1), "0.0");
    }

    #[test]
    fn json() {
        let mut r = Record {
            round: 2,
            target: "forward".into(),
            ..Record::default()
        };
        r.set("rps_1k", 100.5);
        r.set("errors", 0.0);
        r.skip("rps_h2c", "h2c: not supported by forward yet");
        r.notes.push("a \"quoted\"\nnote".into());
        assert_eq!(
            r.json_line("x"),
            "{\"run\":\"x\",\"round\":2,\"target\":\"forward\",\"errors\":0,\"rps_1k\":100.5000,\
             \"missing\":{\"rps_h2c\":\"h2c: not supported by forward yet\"},\
             \"notes\":[\"a \\\"quoted\\\"\\nnote\"],\"error\":null}"
        );
    }

    /// A record of one round of `target` with only its 1 KiB req/s.
    fn rps_record(round: u32, target: &str, rps: f64) -> Record {
        let mut r = Record {
            round,
            target: target.into(),
            ..Record::default()
        };
        r.set("rps_1k", rps);
        r
    }

    #[test]
    fn tables() {
        let recs = vec![
            rps_record(1, "nginx", 100.0),
            rps_record(1, "forward", 50.0),
            rps_record(2, "nginx", 110.0),
            rps_record(2, "forward", 55.0),
        ];
        let md = markdown(
            &RunInfo::default(),
            &recs,
            &["forward".to_string(), "nginx".to_string()],
            &[],
        );
        assert!(md.contains("| **forward** | 52 (50–55) |"), "{md}");
        assert!(md.contains("| **forward ÷ nginx** | 0.50× |"), "{md}");
        assert!(!md.contains("Cache hits"), "{md}");
        assert!(!md.contains("Build variants"), "{md}");
    }

    #[test]
    fn variants() {
        let recs = vec![
            rps_record(1, "forward", 50.0),
            rps_record(1, "forward-pgo", 55.0),
            rps_record(1, "nginx", 100.0),
        ];
        let info = RunInfo {
            settings: "1 round(s)".into(),
            variants: vec![Variant {
                target: "forward-pgo".into(),
                base: "forward".into(),
                summary: "`forward` built with PGO".into(),
                how: "trained with wrk".into(),
            }],
            ..RunInfo::default()
        };
        let names: Vec<String> = ["forward", "forward-pgo", "nginx"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let md = markdown(&info, &recs, &names, &[]);
        assert!(
            md.contains("- settings: 1 round(s)\n- settings of forward-pgo: trained with wrk\n"),
            "{md}"
        );
        assert!(md.contains("| **forward-pgo** | 55 |"), "{md}");
        assert!(
            md.contains("\n- **forward-pgo**: `forward` built with PGO\n"),
            "{md}"
        );
        assert!(md.contains("| **forward-pgo ÷ nginx** | 0.55× |"), "{md}");
        let variants = &md[md.find("## Build variants").expect("a variants section")..];
        assert!(
            variants.contains("| **forward-pgo ÷ forward** | 1.10× |"),
            "{md}"
        );
        // Without the base among the targets: no comparison, the settings line stays.
        let md = markdown(&info, &recs, &names[1..], &[]);
        assert!(!md.contains("## Build variants"), "{md}");
        assert!(md.contains("- settings of forward-pgo:"), "{md}");
    }

    #[test]
    fn cache_tables() {
        assert_eq!(hit_key("rps_1k"), "rps_hit_1k");
        assert_eq!(hit_key("cpu_ms_per_1k_100k"), "cpu_ms_per_1k_hit_100k");
        for m in CACHE_METRICS.iter().take(8) {
            assert!(m.key.contains("_hit_"), "{}", m.key);
        }
        let mk = |round, target: &str, rps, cpu| {
            let mut r = Record {
                round,
                target: target.into(),
                ..Record::default()
            };
            r.set("rps_hit_1k", rps);
            r.set("cpu_ms_per_1k_hit_1k", cpu);
            r.set("origin_requests_hit", 0.0);
            r
        };
        let recs = vec![
            mk(1, "forward-cache", 90.0, 4.0),
            mk(1, "nginx-cache", 60.0, 8.0),
            mk(1, "nginx", 50.0, 10.0),
        ];
        let info = RunInfo {
            cache_setup: vec!["nginx cache: /dev/shm/x (tmpfs)".into()],
            ..RunInfo::default()
        };
        let md = markdown(
            &info,
            &recs,
            &["nginx".to_string()],
            &["forward-cache".to_string(), "nginx-cache".to_string()],
        );
        let cache = &md[md.find("## Cache hits").expect("a cache section")..];
        assert!(cache.contains("- nginx cache: /dev/shm/x (tmpfs)"), "{md}");
        assert!(cache.contains("| **forward-cache** | 90 |"), "{md}");
        assert!(
            cache.contains("| **forward-cache ÷ nginx-cache** | 1.50× |"),
            "{md}"
        );
        assert!(!cache.contains("**nginx**"), "{md}");
        let main = &md[..md.find("## Cache hits").expect("a cache section")];
        assert!(!main.contains("forward-cache"), "{md}");
    }
}
