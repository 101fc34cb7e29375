//! `forward`: the smallest useful reverse proxy, declared with the DSL. Every method,
//! path and header goes to one upstream, given on the command line.
//!
//! ```text
//! forward --listen 127.0.0.1:8080 --upstream 127.0.0.1:8000 --read-timeout 30
//! ```
//!
//! The declaration is one catch-all route to one upstream group; `--upstream` and the
//! timeout flags override the group's declared address and timeouts at start-up, the
//! way a configuration file would. Paths are forwarded exactly as received
//! (`normalize = false`).

use std::time::Duration;

use clap::Parser;
use examples::{init_logging, parse_seconds};
use proxy_runtime::dsl::UpstreamTimeouts;
use proxy_runtime::prelude::*;

#[proxy(name = "forward", normalize = false)]
mod forward {
    /// The one upstream; its address comes from `--upstream`.
    #[upstream(addrs = ["127.0.0.1:8000"])]
    pub struct Origin;

    /// Everything goes to it.
    #[route(ANY, "/{*path}", to = Origin)]
    fn everything() {}
}

/// Forward every request to one upstream.
#[derive(Parser, Debug)]
#[command(name = "forward")]
struct Args {
    /// Address to listen on (`ip:port`); repeat for several.
    #[arg(long, required = true)]
    listen: Vec<String>,
    /// The upstream: `ip:port`, `host:port` (resolved once at start-up) or `unix:/path`.
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
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() {
    init_logging();
    let args = Args::parse();
    let mut conf = forward::config()
        .with_upstream("Origin", &[args.upstream.as_str()])
        .with_upstream_timeouts(
            "Origin",
            UpstreamTimeouts {
                connect: Some(args.connect_timeout),
                read: Some(args.read_timeout),
                write: Some(args.read_timeout),
                idle: Some(args.idle_timeout),
            },
        );
    conf.listen = args.listen;
    let service = forward::service(&conf).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    let mut server_conf = ServerConf::default();
    if let Some(t) = args.threads {
        server_conf.threads = t;
    }
    let mut server = Server::new(server_conf);
    server.add_service(service);
    server.run_forever();
}
