//! The quickstart: a demo origin and a reverse proxy in front of it, in one process.
//!
//! ```text
//! cargo run --release -p examples --bin quickstart
//! curl -i http://127.0.0.1:8080/hello
//! ```
//!
//! The proxy adds `X-Proxy` to every proxied response and answers `/blocked` itself with 403,
//! to show a request phase and a response phase.

use std::net::SocketAddr;

use clap::Parser;
use examples::{DemoOrigin, init_logging};
use proxy_runtime::prelude::*;

/// A demo origin and a proxy in front of it.
#[derive(Parser, Debug)]
struct Args {
    /// Where the proxy listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
}

/// The proxy: forwards everything to the demo origin.
struct Quickstart {
    origin: SocketAddr,
}

impl ProxyHttp for Quickstart {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if session.req_header().path() == "/blocked" {
            session.respond_error(403).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<HttpPeer> {
        HttpPeer::new(self.origin, false, "")
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        resp.insert_header("X-Proxy", "proxy-runtime quickstart")
    }
}

fn main() {
    init_logging();
    let args = Args::parse();
    // Bind the origin first so the proxy knows its port.
    let origin_listener = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot bind the demo origin: {e}");
            std::process::exit(1);
        }
    };
    let origin = match origin_listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };

    let mut server = Server::new(ServerConf::default());
    let mut origin_service = http_proxy_service_with_name(
        &server.configuration,
        DemoOrigin {
            name: "the demo origin".into(),
        },
        "demo-origin",
    );
    origin_service.add_std_listener(origin_listener);
    let mut proxy =
        http_proxy_service_with_name(&server.configuration, Quickstart { origin }, "proxy");
    proxy.add_tcp(&args.listen);
    server.add_service(origin_service);
    server.add_service(proxy);

    let listen = args.listen.clone();
    let result = server.run_until(proxy_runtime::server::termination_signal(), move |_| {
        println!("demo origin listening on {origin}");
        println!("proxy listening on {listen}");
        println!();
        println!("try:  curl -i http://{listen}/hello");
        println!("      curl -i http://{listen}/blocked");
        println!();
        println!("stop with Ctrl-C");
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
