// Every return type a route handler may have, async and not, with every argument form.
use proxy_runtime::prelude::*;

#[proxy(listen = "127.0.0.1:8080")]
mod edge {
    use super::*;

    #[ctx]
    #[derive(Default)]
    pub struct Ctx {
        pub seen: u32,
    }

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    /// `()`: always forwards.
    #[route(GET, "/unit", to = Api)]
    fn unit(ctx: &mut Ctx) {
        ctx.seen += 1;
    }

    /// `Result<()>`, async.
    #[route(GET, "/result/{id}", to = Api)]
    async fn result(id: u64, req: &mut RequestHeader) -> Result<()> {
        req.insert_header("x-id", id.to_string())
    }

    /// `Response`: always answers (no `to`).
    #[route(GET, "/hello/{name}")]
    fn hello(name: String) -> Response {
        Response::text(200, format!("hello {name}\n"))
    }

    /// `Result<Response>`, async.
    #[route(GET, "/json")]
    async fn json(session: &Session) -> Result<Response> {
        let path = session.req_header().path().to_string();
        Ok(Response::json(200, format!("{{\"path\":\"{path}\"}}")))
    }

    /// `Option<Response>`: answers when `Some`, else forwards.
    #[route(GET, "/maybe", to = Api)]
    fn maybe(req: &RequestHeader) -> Option<Response> {
        req.header_str("x-block")
            .map(|_| Response::new(403).header("x-reason", "blocked"))
    }

    /// `Flow`.
    #[route(POST, "/flow", to = Api)]
    fn flow(ctx: &Ctx) -> Flow {
        if ctx.seen > 10 {
            Flow::Respond(Response::html(429, "<p>slow down</p>"))
        } else {
            Flow::Continue
        }
    }

    /// `Result<Flow>`, async, with the whole session.
    #[route(ANY, "/api/{*rest}", to = Api)]
    async fn api(rest: String, session: &mut Session, ctx: &mut Ctx) -> Result<Flow> {
        ctx.seen += 1;
        if rest == "teapot" {
            Response::new(418).body("short and stout").send(session).await?;
            return Ok(Flow::Done);
        }
        Ok(Flow::Continue)
    }

    /// `bool`: `true` means the handler answered through the session.
    #[route(PUT, "/bool/{id}", to = Api)]
    fn boolean(id: u64, route: &Route) -> bool {
        let _ = route.name();
        id == 0
    }

    /// The matched route, as `&Route` or `Option<&Route>`.
    #[route(DELETE, "/route/{id}", to = Api)]
    async fn with_route(route: Option<&Route>) -> Result<bool> {
        Ok(matches!(route, Some(Route::WithRoute { id }) if id.is_empty()))
    }
}

fn main() {
    assert_eq!(edge::ROUTES.routes().len(), 9);
    print!("{}", edge::ROUTES);
}
