//! A proxy declared with the DSL, driven over loopback: routing by host, path and method,
//! typed parameters, precedence, local answers, redirects, rewrites and headers.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{origin, request, serve_service};
use proxy_runtime::prelude::*;

#[proxy(name = "edge")]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:1"])]
    pub struct Api;

    #[upstream(addrs = ["127.0.0.1:1"])]
    pub struct Web;

    #[upstream(addrs = ["127.0.0.1:1"])]
    pub struct Tenants;

    // Declared before the more specific routes on purpose: precedence does not
    // depend on declaration order.
    #[route(ANY, "/{*rest}", to = Web)]
    fn fallback() {}

    #[route(GET | HEAD, "/users/{id}", to = Api)]
    fn user(id: u64, req: &mut RequestHeader) -> Result<()> {
        req.insert_header("x-user-id", (id * 2).to_string())
    }

    #[route(GET, "/users/me", to = Api, set_request_headers = [("x-me", "yes")])]
    fn me() {}

    #[route(GET, "/users/{id}/posts", to = Api)]
    fn posts() {}

    #[route(POST, "/users/{id}", to = Api)]
    fn update_user() {}

    #[route(GET, "/static/{*file}", to = Web, strip_prefix = "/static")]
    fn files() {}

    /// The prefix is written with an escape; requests are normalized to `~`.
    #[route(GET, "/t%7Eilde/{*file}", to = Web, strip_prefix = "/t%7Eilde")]
    fn tilde_files() {}

    #[route(GET, "/v1/items/{item}", to = Api, rewrite = "/v2/catalog/{item}")]
    fn old_items() {}

    #[route(GET, "/hdr", to = Api,
        set_request_headers = [("x-set", "1")],
        add_request_headers = [("x-add", "2")],
        remove_request_headers = ["x-drop"],
        set_response_headers = [("x-resp", "3")],
        remove_response_headers = ["x-remove-me"])]
    fn headers() {}

    #[route(
        GET,
        "/",
        host = "status.example.com",
        respond = 200,
        body = "status ok\n"
    )]
    fn status() {}

    #[route(GET, "/{*rest}", host = "*.tenant.example", to = Tenants)]
    fn tenant() {}

    #[route(GET, "/hello/{name}")]
    fn hello(name: String) -> Response {
        Response::text(200, format!("hello {name}\n"))
    }

    #[route(GET, "/maybe/{n}", to = Api)]
    fn maybe(n: u32) -> Option<Response> {
        (n == 0).then(|| Response::text(418, "zero\n"))
    }

    #[route(
        GET,
        "/go/{*rest}",
        redirect = "https://new.example/{rest}",
        status = 301
    )]
    fn moved() {}

    #[route(GET, "/strict/{n}", to = Api, on_param_error = 400)]
    fn strict(_n: u8) {}

    /// Keywords are fine as parameter names (`r#ref` in Rust).
    #[route(GET, "/commits/{ref}")]
    fn commit(r#ref: String) -> Response {
        Response::text(200, format!("ref {ref}\n", ref = r#ref))
    }
}

async fn start() -> std::net::SocketAddr {
    let conf = edge::config()
        .with_upstream("Api", &[&origin("api").await])
        .with_upstream("Web", &[&origin("web").await])
        .with_upstream("Tenants", &[&origin("tenants").await]);
    serve_service(edge::service(&conf).unwrap()).await
}

#[tokio::test]
async fn routes_by_path_with_static_before_parameter_before_catch_all() {
    let p = start().await;
    let r = request(p, "GET", "/users/me", &[]).await;
    assert_eq!((r.status, r.line("origin=")), (200, Some("api")));
    assert_eq!(r.line("x-me: "), Some("yes"), "the static route won");
    let r = request(p, "GET", "/users/21", &[]).await;
    assert_eq!(
        r.line("x-user-id: "),
        Some("42"),
        "the param route ran its handler"
    );
    let r = request(p, "GET", "/users/21/posts", &[]).await;
    assert_eq!(r.line("origin="), Some("api"));
    let r = request(p, "GET", "/anything/else", &[]).await;
    assert_eq!(
        r.line("origin="),
        Some("web"),
        "the catch-all takes the rest"
    );
    let r = request(p, "GET", "/", &[]).await;
    assert_eq!(r.line("origin="), Some("web"));
}

#[tokio::test]
async fn backtracks_from_a_static_branch_that_fails_deeper() {
    let p = start().await;
    // `/users/me/posts`: `me` is static under /users, but only {id} has `/posts`.
    let r = request(p, "GET", "/users/me/posts", &[]).await;
    assert_eq!(r.line("origin="), Some("api"));
    assert_eq!(r.line("path="), Some("/users/me/posts"));
}

#[tokio::test]
async fn typed_parameter_that_does_not_parse_is_404_or_the_declared_status() {
    let p = start().await;
    assert_eq!(request(p, "GET", "/users/abc", &[]).await.status, 404);
    assert_eq!(request(p, "GET", "/strict/300", &[]).await.status, 400);
    assert_eq!(request(p, "GET", "/strict/30", &[]).await.status, 200);
    let r = request(p, "GET", "/commits/main", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ref main\n"));
}

#[tokio::test]
async fn routes_by_method_and_answers_405_with_allow() {
    let p = start().await;
    let r = request(p, "POST", "/users/5", &[("content-length", "0")]).await;
    assert_eq!((r.status, r.line("origin=")), (200, Some("api")));
    // DELETE /users/5 is not declared on the users routes, but the catch-all takes ANY.
    let r = request(p, "DELETE", "/users/5", &[]).await;
    assert_eq!(r.line("origin="), Some("web"));
    // /hello/{name} is GET only and nothing else matches PUT /hello/x... except the
    // catch-all; a host-only route shows 405 instead:
    let r = request(
        p,
        "POST",
        "/",
        &[("host", "status.example.com"), ("content-length", "0")],
    )
    .await;
    assert_eq!(
        r.line("origin="),
        Some("web"),
        "falls back to routes without a host"
    );
}

#[tokio::test]
async fn routes_by_exact_and_wildcard_host() {
    let p = start().await;
    let r = request(p, "GET", "/", &[("host", "Status.Example.com:8080")]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "status ok\n"));
    let r = request(p, "GET", "/x", &[("host", "a.b.tenant.example")]).await;
    assert_eq!(r.line("origin="), Some("tenants"));
    let r = request(p, "GET", "/x", &[("host", "tenant.example")]).await;
    assert_eq!(
        r.line("origin="),
        Some("web"),
        "the bare domain is not a subdomain"
    );
}

#[tokio::test]
async fn handlers_answer_locally_or_forward() {
    let p = start().await;
    let r = request(p, "GET", "/hello/J%C3%BCrgen", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "hello Jürgen\n"));
    let r = request(p, "GET", "/maybe/0", &[]).await;
    assert_eq!(r.status, 418);
    let r = request(p, "GET", "/maybe/1", &[]).await;
    assert_eq!(r.line("origin="), Some("api"));
}

#[tokio::test]
async fn rewrites_strip_prefixes_and_keeps_the_query() {
    let p = start().await;
    let r = request(p, "GET", "/static/css/site.css?v=3", &[]).await;
    assert_eq!(r.line("path="), Some("/css/site.css?v=3"));
    let r = request(p, "GET", "/v1/items/42?full=1", &[]).await;
    assert_eq!(r.line("path="), Some("/v2/catalog/42?full=1"));
    // A prefix with an escape cuts the same segment of the normalized path (it was cut
    // by the escaped length: `/i/x`, and a panic for a path shorter than that).
    for (path, forwarded) in [
        ("/t~ilde/x", "/x"),
        ("/t%7Eilde/x", "/x"),
        ("/t~ilde/", "/"),
    ] {
        let r = request(p, "GET", path, &[]).await;
        assert_eq!(
            (r.status, r.line("path=")),
            (200, Some(forwarded)),
            "{path}"
        );
    }
}

#[tokio::test]
async fn redirects_fill_the_template_and_keep_the_query() {
    let p = start().await;
    let r = request(p, "GET", "/go/a/b?x=1", &[]).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://new.example/a/b?x=1"));
}

#[tokio::test]
async fn header_changes_apply_both_ways() {
    let p = start().await;
    let r = request(p, "GET", "/hdr", &[("x-drop", "1"), ("x-add", "1")]).await;
    assert_eq!(r.line("x-set: "), Some("1"));
    assert!(r.body.contains("x-add: 1\nx-add: 2\n"), "{}", r.body);
    assert!(r.line("x-drop: ").is_none());
    assert_eq!(r.header("x-resp"), Some("3"));
    assert_eq!(r.header("x-remove-me"), None);
}

#[tokio::test]
async fn paths_are_normalized_before_routing_and_forwarded_normalized() {
    let p = start().await;
    let r = request(p, "GET", "/static/../users//%6De", &[]).await;
    assert_eq!(r.line("x-me: "), Some("yes"), "routed as /users/me");
    assert_eq!(r.line("path="), Some("/users/me"));
    // An escaped slash is not a separator.
    let r = request(p, "GET", "/users/1%2F2", &[]).await;
    assert_eq!(r.status, 404, "`1/2` is not a u64");
}

#[tokio::test]
async fn route_table_is_data() {
    let table = edge::ROUTES.to_string();
    assert!(table.contains("GET|HEAD  *"), "{table}");
    assert!(table.contains("/users/{id}"));
    assert_eq!(edge::ROUTES.routes().len(), 16);
}

/// Method handling without a catch-all: 405 with `Allow`, and HEAD wherever GET is.
#[proxy]
mod methods {
    #[route(GET, "/page", respond = 200, body = "a page\n")]
    fn page() {}

    #[route(POST, "/form", respond = 201)]
    fn form() {}

    /// A route declaring HEAD takes HEAD from the GET route of the same path.
    #[route(GET, "/both", respond = 200, body = "get\n")]
    fn both_get() {}

    #[route(HEAD, "/both", respond = 204)]
    fn both_head() {}

    /// An explicit HEAD route on a broader pattern takes HEAD from the GET route.
    #[route(GET, "/api/{id}", respond = 200, body = "get\n")]
    fn api_get() {}

    #[route(HEAD, "/api/{*rest}", respond = 202)]
    fn api_head() {}
}

#[tokio::test]
async fn head_goes_where_get_goes_and_405_lists_the_methods() {
    let p = serve_service(methods::service(&methods::config()).unwrap()).await;
    let r = request(p, "HEAD", "/page", &[]).await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("7")));
    assert_eq!(r.body, "", "HEAD gets no body");
    let r = request(p, "PUT", "/page", &[("content-length", "0")]).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    let r = request(p, "HEAD", "/form", &[]).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    assert_eq!(request(p, "HEAD", "/both", &[]).await.status, 204);
    assert_eq!(request(p, "GET", "/both", &[]).await.body, "get\n");
    assert_eq!(request(p, "HEAD", "/api/5", &[]).await.status, 202);
    assert_eq!(request(p, "GET", "/api/5", &[]).await.body, "get\n");
}
