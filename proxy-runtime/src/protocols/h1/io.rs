//! Buffered I/O for one HTTP/1.x connection: a read buffer that is only allocated while
//! there is something to read, and a write queue that gathers small pieces (heads, chunk
//! framing, short payloads) into one buffer and sends large payloads as their own slices,
//! all in a single vectored write.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use std::future::Future;

use tokio::io::{AsyncReadExt, AsyncWrite};

use super::body::BodyEncoder;
use crate::protocols::Stream;

/// Minimum free space in the read buffer before a read.
const READ_CHUNK: usize = 16 * 1024;
/// Largest read while streaming a body of known remaining size.
const MAX_BODY_READ: usize = 64 * 1024;
/// The most slices handed to one vectored write.
const MAX_IOVECS: usize = 64;

/// A connection with its read buffer and write queue.
#[derive(Debug)]
pub struct ConnIo {
    /// The transport.
    pub stream: Stream,
    /// Bytes read but not yet consumed.
    pub rbuf: BytesMut,
    /// Small pieces waiting to be written (appended in order).
    small: BytesMut,
    /// Pieces waiting to be written, oldest first; `small` logically follows them.
    queue: VecDeque<Bytes>,
    /// The peer has closed its side (a read returned 0).
    pub eof: bool,
    /// Bytes were handed to the stream since it was last flushed: a TLS stream keeps
    /// them (as records) in its own buffer when the socket is full, until flushed.
    unflushed: bool,
}

impl ConnIo {
    /// Wrap a connected stream; no buffer is allocated until bytes arrive.
    pub fn new(stream: Stream) -> Self {
        ConnIo {
            stream,
            rbuf: BytesMut::new(),
            small: BytesMut::new(),
            queue: VecDeque::new(),
            eof: false,
            unflushed: false,
        }
    }

    /// Read once into the read buffer. Cancel-safe. Returns the number of bytes read;
    /// 0 means the peer closed (and sets [`ConnIo::eof`]).
    ///
    /// `want` hints how many bytes the caller expects (e.g. the rest of a body), so large
    /// bodies are read in large pieces.
    pub async fn fill(&mut self, want: Option<u64>) -> io::Result<usize> {
        poll_fn(|cx| self.poll_fill(cx, want)).await
    }

    /// Poll form of [`ConnIo::fill`].
    pub fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        want: Option<u64>,
    ) -> Poll<io::Result<usize>> {
        if self.eof {
            return Poll::Ready(Ok(0));
        }
        let target = match want {
            Some(n) => (n as usize).clamp(READ_CHUNK, MAX_BODY_READ),
            None => READ_CHUNK,
        };
        if self.rbuf.capacity() == 0 {
            self.rbuf = buffer_pool::take();
        }
        if self.rbuf.capacity() - self.rbuf.len() < target / 2 {
            if self.rbuf.is_empty() {
                // Nothing to keep: take a buffer with room rather than grow this one,
                // which would copy its whole old allocation (`realloc`; 16 KiB per
                // 100 KiB response, the largest user-space cost of that path).
                let old = std::mem::replace(&mut self.rbuf, buffer_pool::take_with_room(target));
                buffer_pool::give(old);
            } else {
                self.rbuf.reserve(target);
            }
        }
        // `read_buf` fills the spare capacity and advances the length (tokio does the
        // uninitialized-memory bookkeeping); creating the future per poll is free.
        let read = std::pin::pin!(self.stream.read_buf(&mut self.rbuf));
        match read.poll(cx) {
            Poll::Ready(Ok(0)) => {
                self.eof = true;
                Poll::Ready(Ok(0))
            }
            Poll::Pending if self.rbuf.is_empty() => {
                // Nothing came: the buffer goes back to the pool while the peer is
                // waited for (an origin still working on its answer), instead of
                // being held empty by every waiting connection.
                buffer_pool::give(std::mem::take(&mut self.rbuf));
                Poll::Pending
            }
            other => other,
        }
    }

    /// Queue a large payload as its own slice, after everything queued so far.
    pub fn push_large(&mut self, data: Bytes) {
        if !self.small.is_empty() {
            self.queue.push_back(self.small.split().freeze());
        }
        self.queue.push_back(data);
    }

    /// Frame `data` with `encoder` and queue it: framing and short payloads are copied
    /// into the small buffer, large payloads queued as their own slice.
    pub fn queue_body(
        &mut self,
        encoder: &mut BodyEncoder,
        data: Bytes,
    ) -> Result<(), &'static str> {
        if let Some(large) = encoder.encode(data, self.small_buf())? {
            self.push_large(large);
            encoder.after_large(self.small_buf());
        }
        Ok(())
    }

    /// Bytes queued but not yet written (at least 1 while the stream holds written
    /// bytes not flushed yet, so that callers keep flushing).
    pub fn pending_write(&self) -> usize {
        self.small.len()
            + self.queue.iter().map(Bytes::len).sum::<usize>()
            + usize::from(self.unflushed)
    }

    /// Write out everything queued (one vectored write per round). Cancel-safe.
    pub async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_flush_queue(cx)).await
    }

    /// Poll form of [`ConnIo::flush`]: `Ready(Ok)` once the queue is empty.
    pub fn poll_flush_queue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The queue, then `small` after it: one vectored write; `small` is written in
        // place (no copy, no allocation for the common head-plus-short-body case).
        while !self.queue.is_empty() || !self.small.is_empty() {
            let n = {
                let mut slices = [io::IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for (slot, b) in slices.iter_mut().zip(self.queue.iter()) {
                    *slot = io::IoSlice::new(b);
                    count += 1;
                }
                if count < MAX_IOVECS && !self.small.is_empty() {
                    slices[count] = io::IoSlice::new(&self.small);
                    count += 1;
                }
                match Pin::new(&mut self.stream).poll_write_vectored(cx, &slices[..count]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(n)) => n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            };
            self.consume_written(n);
            self.unflushed = true;
        }
        // Everything is out: the small buffer goes back to the pool at once, so that
        // the next writer (often another connection in the same poll) takes it while
        // it is still in the cache, and a connection waiting on its peer holds none.
        buffer_pool::give(std::mem::take(&mut self.small));
        // ... and out of the stream's own buffer too (TLS), not only handed to it.
        if self.unflushed {
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    fn consume_written(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.queue.front_mut() else {
                // The rest was from `small`.
                self.small.advance(n);
                return;
            };
            if front.len() <= n {
                n -= front.len();
                self.queue.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// Give back buffer memory while the connection waits idle.
    pub fn release_buffers(&mut self) {
        if self.rbuf.is_empty() {
            buffer_pool::give(std::mem::take(&mut self.rbuf));
        }
        if self.small.is_empty() && self.queue.is_empty() {
            buffer_pool::give(std::mem::take(&mut self.small));
            self.queue = VecDeque::new();
        }
    }

    /// Make sure the small write buffer has room (taken from the pool when empty).
    pub fn small_buf(&mut self) -> &mut BytesMut {
        if self.small.capacity() == 0 {
            self.small = buffer_pool::take();
        }
        &mut self.small
    }

    /// Shut down the write side after flushing (a clean close for close-delimited bodies).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.flush().await?;
        tokio::io::AsyncWriteExt::shutdown(&mut self.stream).await
    }
}

/// A per-thread stock of read/write buffers, so a connection can give its buffers back
/// while it waits (it holds no memory when idle) without paying an allocation when the
/// next request arrives.
mod buffer_pool {
    use std::cell::RefCell;

    use bytes::BytesMut;

    /// The size of a pooled buffer.
    const SIZE: usize = super::READ_CHUNK;
    /// Buffers kept per thread.
    const KEEP: usize = 64;
    /// Larger buffers are freed, not kept: the pool holds at most `KEEP` buffers of at
    /// most 64 KiB (a body read's largest size) per thread, 4 MiB at worst.
    const KEEP_AT_MOST: usize = super::MAX_BODY_READ;

    thread_local! {
        static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    }

    /// A buffer with at least `SIZE` bytes of room.
    pub(super) fn take() -> BytesMut {
        FREE.with(|f| f.borrow_mut().pop())
            .unwrap_or_else(|| BytesMut::with_capacity(SIZE))
    }

    /// A buffer with at least `room` bytes of room: the most recently returned one that
    /// is large enough, or a new one.
    pub(super) fn take_with_room(room: usize) -> BytesMut {
        FREE.with(|f| {
            let mut f = f.borrow_mut();
            let i = f.iter().rposition(|b| b.capacity() >= room)?;
            Some(f.swap_remove(i))
        })
        .unwrap_or_else(|| BytesMut::with_capacity(room))
    }

    /// Give a buffer back: kept only if nothing else still points into it.
    pub(super) fn give(mut buf: BytesMut) {
        if buf.capacity() == 0 {
            return;
        }
        buf.clear();
        // `try_reclaim` succeeds without allocating only when this handle owns the whole
        // allocation again (all `Bytes` split off it are gone).
        if buf.capacity() < SIZE && !buf.try_reclaim(SIZE) {
            return;
        }
        if buf.capacity() > KEEP_AT_MOST {
            return;
        }
        FREE.with(|f| {
            let mut f = f.borrow_mut();
            if f.len() < KEEP {
                f.push(buf);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::buffer_pool;

    #[test]
    fn a_buffer_with_room_is_taken_from_the_pool_before_a_new_one() {
        let big = bytes::BytesMut::with_capacity(super::MAX_BODY_READ);
        let big_ptr = big.as_ptr();
        buffer_pool::give(big);
        buffer_pool::give(bytes::BytesMut::with_capacity(super::READ_CHUNK));
        // The small one is on top, but has no room for 48 KiB: the big one comes.
        let taken = buffer_pool::take_with_room(48 * 1024);
        assert_eq!(taken.as_ptr(), big_ptr);
        // A buffer larger than any body read is freed, not kept.
        buffer_pool::give(bytes::BytesMut::with_capacity(4 * super::MAX_BODY_READ));
        let new = buffer_pool::take_with_room(2 * super::MAX_BODY_READ);
        assert!(new.capacity() >= 2 * super::MAX_BODY_READ);
        assert!(
            new.capacity() < 4 * super::MAX_BODY_READ,
            "the huge buffer was kept"
        );
    }

    /// A connected pair of loopback TCP sockets: ours wrapped in a `ConnIo`, and the peer.
    async fn pair() -> (super::ConnIo, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (ours, accepted) = tokio::join!(ours, listener.accept());
        let io = super::ConnIo::new(crate::protocols::Stream::Tcp(ours.unwrap()));
        (io, accepted.unwrap().0)
    }

    #[tokio::test]
    async fn a_connection_waiting_for_its_peer_holds_no_read_buffer() {
        use tokio::io::AsyncWriteExt;
        let (mut io, mut peer) = pair().await;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(io.poll_fill(&mut cx, None).is_pending());
        assert_eq!(
            io.rbuf.capacity(),
            0,
            "an empty buffer was held while waiting"
        );
        peer.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        assert_eq!(io.fill(None).await.unwrap(), 17);
        assert_eq!(&io.rbuf[..], b"HTTP/1.1 200 OK\r\n");
    }

    #[tokio::test]
    async fn the_write_buffer_goes_back_to_the_pool_once_written_out() {
        use tokio::io::AsyncReadExt;
        let (mut io, mut peer) = pair().await;
        io.small_buf().extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let written_from = io.small.as_ptr();
        io.flush().await.unwrap();
        assert_eq!(io.small.capacity(), 0, "the emptied write buffer was kept");
        let mut got = [0u8; 18];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1\r\n\r\n");
        // The next writer on this thread gets the same (still cached) memory.
        assert_eq!(buffer_pool::take().as_ptr(), written_from);
    }
}
