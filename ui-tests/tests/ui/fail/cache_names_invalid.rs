use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/a", to = Api)]
    #[cache(vary = ["accept encoding"], key = [header(""), cookie("a b"), query("")])]
    fn a() {}

    #[route(GET, "/b", to = Api)]
    #[cache(max_size = "0")]
    fn b() {}
}

fn main() {}
