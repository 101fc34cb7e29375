// Every form of #[route]: methods, hosts, patterns, typed parameters, targets, options.
use proxy_runtime::prelude::*;
use proxy_runtime::dsl::RouteTarget;
use std::str::FromStr;

/// A parameter type of our own: lower-case words joined by `-`.
#[derive(Clone, Debug, PartialEq)]
pub struct Slug(pub String);

impl FromStr for Slug {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            Ok(Slug(s.to_string()))
        } else {
            Err(format!("not a slug: {s}"))
        }
    }
}

#[proxy(listen = "127.0.0.1:8080")]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[upstream(addrs = ["127.0.0.1:9002"])]
    pub struct Assets;

    #[route(GET, "/", respond = 200, body = "home\n")]
    fn home() {}

    #[route(GET | HEAD, "/healthz", respond = 204, rate_limit = "10/100ms", by = route)]
    fn health() {}

    #[route(GET, "/version", respond = 200, body = "{\"v\":1}", content_type = "application/json")]
    fn version() {}

    /// Typed parameter, per-route retries and timeouts, 400 when `id` is not a number.
    #[route(
        GET | PUT | DELETE,
        "/api/users/{id}",
        to = Api,
        retries = 1,
        timeout = "2s",
        connect_timeout = "500ms",
        on_param_error = 400,
        rate_limit = "100/s",
        burst = 20,
        concurrency = 10,
        by = header("X-Api-Key"),
    )]
    fn user(id: u64, req: &mut RequestHeader) -> Result<()> {
        req.insert_header("x-user-id", id.to_string())
    }

    /// Two parameters, a rewrite that uses them. The handler is named like one of its
    /// parameters: the generated call must not be shadowed by the binding.
    #[route(GET, "/api/users/{id}/posts/{post}", to = Api, rewrite = "/v2/posts/{post}/by/{id}")]
    fn post(id: u64, post: String) {
        let _ = (id, post);
    }

    /// A parameter of our own type.
    #[route(GET, "/blog/{slug}", to = Api)]
    fn blog(slug: Slug, req: &mut RequestHeader) -> Result<()> {
        req.insert_header("x-slug", slug.0)
    }

    /// Every header option.
    #[route(
        ANY,
        "/api/{*rest}",
        to = Api,
        set_request_headers = [("x-env", "test")],
        add_request_headers = [("x-trace", "1"), ("x-trace", "2")],
        remove_request_headers = ["cookie"],
        set_response_headers = [("x-served-by", "edge")],
        add_response_headers = [("x-extra", "1")],
        remove_response_headers = ["server", "x-powered-by"],
    )]
    fn api() {}

    /// A catch-all taken as `_path` (declared, unused), a static prefix stripped.
    #[route(GET | HEAD, "/assets/{*path}", to = Assets, strip_prefix = "/assets")]
    fn assets(_path: String) {}

    #[route(OPTIONS | TRACE | POST | PATCH, "/forms/{id}", to = Api)]
    fn forms() {}

    #[route(GET, "/old/{*rest}", redirect = "/new/{rest}", status = 301)]
    fn old() {}

    #[route(GET, "/moved", redirect = "https://example.com/")]
    fn moved() {}

    #[route(GET, "/docs/", redirect = "/manual/", status = 308)]
    fn docs() {}

    /// An exact host.
    #[route(GET, "/{*path}", host = "api.example.com", to = Api)]
    fn api_host() {}

    /// A wildcard host.
    #[route(GET, "/{*path}", host = "*.example.com", to = Assets)]
    fn wildcard_host() {}
}

fn main() {
    let routes = edge::ROUTES.routes();
    let by_name = |n: &str| {
        routes
            .iter()
            .find(|r| r.name == n)
            .unwrap_or_else(|| panic!("no route {n}"))
    };
    assert_eq!(routes.len(), 14);
    assert_eq!(by_name("user").methods, ["GET", "PUT", "DELETE"]);
    assert_eq!(by_name("api").methods, ["ANY"]);
    assert!(matches!(by_name("home").target, RouteTarget::Respond(200)));
    assert!(matches!(by_name("health").target, RouteTarget::Respond(204)));
    assert!(matches!(by_name("old").target, RouteTarget::Redirect(301, "/new/{rest}")));
    assert!(matches!(by_name("moved").target, RouteTarget::Redirect(302, _)));
    assert!(matches!(by_name("assets").target, RouteTarget::Upstream("Assets")));
    assert_eq!(by_name("api_host").host, Some("api.example.com"));
    assert_eq!(by_name("wildcard_host").host, Some("*.example.com"));

    let blog = edge::Route::Blog {
        slug: Slug("hello-world".into()),
    };
    assert_eq!(blog.name(), "blog");
    let user = edge::Route::User { id: 7 };
    assert!(user.cache_policy().is_none());
    print!("{}", edge::ROUTES);
}
