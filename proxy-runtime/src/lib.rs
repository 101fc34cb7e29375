//! `proxy-runtime`: a reverse proxy engine in the mould of Cloudflare's Pingora.
//!
//! A proxy is a type implementing [`ProxyHttp`] — its phases are called in one fixed
//! order for every request (see [`proxy_trait`]) — served by an
//! [`HttpProxyService`](server::HttpProxyService) inside a [`Server`](server::Server).
//! The engine speaks HTTP/1.x to clients and origins ([`protocols::h1`]), pools and
//! reuses upstream connections ([`upstream`](mod@upstream)), retries what can safely be retried, and
//! answers every malformed request with the right status and a log line.
//!
//! ```no_run
//! use proxy_runtime::prelude::*;
//!
//! struct Origin;
//!
//! impl ProxyHttp for Origin {
//!     type CTX = ();
//!     fn new_ctx(&self) {}
//!     async fn upstream_peer(&self, _s: &mut Session, _ctx: &mut ()) -> Result<HttpPeer> {
//!         HttpPeer::new("127.0.0.1:8000", false, "")
//!     }
//! }
//!
//! let mut server = Server::new(ServerConf::default());
//! let mut service = http_proxy_service(&server.configuration, Origin);
//! service.add_tcp("127.0.0.1:8080");
//! server.add_service(service);
//! server.run_forever();
//! ```

#![forbid(unsafe_code)]

mod boxed;
pub mod cache;
pub mod dsl;
pub mod error;
pub mod http;
pub mod modules;
pub mod protocols;
pub mod proxy;
pub mod proxy_trait;
pub mod ratelimit;
pub mod server;
pub mod session;
pub mod upstream;

pub use bytes;
pub use error::{Error, ErrorKind, ErrorSource, Result, RetryType};
#[cfg(feature = "macros")]
pub use proxy_macros::{cache, ctx, phase, proxy, route, upstream};
pub use proxy_trait::{FailToProxy, ProxyHttp};
pub use session::Session;

/// Everything a proxy implementation usually needs, in one import.
pub mod prelude {
    pub use crate::dsl::{Flow, Response};
    pub use crate::error::{Error, ErrorKind, ErrorSource, Result, RetryType};
    pub use crate::http::{
        HeaderMap, HeaderName, HeaderValue, Method, RequestHeader, ResponseHeader, StatusCode, Uri,
        Version,
    };
    pub use crate::proxy_trait::{FailToProxy, ProxyHttp};
    pub use crate::server::{
        HttpProxyService, HttpProxyServiceBuilder, RuntimeLayout, Server, ServerConf,
        http_proxy_service, http_proxy_service_with_name,
    };
    pub use crate::session::Session;
    pub use crate::upstream::{HttpPeer, LoadBalancer, PeerOptions};
    pub use bytes::Bytes;
    #[cfg(feature = "macros")]
    pub use proxy_macros::{cache, ctx, phase, proxy, route, upstream};
}
