//! The binary around a DSL-declared proxy: command line, configuration, logging,
//! start-up checks, and the server. `my_proxy::run()` calls [`run`].
//!
//! ```text
//! my-proxy [--config FILE] [--listen ADDR]... [--threads N] [--print-routes] [--check]
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::config::ProxyConfig;
use super::routing::RouteTable;
use super::upstreams::UpstreamSpec;
use crate::error::Result;
use crate::protocols::tls::{CertKeyPaths, TlsServerSettings};
use crate::proxy_trait::ProxyHttp;
use crate::server::{HttpProxyService, HttpProxyServiceBuilder, Server, ServerConf};

/// What the compiler knows about a declared proxy.
#[derive(Debug)]
pub struct AppSpec {
    /// The proxy's name (logs, metrics, environment variables).
    pub name: &'static str,
    /// Declared listen addresses.
    pub listen: &'static [&'static str],
    /// Declared TLS listeners.
    pub tls_listen: &'static [TlsListenSpec],
    /// Declared worker threads.
    pub threads: Option<usize>,
    /// Declared shutdown grace period.
    pub grace_period: Option<Duration>,
    /// Declared upstream groups.
    pub upstreams: &'static [UpstreamSpec],
    /// The route table.
    pub routes: RouteTable,
    /// Retries the service must allow (the largest any route asks for).
    pub max_retries: u32,
}

/// A TLS listener as declared: `tls("0.0.0.0:443", cert = ..., key = ...)`.
#[derive(Debug, Clone, Copy)]
pub struct TlsListenSpec {
    /// The address.
    pub addr: &'static str,
    /// (certificate chain, private key) PEM paths; the first is the default.
    pub certs: &'static [(&'static str, &'static str)],
    /// CA bundle for client certificates (mTLS).
    pub client_ca: Option<&'static str>,
    /// Refuse clients without a certificate.
    pub client_auth_required: bool,
}

impl TlsListenSpec {
    /// The runtime settings (files are read when the service is built).
    pub fn settings(&self) -> TlsServerSettings {
        TlsServerSettings {
            certs: self
                .certs
                .iter()
                .map(|(c, k)| CertKeyPaths {
                    cert: c.into(),
                    key: k.into(),
                })
                .collect(),
            alpn: crate::protocols::tls::Alpn::H2H1,
            client_ca: self.client_ca.map(Into::into),
            client_auth_required: self.client_auth_required,
        }
    }
}

#[derive(Parser, Debug)]
struct Cli {
    /// Configuration file (TOML): listen, threads, grace_period, log, upstreams.<Name>.addrs.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Listen address (repeat for several); replaces the declared and configured ones.
    #[arg(long)]
    listen: Vec<String>,
    /// Worker threads.
    #[arg(long)]
    threads: Option<usize>,
    /// Runtime layout: `work_stealing` (one multi-threaded runtime) or `per_core` (one
    /// single-threaded runtime per worker thread with its own `SO_REUSEPORT` listener).
    #[arg(long)]
    runtime: Option<crate::server::RuntimeLayout>,
    /// Print the route table and exit.
    #[arg(long)]
    print_routes: bool,
    /// Check the configuration (and resolve upstreams), then exit.
    #[arg(long)]
    check: bool,
}

impl AppSpec {
    /// The configuration from the declaration, a file, the environment, and flags.
    pub fn config(
        &self,
        file: Option<&std::path::Path>,
        listen: &[String],
        threads: Option<usize>,
    ) -> std::result::Result<ProxyConfig, super::config::ConfigError> {
        let mut conf = self.declared_config();
        if let Some(f) = file {
            conf.apply_file(f, self.upstreams)?;
        }
        super::config::ProxyConfig::check_env_names(
            self.name,
            self.upstreams,
            std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()),
        )?;
        conf.apply_env(self.name, self.upstreams, |k| std::env::var(k).ok())?;
        if !listen.is_empty() {
            let mut given: Vec<String> = Vec::new();
            for a in listen {
                super::config::check_listen(a, &given)
                    .map_err(|e| super::config::ConfigError(format!("--listen: {e}")))?;
                given.push(a.clone());
            }
            conf.listen = given;
        }
        if let Some(t) = threads {
            if t == 0 {
                return Err(super::config::ConfigError(
                    "--threads: must be at least 1".into(),
                ));
            }
            conf.threads = Some(t);
        }
        Ok(conf)
    }

    /// The configuration as declared (before files, environment and flags).
    pub fn declared_config(&self) -> ProxyConfig {
        let mut conf = ProxyConfig::declared(self.listen, self.threads, self.grace_period);
        conf.tls_listen = self
            .tls_listen
            .iter()
            .map(|t| (t.addr.to_string(), t.settings()))
            .collect();
        conf
    }

    /// A service for `proxy` with the configuration's listeners and timeouts. TLS
    /// certificates are loaded now: an error names the file.
    pub fn service<P: ProxyHttp>(
        &self,
        proxy: P,
        conf: &ProxyConfig,
    ) -> Result<HttpProxyService<P>> {
        let mut builder = HttpProxyServiceBuilder::new(proxy)
            .name(self.name)
            .max_retries(self.max_retries);
        if let Some(d) = conf.keepalive_timeout {
            builder = builder.keepalive_timeout(d);
        }
        if let Some(d) = conf.header_read_timeout {
            builder = builder.header_read_timeout(d);
        }
        if let Some(on) = conf.splice {
            builder = builder.splice(on);
        }
        for l in &conf.listen {
            builder = builder.listen_tcp(l);
        }
        for (addr, settings) in &conf.tls_listen {
            builder = builder.listen_tls(addr, settings.clone())?;
        }
        Ok(builder.build())
    }
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

/// Parse the command line, configure, and serve until SIGTERM/SIGINT.
pub fn run<P: ProxyHttp>(spec: &'static AppSpec, build: fn(&ProxyConfig) -> Result<P>) -> ! {
    let cli = Cli::parse();
    if cli.print_routes {
        print!("{}", spec.routes);
        std::process::exit(0);
    }
    let mut conf = spec
        .config(cli.config.as_deref(), &cli.listen, cli.threads)
        .unwrap_or_else(|e| fail(e));
    if cli.runtime.is_some() {
        conf.runtime = cli.runtime;
    }
    init_logging(conf.log.as_deref());
    let proxy = build(&conf).unwrap_or_else(|e| fail(e));
    if conf.listen.is_empty() && conf.tls_listen.is_empty() {
        fail("no listen address: declare `listen = ...`, or use --listen or a config file");
    }
    // Built before `--check` answers: TLS certificates and keys are loaded here.
    let service = spec.service(proxy, &conf).unwrap_or_else(|e| fail(e));
    if cli.check {
        println!("configuration OK");
        std::process::exit(0);
    }
    let mut server_conf = ServerConf::default();
    if let Some(t) = conf.threads {
        server_conf.threads = t;
    }
    if let Some(g) = conf.grace_period {
        server_conf.grace_period = g;
    }
    if let Some(r) = conf.runtime {
        server_conf.runtime = r;
    }
    let mut server = Server::new(server_conf);
    server.add_service(service);
    server.run_forever()
}

/// Log to stderr with `RUST_LOG`, else `default` (else `info`).
pub fn init_logging(default: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default.unwrap_or("info")));
    // A second initialization (tests, embedding) is not an error worth reporting.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
