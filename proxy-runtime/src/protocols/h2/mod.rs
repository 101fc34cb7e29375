//! HTTP/2 on the `h2` crate: the downstream stream session ([`server`]) and the upstream
//! connections shared between requests ([`client`]).

pub mod client;
pub mod coalesce;
pub mod server;

use std::time::Duration;

/// HTTP/2 settings and protections of a listener.
#[derive(Debug, Clone)]
pub struct H2Options {
    /// Streams a client may have open at once (default 128).
    pub max_concurrent_streams: u32,
    /// Initial stream window (default 256 KiB): how much of one request body a client
    /// may send ahead of the proxy reading it.
    pub initial_window_size: u32,
    /// Initial connection window (default 2 MiB), a floor: the proxy always opens at
    /// least `max_concurrent_streams × initial_window_size` (see
    /// [`H2Options::effective_connection_window`]), so that bodies of streams still
    /// waiting for an upstream can never use up the window the streams being served
    /// need. Data held per connection stays bounded by the stream windows.
    pub initial_connection_window_size: u32,
    /// Largest header list accepted, after decompression (default 64 KiB).
    pub max_header_list_size: u32,
    /// Streams reset by the client but not yet handled, before the connection is
    /// closed with `ENHANCE_YOUR_CALM` (rapid reset protection; default 64).
    pub max_pending_accept_reset_streams: usize,
    /// Streams the proxy resets because of client errors before the connection is
    /// closed (default 256).
    pub max_local_error_reset_streams: usize,
    /// Data buffered per stream for sending (default 256 KiB, a stream window's worth):
    /// what a client that reads nothing can make the proxy hold is this times
    /// `max_concurrent_streams`.
    pub max_send_buffer_size: usize,
    /// How long an idle connection (no open stream) is kept (default 60 s).
    pub idle_timeout: Duration,
}

impl Default for H2Options {
    fn default() -> Self {
        H2Options {
            max_concurrent_streams: 128,
            initial_window_size: 256 << 10,
            initial_connection_window_size: 2 << 20,
            max_header_list_size: 64 << 10,
            max_pending_accept_reset_streams: 64,
            max_local_error_reset_streams: 256,
            max_send_buffer_size: 256 << 10,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl H2Options {
    /// The connection window the listener opens: the configured one, raised to room
    /// for every stream's whole window at once.
    ///
    /// A stream whose request waits (for an upstream stream slot, a cache lock, a
    /// phase) does not read its body, and what the client sends for it still counts
    /// against the connection window. Were the connection window smaller than the sum
    /// of the stream windows, a few waiting uploads could exhaust it and stall the
    /// streams being forwarded, which the waiting ones depend on: a deadlock until
    /// timeouts. With this floor each stream is held back by its own window only.
    pub fn effective_connection_window(&self) -> u32 {
        let all_streams =
            u64::from(self.max_concurrent_streams) * u64::from(self.initial_window_size);
        all_streams
            .max(u64::from(self.initial_connection_window_size))
            .min(u64::from(MAX_WINDOW)) as u32
    }
}

/// The largest flow-control window HTTP/2 allows (RFC 9113 §6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// The client connection preface: what an h2c (prior knowledge) connection starts with.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
