// Rate-limit mistakes: a rate that does not parse, a zero burst, a key that is not a
// request part, companions without `rate_limit`.
use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[upstream(addrs = ["10.0.0.1:80"])]
    pub struct Api;

    #[route(GET, "/a", to = Api, rate_limit = "100/fortnight")]
    fn a() {}

    #[route(GET, "/b", to = Api, rate_limit = "0/s")]
    fn b() {}

    #[route(GET, "/c", to = Api, rate_limit = "10/s", burst = 0)]
    fn c() {}

    #[route(GET, "/d", to = Api, rate_limit = "10/s", by = query("key"))]
    fn d() {}

    #[route(GET, "/e", to = Api, by = header("x-api-key"))]
    fn e() {}

    // Longer than the limiter's nanosecond counter.
    #[route(GET, "/f", to = Api, rate_limit = "1/213504d")]
    fn f() {}
}

fn main() {}
