// A route whose attribute is broken is reported once: a phase scoped to it and the
// route's other options do not add errors of their own.
use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/users/{id", to = Api)]
    fn user(id: u64) {
        let _ = id;
    }

    #[route(GET, "/posts/{id}", to = "Api", timeout = "2s")]
    fn post(id: u64) {
        let _ = id;
    }

    #[phase(request_filter, routes = [user, post])]
    async fn auth(req: &RequestHeader) -> Option<Response> {
        req.header_str("authorization")
            .is_none()
            .then(|| Response::text(401, "who are you?\n"))
    }
}

fn main() {}
