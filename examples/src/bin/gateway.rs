//! `gateway`: a realistic proxy declared with the DSL — two upstream groups, an auth
//! phase, a cached static route, a local health route, a redirect.
//!
//! ```text
//! cargo run -p examples --bin gateway -- --print-routes
//! GATEWAY_UPSTREAM_API=127.0.0.1:9001 GATEWAY_UPSTREAM_ASSETS=127.0.0.1:9002 \
//!     cargo run -p examples --bin gateway
//! ```

use proxy_runtime::prelude::*;

#[proxy(listen = "127.0.0.1:8080", name = "gateway", grace_period = "10s")]
mod gateway {
    use super::*;

    #[ctx]
    #[derive(Default)]
    pub struct Ctx {
        pub user: Option<String>,
    }

    #[upstream(
        addrs = ["127.0.0.1:9001"],
        connect_timeout = "1s",
        read_timeout = "5s",
        retries = 2,
        health = http(path = "/healthz", every = "5s")
    )]
    pub struct Api;

    #[upstream(addrs = ["127.0.0.1:9002"], idle_timeout = "90s")]
    pub struct Assets;

    /// Static files, cached.
    #[route(GET | HEAD, "/assets/{*path}", to = Assets, strip_prefix = "/assets")]
    #[cache(ttl = "5m", stale_while_revalidate = "30s", vary = ["accept-encoding"])]
    fn assets() {}

    /// One user: the id is parsed as a number (anything else is a 404).
    #[route(GET | PUT | DELETE, "/api/users/{id}", to = Api, timeout = "2s")]
    async fn user(id: u64, req: &mut RequestHeader, ctx: &mut Ctx) -> Result<()> {
        if let Some(u) = &ctx.user {
            req.insert_header("x-user", u.clone())?;
        }
        req.insert_header("x-user-id", id.to_string())
    }

    /// Everything else under /api.
    #[route(ANY, "/api/{*rest}", to = Api, set_response_headers = [("x-served-by", "gateway")])]
    fn api() {}

    /// Answered by the gateway itself.
    #[route(GET, "/healthz", respond = 200, body = "ok\n")]
    fn health() {}

    #[route(GET, "/old/{*rest}", redirect = "/assets/{rest}", status = 308)]
    fn old() {}

    /// Every API call needs a bearer token. The identity headers the origin trusts
    /// are the gateway's alone: a client's own copies are removed on every API route.
    #[phase(request_filter, routes = [user, api])]
    async fn auth(req: &mut RequestHeader, ctx: &mut Ctx) -> Option<Response> {
        req.remove_header("x-user");
        req.remove_header("x-user-id");
        let mut values = req.header_values("authorization");
        let (Some(only), None) = (values.next(), values.next()) else {
            // None, or several: the gateway and the origin could read different ones.
            return Some(unauthorized());
        };
        // The scheme is case-insensitive (RFC 9110 §11.1).
        match only.to_str().ok().and_then(|v| v.split_once(' ')) {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                ctx.user = Some(token.trim().to_string());
                None
            }
            _ => Some(unauthorized()),
        }
    }

    #[phase(logging)]
    async fn log(session: &mut Session, route: Option<&Route>, e: Option<&Error>) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = route.map_or("-", |r| r.name());
        match e {
            None => tracing::info!(status, route, "{}", session.req_header().path()),
            Some(e) => tracing::warn!(status, route, "{}: {e}", session.req_header().path()),
        }
    }
}

/// The answer to a request without a (single, valid) bearer token.
fn unauthorized() -> Response {
    Response::text(401, "missing bearer token\n").header("www-authenticate", "Bearer")
}

fn main() {
    gateway::run()
}
