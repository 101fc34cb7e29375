//! `framed_origin`: an origin that speaks the framed custom transport
//! (`proxy_runtime::protocols::custom::framed`) instead of HTTP, and optionally the
//! proxy in front of it.
//!
//! ```text
//! # the origin alone (TCP or a Unix socket):
//! framed_origin --listen 127.0.0.1:9000
//! framed_origin --unix /tmp/framed.sock
//!
//! # the origin and an HTTP proxy in front of it, in one process:
//! cargo run -p examples --bin framed_origin -- --listen 127.0.0.1:9000 --proxy 127.0.0.1:8080
//! curl -i http://127.0.0.1:8080/hello
//! curl -i --raw --data-binary 'some bytes' -H 'TE: trailers' http://127.0.0.1:8080/echo
//! curl -s http://127.0.0.1:8080/bytes/1048576 | wc -c
//! ```
//!
//! The origin answers
//! - a request without a body with a text page describing it (method, target, headers);
//! - a request with a body by streaming the body back as it arrives (with the request's
//!   `Content-Type`, no length: chunked to an HTTP/1.1 client), ending with the
//!   trailers `x-body-length` and `x-body-fnv64` (64-bit FNV-1a of the body), which an
//!   HTTP/1.1 client gets if it sent `TE: trailers`;
//! - `GET /bytes/N` with N bytes (`0123456789` repeated).
//!
//! In a proxy of your own, the peer is
//! `HttpPeer::custom("framed", Arc::new(FramedTransport::tcp(addr)))` (or
//! `FramedTransport::unix(path)`); that is all `--proxy` does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use examples::init_logging;
use proxy_runtime::prelude::*;
use proxy_runtime::protocols::custom::framed::{
    FrameKind, FrameReader, FrameWriter, FramedLimits, FramedTransport, decode_request_head,
    encode_response_head, encode_trailers,
};
use tokio::io::{AsyncRead, AsyncWrite};

/// An origin speaking the framed transport, optionally with a proxy in front.
#[derive(Parser, Debug)]
#[command(name = "framed_origin")]
struct Args {
    /// TCP address the origin listens on.
    #[arg(long, default_value = "127.0.0.1:9000", conflicts_with = "unix")]
    listen: SocketAddr,
    /// Listen on this Unix socket path instead.
    #[arg(long)]
    unix: Option<PathBuf>,
    /// Also run an HTTP proxy on this address that forwards to the origin.
    #[arg(long)]
    proxy: Option<String>,
}

/// A proxy whose one upstream is the framed origin.
struct FramedProxy {
    peer: HttpPeer,
}

impl ProxyHttp for FramedProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<HttpPeer> {
        Ok(self.peer.clone())
    }
}

/// 64-bit FNV-1a, continued from `hash`.
fn fnv64(mut hash: u64, data: &[u8]) -> u64 {
    for &b in data {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The FNV-1a offset basis (the hash of nothing).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Queue a response head (`status`, `headers`) as a `HEAD` frame.
fn queue_head<W: AsyncWrite + Unpin>(
    w: &mut FrameWriter<W>,
    status: u16,
    headers: &[(&str, String)],
) -> Result<()> {
    let mut head = ResponseHeader::build(status, Some(headers.len()))?;
    for (name, value) in headers {
        head.append_header(*name, value.as_str())?;
    }
    w.queue(FrameKind::Head, &encode_response_head(&head));
    Ok(())
}

/// Serve exchanges on one connection until it closes or breaks the framing.
async fn serve_connection<R, W>(r: R, w: W) -> Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let limits = FramedLimits::default();
    let mut reader = FrameReader::new(r, limits);
    let mut writer = FrameWriter::new(w);
    let io = |e: std::io::Error| {
        Error::because(ErrorKind::WriteError, ErrorSource::Downstream, "writing", e)
    };
    let bad = |e| {
        Error::because(
            ErrorKind::InvalidHttp(400),
            ErrorSource::Downstream,
            "reading frames",
            e,
        )
    };
    loop {
        let head = match reader.read_frame().await.map_err(bad)? {
            None => return Ok(()), // the proxy closed an idle connection
            Some(f) if f.kind == FrameKind::Head => {
                decode_request_head(&f.payload, &limits).map_err(bad)?
            }
            Some(f) => {
                return Err(Error::internal(format!(
                    "expected a HEAD frame, got {:?}",
                    f.kind
                )));
            }
        };
        tracing::info!(method = %head.method, target = head.path_and_query(), "request");
        // Echo mode starts with the first body frame; the head goes out then.
        let mut echoing = false;
        let mut len = 0u64;
        let mut hash = FNV_OFFSET;
        loop {
            let frame =
                reader.read_frame().await.map_err(bad)?.ok_or_else(|| {
                    Error::internal("the proxy closed in the middle of a request")
                })?;
            match frame.kind {
                FrameKind::Body => {
                    if !echoing {
                        echoing = true;
                        let content_type = head
                            .header_str("content-type")
                            .unwrap_or("application/octet-stream")
                            .to_string();
                        queue_head(&mut writer, 200, &[("Content-Type", content_type)])?;
                    }
                    len += frame.payload.len() as u64;
                    hash = fnv64(hash, &frame.payload);
                    writer.write_body(&frame.payload).await.map_err(io)?;
                    writer.flush().await.map_err(io)?;
                }
                FrameKind::Trailers | FrameKind::End => {
                    if frame.kind == FrameKind::Trailers {
                        // TRAILERS ends the request; END follows.
                        let end = reader.read_frame().await.map_err(bad)?;
                        if !matches!(end, Some(ref f) if f.kind == FrameKind::End) {
                            return Err(Error::internal("TRAILERS not followed by END"));
                        }
                    }
                    break;
                }
                FrameKind::Head | FrameKind::Error => {
                    return Err(Error::internal("unexpected frame in a request"));
                }
            }
        }
        if echoing {
            let mut trailers = HeaderMap::new();
            trailers.insert("x-body-length", HeaderValue::from(len));
            if let Ok(v) = HeaderValue::from_str(&format!("{hash:016x}")) {
                trailers.insert("x-body-fnv64", v);
            }
            writer.queue(FrameKind::Trailers, &encode_trailers(&trailers));
        } else if let Some(n) = head
            .path()
            .strip_prefix("/bytes/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            queue_head(
                &mut writer,
                200,
                &[
                    ("Content-Type", "application/octet-stream".into()),
                    ("Content-Length", n.to_string()),
                ],
            )?;
            let block: Vec<u8> = b"0123456789"
                .iter()
                .copied()
                .cycle()
                .take(64 * 1024)
                .collect();
            let mut left = n;
            while left > 0 {
                let take = left.min(block.len());
                writer.write_body(&block[..take]).await.map_err(io)?;
                left -= take;
            }
        } else {
            let mut text = format!("{} {}\n", head.method, head.path_and_query());
            for (name, value) in head.header_fields() {
                text.push_str(&format!(
                    "{name}: {}\n",
                    String::from_utf8_lossy(value.as_bytes())
                ));
            }
            queue_head(
                &mut writer,
                200,
                &[
                    ("Content-Type", "text/plain".into()),
                    ("Content-Length", text.len().to_string()),
                ],
            )?;
            writer.queue(FrameKind::Body, text.as_bytes());
        }
        writer.queue(FrameKind::End, &[]);
        writer.flush().await.map_err(io)?;
    }
}

/// Accept connections forever, one task each.
async fn run_origin(listen: SocketAddr, unix: Option<PathBuf>) -> std::io::Result<()> {
    match unix {
        Some(path) => {
            let _ = std::fs::remove_file(&path);
            let listener = tokio::net::UnixListener::bind(&path)?;
            loop {
                let (sock, _) = listener.accept().await?;
                let (r, w) = sock.into_split();
                tokio::spawn(async move {
                    if let Err(e) = serve_connection(r, w).await {
                        tracing::warn!("connection ended: {e}");
                    }
                });
            }
        }
        None => {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            loop {
                let (sock, peer) = listener.accept().await?;
                let _ = sock.set_nodelay(true);
                let (r, w) = sock.into_split();
                tokio::spawn(async move {
                    if let Err(e) = serve_connection(r, w).await {
                        tracing::warn!(%peer, "connection ended: {e}");
                    }
                });
            }
        }
    }
}

fn main() {
    init_logging();
    let args = Args::parse();
    let (listen, unix) = (args.listen, args.unix.clone());
    let where_ = unix
        .as_ref()
        .map_or_else(|| listen.to_string(), |p| format!("unix:{}", p.display()));
    // The origin runs on its own runtime (thread); the proxy, if any, on the server's.
    let origin = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return Err(e),
        };
        rt.block_on(run_origin(listen, unix))
    });
    println!("framed origin listening on {where_}");

    let Some(proxy_addr) = args.proxy else {
        match origin.join() {
            Ok(Err(e)) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
            _ => return,
        }
    };
    let transport = match &args.unix {
        Some(path) => FramedTransport::unix(path),
        None => FramedTransport::tcp(listen),
    };
    let peer = HttpPeer::custom("framed-origin", Arc::new(transport));
    let mut server = Server::new(ServerConf::default());
    let mut proxy =
        http_proxy_service_with_name(&server.configuration, FramedProxy { peer }, "proxy");
    proxy.add_tcp(&proxy_addr);
    server.add_service(proxy);
    let result = server.run_until(proxy_runtime::server::termination_signal(), move |_| {
        println!("proxy listening on {proxy_addr}");
        println!();
        println!("try:  curl -i http://{proxy_addr}/hello");
        println!(
            "      curl -i --raw --data-binary 'some bytes' -H 'TE: trailers' http://{proxy_addr}/echo"
        );
        println!("      curl -s http://{proxy_addr}/bytes/1048576 | wc -c");
        println!();
        println!("stop with Ctrl-C");
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
