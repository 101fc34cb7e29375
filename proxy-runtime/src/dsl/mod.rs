//! Runtime support for proxies declared with the `#[proxy]` DSL (see `docs/src/dsl.md`).
//!
//! The compiler (`proxy-macros`) turns a declaration into a [`ProxyHttp`](crate::ProxyHttp)
//! implementation that calls into this module: [`routing`] for the compiled route
//! matcher, [`upstreams`] for the declared upstream groups, [`limits`] for rate limits, [`response`] for local
//! responses and phase outcomes, [`config`] and [`app`] for the binary around it, and
//! [`args`] for the compile-time argument checks. Everything here is also usable by
//! hand.

pub mod app;
pub mod args;
pub mod cache_policy;
pub mod config;
pub mod limits;
pub mod response;
pub mod routing;
pub mod upstreams;

pub use app::AppSpec;
pub use cache_policy::CachePolicy;
pub use config::{ProxyConfig, UpstreamOptions};
pub use limits::{LimitBy, RouteLimitSpec};
pub use response::{Flow, IntoDecision, IntoDelay, IntoFlow, IntoUnitResult, Response, apply_flow};
pub use routing::{RouteInfo, RouteTable, RouteTarget};
pub use upstreams::{
    CurrentPick, HashKey, HealthSpec, LbPolicy, PassiveSpec, TriedBackends, UpstreamGroup,
    UpstreamSpec,
};
