//! A body relayed from one socket to another (TCP or Unix domain) inside the kernel: `splice(2)` moves
//! the bytes from the source socket into a pipe and from the pipe into the sink socket.
//! The payload is never copied into user space, nor back out of it: the kernel hands
//! page references along (Linux only; elsewhere [`Pipe::take`] returns `None` and the
//! caller keeps its ordinary path).
//!
//! Pipes are kept empty in a small per-thread stock, so a relay costs no `pipe2` and no
//! `close` in steady state; a pipe that still holds bytes when a relay fails is closed,
//! never reused.
//!
//! Readiness comes from tokio: each step is tried with `try_io`, and a step that would
//! block waits for the socket to become readable (or writable) within its timeout. The
//! pipe is always emptied into the sink before the source is read again, so a source
//! step that would block always means "the socket has nothing", never "the pipe is
//! full", and the readiness tokio clears is the right one. Each step also spends a
//! unit of the task's tokio budget: a relay whose sockets never make it wait still
//! lets the other tasks of its thread run.
//!
//! A `splice` into a socket whose peer has gone raises `SIGPIPE` (the kernel does not
//! take `MSG_NOSIGNAL` on this path). Rust programs ignore `SIGPIPE` from the start;
//! a host that embeds the runtime and restores its default action must not turn
//! relaying on (`ProxyOptions::splice`).
//!
//! A kernel or sandbox that refuses `splice` on these sockets (`EINVAL`, `ENOSYS`,
//! `EPERM`, `EOPNOTSUPP` on the very first step, before any byte moved) is reported as
//! [`RelayError::Unsupported`], so the caller can copy instead.

use std::io;
use std::time::Duration;

use std::os::fd::{AsFd, BorrowedFd};

use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

use super::timeout::lazy_timeout;

/// One end of a relay: a connected stream socket, TCP or Unix domain.
#[derive(Debug, Clone, Copy)]
pub enum SpliceEnd<'a> {
    /// A TCP socket.
    Tcp(&'a TcpStream),
    /// A Unix domain stream socket.
    Unix(&'a UnixStream),
}

impl SpliceEnd<'_> {
    /// Run `op` if tokio saw the socket ready for `interest` (see `TcpStream::try_io`).
    fn try_io<R>(&self, interest: Interest, op: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
        match self {
            SpliceEnd::Tcp(s) => s.try_io(interest, op),
            SpliceEnd::Unix(s) => s.try_io(interest, op),
        }
    }

    /// Wait until the socket is ready for `interest`.
    async fn ready(&self, interest: Interest) -> io::Result<()> {
        match self {
            SpliceEnd::Tcp(s) => s.ready(interest).await.map(drop),
            SpliceEnd::Unix(s) => s.ready(interest).await.map(drop),
        }
    }
}

impl AsFd for SpliceEnd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            SpliceEnd::Tcp(s) => s.as_fd(),
            SpliceEnd::Unix(s) => s.as_fd(),
        }
    }
}

/// Why a relay stopped before moving all the bytes asked for.
#[derive(Debug)]
pub enum RelayError {
    /// The system refused the very first `splice`: nothing was read or written.
    Unsupported(io::Error),
    /// Reading the source failed.
    Read(io::Error),
    /// The source closed before all the bytes came.
    ReadClosed,
    /// The source sent nothing for this long.
    ReadTimeout(Duration),
    /// Writing to the sink failed.
    Write(io::Error),
    /// The sink took nothing for this long.
    WriteTimeout(Duration),
}

/// Move exactly `len` bytes from `from` to `to` through `pipe`, waiting at most
/// `read_timeout` for each read and `write_timeout` for each write to make progress.
/// `moved` counts the bytes delivered to `to`, also when the relay fails.
///
/// On success the pipe is empty again; on failure it may hold bytes and must be dropped.
pub async fn relay(
    pipe: &mut Pipe,
    from: SpliceEnd<'_>,
    to: SpliceEnd<'_>,
    len: u64,
    (read_timeout, write_timeout): (Duration, Duration),
    moved: &mut u64,
) -> Result<(), RelayError> {
    let mut left = len;
    while left > 0 || pipe.held > 0 {
        // A relay that never waits on its sockets must still give its thread back.
        tokio::task::coop::consume_budget().await;
        if pipe.held == 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX);
            let n = step(from, Interest::READABLE, read_timeout, || {
                pipe.fill_from(from, want)
            })
            .await
            .map_err(|e| match e {
                Some(e) if left == len && refused(&e) => RelayError::Unsupported(e),
                Some(e) => RelayError::Read(e),
                None => RelayError::ReadTimeout(read_timeout),
            })?;
            if n == 0 {
                return Err(RelayError::ReadClosed);
            }
            left -= n as u64;
        }
        let n = step(to, Interest::WRITABLE, write_timeout, || pipe.drain_to(to))
            .await
            .map_err(|e| match e {
                Some(e) => RelayError::Write(e),
                None => RelayError::WriteTimeout(write_timeout),
            })?;
        if n == 0 {
            return Err(RelayError::Write(io::ErrorKind::WriteZero.into()));
        }
        *moved += n as u64;
    }
    Ok(())
}

/// Whether `e` says `splice` cannot be used on these descriptors at all.
fn refused(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
    ) || e.raw_os_error() == Some(95) // EOPNOTSUPP, when not mapped to `Unsupported`
}

/// Run `op` on `sock` once it is ready for `interest`, waiting at most `limit` at a
/// time. `Err(None)`: the socket stayed unready for `limit`.
async fn step(
    sock: SpliceEnd<'_>,
    interest: Interest,
    limit: Duration,
    mut op: impl FnMut() -> io::Result<usize>,
) -> Result<usize, Option<io::Error>> {
    loop {
        match sock.try_io(interest, &mut op) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match lazy_timeout(limit, sock.ready(interest)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(Some(e)),
                    Err(_) => return Err(None),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Some(e)),
        }
    }
}

pub use imp::Pipe;

#[cfg(target_os = "linux")]
mod imp {
    use std::cell::RefCell;
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};

    use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_setpipe_size, pipe_with, splice};

    /// Empty pipes kept per thread. Each counts against the per-user pipe quota
    /// (`/proc/sys/fs/pipe-user-pages-soft`, 64 MiB of capacity by default) even while
    /// empty, so the stock stays small.
    const KEEP: usize = 16;

    /// The capacity asked for each pipe: 256 KiB (the default is 64 KiB). A relay moves
    /// at most this much per step, and a step that leaves data in the origin's socket
    /// keeps the origin's window partly closed until the client has taken the step's
    /// bytes — with 64 KiB, a 100 KiB response did that every time, and a BBR sender
    /// took its window limits for the path's bandwidth and paced itself (measured:
    /// 16,700 against 34,500 responses/s, docs/src/performance.md).
    const PIPE_SIZE: usize = 256 * 1024;

    thread_local! {
        static STOCK: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
    }

    /// A non-blocking pipe and the number of bytes it holds.
    #[derive(Debug)]
    pub struct Pipe {
        read: OwnedFd,
        write: OwnedFd,
        /// Bytes in the pipe, not yet written to the sink.
        pub(super) held: usize,
    }

    impl Pipe {
        /// An empty pipe from this thread's stock, or a new one; `None` if the system
        /// gives no pipe (e.g. out of file descriptors): the caller copies instead.
        pub fn take() -> Option<Pipe> {
            if let Some(p) = STOCK.with(|s| s.borrow_mut().pop()) {
                return Some(p);
            }
            let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).ok()?;
            // Room for a whole typical large response at once, so the origin's socket is
            // emptied in one step and its window opens fully (see `PIPE_SIZE`). Over the
            // per-user pipe quota the kernel refuses: the default size still works.
            let _ = fcntl_setpipe_size(&write, PIPE_SIZE);
            Some(Pipe {
                read,
                write,
                held: 0,
            })
        }

        /// Give the pipe back for another relay: kept if it is empty (and the stock has
        /// room), closed otherwise.
        pub fn give(self) {
            if self.held != 0 {
                return;
            }
            STOCK.with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < KEEP {
                    s.push(self);
                }
            });
        }

        /// Move up to `want` bytes from `from` into the (empty) pipe.
        pub(super) fn fill_from(&mut self, from: impl AsFd, want: usize) -> io::Result<usize> {
            let n = splice(
                from,
                None,
                &self.write,
                None,
                want,
                SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
            )?;
            self.held += n;
            Ok(n)
        }

        /// Move what the pipe holds (or part of it) into `to`.
        pub(super) fn drain_to(&mut self, to: impl AsFd) -> io::Result<usize> {
            let n = splice(
                &self.read,
                None,
                to,
                None,
                self.held,
                SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
            )?;
            self.held -= n;
            Ok(n)
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    /// No pipe to splice through on this system: [`Pipe::take`] always says so.
    #[derive(Debug)]
    pub struct Pipe {
        pub(super) held: usize,
    }

    impl Pipe {
        /// Always `None`: `splice(2)` is Linux only.
        pub fn take() -> Option<Pipe> {
            None
        }

        /// Nothing to keep.
        pub fn give(self) {}

        pub(super) fn fill_from(&mut self, _: super::SpliceEnd<'_>, _: usize) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }

        pub(super) fn drain_to(&mut self, _: super::SpliceEnd<'_>) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_from_failures() {
        for errno in [22, 38, 1, 95] {
            // EINVAL, ENOSYS, EPERM, EOPNOTSUPP: the system does not splice here.
            assert!(refused(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        for errno in [104, 32, 110, 11] {
            // ECONNRESET, EPIPE, ETIMEDOUT, EAGAIN: the connection, not the system.
            assert!(!refused(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
    }
}
