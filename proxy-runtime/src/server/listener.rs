//! Listening sockets: TCP and Unix domain.

use std::io;
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, UnixListener};

use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::protocols::{SocketAddress, Stream};

/// An address to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `ip:port` (e.g. `0.0.0.0:8080`, `[::]:8080`, `127.0.0.1:0`).
    Tcp(String),
    /// A Unix domain socket path (a stale socket file there is replaced).
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// TCP.
    Tcp(TcpListener),
    /// Unix domain socket (the path is removed when the listener is dropped).
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Bind `addr`; the error names the address.
    pub async fn bind(addr: &ListenAddr) -> Result<Self> {
        let fail = |e: io::Error| {
            Error::because(
                ErrorKind::Config,
                ErrorSource::Internal,
                format!("cannot listen on {addr}"),
                e,
            )
        };
        match addr {
            ListenAddr::Tcp(a) => Ok(Listener::Tcp(
                TcpListener::bind(a.as_str()).await.map_err(fail)?,
            )),
            ListenAddr::Unix(path) => {
                remove_stale_socket(path).map_err(fail)?;
                Ok(Listener::Unix(
                    UnixListener::bind(path).map_err(fail)?,
                    path.clone(),
                ))
            }
        }
    }

    /// Bind `addr` `count` times with `SO_REUSEPORT`, one listening socket per worker
    /// of the per-core layout (the kernel spreads new connections between them). A
    /// Unix socket, or a `count` of 1, is bound once, as [`Listener::bind`] does.
    pub async fn bind_per_worker(addr: &ListenAddr, count: usize) -> Result<Vec<Self>> {
        let ListenAddr::Tcp(a) = addr else {
            return Ok(vec![Listener::bind(addr).await?]);
        };
        if count <= 1 {
            return Ok(vec![Listener::bind(addr).await?]);
        }
        let fail = |e: io::Error| {
            Error::because(
                ErrorKind::Config,
                ErrorSource::Internal,
                format!("cannot listen on {addr}"),
                e,
            )
        };
        let mut resolved = tokio::net::lookup_host(a.as_str()).await.map_err(fail)?;
        let Some(mut at) = resolved.next() else {
            return Err(fail(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                "the address resolves to nothing",
            )));
        };
        let mut listeners = Vec::with_capacity(count);
        for _ in 0..count {
            let socket = if at.is_ipv4() {
                tokio::net::TcpSocket::new_v4()
            } else {
                tokio::net::TcpSocket::new_v6()
            }
            .map_err(fail)?;
            socket.set_reuseaddr(true).map_err(fail)?;
            socket.set_reuseport(true).map_err(fail)?;
            socket.bind(at).map_err(fail)?;
            let listener = socket.listen(LISTEN_BACKLOG).map_err(fail)?;
            // Port 0 asked for: the others join the port the first one got.
            at = listener.local_addr().map_err(fail)?;
            listeners.push(Listener::Tcp(listener));
        }
        Ok(listeners)
    }

    /// Move this TCP listener to the runtime `to` (its accept loop will run there).
    pub fn move_to(self, to: &tokio::runtime::Handle) -> io::Result<Self> {
        if let Listener::Unix(..) = self {
            // Dropping the original would remove the socket file: Unix listeners are
            // shared ([`Listener::share_with`]), not moved.
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a Unix listener is shared, not moved",
            ));
        }
        // The same socket under a second descriptor, registered with `to`; closing
        // the first one leaves the socket open.
        self.share_with(to)
    }

    /// A second listener on the same socket (one accept queue), registered with the
    /// runtime `to`: how workers of the per-core layout share a listener they cannot
    /// each bind (Unix sockets, sockets bound by the caller). A shared Unix listener
    /// also removes the socket file when dropped (at shutdown).
    pub fn share_with(&self, to: &tokio::runtime::Handle) -> io::Result<Self> {
        use std::os::fd::AsFd;
        match self {
            Listener::Tcp(l) => {
                let std = std::net::TcpListener::from(l.as_fd().try_clone_to_owned()?);
                let _in_target = to.enter();
                Ok(Listener::Tcp(TcpListener::from_std(std)?))
            }
            Listener::Unix(l, path) => {
                let std = std::os::unix::net::UnixListener::from(l.as_fd().try_clone_to_owned()?);
                let _in_target = to.enter();
                Ok(Listener::Unix(UnixListener::from_std(std)?, path.clone()))
            }
        }
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> Option<SocketAddress> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok().map(SocketAddress::Inet),
            Listener::Unix(_, p) => Some(SocketAddress::Unix(p.clone())),
        }
    }

    /// Accept one connection (TCP connections get `TCP_NODELAY`).
    pub async fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept().await?;
                s.set_nodelay(true)?;
                Ok(Stream::Tcp(s))
            }
            Listener::Unix(l, _) => Ok(Stream::Unix(l.accept().await?.0)),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Pending connections a listening socket queues (what `TcpListener::bind` uses).
const LISTEN_BACKLOG: u32 = 1024;

/// Remove a leftover socket file (never a regular file, nor a socket a server still
/// listens on) so `bind` can succeed.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another server is listening on this socket",
                ));
            }
            std::fs::remove_file(path)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "path exists and is not a socket",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
