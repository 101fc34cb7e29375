//! Compile-time checks of phase and handler arguments.
//!
//! The DSL recognizes an argument by how its type is written (`&mut Session`,
//! `&mut RequestHeader`, `&mut Ctx`, ...). When a phase cannot provide an argument, the
//! compiler emits an assertion that the type implements the phase's marker trait; no
//! type does, so rustc reports the error on the user's argument with the message and
//! the list of what the phase provides given here.

/// Arguments the `route handler` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `route handler` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`route handler` provides: route parameters by name, &mut Session, &mut RequestHeader (not both), &mut Ctx, &Route"
)]
pub trait RouteHandlerArg {}

/// Arguments the `early_request_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `early_request_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`early_request_filter` provides: &mut Session, &mut RequestHeader (not both), &mut Ctx"
)]
pub trait EarlyRequestFilterArg {}

/// Arguments the `request_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `request_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`request_filter` provides: &mut Session, &mut RequestHeader (not both), &mut Ctx, &Route"
)]
pub trait RequestFilterArg {}

/// Arguments the `request_body_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `request_body_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`request_body_filter` provides: &mut Session, &mut Option<Bytes>, end_of_stream: bool, &mut Ctx, &Route"
)]
pub trait RequestBodyFilterArg {}

/// Arguments the `proxy_upstream_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `proxy_upstream_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`proxy_upstream_filter` provides: &mut Session, &mut Ctx, &Route"
)]
pub trait ProxyUpstreamFilterArg {}

/// Arguments the `upstream_request_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `upstream_request_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`upstream_request_filter` provides: &mut Session, &mut RequestHeader (the upstream request), &mut Ctx, &Route"
)]
pub trait UpstreamRequestFilterArg {}

/// Arguments the `upstream_response_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `upstream_response_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`upstream_response_filter` provides: &mut Session, &mut ResponseHeader, &mut Ctx, &Route"
)]
pub trait UpstreamResponseFilterArg {}

/// Arguments the `response_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `response_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`response_filter` provides: &mut Session, &mut ResponseHeader, &mut Ctx, &Route"
)]
pub trait ResponseFilterArg {}

/// Arguments the `upstream_response_body_filter / response_body_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `upstream_response_body_filter / response_body_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`upstream_response_body_filter / response_body_filter` provides: &mut Session, &mut Option<Bytes>, end_of_stream: bool, &mut Ctx, &Route"
)]
pub trait BodyFilterArg {}

/// Arguments the `upstream_response_trailer_filter / response_trailer_filter` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `upstream_response_trailer_filter / response_trailer_filter` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`upstream_response_trailer_filter / response_trailer_filter` provides: &mut Session, &mut HeaderMap, &mut Ctx, &Route"
)]
pub trait TrailerFilterArg {}

/// Arguments the `connected_to_upstream` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `connected_to_upstream` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`connected_to_upstream` provides: &mut Session, reused: bool, &HttpPeer, &mut Ctx, &Route"
)]
pub trait ConnectedToUpstreamArg {}

/// Arguments the `fail_to_connect` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `fail_to_connect` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`fail_to_connect` provides: &mut Session, &HttpPeer, &mut Ctx, &Route, Box<Error> (returned)"
)]
pub trait FailToConnectArg {}

/// Arguments the `error_while_proxy` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `error_while_proxy` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`error_while_proxy` provides: &HttpPeer, &mut Session, Box<Error> (returned), &mut Ctx, &Route, client_reused: bool"
)]
pub trait ErrorWhileProxyArg {}

/// Arguments the `fail_to_proxy` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `fail_to_proxy` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`fail_to_proxy` provides: &mut Session, &Error, &mut Ctx, &Route"
)]
pub trait FailToProxyArg {}

/// Arguments the `logging` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `logging` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`logging` provides: &mut Session, Option<&Error>, &mut Ctx, &Route"
)]
pub trait LoggingArg {}

/// Arguments the `request_summary / suppress_error_log` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `request_summary / suppress_error_log` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`request_summary / suppress_error_log` provides: &Session, &Ctx, &Route (and &Error for suppress_error_log)"
)]
pub trait SummaryArg {}

/// Arguments the `cache` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `cache` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`cache` provides: the session (as the phase allows), &mut Ctx, &Route, and the values of that phase (see docs/src/dsl.md)"
)]
pub trait CachePhaseArg {}

/// Arguments the `init_downstream_modules` phase can provide (a diagnostic marker: nothing implements it).
#[diagnostic::on_unimplemented(
    message = "the `init_downstream_modules` phase cannot provide an argument of type `{Self}`",
    label = "not available here",
    note = "`init_downstream_modules` provides: &mut HttpModules"
)]
pub trait ModulesArg {}

/// A route parameter's type: anything parsed with `FromStr`.
#[diagnostic::on_unimplemented(
    message = "route parameter type `{Self}` cannot be parsed from the path",
    label = "does not implement `FromStr`",
    note = "route parameters are parsed with `FromStr` (u64, String, Uuid, your own types...)"
)]
pub trait RouteParam: std::str::FromStr {}

impl<T: std::str::FromStr> RouteParam for T {}

/// Assert `T: RouteParam` (emitted by the compiler at the parameter's span).
pub fn assert_route_param<T: RouteParam>() {}

/// The `#[ctx]` type must be `Default` so each request gets a fresh one.
#[diagnostic::on_unimplemented(
    message = "the #[ctx] type `{Self}` must implement `Default`",
    label = "a fresh context is made for every request",
    note = "add #[derive(Default)] to the struct"
)]
pub trait ContextType: Default + Send + 'static {}

impl<T: Default + Send + 'static> ContextType for T {}

/// Assert `T: ContextType` (emitted at the `#[ctx]` struct).
pub fn assert_context_type<T: ContextType>() {}
