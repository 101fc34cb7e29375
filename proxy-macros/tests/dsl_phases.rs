//! Phases declared with the DSL, driven over loopback: pipeline order, early stop,
//! scoping, the context shared across phases, body and error phases.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{origin, request, serve_service};
use proxy_runtime::prelude::*;

/// What the logging phase saw, per request, in order.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
static CONNECT_FAILURES: AtomicUsize = AtomicUsize::new(0);

#[proxy(name = "phased")]
mod phased {
    use super::*;

    #[ctx]
    #[derive(Default)]
    pub struct Ctx {
        pub trail: Vec<&'static str>,
        pub user: Option<String>,
    }

    #[upstream(addrs = ["127.0.0.1:1"])]
    pub struct Api;

    /// Nothing listens here: connecting fails (and is retried twice).
    #[upstream(addrs = ["127.0.0.1:1"], retries = 2)]
    pub struct Dead;

    #[route(GET, "/open", to = Api)]
    fn open() {}

    #[route(GET, "/private/{*rest}", to = Api)]
    fn private(ctx: &mut Ctx) {
        ctx.trail.push("handler");
    }

    #[route(GET, "/dead", to = Dead)]
    fn dead() {}

    #[route(GET, "/dead-once", to = Dead, retries = 0)]
    fn dead_once() {}

    #[phase(early_request_filter)]
    fn first(ctx: &mut Ctx) {
        ctx.trail.push("early");
    }

    #[phase(request_filter)]
    async fn second(ctx: &mut Ctx, req: &RequestHeader) -> Option<Response> {
        ctx.trail.push("filter-1");
        (req.header_str("x-stop") == Some("1"))
            .then(|| Response::text(403, "stopped by filter-1\n"))
    }

    /// Scoped: only `/private/...` needs a user.
    #[phase(request_filter, routes = [private])]
    async fn auth(ctx: &mut Ctx, req: &RequestHeader) -> Result<Flow> {
        ctx.trail.push("auth");
        match req.header_str("x-user") {
            Some(u) => {
                ctx.user = Some(u.to_string());
                Ok(Flow::Continue)
            }
            None => Ok(Flow::Respond(Response::text(401, "who are you?\n"))),
        }
    }

    #[phase(upstream_request_filter)]
    async fn pass_user(upstream_request: &mut RequestHeader, ctx: &mut Ctx) -> Result<()> {
        ctx.trail.push("upstream-request");
        if let Some(u) = &ctx.user {
            upstream_request.insert_header("x-authenticated-user", u.clone())?;
        }
        Ok(())
    }

    #[phase(response_filter)]
    async fn trail_header(upstream_response: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()> {
        ctx.trail.push("response");
        upstream_response.insert_header("x-trail", ctx.trail.join(","))
    }

    #[phase(response_body_filter)]
    fn shout(body: &mut Option<Bytes>, route: &Route) {
        if matches!(route, Route::Private { .. })
            && let Some(b) = body
        {
            *b = Bytes::from(String::from_utf8_lossy(b).to_uppercase());
        }
    }

    #[phase(upstream_response_filter)]
    async fn drop_length(upstream_response: &mut ResponseHeader, route: Option<&Route>) {
        // The body filter keeps the length, but say so explicitly for the test.
        if route.is_some() {
            upstream_response
                .insert_header("x-seen-upstream", "1")
                .unwrap();
        }
    }

    #[phase(fail_to_connect)]
    fn count_failures(e: Box<Error>) -> Box<Error> {
        CONNECT_FAILURES.fetch_add(1, Ordering::SeqCst);
        e
    }

    #[phase(logging)]
    async fn log(session: &mut Session, ctx: &mut Ctx, e: Option<&Error>) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        LOG.lock().unwrap().push(format!(
            "{} {} {} {}",
            session.req_header().path(),
            status,
            ctx.trail.join(","),
            e.map_or("ok".to_string(), |e| e.kind.as_str().to_string())
        ));
    }
}

async fn start() -> std::net::SocketAddr {
    let conf = phased::config().with_upstream("Api", &[&origin("api").await]);
    serve_service(phased::service(&conf).unwrap()).await
}

fn logged(path: &str) -> Vec<String> {
    LOG.lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with(&format!("{path} ")))
        .cloned()
        .collect()
}

#[tokio::test]
async fn phases_run_in_order_and_share_the_context() {
    let p = start().await;
    let r = request(p, "GET", "/open", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-trail"),
        Some("early,filter-1,upstream-request,response"),
        "unscoped phases in declaration order; `auth` is scoped away"
    );
    assert_eq!(r.header("x-seen-upstream"), Some("1"));
    assert_eq!(
        logged("/open"),
        ["/open 200 early,filter-1,upstream-request,response ok"]
    );
}

#[tokio::test]
async fn a_phase_that_answers_stops_the_pipeline() {
    let p = start().await;
    let r = request(p, "GET", "/private/x", &[("x-stop", "1")]).await;
    assert_eq!((r.status, r.body.as_str()), (403, "stopped by filter-1\n"));
    let r = request(p, "GET", "/private/y", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (401, "who are you?\n"));
    assert_eq!(logged("/private/x"), ["/private/x 403 early,filter-1 ok"]);
    assert_eq!(
        logged("/private/y"),
        ["/private/y 401 early,filter-1,auth ok"]
    );
}

#[tokio::test]
async fn context_set_by_one_phase_is_seen_by_the_next() {
    let p = start().await;
    let r = request(p, "GET", "/private/z", &[("x-user", "ada")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-trail"),
        Some("early,filter-1,auth,handler,upstream-request,response")
    );
    // The origin's body went through the body filter (scoped by route inside it).
    assert!(r.body.contains("X-AUTHENTICATED-USER: ADA"), "{}", r.body);
}

#[tokio::test]
async fn connect_failures_are_retried_as_declared_then_502() {
    let p = start().await;
    let before = CONNECT_FAILURES.load(Ordering::SeqCst);
    let r = request(p, "GET", "/dead-once", &[]).await;
    assert_eq!(r.status, 502);
    let after_once = CONNECT_FAILURES.load(Ordering::SeqCst);
    let r = request(p, "GET", "/dead", &[]).await;
    assert_eq!(r.status, 502);
    let after_dead = CONNECT_FAILURES.load(Ordering::SeqCst);
    // Other tests run concurrently but none of them fails to connect.
    assert_eq!(
        after_once - before,
        1,
        "retries = 0 on the route: one attempt"
    );
    assert_eq!(
        after_dead - after_once,
        3,
        "retries = 2 on the upstream: three attempts"
    );
    let log = logged("/dead");
    assert_eq!(log.len(), 1, "logging runs exactly once per request");
    assert!(log[0].ends_with("ConnectRefused"), "{log:?}");
}
