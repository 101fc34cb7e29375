//! `forward`: the smallest useful reverse proxy. Every method, path and header goes to
//! one upstream.
//!
//! ```text
//! forward --listen 127.0.0.1:8080 --upstream 127.0.0.1:8000 --read-timeout 30
//! ```

use std::time::Duration;

use clap::Parser;
use examples::{init_logging, parse_seconds, resolve_upstream};
use proxy_runtime::prelude::*;
use proxy_runtime::protocols::SocketAddress;

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
    /// Timeout of one read from the upstream, in seconds (expiry answers 504).
    #[arg(long, default_value = "60", value_parser = parse_seconds)]
    read_timeout: Duration,
    /// How long an idle upstream connection stays pooled, in seconds (0: no pooling).
    #[arg(long, default_value = "60", value_parser = parse_seconds)]
    idle_timeout: Duration,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Sends everything to one peer.
struct Forward {
    peer: HttpPeer,
}

impl ProxyHttp for Forward {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<HttpPeer> {
        Ok(self.peer.clone())
    }
}

fn main() {
    init_logging();
    let args = Args::parse();
    let address: SocketAddress = match resolve_upstream(&args.upstream) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let mut peer = HttpPeer::plain(address);
    peer.options.connect_timeout = args.connect_timeout;
    peer.options.read_timeout = args.read_timeout;
    peer.options.write_timeout = args.read_timeout;
    peer.options.idle_timeout = args.idle_timeout;

    let mut conf = ServerConf::default();
    if let Some(t) = args.threads {
        conf.threads = t;
    }
    let mut server = Server::new(conf);
    let mut service =
        http_proxy_service_with_name(&server.configuration, Forward { peer }, "forward");
    for l in &args.listen {
        service.add_tcp(l);
    }
    server.add_service(service);
    server.run_forever();
}
