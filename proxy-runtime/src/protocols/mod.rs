//! Transports and wire protocols.
//!
//! [`Stream`] is a connected byte stream of any transport we speak (TCP, Unix domain
//! sockets, TLS over either), dispatched by enum rather than by trait object so the hot
//! read/write path has no virtual calls. [`h1`] is the HTTP/1.x codec on `httparse`;
//! [`tls`] the `rustls` acceptor and connector. [`custom`] lets a user-defined transport
//! carry HTTP requests instead (in-process handlers, a framed protocol, tunnels).

pub mod custom;
pub mod h1;
pub mod h2;
pub mod splice;
pub mod subrequest;
pub mod timeout;
pub mod tls;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// A socket address of either family: IP or Unix domain path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SocketAddress {
    /// An IPv4/IPv6 address and port.
    Inet(std::net::SocketAddr),
    /// A Unix domain socket path.
    Unix(PathBuf),
}

impl fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddress::Inet(a) => write!(f, "{a}"),
            SocketAddress::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl SocketAddress {
    /// The IP socket address, if this is one.
    pub fn as_inet(&self) -> Option<&std::net::SocketAddr> {
        match self {
            SocketAddress::Inet(a) => Some(a),
            SocketAddress::Unix(_) => None,
        }
    }
}

/// A connected byte stream: the one type the codecs read from and write to.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix domain socket connection.
    Unix(UnixStream),
    /// TLS accepted from a client.
    TlsServer(Box<tokio_rustls::server::TlsStream<Stream>>),
    /// TLS to an upstream.
    TlsClient(Box<tokio_rustls::client::TlsStream<Stream>>),
}

/// Dispatch a method call to the variant's inner stream.
macro_rules! each_stream {
    ($self:expr, $s:ident => $e:expr) => {
        match $self {
            Stream::Tcp($s) => $e,
            Stream::Unix($s) => $e,
            Stream::TlsServer($s) => $e,
            Stream::TlsClient($s) => $e,
        }
    };
}

/// What an idle connection looks like when checked without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleState {
    /// Nothing to read and still open: fit for reuse.
    Quiet,
    /// The peer closed it or it failed.
    Closed,
    /// The peer sent bytes nobody asked for: the framing is in doubt.
    StrayBytes,
}

impl Stream {
    /// Make closing this connection reset it (TCP `RST`, `SO_LINGER` 0) instead of
    /// ending it with FIN and, over TLS, `close_notify`: for a response cut short whose
    /// end a clean close would otherwise mark (a body delimited by the close). Bytes the
    /// peer has not received yet are dropped with it. A no-op on Unix sockets (which
    /// have no reset).
    pub fn reset_on_close(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.set_zero_linger(),
            Stream::Unix(_) => Ok(()),
            Stream::TlsServer(s) => {
                s.get_ref().0.reset_on_close();
                Ok(())
            }
            Stream::TlsClient(s) => {
                s.get_ref().0.reset_on_close();
                Ok(())
            }
        };
    }

    /// Disable Nagle's algorithm (TCP only; a no-op elsewhere).
    pub fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nodelay(true),
            Stream::Unix(_) => Ok(()),
            Stream::TlsServer(s) => s.get_ref().0.set_nodelay(),
            Stream::TlsClient(s) => s.get_ref().0.set_nodelay(),
        }
    }

    /// The application protocol agreed by ALPN (TLS only).
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            Stream::TlsServer(s) => s.get_ref().1.alpn_protocol(),
            Stream::TlsClient(s) => s.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }

    /// The socket, when the stream is a plain socket (TCP or Unix domain, no TLS) that
    /// `splice(2)` can move bytes to or from.
    pub fn as_splice_end(&self) -> Option<splice::SpliceEnd<'_>> {
        match self {
            Stream::Tcp(s) => Some(splice::SpliceEnd::Tcp(s)),
            Stream::Unix(s) => Some(splice::SpliceEnd::Unix(s)),
            Stream::TlsServer(_) | Stream::TlsClient(_) => None,
        }
    }

    /// Whether the stream is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::TlsServer(_) | Stream::TlsClient(_))
    }

    /// The remote address, when the transport has one.
    pub fn peer_addr(&self) -> Option<SocketAddress> {
        match self {
            Stream::TlsServer(s) => s.get_ref().0.peer_addr(),
            Stream::TlsClient(s) => s.get_ref().0.peer_addr(),
            Stream::Tcp(s) => s.peer_addr().ok().map(SocketAddress::Inet),
            Stream::Unix(s) => s.peer_addr().ok().and_then(|a| {
                a.as_pathname()
                    .map(|p| SocketAddress::Unix(p.to_path_buf()))
            }),
        }
    }

    /// The local address, when the transport has one.
    pub fn local_addr(&self) -> Option<SocketAddress> {
        match self {
            Stream::TlsServer(s) => s.get_ref().0.local_addr(),
            Stream::TlsClient(s) => s.get_ref().0.local_addr(),
            Stream::Tcp(s) => s.local_addr().ok().map(SocketAddress::Inet),
            Stream::Unix(s) => s.local_addr().ok().and_then(|a| {
                a.as_pathname()
                    .map(|p| SocketAddress::Unix(p.to_path_buf()))
            }),
        }
    }

    /// Wait until the stream has something to read (or is closed) without reading it,
    /// so an idle connection does not need a read buffer while it waits.
    ///
    /// A poll function underneath, not an `async fn`: the future is a reference (every
    /// idle connection holds one).
    pub fn readable(&self) -> impl Future<Output = io::Result<()>> + Send + '_ {
        std::future::poll_fn(move |cx| self.poll_read_ready(cx))
    }

    /// Poll form of [`Stream::readable`].
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_read_ready(cx),
            Stream::Unix(s) => s.poll_read_ready(cx),
            // TLS may hold decrypted bytes the socket no longer shows: read to find out.
            Stream::TlsServer(_) | Stream::TlsClient(_) => Poll::Ready(Ok(())),
        }
    }

    /// Check an idle connection without blocking: closed, stray bytes, or quiet.
    pub fn idle_state(&mut self) -> IdleState {
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(self).poll_read(&mut cx, &mut buf) {
            Poll::Pending => IdleState::Quiet,
            Poll::Ready(Ok(())) if buf.filled().is_empty() => IdleState::Closed,
            Poll::Ready(Ok(())) => IdleState::StrayBytes,
            Poll::Ready(Err(_)) => IdleState::Closed,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read = each_stream!(this, s => Pin::new(s).poll_read(cx, buf));
        this.send_tls_replies(cx);
        read
    }
}

impl Stream {
    /// Send what TLS queued while reading: an alert refusing a TLS 1.2 renegotiation,
    /// for one. tokio-rustls sends such records only with the next write, and a
    /// connection waiting for its peer has none coming: the peer would wait for an
    /// answer until a timeout. Errors are left for the next read or write to meet.
    ///
    /// This flush registers the reading task for write readiness: a TLS stream is
    /// read and written from one task (as every connection here is), not split
    /// between two.
    fn send_tls_replies(&mut self, cx: &mut Context<'_>) {
        let queued = match self {
            Stream::TlsServer(s) => s.get_ref().1.wants_write(),
            Stream::TlsClient(s) => s.get_ref().1.wants_write(),
            Stream::Tcp(_) | Stream::Unix(_) => false,
        };
        if queued {
            let _ = Pin::new(self).poll_flush(cx);
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each_stream!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each_stream!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        each_stream!(self, s => s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_stream!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each_stream!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
    }
}

/// A stream whose first bytes were already read (while sniffing the protocol): they
/// are served again, first, then the stream itself.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: bytes::Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` read back first.
    pub fn new(prefix: bytes::Bytes, inner: S) -> Self {
        Prefixed { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
