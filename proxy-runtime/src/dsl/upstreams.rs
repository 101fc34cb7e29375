//! Upstream groups declared with `#[upstream(...)]`: the static declaration the compiler
//! emits ([`UpstreamSpec`]) and the live group built from it at start-up
//! ([`UpstreamGroup`]), with addresses possibly overridden by the configuration file or
//! the environment, and host names resolved once.

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::protocols::SocketAddress;
use crate::protocols::tls::UpstreamTls;
use crate::upstream::discovery::spawn_discovery;
use crate::upstream::health::run_health_checks;
use crate::upstream::{
    Backend, Discovery, DnsDiscovery, Ejection, HealthCheck, HealthProbe, HttpPeer, InFlight,
    LoadBalancer, PeerOptions, Policy, TlsProbe,
};

/// How a group picks a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    /// Each backend in turn.
    RoundRobin,
    /// Smooth weighted round robin (nginx's).
    WeightedRoundRobin,
    /// Uniformly at random.
    Random,
    /// Power of two choices on requests in flight.
    LeastLoaded,
    /// The fewest requests in flight per weight.
    LeastConnections,
    /// Consistent hashing (Ketama, nginx's layout) of a request part.
    Consistent {
        /// What is hashed.
        key: HashKey,
        /// Ring points per unit of weight.
        points: u32,
    },
}

/// The part of a request that consistent hashing uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKey {
    /// A request header's value.
    Header(&'static str),
    /// A cookie's value.
    Cookie(&'static str),
    /// The client's IP address.
    ClientAddr,
    /// The path.
    Path,
    /// The path and query.
    Uri,
}

impl HashKey {
    /// The key of `session` (empty when the part is missing: all such requests share
    /// one backend).
    pub fn of(&self, session: &crate::session::Session) -> Vec<u8> {
        let req = session.req_header();
        match self {
            HashKey::Header(name) => req
                .header(*name)
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default(),
            HashKey::Cookie(name) => cookie(req, name)
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default(),
            HashKey::ClientAddr => session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip().to_string().into_bytes())
                .unwrap_or_default(),
            HashKey::Path => req.path().as_bytes().to_vec(),
            HashKey::Uri => req.path_and_query().as_bytes().to_vec(),
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(req: &'a crate::http::RequestHeader, name: &str) -> Option<&'a str> {
    req.header_values(http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Backends a request already tried (so a retry can go elsewhere), kept inline.
#[derive(Debug, Clone, Copy, Default)]
pub struct TriedBackends {
    items: [usize; 8],
    len: usize,
}

impl TriedBackends {
    /// Remember `index` (beyond eight tries, the oldest are forgotten).
    pub fn push(&mut self, index: usize) {
        if self.len == self.items.len() {
            self.items.rotate_left(1);
            self.len -= 1;
        }
        self.items[self.len] = index;
        self.len += 1;
    }

    /// The indices tried so far.
    pub fn as_slice(&self) -> &[usize] {
        &self.items[..self.len]
    }
}

/// The backend chosen for the current attempt: its group, its index, and the guard that
/// counts it as in flight (and identifies it for passive health reports).
#[derive(Debug)]
pub struct CurrentPick {
    /// The group's position in the proxy's list.
    pub group: usize,
    /// The backend's index in the group.
    pub backend: usize,
    /// Counts the request as in flight until dropped.
    pub guard: InFlight,
}

/// Passive health as declared: `passive(failures = 3, eject = "10s")`.
#[derive(Debug, Clone, Copy)]
pub struct PassiveSpec {
    /// Consecutive failures (connect errors, timeouts, 5xx) that eject a backend.
    pub failures: u32,
    /// How long it stays out.
    pub eject: Duration,
}

/// A health check as declared (compile-time data).
#[derive(Debug, Clone, Copy)]
pub struct HealthSpec {
    /// `None`: a TCP connect; `Some(path)`: an HTTP `GET path`.
    pub http_path: Option<&'static str>,
    /// `Host` for HTTP probes.
    pub host: Option<&'static str>,
    /// Expected status for HTTP probes (default: any 2xx/3xx).
    pub expect: Option<u16>,
    /// Text the body of HTTP probes must contain.
    pub body: Option<&'static str>,
    /// Time between probes.
    pub every: Duration,
    /// Time a probe may take.
    pub timeout: Option<Duration>,
    /// Successes to come back up.
    pub rise: Option<u32>,
    /// Failures to go down.
    pub fall: Option<u32>,
}

impl HealthSpec {
    /// The runtime check.
    pub fn check(&self) -> HealthCheck {
        let probe = match self.http_path {
            None => HealthProbe::Tcp,
            Some(path) => HealthProbe::Http {
                path: path.to_string(),
                host: self.host.map(str::to_string),
                expect: self.expect,
                body: self.body.map(str::to_string),
            },
        };
        let mut check = HealthCheck::new(probe, self.every);
        if let Some(t) = self.timeout {
            check.timeout = t;
        }
        check.rise = self.rise.unwrap_or(check.rise).max(1);
        check.fall = self.fall.unwrap_or(check.fall).max(1);
        check
    }
}

/// An upstream group as declared (compile-time data).
#[derive(Debug, Clone, Copy)]
pub struct UpstreamSpec {
    /// The struct name (`Api`).
    pub name: &'static str,
    /// Declared addresses (`ip:port`, `host:port`, `unix:/path`).
    pub addrs: &'static [&'static str],
    /// Their weights (same order; empty: all 1).
    pub weights: &'static [u32],
    /// Selection policy.
    pub lb: LbPolicy,
    /// Connect timeout, if declared.
    pub connect_timeout: Option<Duration>,
    /// Read timeout, if declared.
    pub read_timeout: Option<Duration>,
    /// Write timeout, if declared.
    pub write_timeout: Option<Duration>,
    /// Pool idle timeout, if declared.
    pub idle_timeout: Option<Duration>,
    /// Retries for routes to this group, if declared.
    pub retries: Option<u32>,
    /// Speak TLS to it.
    pub tls: bool,
    /// TLS server name.
    pub sni: Option<&'static str>,
    /// Speak HTTP/2 (prior knowledge in cleartext, ALPN `h2` over TLS).
    pub h2: bool,
    /// The protocols offered by ALPN to a TLS group (overrides `h2`).
    pub alpn: Option<crate::protocols::tls::Alpn>,
    /// Active health check.
    pub health: Option<HealthSpec>,
    /// Passive health check.
    pub passive: Option<PassiveSpec>,
    /// How often host names are resolved again (default: every 30 s).
    pub resolve_every: Option<Duration>,
}

/// How often an upstream's host names are resolved again when not declared.
pub const DEFAULT_RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// Starts a discovery task for a group's balancer.
struct DiscoveryStarter(Box<StartDiscovery>);

type StartDiscovery = dyn FnOnce(&Arc<LoadBalancer>, &'static str) + Send;

impl std::fmt::Debug for DiscoveryStarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiscoveryStarter")
    }
}

/// A live upstream group: its backends and the options of their peers.
#[derive(Debug)]
pub struct UpstreamGroup {
    /// The declared name.
    pub name: &'static str,
    balancer: Arc<LoadBalancer>,
    lb: LbPolicy,
    health: Option<HealthCheck>,
    /// Starts the discovery task (re-resolving host names, or a user's source), until
    /// the background tasks start.
    discovery: std::sync::Mutex<Option<DiscoveryStarter>>,
    tasks_started: AtomicBool,
    options: PeerOptions,
    tls: bool,
    sni: String,
    /// Retries for routes to this group.
    pub retries: Option<u32>,
    /// A custom transport carrying the group's requests (see
    /// [`crate::protocols::custom`]).
    transport: Option<Arc<dyn crate::protocols::custom::CustomTransport>>,
}

/// A declared `transport = <expr>`, as the group keeps it; the bound is the
/// compile-time check that the expression is a transport.
pub fn transport_of<T: crate::protocols::custom::CustomTransport>(
    transport: T,
) -> Arc<dyn crate::protocols::custom::CustomTransport> {
    Arc::new(transport)
}

/// Resolve one address string (at start-up: `host:port` may block on DNS).
pub fn resolve_address(addr: &str) -> Result<Vec<SocketAddress>> {
    if let Some(path) = addr.strip_prefix("unix:") {
        return Ok(vec![SocketAddress::Unix(path.into())]);
    }
    let resolved: Vec<SocketAddress> = addr
        .to_socket_addrs()
        .map_err(|e| {
            Error::because(
                ErrorKind::Config,
                ErrorSource::Internal,
                format!("cannot resolve upstream address {addr:?}"),
                e,
            )
        })?
        .map(SocketAddress::Inet)
        .collect();
    if resolved.is_empty() {
        return Err(Error::explain(
            ErrorKind::Config,
            ErrorSource::Internal,
            format!("upstream address {addr:?} resolves to nothing"),
        ));
    }
    Ok(resolved)
}

/// The host name every address of a group names (`api.internal` for
/// `["api.internal:443"]`), when they all name the same one: the group's default TLS
/// server name. `None` for IP addresses, Unix sockets, or several names.
fn common_host_name(list: &[String]) -> Option<String> {
    let mut name: Option<String> = None;
    for a in list {
        let (host, _) = a.rsplit_once(':')?;
        if a.starts_with("unix:")
            || host.starts_with('[')
            || host.parse::<std::net::IpAddr>().is_ok()
        {
            return None;
        }
        let host = host.to_ascii_lowercase();
        match &name {
            None => name = Some(host),
            Some(n) if *n == host => {}
            Some(_) => return None,
        }
    }
    name
}

impl UpstreamGroup {
    /// Build a group from its declaration, with `addrs` replacing the declared
    /// addresses when given. Every host name is resolved now (all its addresses become
    /// backends).
    pub fn build(spec: &UpstreamSpec, addrs: Option<&[String]>) -> Result<Self> {
        Self::build_with(spec, addrs, None)
    }

    /// [`UpstreamGroup::build`], with settings replacing the declared ones.
    pub fn build_with(
        spec: &UpstreamSpec,
        addrs: Option<&[String]>,
        overrides: Option<&super::config::UpstreamOptions>,
    ) -> Result<Self> {
        let declared: Vec<String> = spec.addrs.iter().map(|s| s.to_string()).collect();
        let list = addrs.unwrap_or(&declared);
        if list.is_empty() {
            return Err(Error::explain(
                ErrorKind::Config,
                ErrorSource::Internal,
                format!("upstream {} has no address", spec.name),
            ));
        }
        let mut backends = Vec::new();
        let mut weighted = Vec::new();
        for (i, a) in list.iter().enumerate() {
            // Declared weights go with declared addresses; overrides weigh 1 each.
            let weight = if addrs.is_none() {
                spec.weights.get(i).copied().unwrap_or(1)
            } else {
                1
            };
            weighted.push((a.as_str(), weight));
            for address in
                resolve_address(a).map_err(|e| e.more_context(format!("upstream {}", spec.name)))?
            {
                backends.push(Backend { address, weight });
            }
        }
        let policy = match spec.lb {
            LbPolicy::RoundRobin => Policy::RoundRobin,
            LbPolicy::WeightedRoundRobin => Policy::WeightedRoundRobin,
            LbPolicy::Random => Policy::Random,
            LbPolicy::LeastLoaded => Policy::LeastLoaded,
            LbPolicy::LeastConnections => Policy::LeastConnections,
            LbPolicy::Consistent { points, .. } => Policy::Consistent { points },
        };
        let discovery = DnsDiscovery::new(weighted)
            .map_err(|e| e.more_context(format!("upstream {}", spec.name)))?;
        let every = spec.resolve_every.unwrap_or(DEFAULT_RESOLVE_EVERY);
        let discovery = discovery.has_names().then(|| {
            DiscoveryStarter(Box::new(
                move |lb: &Arc<LoadBalancer>, name: &'static str| {
                    spawn_discovery(lb, discovery, every, name);
                },
            ))
        });
        let mut balancer = LoadBalancer::new(backends, policy)
            .map_err(|e| e.more_context(format!("upstream {}", spec.name)))?;
        if let Some(p) = spec.passive {
            balancer = balancer.with_ejection(Ejection {
                failures: p.failures,
                duration: p.eject,
            });
        }
        let balancer = Arc::new(balancer);
        let mut options = PeerOptions::default();
        if let Some(d) = spec.connect_timeout {
            options.connect_timeout = d;
        }
        if let Some(d) = spec.read_timeout {
            options.read_timeout = d;
        }
        if let Some(d) = spec.write_timeout {
            options.write_timeout = d;
        }
        if let Some(d) = spec.idle_timeout {
            options.idle_timeout = d;
        }
        let mut tls = spec.tls;
        // Without a declared `sni`, a group addressed by one host name presents and
        // verifies that name (its backends are the name's resolved IPs).
        let mut sni = spec
            .sni
            .map(str::to_string)
            .or_else(|| common_host_name(list))
            .unwrap_or_default();
        options.h2 = spec.h2;
        if spec.h2 && tls {
            options.alpn = crate::protocols::tls::Alpn::H2;
        }
        if let Some(alpn) = spec.alpn {
            options.alpn = alpn;
            options.h2 = alpn != crate::protocols::tls::Alpn::H1;
        }
        if let Some(t) = overrides {
            options.connect_timeout = t.connect.unwrap_or(options.connect_timeout);
            options.read_timeout = t.read.unwrap_or(options.read_timeout);
            options.write_timeout = t.write.unwrap_or(options.write_timeout);
            options.idle_timeout = t.idle.unwrap_or(options.idle_timeout);
            tls = t.tls.unwrap_or(tls);
            if let Some(s) = &t.sni {
                sni = s.clone();
            }
            if let Some(v) = t.verify {
                options.verify_cert = v;
                options.verify_hostname = v;
            }
            if t.ca_file.is_some() {
                options.ca_file = t.ca_file.clone();
            }
            if let Some(h2) = t.h2 {
                options.h2 = h2;
                options.alpn = if h2 && tls {
                    crate::protocols::tls::Alpn::H2
                } else {
                    crate::protocols::tls::Alpn::H1
                };
            }
        }
        let health = spec.health.map(|h| {
            let mut check = h.check();
            if tls {
                check.tls = Some(TlsProbe {
                    sni: sni.clone(),
                    settings: UpstreamTls {
                        verify_cert: options.verify_cert,
                        verify_hostname: options.verify_hostname,
                        ca_file: options.ca_file.clone(),
                        client_cert: options.client_cert.clone(),
                        alpn: options.alpn,
                    },
                });
            }
            check
        });
        Ok(UpstreamGroup {
            name: spec.name,
            balancer,
            lb: spec.lb,
            health,
            discovery: std::sync::Mutex::new(discovery),
            tasks_started: AtomicBool::new(false),
            transport: None,
            options,
            tls,
            sni,
            retries: spec.retries,
        })
    }

    /// Start the declared health checks and the re-resolution of host names (once;
    /// needs a tokio runtime). Selecting a peer starts them too, so they run from a
    /// group's first request at the latest.
    pub fn start_background_tasks(&self) {
        if tokio::runtime::Handle::try_current().is_err()
            || self.tasks_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        if let Some(check) = &self.health {
            tokio::spawn(run_health_checks(
                self.balancer.clone(),
                check.clone(),
                self.name.to_string(),
            ));
        }
        let discovery = self
            .discovery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(start) = discovery {
            (start.0)(&self.balancer, self.name);
        }
    }

    /// Take the group's backends from a user-provided [`Discovery`] source, asked
    /// every `every`, instead of re-resolving the declared host names. The source is
    /// first asked after `every`; the declared addresses serve until then. Starts with
    /// the group's other background tasks (at once if they already run).
    pub fn discover_with<D: Discovery>(&self, source: D, every: Duration) {
        let start = DiscoveryStarter(Box::new(move |lb, name| {
            spawn_discovery(lb, source, every, name);
        }));
        if self.tasks_started.load(Ordering::Acquire) {
            (start.0)(&self.balancer, self.name);
        } else {
            *self.discovery.lock().unwrap_or_else(|p| p.into_inner()) = Some(start);
        }
    }

    /// Carry this group's requests over `transport` instead of HTTP/1 or HTTP/2 on a
    /// socket (the DSL's `transport = ...`).
    pub fn set_transport(&mut self, transport: Arc<dyn crate::protocols::custom::CustomTransport>) {
        self.transport = Some(transport);
    }

    /// The live balancer (for tools and tests).
    pub fn balancer(&self) -> &Arc<LoadBalancer> {
        &self.balancer
    }

    /// Whether backend `i` is up (always, without health checks).
    pub fn is_healthy(&self, i: usize) -> bool {
        self.balancer.is_healthy(i)
    }

    /// The peer for the next attempt (no hash key, no exclusions).
    pub fn select(&self) -> Result<HttpPeer> {
        self.pick(None, &[]).map(|(peer, _, _)| peer)
    }

    /// The peer for an attempt of `session`'s request, avoiding backends in `tried`:
    /// the peer, the backend's index (for [`UpstreamGroup::report`]), and the guard
    /// that counts the request as in flight.
    pub fn pick(
        &self,
        session: Option<&crate::session::Session>,
        tried: &[usize],
    ) -> Result<(HttpPeer, usize, InFlight)> {
        if !self.tasks_started.load(Ordering::Relaxed) {
            self.start_background_tasks();
        }
        let key = match (&self.lb, session) {
            (LbPolicy::Consistent { key, .. }, Some(s)) => Some(key.of(s)),
            _ => None,
        };
        let pick = self.balancer.pick(key.as_deref(), tried).ok_or_else(|| {
            Error::explain(
                ErrorKind::NoUpstream,
                ErrorSource::Internal,
                format!("upstream {} has no backend", self.name),
            )
        })?;
        let peer = HttpPeer {
            address: pick.backend.address.clone(),
            tls: self.tls,
            sni: self.sni.clone(),
            options: self.options.clone(),
            transport: self.transport.clone(),
        };
        Ok((peer, pick.index, pick.guard))
    }

    /// Report how the attempt that made `pick` went (passive health).
    pub fn report(&self, pick: &CurrentPick, success: bool) {
        if self.balancer.report_pick(&pick.guard, success) {
            tracing::warn!(
                upstream = self.name,
                backend = %pick.guard.address(),
                "backend ejected after consecutive failures"
            );
        }
    }

    /// The backends' addresses.
    pub fn addresses(&self) -> Vec<String> {
        self.balancer
            .backends()
            .iter()
            .map(|b| b.address.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_addressed_by_one_host_name_uses_it_for_sni() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            common_host_name(&list(&["Api.Internal:443", "api.internal:8443"])).as_deref(),
            Some("api.internal")
        );
        assert_eq!(
            common_host_name(&list(&["a.internal:443", "b.internal:443"])),
            None
        );
        assert_eq!(common_host_name(&list(&["10.0.0.1:443"])), None);
        assert_eq!(common_host_name(&list(&["[::1]:443"])), None);
        assert_eq!(common_host_name(&list(&["unix:/run/a.sock"])), None);
        assert_eq!(
            common_host_name(&list(&["api.internal:443", "10.0.0.1:443"])),
            None
        );
    }

    const SPEC: UpstreamSpec = UpstreamSpec {
        name: "Api",
        addrs: &["127.0.0.1:8001", "127.0.0.1:8002"],
        weights: &[],
        lb: LbPolicy::RoundRobin,
        connect_timeout: Some(Duration::from_secs(1)),
        read_timeout: None,
        write_timeout: None,
        idle_timeout: None,
        retries: Some(2),
        tls: false,
        sni: None,
        h2: false,
        health: None,
        passive: None,
        resolve_every: None,
        alpn: None,
    };

    #[test]
    fn builds_and_overrides() {
        let g = UpstreamGroup::build(&SPEC, None).unwrap();
        assert_eq!(g.addresses(), ["127.0.0.1:8001", "127.0.0.1:8002"]);
        let p = g.select().unwrap();
        assert_eq!(p.options.connect_timeout, Duration::from_secs(1));
        let g = UpstreamGroup::build(&SPEC, Some(&["127.0.0.1:9000".to_string()])).unwrap();
        assert_eq!(g.addresses(), ["127.0.0.1:9000"]);
        let g = UpstreamGroup::build(&SPEC, Some(&["localhost:9000".to_string()])).unwrap();
        assert!(!g.addresses().is_empty());
        assert!(UpstreamGroup::build(&SPEC, Some(&[])).is_err());
    }
}
