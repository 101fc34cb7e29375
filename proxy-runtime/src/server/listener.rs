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

/// Remove a leftover socket file (never a regular file) so `bind` can succeed.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "path exists and is not a socket",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
