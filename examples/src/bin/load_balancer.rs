//! `load_balancer`: a hand-written `ProxyHttp` that spreads requests round robin over
//! several origins, retrying a failed connect on the next one.
//!
//! ```text
//! load_balancer --listen 127.0.0.1:8080 --upstream 127.0.0.1:8001 --upstream 127.0.0.1:8002
//! ```
//!
//! With `--demo`, two demo origins are started in-process and used as the upstreams.

use clap::Parser;
use examples::{DemoOrigin, init_logging, resolve_upstream};
use proxy_runtime::prelude::*;
use proxy_runtime::protocols::SocketAddress;

/// Round robin over several origins.
#[derive(Parser, Debug)]
#[command(name = "load_balancer")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// An origin (`ip:port`, `host:port` or `unix:/path`); repeat for each.
    #[arg(long)]
    upstream: Vec<String>,
    /// Start two demo origins in-process and balance over them.
    #[arg(long)]
    demo: bool,
}

/// The balancer: picks the next backend for every attempt.
struct RoundRobin {
    backends: LoadBalancer,
}

/// Per request: the backends already tried, so a retry goes to another one (other
/// requests move the shared round-robin cursor in between).
#[derive(Default)]
struct Attempts {
    tried: Vec<usize>,
}

impl ProxyHttp for RoundRobin {
    type CTX = Attempts;
    fn new_ctx(&self) -> Attempts {
        Attempts::default()
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Attempts) -> Result<HttpPeer> {
        // Every backend tried already (all down): `pick` starts over rather than fail.
        let pick = self.backends.pick(None, &ctx.tried).ok_or_else(|| {
            Error::explain(
                ErrorKind::NoUpstream,
                ErrorSource::Internal,
                "no backends configured",
            )
        })?;
        ctx.tried.push(pick.index);
        Ok(HttpPeer::plain(pick.backend.address.clone()))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut Attempts,
    ) -> Result<()> {
        if let Some(SocketAddress::Inet(client)) = session.client_addr() {
            upstream_request.append_header("X-Forwarded-For", client.ip().to_string())?;
        }
        Ok(())
    }
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

fn main() {
    init_logging();
    let args = Args::parse();
    let mut server = Server::new(ServerConf::default());
    let mut addrs: Vec<SocketAddress> = Vec::new();
    for u in &args.upstream {
        addrs.push(resolve_upstream(u).unwrap_or_else(|e| fail(e)));
    }
    if args.demo {
        for i in 1..=2 {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| fail(e));
            let a = l.local_addr().unwrap_or_else(|e| fail(e));
            let mut origin = http_proxy_service_with_name(
                &server.configuration,
                DemoOrigin {
                    name: format!("demo origin {i}"),
                },
                "demo-origin",
            );
            origin.add_std_listener(l);
            server.add_service(origin);
            addrs.push(SocketAddress::Inet(a));
        }
    }
    if addrs.is_empty() {
        fail("give at least one --upstream, or --demo");
    }
    let backends = LoadBalancer::round_robin(addrs).unwrap_or_else(|e| fail(e));
    let mut service =
        http_proxy_service_with_name(&server.configuration, RoundRobin { backends }, "lb");
    service.add_tcp(&args.listen);
    server.add_service(service);
    server.run_forever();
}
