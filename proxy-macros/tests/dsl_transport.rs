//! `#[upstream(transport = ...)]`: a group whose requests go over a custom transport —
//! here an in-process handler, no socket behind it.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{request, serve};
use proxy_runtime::prelude::*;
use proxy_runtime::protocols::custom::in_process::{
    InProcess, InProcessRequest, InProcessResponse,
};

/// The application behind the proxy, embedded in the same process.
pub fn app() -> impl proxy_runtime::protocols::custom::CustomTransport {
    InProcess::new(|mut req: InProcessRequest| async move {
        let body = req.body.read_to_end(1 << 20).await?;
        let text = format!(
            "{} {} host={} body={}",
            req.head.method,
            req.head.path_and_query(),
            req.head.header_str("host").unwrap_or("-"),
            body.len()
        );
        Ok(InProcessResponse::text(200, text))
    })
}

#[proxy(name = "embedded")]
mod embedded {
    #[upstream(transport = super::app())]
    pub struct App;

    #[route(ANY, "/{*rest}", to = App)]
    fn all() {}
}

#[tokio::test]
async fn requests_reach_the_embedded_app_without_a_socket() {
    let service = embedded::service(&embedded::config()).unwrap();
    let addr = serve(service.proxy().clone()).await;
    let r = request(addr, "GET", "/hello?x=1", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "GET /hello?x=1 host=test.local body=0");
    let r = request(addr, "POST", "/upload", &[("content-length", "0")]).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "POST /upload host=test.local body=0")
    );
}
