//! The side-by-side load benchmark (`loadbench`, see the "Load benchmark" section of
//! `bench/README.md`): our `forward` proxy against nginx and haproxy, and the origin
//! alone, on loopback, interleaved round by round; and on cache hits, `forward --cache`
//! against nginx's `proxy_cache`.
//!
//! The binary (`src/bin/loadbench.rs`) holds the options and the order of the steps;
//! these modules hold the parts:
//!
//! * [`child`]: child processes in their own process group, stopped on drop, on panic
//!   and on Ctrl-C; commands with a bounded run time.
//! * [`procfs`]: `/proc`: process trees, CPU ticks, `VmHWM`/`VmRSS`, per-core busy
//!   time, the open-files limit, the file system of a directory.
//! * [`tools`]: finding (or installing) `wrk`, `h2load`, `nginx`, `haproxy`, `taskset`,
//!   and parsing what `wrk` and `h2load` print.
//! * [`conf`]: the configuration templates of `bench/load/` and how they are filled in.
//! * [`http`]: a minimal blocking HTTP/1.1 client (readiness checks, `stub_status`,
//!   the `x-cache-status` of a cache hit).
//! * [`idle`]: the idle keep-alive client (tokio): thousands of open connections.
//! * [`run`]: starting the origin and the targets; the measurement steps (cache hits
//!   included).
//! * [`report`]: records, JSON lines, medians, the Markdown tables.
//! * [`svg`]: hand-written SVG bar charts.
//! * [`pgo`]: the `--pgo` build of `forward`: its directories and flags,
//!   `llvm-profdata`, merging the training profiles.

pub mod child;
pub mod conf;
pub mod http;
pub mod idle;
pub mod pgo;
pub mod procfs;
pub mod report;
pub mod run;
pub mod svg;
pub mod tools;
