//! The phases a `#[phase(...)]` function can join: for each, the trait method the
//! compiler generates, what arguments it can inject, and how several functions of one
//! phase combine (a pipeline in declaration order).

/// A phase users can attach functions to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    EarlyRequestFilter,
    RequestFilter,
    RequestBodyFilter,
    ProxyUpstreamFilter,
    UpstreamRequestFilter,
    UpstreamResponseFilter,
    ResponseFilter,
    UpstreamResponseBodyFilter,
    ResponseBodyFilter,
    UpstreamResponseTrailerFilter,
    ResponseTrailerFilter,
    ConnectedToUpstream,
    FailToConnect,
    ErrorWhileProxy,
    FailToProxy,
    Logging,
    RequestSummary,
    SuppressErrorLog,
    InitDownstreamModules,
    RequestCacheFilter,
    CacheKeyCallback,
    CacheMiss,
    CacheHitFilter,
    ResponseCacheFilter,
    CacheVaryFilter,
    CacheNotModifiedFilter,
    RangeHeaderFilter,
    ShouldServeStale,
    IsPurge,
    PurgeResponseFilter,
}

/// How the functions of one phase combine.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Combine {
    /// Each returns `()`/`Result<()>`; the first error stops the pipeline.
    Unit,
    /// Each returns `()`; all run.
    Always,
    /// Request filters: each may answer (see `IntoFlow`), which stops the pipeline.
    Flow,
    /// Each returns `bool`/`Result<bool>`; the first `false` stops (answer: false).
    All,
    /// Each returns `bool`/`Result<bool>`; the first `true` stops (answer: true).
    Any,
    /// Each returns `bool`; any `true` wins.
    AnyPlain,
    /// Each may return a delay; the longest wins.
    Delay,
    /// Each takes the error by value and returns it (possibly changed).
    ErrorChain,
    /// Exactly one function, whose value is the phase's answer.
    Single,
}

/// What an argument can be bound to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Slot {
    SessionMut,
    SessionRef,
    RequestMut,
    RequestRef,
    ResponseMut,
    ResponseRef,
    CtxMut,
    CtxRef,
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
}

/// The definition of one phase.
pub struct PhaseDef {
    pub phase: Phase,
    pub name: &'static str,
    pub is_async: bool,
    pub combine: Combine,
    /// The marker trait in `dsl::args` used for "cannot provide" diagnostics.
    pub marker: &'static str,
    /// The generated method's parameters after `&self` (`RT` = runtime path, `CTX` = the
    /// request context type).
    pub params: &'static str,
    /// Its return type.
    pub ret: &'static str,
    /// What each slot is bound to, as an expression over the parameters.
    pub provides: &'static [(Slot, &'static str)],
    /// Whether `&mut RequestHeader` here is the client's request, inside the session
    /// (so it cannot be taken together with the session).
    pub request_in_session: bool,
}

use Slot::*;

const REQUEST_SLOTS: &[(Slot, &str)] = &[
    (SessionMut, "&mut *session"),
    (SessionRef, "&*session"),
    (RequestMut, "session.req_header_mut()"),
    (RequestRef, "session.req_header()"),
    (CtxMut, "&mut ctx.user"),
    (CtxRef, "&ctx.user"),
    (Route, "__route"),
    (OptionRoute, "ctx.route.as_ref()"),
];

const SESSION_CTX: &[(Slot, &str)] = &[
    (SessionMut, "&mut *session"),
    (SessionRef, "&*session"),
    (CtxMut, "&mut ctx.user"),
    (CtxRef, "&ctx.user"),
    (Route, "__route"),
    (OptionRoute, "ctx.route.as_ref()"),
];

const BODY_SLOTS: &[(Slot, &str)] = &[
    (SessionMut, "&mut *session"),
    (SessionRef, "&*session"),
    (Body, "&mut *body"),
    (EndOfStream, "end_of_stream"),
    (CtxMut, "&mut ctx.user"),
    (CtxRef, "&ctx.user"),
    (Route, "__route"),
    (OptionRoute, "ctx.route.as_ref()"),
];

const READ_ONLY: &[(Slot, &str)] = &[
    (SessionRef, "session"),
    (CtxRef, "&ctx.user"),
    (Route, "__route"),
    (OptionRoute, "ctx.route.as_ref()"),
];

const S: &str = "session: &mut RT::Session, ctx: &mut CTX";

/// Every phase users can attach to.
pub const PHASES: &[PhaseDef] = &[
    PhaseDef {
        phase: Phase::EarlyRequestFilter,
        name: "early_request_filter",
        is_async: true,
        combine: Combine::Unit,
        marker: "EarlyRequestFilterArg",
        params: S,
        ret: "RT::Result<()>",
        provides: REQUEST_SLOTS,
        request_in_session: true,
    },
    PhaseDef {
        phase: Phase::RequestFilter,
        name: "request_filter",
        is_async: true,
        combine: Combine::Flow,
        marker: "RequestFilterArg",
        params: S,
        ret: "RT::Result<bool>",
        provides: REQUEST_SLOTS,
        request_in_session: true,
    },
    PhaseDef {
        phase: Phase::RequestBodyFilter,
        name: "request_body_filter",
        is_async: true,
        combine: Combine::Unit,
        marker: "RequestBodyFilterArg",
        params: "session: &mut RT::Session, body: &mut Option<RT::bytes::Bytes>, end_of_stream: bool, ctx: &mut CTX",
        ret: "RT::Result<()>",
        provides: BODY_SLOTS,
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::ProxyUpstreamFilter,
        name: "proxy_upstream_filter",
        is_async: true,
        combine: Combine::All,
        marker: "ProxyUpstreamFilterArg",
        params: S,
        ret: "RT::Result<bool>",
        provides: SESSION_CTX,
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::UpstreamRequestFilter,
        name: "upstream_request_filter",
        is_async: true,
        combine: Combine::Unit,
        marker: "UpstreamRequestFilterArg",
        params: "session: &mut RT::Session, upstream_request: &mut RT::http::RequestHeader, ctx: &mut CTX",
        ret: "RT::Result<()>",
        provides: &[
            (SessionMut, "&mut *session"),
            (SessionRef, "&*session"),
            (RequestMut, "&mut *upstream_request"),
            (RequestRef, "&*upstream_request"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::UpstreamResponseFilter,
        name: "upstream_response_filter",
        is_async: true,
        combine: Combine::Unit,
        marker: "UpstreamResponseFilterArg",
        params: "session: &mut RT::Session, upstream_response: &mut RT::http::ResponseHeader, ctx: &mut CTX",
        ret: "RT::Result<()>",
        provides: RESPONSE_SLOTS,
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::ResponseFilter,
        name: "response_filter",
        is_async: true,
        combine: Combine::Unit,
        marker: "ResponseFilterArg",
        params: "session: &mut RT::Session, upstream_response: &mut RT::http::ResponseHeader, ctx: &mut CTX",
        ret: "RT::Result<()>",
        provides: RESPONSE_SLOTS,
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::UpstreamResponseBodyFilter,
        name: "upstream_response_body_filter",
        is_async: false,
        combine: Combine::Unit,
        marker: "BodyFilterArg",
        params: "session: &mut RT::Session, body: &mut Option<RT::bytes::Bytes>, end_of_stream: bool, ctx: &mut CTX",
        ret: "RT::Result<()>",
        provides: BODY_SLOTS,
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::ResponseBodyFilter,
        name: "response_body_filter",
        is_async: false,
        combine: Combine::Delay,
        marker: "BodyFilterArg",
        params: "session: &mut RT::Session, body: &mut Option<RT::bytes::Bytes>, end_of_stream: bool, ctx: &mut CTX",
        ret: "RT::Result<Option<::std::time::Duration>>",
        provides: BODY_SLOTS,
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::UpstreamResponseTrailerFilter,
        name: "upstream_response_trailer_filter",
        is_async: false,
        combine: Combine::Unit,
        marker: "TrailerFilterArg",
        params: "session: &mut RT::Session, trailers: &mut RT::http::HeaderMap, ctx: &mut CTX",
        ret: "RT::Result<()>",
        provides: TRAILER_SLOTS,
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::ResponseTrailerFilter,
        name: "response_trailer_filter",
        is_async: true,
        combine: Combine::Unit,
        marker: "TrailerFilterArg",
        params: "session: &mut RT::Session, trailers: &mut RT::http::HeaderMap, ctx: &mut CTX",
        ret: "RT::Result<()>",
        provides: TRAILER_SLOTS,
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::ConnectedToUpstream,
        name: "connected_to_upstream",
        is_async: true,
        combine: Combine::Unit,
        marker: "ConnectedToUpstreamArg",
        params: "session: &mut RT::Session, reused: bool, peer: &RT::upstream::HttpPeer, ctx: &mut CTX",
        ret: "RT::Result<()>",
        provides: &[
            (SessionMut, "&mut *session"),
            (SessionRef, "&*session"),
            (Reused, "reused"),
            (Peer, "peer"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::FailToConnect,
        name: "fail_to_connect",
        is_async: false,
        combine: Combine::ErrorChain,
        marker: "FailToConnectArg",
        params: "session: &mut RT::Session, peer: &RT::upstream::HttpPeer, ctx: &mut CTX, e: Box<RT::Error>",
        ret: "Box<RT::Error>",
        provides: &[
            (SessionMut, "&mut *session"),
            (SessionRef, "&*session"),
            (Peer, "peer"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
            (ErrorBox, "e"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::ErrorWhileProxy,
        name: "error_while_proxy",
        is_async: false,
        combine: Combine::ErrorChain,
        marker: "ErrorWhileProxyArg",
        params: "peer: &RT::upstream::HttpPeer, session: &mut RT::Session, e: Box<RT::Error>, ctx: &mut CTX, client_reused: bool",
        ret: "Box<RT::Error>",
        provides: &[
            (SessionMut, "&mut *session"),
            (SessionRef, "&*session"),
            (Peer, "peer"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
            (ErrorBox, "e"),
            (Reused, "client_reused"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::FailToProxy,
        name: "fail_to_proxy",
        is_async: true,
        combine: Combine::Single,
        marker: "FailToProxyArg",
        params: "session: &mut RT::Session, e: &RT::Error, ctx: &mut CTX",
        ret: "RT::FailToProxy",
        provides: &[
            (SessionMut, "&mut *session"),
            (SessionRef, "&*session"),
            (ErrorRef, "e"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::Logging,
        name: "logging",
        is_async: true,
        combine: Combine::Always,
        marker: "LoggingArg",
        params: "session: &mut RT::Session, e: Option<&RT::Error>, ctx: &mut CTX",
        ret: "()",
        provides: &[
            (SessionMut, "&mut *session"),
            (SessionRef, "&*session"),
            (OptionErrorRef, "e"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::RequestSummary,
        name: "request_summary",
        is_async: false,
        combine: Combine::Single,
        marker: "SummaryArg",
        params: "session: &RT::Session, ctx: &CTX",
        ret: "String",
        provides: READ_ONLY,
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::SuppressErrorLog,
        name: "suppress_error_log",
        is_async: false,
        combine: Combine::AnyPlain,
        marker: "SummaryArg",
        params: "session: &RT::Session, ctx: &CTX, error: &RT::Error",
        ret: "bool",
        provides: &[
            (SessionRef, "session"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
            (ErrorRef, "error"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::InitDownstreamModules,
        name: "init_downstream_modules",
        is_async: false,
        combine: Combine::Always,
        marker: "ModulesArg",
        params: "modules: &mut RT::modules::HttpModules",
        ret: "()",
        provides: &[(Modules, "&mut *modules")],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::RequestCacheFilter,
        name: "request_cache_filter",
        is_async: false,
        combine: Combine::Unit,
        marker: "CachePhaseArg",
        params: S,
        ret: "RT::Result<()>",
        provides: SESSION_CTX,
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::CacheKeyCallback,
        name: "cache_key_callback",
        is_async: false,
        combine: Combine::Single,
        marker: "CachePhaseArg",
        params: "session: &RT::Session, ctx: &mut CTX",
        ret: "RT::Result<RT::cache::CacheKey>",
        provides: &[
            (SessionRef, "session"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::CacheMiss,
        name: "cache_miss",
        is_async: false,
        combine: Combine::Always,
        marker: "CachePhaseArg",
        params: S,
        ret: "()",
        provides: SESSION_CTX,
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::CacheHitFilter,
        name: "cache_hit_filter",
        is_async: true,
        combine: Combine::Any,
        marker: "CachePhaseArg",
        params: "session: &RT::Session, meta: &RT::cache::CacheMeta, ctx: &mut CTX",
        ret: "RT::Result<bool>",
        provides: &[
            (SessionRef, "session"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::ResponseCacheFilter,
        name: "response_cache_filter",
        is_async: false,
        combine: Combine::Single,
        marker: "CachePhaseArg",
        params: "session: &RT::Session, resp: &RT::http::ResponseHeader, ctx: &mut CTX",
        ret: "RT::Result<RT::cache::RespCacheable>",
        provides: &[
            (SessionRef, "session"),
            (ResponseRef, "resp"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::CacheVaryFilter,
        name: "cache_vary_filter",
        is_async: false,
        combine: Combine::Single,
        marker: "CachePhaseArg",
        params: "meta: &RT::cache::CacheMeta, ctx: &mut CTX, req: &RT::http::RequestHeader",
        ret: "Option<RT::cache::VarianceKey>",
        provides: &[
            (RequestRef, "req"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::CacheNotModifiedFilter,
        name: "cache_not_modified_filter",
        is_async: false,
        combine: Combine::Single,
        marker: "CachePhaseArg",
        params: "session: &RT::Session, resp: &RT::http::ResponseHeader, ctx: &mut CTX",
        ret: "RT::Result<bool>",
        provides: &[
            (SessionRef, "session"),
            (ResponseRef, "resp"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::RangeHeaderFilter,
        name: "range_header_filter",
        is_async: false,
        combine: Combine::Single,
        marker: "CachePhaseArg",
        params: "session: &RT::Session, resp: &mut RT::http::ResponseHeader, ctx: &mut CTX",
        ret: "RT::cache::RangeType",
        provides: &[
            (SessionRef, "session"),
            (ResponseMut, "&mut *resp"),
            (ResponseRef, "&*resp"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::ShouldServeStale,
        name: "should_serve_stale",
        is_async: false,
        combine: Combine::Single,
        marker: "CachePhaseArg",
        params: "session: &mut RT::Session, ctx: &mut CTX, error: Option<&RT::Error>",
        ret: "bool",
        provides: &[
            (SessionMut, "&mut *session"),
            (SessionRef, "&*session"),
            (OptionErrorRef, "error"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
        ],
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::IsPurge,
        name: "is_purge",
        is_async: false,
        combine: Combine::AnyPlain,
        marker: "CachePhaseArg",
        params: "session: &RT::Session, ctx: &CTX",
        ret: "bool",
        provides: READ_ONLY,
        request_in_session: false,
    },
    PhaseDef {
        phase: Phase::PurgeResponseFilter,
        name: "purge_response_filter",
        is_async: false,
        combine: Combine::Unit,
        marker: "CachePhaseArg",
        params: "session: &RT::Session, ctx: &mut CTX, purge_status: RT::cache::PurgeStatus, purge_response: &mut RT::http::ResponseHeader",
        ret: "RT::Result<()>",
        provides: &[
            (SessionRef, "session"),
            (ResponseMut, "&mut *purge_response"),
            (ResponseRef, "&*purge_response"),
            (CtxMut, "&mut ctx.user"),
            (CtxRef, "&ctx.user"),
            (Route, "__route"),
            (OptionRoute, "ctx.route.as_ref()"),
        ],
        request_in_session: false,
    },
];

const RESPONSE_SLOTS: &[(Slot, &str)] = &[
    (SessionMut, "&mut *session"),
    (SessionRef, "&*session"),
    (ResponseMut, "&mut *upstream_response"),
    (ResponseRef, "&*upstream_response"),
    (CtxMut, "&mut ctx.user"),
    (CtxRef, "&ctx.user"),
    (Route, "__route"),
    (OptionRoute, "ctx.route.as_ref()"),
];

const TRAILER_SLOTS: &[(Slot, &str)] = &[
    (SessionMut, "&mut *session"),
    (SessionRef, "&*session"),
    (Trailers, "&mut *trailers"),
    (CtxMut, "&mut ctx.user"),
    (CtxRef, "&ctx.user"),
    (Route, "__route"),
    (OptionRoute, "ctx.route.as_ref()"),
];

/// The definition of `phase`.
pub fn def(phase: Phase) -> &'static PhaseDef {
    PHASES
        .iter()
        .find(|d| d.phase == phase)
        .unwrap_or(&PHASES[0])
}

/// Look a phase up by name.
pub fn by_name(name: &str) -> Option<&'static PhaseDef> {
    PHASES.iter().find(|d| d.name == name)
}

/// Names of every phase, for error messages.
pub fn names() -> Vec<&'static str> {
    PHASES.iter().map(|d| d.name).collect()
}
