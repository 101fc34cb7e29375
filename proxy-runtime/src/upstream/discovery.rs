//! Where a group's backends come from, and keeping them current.
//!
//! A [`Discovery`] source answers "which backends now?"; [`run_discovery`] asks it on an
//! interval and swaps the answer into the group's [`LoadBalancer`]. Backends that stay
//! keep their health state, requests in flight keep the backend they chose, and a
//! source that fails or answers with nothing leaves the last good set in place.
//!
//! Sources provided here:
//! - [`StaticBackends`]: a fixed list;
//! - [`DnsDiscovery`]: `host:port` names re-resolved every interval (every A and AAAA
//!   record becomes a backend), through a [`Resolve`] implementation: the system's
//!   resolver by default ([`SystemResolver`]: `getaddrinfo`, which does not report
//!   TTLs), or one that does — the refresh then follows the shortest TTL, never slower
//!   than the interval and never faster than once a second.
//!
//! Users plug their own source (a service registry, a file, an API) by implementing
//! [`Discovery`].

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::protocols::SocketAddress;

use super::{Backend, LoadBalancer};

/// The backends a source currently knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// The backends.
    pub backends: Vec<Backend>,
    /// How long this answer stays valid (a DNS TTL), if the source knows.
    pub valid_for: Option<Duration>,
}

/// A source of backends, asked again on every refresh.
pub trait Discovery: Send + Sync + 'static {
    /// The current backends. An error or an empty list keeps the previous set.
    fn discover(&self) -> impl Future<Output = Result<Discovered>> + Send;
}

/// A fixed list of backends.
#[derive(Debug, Clone)]
pub struct StaticBackends(pub Vec<Backend>);

impl Discovery for StaticBackends {
    async fn discover(&self) -> Result<Discovered> {
        Ok(Discovered {
            backends: self.0.clone(),
            valid_for: None,
        })
    }
}

/// The addresses a name resolved to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Every address (A and AAAA).
    pub addrs: Vec<IpAddr>,
    /// The records' time to live, when the resolver reports it.
    pub ttl: Option<Duration>,
}

/// Turns a host name into addresses.
pub trait Resolve: Send + Sync + 'static {
    /// Resolve `host`.
    fn resolve(&self, host: &str) -> impl Future<Output = std::io::Result<Resolved>> + Send;
}

/// The operating system's resolver (`getaddrinfo`, through tokio's blocking pool):
/// honours `/etc/hosts` and `/etc/resolv.conf`; reports no TTL.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str) -> std::io::Result<Resolved> {
        let mut addrs: Vec<IpAddr> = tokio::net::lookup_host((host, 0))
            .await?
            .map(|a| a.ip())
            .collect();
        // getaddrinfo repeats an address once per socket type.
        let mut seen = Vec::with_capacity(addrs.len());
        addrs.retain(|a| {
            let new = !seen.contains(a);
            seen.push(*a);
            new
        });
        Ok(Resolved { addrs, ttl: None })
    }
}

/// One entry of a DNS-discovered group.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// An IP address or Unix path: always this backend.
    Fixed(Backend),
    /// A name: every address it resolves to, on this port, with this weight.
    Name {
        host: String,
        port: u16,
        weight: u32,
    },
}

/// Backends from a list of `host:port` names (and fixed addresses), re-resolved on
/// every refresh. A name that fails to resolve keeps the addresses it had.
#[derive(Debug)]
pub struct DnsDiscovery<R = SystemResolver> {
    entries: Vec<Entry>,
    resolver: R,
    last_known: Mutex<HashMap<String, Vec<IpAddr>>>,
}

impl DnsDiscovery<SystemResolver> {
    /// Discovery over `addrs` (`"host:port"`, `"ip:port"`, `"unix:/path"`) with
    /// their weights, through the system resolver.
    pub fn new<'a>(addrs: impl IntoIterator<Item = (&'a str, u32)>) -> Result<Self> {
        Self::with_resolver(addrs, SystemResolver)
    }
}

impl<R: Resolve> DnsDiscovery<R> {
    /// Discovery over `addrs` through `resolver`.
    pub fn with_resolver<'a>(
        addrs: impl IntoIterator<Item = (&'a str, u32)>,
        resolver: R,
    ) -> Result<Self> {
        let mut entries = Vec::new();
        for (addr, weight) in addrs {
            entries.push(parse_entry(addr, weight)?);
        }
        Ok(DnsDiscovery {
            entries,
            resolver,
            last_known: Mutex::new(HashMap::new()),
        })
    }

    /// Whether any entry is a name (if not, there is nothing to re-resolve).
    pub fn has_names(&self) -> bool {
        self.entries.iter().any(|e| matches!(e, Entry::Name { .. }))
    }
}

fn parse_entry(addr: &str, weight: u32) -> Result<Entry> {
    if let Some(path) = addr.strip_prefix("unix:") {
        return Ok(Entry::Fixed(Backend {
            address: SocketAddress::Unix(path.into()),
            weight,
        }));
    }
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(Entry::Fixed(Backend {
            address: SocketAddress::Inet(a),
            weight,
        }));
    }
    let bad = || {
        Error::explain(
            ErrorKind::Config,
            ErrorSource::Internal,
            format!("upstream address {addr:?} is not host:port, ip:port or unix:/path"),
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Entry::Name {
        host: host.to_string(),
        port,
        weight,
    })
}

impl<R: Resolve> Discovery for DnsDiscovery<R> {
    async fn discover(&self) -> Result<Discovered> {
        let mut backends = Vec::new();
        let mut ttl: Option<Duration> = None;
        for entry in &self.entries {
            let (host, port, weight) = match entry {
                Entry::Fixed(b) => {
                    backends.push(b.clone());
                    continue;
                }
                Entry::Name { host, port, weight } => (host, *port, *weight),
            };
            let addrs = match self.resolver.resolve(host).await {
                Ok(r) if !r.addrs.is_empty() => {
                    ttl = match (ttl, r.ttl) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    self.remember(host, &r.addrs);
                    r.addrs
                }
                Ok(_) => {
                    tracing::warn!(name = %host, "DNS name resolves to nothing: keeping its last addresses");
                    self.recall(host)
                }
                Err(e) => {
                    tracing::warn!(name = %host, "cannot resolve: {e}: keeping its last addresses");
                    self.recall(host)
                }
            };
            for ip in addrs {
                backends.push(Backend {
                    address: SocketAddress::Inet(SocketAddr::new(ip, port)),
                    weight,
                });
            }
        }
        Ok(Discovered {
            backends,
            valid_for: ttl,
        })
    }
}

impl<R> DnsDiscovery<R> {
    fn remember(&self, host: &str, addrs: &[IpAddr]) {
        let mut known = self.last_known.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(host.to_string(), addrs.to_vec());
    }

    fn recall(&self, host: &str) -> Vec<IpAddr> {
        let known = self.last_known.lock().unwrap_or_else(|p| p.into_inner());
        known.get(host).cloned().unwrap_or_default()
    }
}

/// Refreshes happen at most this often, whatever a TTL says.
const MIN_REFRESH: Duration = Duration::from_secs(1);

/// Ask `source` for backends every `every` (sooner when its answer says so) and apply
/// the answer to `lb`, until `lb` is dropped everywhere else. `group` names it in logs.
pub async fn run_discovery<D: Discovery>(
    lb: Weak<LoadBalancer>,
    source: D,
    every: Duration,
    group: String,
) {
    let mut next = every;
    loop {
        tokio::time::sleep(next).await;
        next = every;
        let discovered = source.discover().await;
        let Some(lb) = lb.upgrade() else {
            return; // nobody selects from this group any more
        };
        match discovered {
            Ok(d) if d.backends.is_empty() => {
                tracing::warn!(upstream = %group, "discovery found no backend: keeping the current ones");
            }
            Ok(d) => {
                if let Some(ttl) = d.valid_for {
                    next = ttl.clamp(MIN_REFRESH, every.max(MIN_REFRESH));
                }
                match lb.update(d.backends) {
                    Ok(change) => {
                        for a in &change.added {
                            tracing::info!(upstream = %group, backend = %a, "backend added");
                        }
                        for a in &change.removed {
                            tracing::info!(upstream = %group, backend = %a, "backend removed");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(upstream = %group, "discovered backends refused: {e}");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(upstream = %group, "discovery failed: {e}: keeping the current backends");
            }
        }
    }
}

/// Start [`run_discovery`] for `lb` on the current tokio runtime.
pub fn spawn_discovery<D: Discovery>(
    lb: &Arc<LoadBalancer>,
    source: D,
    every: Duration,
    group: impl Into<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run_discovery(
        Arc::downgrade(lb),
        source,
        every,
        group.into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resolver answering from a table the test edits.
    #[derive(Default, Clone)]
    struct Table(Arc<Mutex<HashMap<String, Resolved>>>);

    impl Resolve for Table {
        async fn resolve(&self, host: &str) -> std::io::Result<Resolved> {
            self.0
                .lock()
                .unwrap()
                .get(host)
                .cloned()
                .ok_or_else(|| std::io::Error::other("NXDOMAIN"))
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn names_expand_to_every_address_and_keep_the_last_on_failure() {
        let table = Table::default();
        table.0.lock().unwrap().insert(
            "api.test".into(),
            Resolved {
                addrs: vec![ip("10.0.0.1"), ip("::1")],
                ttl: Some(Duration::from_secs(5)),
            },
        );
        let d = DnsDiscovery::with_resolver(
            [("api.test:8080", 2), ("10.9.9.9:80", 1), ("unix:/run/s", 1)],
            table.clone(),
        )
        .unwrap();
        assert!(d.has_names());
        let found = d.discover().await.unwrap();
        let addrs: Vec<String> = found
            .backends
            .iter()
            .map(|b| b.address.to_string())
            .collect();
        assert_eq!(
            addrs,
            ["10.0.0.1:8080", "[::1]:8080", "10.9.9.9:80", "unix:/run/s"]
        );
        assert_eq!(found.backends[0].weight, 2);
        assert_eq!(found.valid_for, Some(Duration::from_secs(5)));
        table.0.lock().unwrap().clear();
        let again = d.discover().await.unwrap();
        assert_eq!(
            again.backends, found.backends,
            "a failed lookup keeps the last"
        );
    }

    #[test]
    fn bad_addresses_are_refused() {
        assert!(DnsDiscovery::new([("no-port", 1)]).is_err());
        assert!(DnsDiscovery::new([(":80", 1)]).is_err());
        assert!(DnsDiscovery::new([("host:99999", 1)]).is_err());
        assert!(!DnsDiscovery::new([("10.0.0.1:80", 1)]).unwrap().has_names());
    }

    #[tokio::test]
    async fn run_discovery_swaps_backends_and_keeps_state_of_those_that_stay() {
        let table = Table::default();
        let set = |ips: &[&str]| {
            table.0.lock().unwrap().insert(
                "app.test".into(),
                Resolved {
                    addrs: ips.iter().map(|s| ip(s)).collect(),
                    ttl: None,
                },
            );
        };
        set(&["10.0.0.1", "10.0.0.2"]);
        let source = DnsDiscovery::with_resolver([("app.test:80", 1)], table.clone()).unwrap();
        let first = source.discover().await.unwrap();
        let lb =
            Arc::new(LoadBalancer::new(first.backends, super::super::Policy::RoundRobin).unwrap());
        lb.set_healthy(1, false); // 10.0.0.2 is down
        let held = lb.pick(None, &[1]).unwrap(); // a request in flight on 10.0.0.1
        assert_eq!(held.backend.address.to_string(), "10.0.0.1:80");
        let task = spawn_discovery(&lb, source, Duration::from_millis(10), "app");
        set(&["10.0.0.2", "10.0.0.3"]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while lb.backends().len() != 2 || lb.backends()[0].address.to_string() != "10.0.0.2:80" {
            assert!(tokio::time::Instant::now() < deadline, "never re-resolved");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // 10.0.0.2 stayed: still down. 10.0.0.3 is new: up.
        assert!(!lb.is_healthy(0));
        assert!(lb.is_healthy(1));
        // The request in flight on the removed backend still holds it and can report.
        assert!(!lb.report_pick(&held.guard, true));
        drop(held);
        drop(lb);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task ends once the group is gone")
            .unwrap();
    }
}
