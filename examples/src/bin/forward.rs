//! `forward`: the smallest useful reverse proxy, declared with the DSL. Every method,
//! path and header goes to one upstream, given on the command line.
//!
//! ```text
//! forward --listen 127.0.0.1:8080 --upstream 127.0.0.1:8000 --read-timeout 30
//! forward --listen 127.0.0.1:8080 --upstream 127.0.0.1:8000 --cache 256MiB
//! forward --tls-listen 127.0.0.1:8443 --tls-cert cert.pem --tls-key key.pem \
//!         --upstream api.internal:443 --upstream-tls --upstream-sni api.internal --upstream-h2
//! ```
//!
//! Clients may speak HTTP/1.1, HTTP/2 over TLS (ALPN) or cleartext HTTP/2 with prior
//! knowledge (h2c) on any listener.
//!
//! The declaration is one catch-all route to one upstream group; `--upstream` and the
//! timeout flags override the group's declared address and timeouts at start-up, the
//! way a configuration file would. Paths are forwarded exactly as received
//! (`normalize = false`).

use std::time::Duration;

use clap::Parser;
use examples::{init_logging, parse_seconds};
use proxy_runtime::dsl::UpstreamOptions;
use proxy_runtime::prelude::*;
use proxy_runtime::protocols::tls::TlsServerSettings;

#[proxy(name = "forward", normalize = false)]
mod forward {
    /// The one upstream; its address comes from `--upstream`.
    #[upstream(addrs = ["127.0.0.1:8000"])]
    pub struct Origin;

    /// Everything goes to it. With `--cache SIZE`, GET and HEAD responses are cached
    /// as RFC 9111 allows a shared cache, with no policy of ours on top.
    #[route(ANY, "/{*path}", to = Origin)]
    #[cache]
    fn everything() {}
}

/// Forward every request to one upstream.
#[derive(Parser, Debug)]
#[command(name = "forward")]
struct Args {
    /// Address to listen on in cleartext (`ip:port`; HTTP/1.1 and h2c); repeat for several.
    #[arg(long, required_unless_present = "tls_listen")]
    listen: Vec<String>,
    /// Address to listen on with TLS (needs --tls-cert and --tls-key); repeat for several.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Vec<String>,
    /// Certificate chain (PEM) for --tls-listen.
    #[arg(long)]
    tls_cert: Option<std::path::PathBuf>,
    /// Private key (PEM) for --tls-listen.
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
    /// Speak HTTP/2 to the upstream (prior knowledge in cleartext, ALPN `h2` over TLS).
    #[arg(long)]
    upstream_h2: bool,
    /// Speak TLS to the upstream.
    #[arg(long)]
    upstream_tls: bool,
    /// TLS server name for the upstream (default: its host or IP).
    #[arg(long)]
    upstream_sni: Option<String>,
    /// Do not verify the upstream's certificate (test origins only).
    #[arg(long)]
    upstream_insecure: bool,
    /// The upstream: `ip:port`, `host:port` (resolved at start-up, then every 30 s) or
    /// `unix:/path`.
    #[arg(long)]
    upstream: String,
    /// Connect timeout, in seconds.
    #[arg(long, default_value = "10", value_parser = parse_seconds)]
    connect_timeout: Duration,
    /// Timeout of one read from (or write to) the upstream, in seconds (expiry answers 504).
    #[arg(long, default_value = "60", value_parser = parse_seconds)]
    read_timeout: Duration,
    /// How long an idle upstream connection stays pooled, in seconds (0: no pooling).
    #[arg(long, default_value = "60", value_parser = parse_seconds)]
    idle_timeout: Duration,
    /// Runtime layout: `work_stealing` (one multi-threaded runtime) or `per_core` (one
    /// single-threaded runtime per worker thread, each with its own `SO_REUSEPORT`
    /// listener)
    #[arg(long, default_value = "per_core")]
    runtime: proxy_runtime::server::RuntimeLayout,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Cache responses in memory, up to this size (`64MiB`, `1GiB`); RFC 9111 shared
    /// cache rules. Without it, nothing is cached.
    #[arg(long, value_parser = parse_size)]
    cache: Option<u64>,
    /// Copy every response body through user space, never relaying it socket to socket
    /// in the kernel (`splice(2)`, on by default for large bodies).
    #[arg(long)]
    no_splice: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    proxy_syntax::size::parse_size(s).map_err(|e| e.to_string())
}

fn main() {
    init_logging();
    let args = Args::parse();
    let mut conf = forward::config()
        .with_upstream("Origin", &[args.upstream.as_str()])
        .with_upstream_options(
            "Origin",
            UpstreamOptions {
                connect: Some(args.connect_timeout),
                read: Some(args.read_timeout),
                write: Some(args.read_timeout),
                idle: Some(args.idle_timeout),
                tls: Some(args.upstream_tls),
                sni: args
                    .upstream_sni
                    .clone()
                    .or_else(|| upstream_host(&args.upstream)),
                verify: Some(!args.upstream_insecure),
                ca_file: None,
                h2: Some(args.upstream_h2),
            },
        );
    conf.listen = args.listen;
    conf.cache_size = Some(args.cache.unwrap_or(0));
    if args.no_splice {
        conf.splice = Some(false);
    }
    let fail = |e: &dyn std::fmt::Display| -> ! {
        eprintln!("error: {e}");
        std::process::exit(2)
    };
    let mut service = forward::service(&conf).unwrap_or_else(|e| fail(&e));
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        for addr in &args.tls_listen {
            service
                .add_tls(addr, TlsServerSettings::new(cert, key))
                .unwrap_or_else(|e| fail(&e));
        }
    }
    let mut server_conf = ServerConf {
        runtime: args.runtime,
        ..ServerConf::default()
    };
    if let Some(t) = args.threads {
        server_conf.threads = t;
    }
    let mut server = Server::new(server_conf);
    server.add_service(service);
    server.run_forever();
}

/// The host part of `host:port`, when it is a name (used as the default SNI).
fn upstream_host(addr: &str) -> Option<String> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    (host.parse::<std::net::IpAddr>().is_err()
        && !host.starts_with("unix")
        && !host.starts_with('['))
    .then(|| host.to_string())
}
