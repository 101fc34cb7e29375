// Phases of every kind, with the argument forms each provides and its return types.
use proxy_runtime::modules::HttpModules;
use proxy_runtime::prelude::*;
use std::time::Duration;

#[proxy(listen = "127.0.0.1:8080")]
mod edge {
    use super::*;

    #[ctx]
    #[derive(Default)]
    pub struct Ctx {
        pub user: Option<String>,
        pub body_bytes: usize,
        pub connects: u32,
    }

    #[upstream(addrs = ["127.0.0.1:9001"], retries = 1)]
    pub struct Api;

    #[route(GET | PUT, "/api/users/{id}", to = Api)]
    fn user(id: u64) {
        let _ = id;
    }

    #[route(ANY, "/api/{*rest}", to = Api)]
    fn api() {}

    #[route(GET, "/public/{*rest}", to = Api)]
    fn public() {}

    #[phase(early_request_filter)]
    async fn early(req: &mut RequestHeader, ctx: &mut Ctx) -> Result<()> {
        ctx.user = req.header_str("x-user").map(String::from);
        req.remove_header("x-internal");
        Ok(())
    }

    #[phase(early_request_filter)]
    fn early_sync(session: &Session) {
        let _ = session.req_header().path();
    }

    /// `Option<Response>`, scoped to two routes.
    #[phase(request_filter, routes = [user, api])]
    async fn auth(req: &RequestHeader, ctx: &Ctx) -> Option<Response> {
        match (&ctx.user, req.header_str("authorization")) {
            (Some(_), Some(_)) => None,
            _ => Some(Response::text(401, "who are you?\n")),
        }
    }

    /// `Flow`, only when a route matched (`&Route`).
    #[phase(request_filter)]
    fn per_route(route: &Route) -> Flow {
        match route {
            Route::User { id } if *id == 0 => Flow::Respond(Response::new(404)),
            _ => Flow::Continue,
        }
    }

    /// `bool`: `true` when it answered through the session.
    #[phase(request_filter)]
    async fn teapot(session: &mut Session) -> Result<bool> {
        if session.req_header().path() == "/api/teapot" {
            Response::new(418).send(session).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Plain `bool`, not async.
    #[phase(request_filter)]
    fn never_answers(req: &RequestHeader) -> bool {
        let _ = req.path();
        false
    }

    #[phase(request_body_filter)]
    async fn count_body(body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut Ctx) -> Result<()> {
        ctx.body_bytes += body.as_ref().map_or(0, Bytes::len);
        let _ = end_of_stream;
        Ok(())
    }

    #[phase(proxy_upstream_filter)]
    async fn allow(session: &mut Session, ctx: &Ctx) -> bool {
        let _ = session.req_header();
        ctx.body_bytes < 1 << 20
    }

    #[phase(upstream_request_filter)]
    async fn forward_user(upstream_request: &mut RequestHeader, ctx: &Ctx) -> Result<()> {
        if let Some(u) = &ctx.user {
            upstream_request.insert_header("x-user", u.clone())?;
        }
        Ok(())
    }

    #[phase(upstream_response_filter)]
    async fn strip_server(resp: &mut ResponseHeader) -> Result<()> {
        resp.remove_header("server");
        Ok(())
    }

    #[phase(response_filter, routes = [public])]
    async fn public_cache(resp: &mut ResponseHeader, route: &Route) -> Result<()> {
        resp.insert_header("x-route", route.name())
    }

    #[phase(upstream_response_body_filter)]
    fn upstream_body(body: &mut Option<Bytes>, eos: bool) -> Result<()> {
        let _ = (body, eos);
        Ok(())
    }

    /// A delay: throttle large responses.
    #[phase(response_body_filter)]
    fn throttle(body: &mut Option<Bytes>, end_of_stream: bool) -> Option<Duration> {
        let _ = end_of_stream;
        body.as_ref()
            .filter(|b| b.len() > 64 * 1024)
            .map(|_| Duration::from_millis(10))
    }

    #[phase(response_body_filter)]
    fn no_delay(ctx: &mut Ctx) {
        let _ = ctx;
    }

    #[phase(upstream_response_trailer_filter)]
    fn upstream_trailers(trailers: &mut HeaderMap) -> Result<()> {
        trailers.remove("x-debug");
        Ok(())
    }

    /// Named like the phase's own `trailers` parameter (a shadowing regression).
    #[phase(response_trailer_filter)]
    async fn trailers(trailers: &mut HeaderMap, session: &mut Session) -> Result<()> {
        let _ = (trailers, session);
        Ok(())
    }

    #[phase(connected_to_upstream)]
    async fn connected(reused: bool, peer: &HttpPeer, ctx: &mut Ctx) -> Result<()> {
        if !reused {
            ctx.connects += 1;
        }
        let _ = &peer.address;
        Ok(())
    }

    /// Error chains: each gets the previous one's error.
    #[phase(fail_to_connect)]
    fn note_peer(peer: &HttpPeer, e: Box<Error>) -> Box<Error> {
        let _ = peer.tls;
        e
    }

    #[phase(fail_to_connect)]
    fn no_retry_for_users(route: &Route, mut e: Box<Error>) -> Box<Error> {
        if matches!(route, Route::User { .. }) {
            e.retry = RetryType::Decided(false);
        }
        e
    }

    #[phase(error_while_proxy)]
    fn while_proxy(e: Box<Error>, client_reused: bool, session: &mut Session) -> Box<Error> {
        let _ = (client_reused, session.req_header());
        e
    }

    #[phase(logging)]
    async fn log(session: &mut Session, route: Option<&Route>, e: Option<&Error>, ctx: &Ctx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = route.map_or("-", |r| r.name());
        let _ = (status, route, e.map(|e| e.to_string()), ctx.connects);
    }

    #[phase(logging)]
    fn log_sync(ctx: &mut Ctx) {
        ctx.connects = 0;
    }

    #[phase(request_summary)]
    fn summary(session: &Session, route: Option<&Route>) -> String {
        format!(
            "{} {}",
            session.req_header().path(),
            route.map_or("-", |r| r.name())
        )
    }

    #[phase(suppress_error_log)]
    fn quiet(error: &Error, ctx: &Ctx) -> bool {
        ctx.user.is_none() && error.to_string().contains("reset")
    }

    /// Declared once: decides the status sent when proxying failed.
    #[phase(fail_to_proxy)]
    async fn fail(e: &Error, route: Option<&Route>) -> FailToProxy {
        let _ = (e.to_string(), route.map(Route::name));
        FailToProxy {
            error_code: 502,
            can_reuse_downstream: false,
        }
    }

    #[phase(is_purge)]
    fn purge(session: &Session) -> bool {
        session.req_header().method.as_str() == "PURGE"
    }

    #[phase(cache_miss)]
    fn miss(ctx: &mut Ctx) {
        ctx.connects += 0;
    }

    /// Named like the phase's `modules` parameter, too.
    #[phase(init_downstream_modules)]
    fn modules(modules: &mut HttpModules) {
        let _ = modules;
    }
}

fn main() {
    assert_eq!(edge::ROUTES.routes().len(), 3);
    print!("{}", edge::ROUTES);
}
