//! The upstream side: peers, connecting, pooling, choosing among backends, health
//! checks, and discovering backends.

pub mod connector;
pub mod discovery;
pub mod health;
pub mod lb;
pub mod peer;
pub mod pool;

pub use connector::{Connector, UpstreamConn};
pub use discovery::{Discovered, Discovery, DnsDiscovery, Resolve, Resolved, StaticBackends};
pub use health::{HealthCheck, HealthProbe, TlsProbe};
pub use lb::{Backend, Ejection, InFlight, LoadBalancer, Pick, Policy, SetChange};
pub use peer::{HttpPeer, PeerOptions, ToPeerAddress};
pub use pool::{ConnectionPool, PoolOptions};
