use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(ANY, "/{*rest}", to = Api)]
    fn all() {}

    #[phase(request_filter)]
    fn tag(req: &RequestHeader, resp: &mut ResponseHeader) -> Result<()> {
        let _ = req;
        resp.insert_header("x-tag", "1")
    }
}

fn main() {}
