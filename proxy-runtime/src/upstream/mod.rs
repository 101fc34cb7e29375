//! The upstream side: peers, connecting, pooling, choosing among backends, and health
//! checks.

pub mod connector;
pub mod health;
pub mod lb;
pub mod peer;
pub mod pool;

pub use connector::{Connector, UpstreamConn};
pub use health::{HealthCheck, HealthProbe};
pub use lb::{Backend, Ejection, InFlight, LoadBalancer, Pick, Policy};
pub use peer::{HttpPeer, PeerOptions, ToPeerAddress};
pub use pool::{ConnectionPool, PoolOptions};
