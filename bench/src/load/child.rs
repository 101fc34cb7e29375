//! Child processes that cannot outlive the harness.
//!
//! Every child is started in a process group of its own (so nginx's workers, which the
//! master forks, are in its group) and the group id is registered in a process-wide
//! list. A [`Guarded`] child is stopped when it is dropped (normal return, `?`, panic
//! unwinding); [`install_interrupt_handler`] stops every registered group on
//! SIGINT/SIGTERM/SIGHUP before the harness exits. Signals are sent with `kill(1)`: the
//! workspace forbids `unsafe`, so there is no `libc::kill` here.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

/// Process groups (= leader pids) of the live children.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Set once a termination signal arrived (the main thread stops reporting).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether SIGINT/SIGTERM/SIGHUP arrived: the harness is stopping its children and
/// exiting; failures seen from now on are a consequence, not a finding.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn register(pgid: u32) {
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(pgid);
}

fn unregister(pgid: u32) {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&p| p != pgid);
}

/// Send `sig` (`"TERM"`, `"INT"`, `"KILL"`, ...) to every process of group `pgid`.
/// Returns whether `kill` reported success (false once the group is gone).
pub fn signal_group(pgid: u32, sig: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether any process still belongs to group `pgid`.
pub fn group_alive(pgid: u32) -> bool {
    !crate::load::procfs::group_members(pgid).is_empty()
}

/// Stop every registered group (TERM, then KILL what is left after a short wait).
/// Used by the interrupt handler; [`Guarded`] handles the normal path.
pub fn stop_all_registered() {
    let groups: Vec<u32> = LIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for &g in &groups {
        signal_group(g, "TERM");
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && groups.iter().any(|&g| group_alive(g)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for &g in &groups {
        if group_alive(g) {
            signal_group(g, "KILL");
        }
    }
}

/// Stop all children and exit on SIGINT, SIGTERM or SIGHUP. Call once, early.
///
/// A thread with a one-thread tokio runtime waits for the signals (tokio is already a
/// dependency for the idle client). Returns once the handlers are installed.
pub fn install_interrupt_handler() -> Result<(), String> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name("loadbench-signals".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("signal runtime: {e}")));
                    return;
                }
            };
            let name = rt.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let sigs = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                    signal(SignalKind::hangup()),
                );
                let (Ok(mut int), Ok(mut term), Ok(mut hup)) = sigs else {
                    let _ = ready_tx.send(Err("cannot install signal handlers".into()));
                    return None;
                };
                let _ = ready_tx.send(Ok(()));
                Some(tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                    _ = hup.recv() => "SIGHUP",
                })
            });
            if let Some(name) = name {
                INTERRUPTED.store(true, Ordering::SeqCst);
                eprintln!("\nloadbench: {name} received: stopping every child process");
                stop_all_registered();
                std::process::exit(130);
            }
        })
        .map_err(|e| format!("signal thread: {e}"))?;
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|_| "signal handlers: no answer from the signal thread".to_string())?
}

/// A running child in its own process group; stopped (whole group) on drop.
#[derive(Debug)]
pub struct Guarded {
    name: String,
    child: Child,
    done: bool,
}

impl Guarded {
    /// Spawn `cmd` as the leader of a new process group, registered for cleanup.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Self, String> {
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("{name}: cannot start {:?}: {e}", cmd.get_program()))?;
        register(child.id());
        Ok(Guarded {
            name: name.to_string(),
            child,
            done: false,
        })
    }

    /// The leader's pid (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name given at spawn (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Some(status)` once the leader has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Send `sig` to the group, wait up to `grace` for the leader to exit, then SIGKILL
    /// whatever is left of the group. Returns how the stop went, for the log.
    pub fn stop(&mut self, sig: &str, grace: Duration) -> String {
        if self.done {
            return "already stopped".into();
        }
        self.done = true;
        let pgid = self.pid();
        let outcome = if self.exited().is_some() {
            "had already exited".to_string()
        } else {
            signal_group(pgid, sig);
            let deadline = Instant::now() + grace;
            loop {
                if let Some(st) = self.exited() {
                    break format!("stopped with SIG{sig} ({st})");
                }
                if Instant::now() >= deadline {
                    signal_group(pgid, "KILL");
                    let _ = self.child.wait();
                    break format!("no exit {grace:?} after SIG{sig}: killed");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        // Stragglers (a worker whose master died first) go too.
        let left = crate::load::procfs::group_members(pgid);
        if !left.is_empty() {
            signal_group(pgid, "KILL");
        }
        unregister(pgid);
        outcome
    }

    /// The child itself (to take its pipes).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if !self.done {
            self.stop("TERM", Duration::from_secs(3));
        }
    }
}

/// Run `cmd` to completion, capturing its output; killed (whole group) if it takes
/// longer than `timeout`. `name` goes into every error message.
pub fn run_bounded(name: &str, cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut g = Guarded::spawn(name, cmd)?;
    let mut out = g.child_mut().stdout.take();
    let mut err = g.child_mut().stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut v);
        }
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut v);
        }
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = g.exited() {
            break Some(st);
        }
        if start.elapsed() >= timeout {
            g.stop("KILL", Duration::from_secs(2));
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The leader is gone; make sure nothing it left behind keeps the pipes open.
    g.stop("KILL", Duration::from_millis(100));
    let stdout = t_out.join().unwrap_or_default();
    let stderr = t_err.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(format!("{name}: still running after {timeout:?}; killed")),
    }
}

/// Run `cmd` with the harness's stdout/stderr (progress stays visible), bounded by
/// `timeout`; an error names `name`.
pub fn run_visible_bounded(name: &str, cmd: &mut Command, timeout: Duration) -> Result<(), String> {
    cmd.stdin(Stdio::null());
    let mut g = Guarded::spawn(name, cmd)?;
    let start = Instant::now();
    loop {
        if let Some(st) = g.exited() {
            g.stop("KILL", Duration::from_millis(100));
            return if st.success() {
                Ok(())
            } else {
                Err(format!("{name}: exited with {st}"))
            };
        }
        if start.elapsed() >= timeout {
            g.stop("KILL", Duration::from_secs(2));
            return Err(format!("{name}: still running after {timeout:?}; killed"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
