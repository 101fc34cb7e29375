//! The upstream side: peers, connecting, pooling, and choosing among backends.

pub mod connector;
pub mod lb;
pub mod peer;
pub mod pool;

pub use connector::Connector;
pub use lb::{Backend, LoadBalancer};
pub use peer::{HttpPeer, PeerOptions, ToPeerAddress};
pub use pool::{ConnectionPool, PoolOptions};
