//! Compile-time checks of phase and handler arguments.
//!
//! The DSL recognizes an argument by how its type is written (`&mut Session`,
//! `&mut RequestHeader`, `&mut Ctx`, ...). When a phase cannot provide an argument, the
//! compiler names the argument's type as the phase's marker trait
//! (`<&mut ResponseHeader as RequestFilterArg>::PROVIDED`); no type implements it, so
//! rustc reports the error on the user's argument with the message and the list of what
//! the phase provides given here.
//!
//! Route parameters and the `#[ctx]` type are checked through the functions the
//! generated code calls ([`route_param`], [`new_context`]), spanned at the user's types:
//! the bounds' messages say what is missing.

/// Arguments the `route handler` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `route handler` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`route handler` provides: route parameters by name, &mut Session, &mut RequestHeader (not both), &mut Ctx, &Route"
)]
pub trait RouteHandlerArg {
    /// Named by the compiler as `<T as RouteHandlerArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `early_request_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `early_request_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`early_request_filter` provides: &mut Session, &mut RequestHeader (not both), &mut Ctx"
)]
pub trait EarlyRequestFilterArg {
    /// Named by the compiler as `<T as EarlyRequestFilterArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `request_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `request_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`request_filter` provides: &mut Session, &mut RequestHeader (not both), &mut Ctx, &Route"
)]
pub trait RequestFilterArg {
    /// Named by the compiler as `<T as RequestFilterArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `request_body_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `request_body_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`request_body_filter` provides: &mut Session, &mut Option<Bytes>, end_of_stream: bool, &mut Ctx, &Route"
)]
pub trait RequestBodyFilterArg {
    /// Named by the compiler as `<T as RequestBodyFilterArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `proxy_upstream_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `proxy_upstream_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`proxy_upstream_filter` provides: &mut Session, &mut Ctx, &Route"
)]
pub trait ProxyUpstreamFilterArg {
    /// Named by the compiler as `<T as ProxyUpstreamFilterArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `upstream_request_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `upstream_request_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`upstream_request_filter` provides: &mut Session, &mut RequestHeader (the upstream request), &mut Ctx, &Route"
)]
pub trait UpstreamRequestFilterArg {
    /// Named by the compiler as `<T as UpstreamRequestFilterArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `upstream_response_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `upstream_response_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`upstream_response_filter` provides: &mut Session, &mut ResponseHeader, &mut Ctx, &Route"
)]
pub trait UpstreamResponseFilterArg {
    /// Named by the compiler as `<T as UpstreamResponseFilterArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `response_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `response_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`response_filter` provides: &mut Session, &mut ResponseHeader, &mut Ctx, &Route"
)]
pub trait ResponseFilterArg {
    /// Named by the compiler as `<T as ResponseFilterArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `upstream_response_body_filter / response_body_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `upstream_response_body_filter / response_body_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`upstream_response_body_filter / response_body_filter` provides: &mut Session, &mut Option<Bytes>, end_of_stream: bool, &mut Ctx, &Route"
)]
pub trait BodyFilterArg {
    /// Named by the compiler as `<T as BodyFilterArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `upstream_response_trailer_filter / response_trailer_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `upstream_response_trailer_filter / response_trailer_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`upstream_response_trailer_filter / response_trailer_filter` provides: &mut Session, &mut HeaderMap, &mut Ctx, &Route"
)]
pub trait TrailerFilterArg {
    /// Named by the compiler as `<T as TrailerFilterArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `connected_to_upstream` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `connected_to_upstream` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`connected_to_upstream` provides: &mut Session, reused: bool, &HttpPeer, &mut Ctx, &Route"
)]
pub trait ConnectedToUpstreamArg {
    /// Named by the compiler as `<T as ConnectedToUpstreamArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `fail_to_connect` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `fail_to_connect` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`fail_to_connect` provides: &mut Session, &HttpPeer, &mut Ctx, &Route, Box<Error> (returned)"
)]
pub trait FailToConnectArg {
    /// Named by the compiler as `<T as FailToConnectArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `error_while_proxy` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `error_while_proxy` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`error_while_proxy` provides: &HttpPeer, &mut Session, Box<Error> (returned), &mut Ctx, &Route, client_reused: bool"
)]
pub trait ErrorWhileProxyArg {
    /// Named by the compiler as `<T as ErrorWhileProxyArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `fail_to_proxy` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `fail_to_proxy` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`fail_to_proxy` provides: &mut Session, &Error, &mut Ctx, &Route"
)]
pub trait FailToProxyArg {
    /// Named by the compiler as `<T as FailToProxyArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `logging` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `logging` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`logging` provides: &mut Session, Option<&Error>, &mut Ctx, &Route"
)]
pub trait LoggingArg {
    /// Named by the compiler as `<T as LoggingArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `request_summary / suppress_error_log` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `request_summary / suppress_error_log` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`request_summary / suppress_error_log` provides: &Session, &Ctx, &Route (and &Error for suppress_error_log)"
)]
pub trait SummaryArg {
    /// Named by the compiler as `<T as SummaryArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `cache` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `cache` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`cache` provides: the session (as the phase allows), &mut Ctx, &Route, and the values of that phase (see docs/src/dsl.md)"
)]
pub trait CachePhaseArg {
    /// Named by the compiler as `<T as CachePhaseArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// Arguments the `init_downstream_modules` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `init_downstream_modules` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`init_downstream_modules` provides: &mut HttpModules"
)]
pub trait ModulesArg {
    /// Named by the compiler as `<T as ModulesArg>::PROVIDED` for an argument the phase
    /// cannot provide: the error is this trait's message, on the argument.
    const PROVIDED: () = ();
}

/// A route parameter's type: parsed from the path with `FromStr`, passed to the handler
/// by value (`Clone`: the matched route keeps its copy for later phases).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a route parameter",
    label = "route parameters are `FromStr + Clone + Send`",
    note = "a parameter is parsed from the path with `FromStr` and passed to the handler by value (`Clone`); u64, String, Uuid or your own type with those impls"
)]
pub trait RouteParam: std::str::FromStr + Clone + Send + 'static {}

impl<T: std::str::FromStr + Clone + Send + 'static> RouteParam for T {}

/// The operations on a route parameter's type, as the generated code uses them.
pub struct ParamOps<T> {
    /// Decode and parse the raw path segment (`None`: the route's `on_param_error`).
    pub parse: fn(&str) -> Option<T>,
    /// A copy for the handler.
    pub pass: fn(&T) -> T,
}

/// The operations on route parameters of type `T`. The compiler names it once per
/// parameter, in a constant spanned at the parameter's type, so a type that cannot be a
/// parameter is reported once, there.
pub const fn route_param<T: RouteParam>() -> ParamOps<T> {
    ParamOps {
        parse: crate::dsl::routing::parse_param::<T>,
        pass: T::clone,
    }
}

/// The `#[ctx]` type: a fresh one (`Default`) for every request, moved between threads
/// with it (`Send + 'static`).
#[diagnostic::on_unimplemented(
    message = "the #[ctx] type `{Self}` must implement `Default` and `Send`",
    label = "a fresh context is made for every request",
    note = "add #[derive(Default)] to the struct; its fields must be `Send + 'static` (requests move between threads)"
)]
pub trait ContextType: Default + Send + 'static {}

impl<T: Default + Send + 'static> ContextType for T {}

/// A fresh context for a request (the generated `new_ctx` names it at the `#[ctx]`
/// struct, so a missing `Default` is reported there).
pub fn new_context<T: ContextType>() -> T {
    T::default()
}

/// A phase function's return type, for phases that take exactly one type (`String` for
/// `request_summary`, `bool` for `suppress_error_log`, `Box<Error>` for the error
/// chains...): the compiler names the declared type as `PhaseReturn<Expected>`, so a
/// wrong one is reported on it.
#[diagnostic::on_unimplemented(
    message = "this phase function returns `{Self}`, but the phase needs `{Expected}`",
    label = "expected `{Expected}`",
    note = "see the phase's row in docs/src/dsl.md for what it returns"
)]
pub trait PhaseReturn<Expected> {
    /// The value, as the phase's type.
    fn into_expected(self) -> Expected;
}

impl<T> PhaseReturn<T> for T {
    fn into_expected(self) -> T {
        self
    }
}
