//! The validated model of a `#[proxy]` declaration: what `parse` builds from the
//! module's items, what `check` verifies across items, and what `expand` generates
//! code from. Spans are kept for every part an error may need to point at.

use std::time::Duration;

use proc_macro2::Span;
use proxy_syntax::pattern::Pattern;
use syn::{Ident, LitStr};

use crate::ctxt::SpanRange;
use crate::phases::Phase;

/// The whole declaration.
pub struct ProxyDecl {
    /// Path of the runtime crate (`::proxy_runtime` unless `crate = "..."`).
    pub krate: syn::Path,
    /// The proxy's name.
    pub name: String,
    /// Listen addresses.
    pub listen: Vec<String>,
    /// TLS listeners.
    pub tls_listen: Vec<TlsListen>,
    /// Worker threads.
    pub threads: Option<usize>,
    /// Shutdown grace period.
    pub grace_period: Option<Duration>,
    /// Normalize request paths before routing (and forward the normalized path).
    pub normalize: bool,
    /// The `#[ctx]` struct.
    pub ctx: Option<Ident>,
    /// Upstream groups, in declaration order.
    pub upstreams: Vec<Upstream>,
    /// Routes, in declaration order.
    pub routes: Vec<Route>,
    /// Functions with a `#[route]` too broken to be a route (the error is reported):
    /// other items may still name them.
    pub unparsed_routes: Vec<Ident>,
    /// Phase functions, in declaration order.
    pub phases: Vec<PhaseFn>,
}

/// `tls("0.0.0.0:443", cert = ..., key = ...)` in `listen`.
pub struct TlsListen {
    pub addr: String,
    /// (certificate, key) PEM paths; the first is the default.
    pub certs: Vec<(String, String)>,
    pub client_ca: Option<String>,
    pub client_auth_required: bool,
}

/// `#[upstream(...)] struct Name;`
pub struct Upstream {
    pub ident: Ident,
    pub addrs: Vec<String>,
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub tls: bool,
    pub sni: Option<String>,
    pub h2: bool,
    pub health: Option<Health>,
    /// Weights of `addrs`, in order.
    pub weights: Vec<u32>,
    pub lb: Lb,
    pub passive: Option<Passive>,
    /// How often host names are resolved again.
    pub resolve_every: Option<Duration>,
    /// `h1`, `h2` or `h2_or_h1` (TLS groups).
    pub alpn: Option<String>,
    /// `transport = <expr>`: a value implementing `CustomTransport`.
    pub transport: Option<syn::Expr>,
}

/// A load-balancing policy.
pub enum Lb {
    RoundRobin,
    WeightedRoundRobin,
    Random,
    LeastLoaded,
    LeastConnections,
    Consistent { key: HashKeyDecl, points: u32 },
}

/// What consistent hashing hashes.
pub enum HashKeyDecl {
    Header(String),
    Cookie(String),
    ClientAddr,
    Path,
    Uri,
}

/// `passive(failures = .., eject = ..)`.
pub struct Passive {
    pub failures: u32,
    pub eject: Duration,
}

/// `health = tcp(...)` or `health = http(...)` on an upstream.
pub struct Health {
    /// `Some(path)` for HTTP probes.
    pub http_path: Option<String>,
    pub host: Option<String>,
    pub expect: Option<u16>,
    /// Text the probe's response body must contain.
    pub body: Option<String>,
    pub every: Duration,
    pub timeout: Option<Duration>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
}

/// A host a route is limited to.
#[derive(Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `api.example.com` (lower case).
    Exact(String),
    /// `*.example.com`, stored as `.example.com`.
    Wildcard(String),
}

impl HostPattern {
    /// As written.
    pub fn display(&self) -> String {
        match self {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Wildcard(s) => format!("*{s}"),
        }
    }
}

/// What a route does besides (or instead of) its handler.
pub enum Action {
    /// Forward to an upstream.
    Forward(Ident),
    /// Redirect with this status to a location template.
    Redirect(u16, LitStr),
    /// Answer with a status, body and content type.
    Respond(u16, String, String),
    /// Only the handler answers.
    HandlerOnly,
    /// `to`, `redirect` or `respond` was given with a bad value (already reported).
    Invalid,
}

/// How a handler's return type lets the request go on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// `()` or `Result<()>`: always forwards.
    Forwards,
    /// `Response` or `Result<Response>`: always answers.
    Answers,
    /// `Flow`, `Option<Response>`, `bool` or `Result` of those: either.
    Either,
}

/// One function argument, as the DSL understands it.
pub struct Arg {
    pub name: Option<Ident>,
    pub ty: syn::Type,
    pub kind: ArgKind,
}

/// What an argument asks for (recognized by how its type is written).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ArgKind {
    Session {
        mutable: bool,
    },
    RequestHeader {
        mutable: bool,
    },
    ResponseHeader {
        mutable: bool,
    },
    Ctx {
        mutable: bool,
    },
    Route,
    OptionRoute,
    Body,
    EndOfStream,
    Reused,
    Peer,
    ErrorRef,
    OptionErrorRef,
    ErrorBox,
    Trailers,
    Modules,
    /// A route parameter (name only known to match later).
    Param,
    Unknown,
}

/// The identifier of a route parameter: raw (`r#ref`) when the name is a keyword.
pub fn param_ident(name: &str) -> Ident {
    let span = proc_macro2::Span::call_site();
    if syn::parse_str::<Ident>(name).is_ok() {
        Ident::new(name, span)
    } else {
        Ident::new_raw(name, span)
    }
}

/// A route's name, as `Route::name()`, `ROUTES` and log lines show it: its function's
/// name without `r#`.
pub fn route_name(r: &Route) -> String {
    use syn::ext::IdentExt;
    r.func.ident.unraw().to_string()
}

/// The local a route parameter is bound to in the generated handler call: prefixed, so
/// a parameter named like one of the generated locals (`session`, `ctx`) cannot shadow
/// it.
pub fn param_local(name: &str) -> Ident {
    let name = name.strip_prefix("r#").unwrap_or(name);
    quote::format_ident!("__p_{}", name)
}

/// The route parameter an argument called `name` receives: the same name, or the name
/// without one leading `_` (for parameters a handler declares but does not use).
pub fn param_for(name: &str, params: &[&str]) -> Option<String> {
    let name = name.strip_prefix("r#").unwrap_or(name);
    if params.contains(&name) {
        return Some(name.to_string());
    }
    name.strip_prefix('_')
        .filter(|n| params.contains(n))
        .map(str::to_string)
}

/// A function the compiler calls: a route handler or a phase function.
pub struct Func {
    pub ident: Ident,
    pub is_async: bool,
    /// Where `async` is written, if it is.
    pub async_span: Option<Span>,
    pub args: Vec<Arg>,
    pub outcome: Outcome,
    /// The declared return type (`None` for `()`).
    pub output: Option<syn::Type>,
    /// `fn name() {}`: nothing to call (routes that only forward or answer).
    pub trivial: bool,
}

/// Header changes declared on a route.
#[derive(Default)]
pub struct HeaderOps {
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
}

/// `#[route(...)] fn name(...)`.
pub struct Route {
    pub func: Func,
    pub attr_range: SpanRange,
    /// Whether the `#[route]` attribute parsed without errors: rules across routes
    /// (collisions, parameter names) only look at complete routes.
    pub complete: bool,
    pub methods: u16,
    pub method_names: Vec<String>,
    pub methods_range: SpanRange,
    pub host: Option<(HostPattern, Span)>,
    pub pattern: Pattern,
    pub pattern_lit: LitStr,
    pub action: Action,
    pub action_span: Span,
    pub retries: Option<u32>,
    pub timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub strip_prefix: Option<String>,
    pub rewrite: Option<LitStr>,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    pub on_param_error: u16,
    pub cache: Option<CachePolicy>,
    pub rate_limit: Option<RateLimitDecl>,
}

/// What a route's rate limit counts requests by.
pub enum LimitByDecl {
    ClientAddr,
    /// A header name (lower case).
    Header(String),
    Route,
}

/// `rate_limit = "100/s", burst = 20, concurrency = 10, by = header("x-api-key")`.
pub struct RateLimitDecl {
    pub count: u32,
    pub per: Duration,
    pub burst: Option<u32>,
    pub concurrency: Option<u32>,
    pub by: LimitByDecl,
}

/// A request part named in a cache policy.
pub enum RequestPart {
    Header(String),
    Cookie(String),
    Query(String),
}

/// `#[cache(...)]` on a route.
pub struct CachePolicy {
    pub range: SpanRange,
    pub ttl: Option<Duration>,
    pub stale_while_revalidate: Option<Duration>,
    pub stale_if_error: Option<Duration>,
    pub vary: Vec<String>,
    pub key: Vec<RequestPart>,
    pub bypass: Vec<RequestPart>,
    pub max_size: Option<u64>,
    pub lock_timeout: Option<Duration>,
}

/// `#[phase(name, routes = [...])] fn ...`.
pub struct PhaseFn {
    pub phase: Phase,
    pub phase_span: Span,
    pub func: Func,
    pub routes: Vec<Ident>,
}
