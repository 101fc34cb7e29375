use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[ctx]
    #[derive(Default)]
    pub struct Ctx {
        pub user: Option<String>,
    }

    #[ctx]
    #[derive(Default)]
    pub struct Session2 {
        pub started: u64,
    }

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(ANY, "/{*rest}", to = Api)]
    fn all(req: &RequestHeader, ctx: &mut Ctx) {
        ctx.user = req.header_str("x-user").map(String::from);
    }
}

fn main() {}
