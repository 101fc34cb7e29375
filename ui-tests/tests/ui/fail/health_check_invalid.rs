// Health checks: a threshold of 0, an http check without a path, a tcp check with an
// http option, and an unknown kind — each reported at its token.
use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[upstream(addrs = ["10.0.0.1:80"], health = tcp(every = "5s", fall = 0))]
    pub struct A;

    #[upstream(addrs = ["10.0.0.2:80"], health = http(every = "5s"))]
    pub struct B;

    #[upstream(addrs = ["10.0.0.3:80"], health = tcp(every = "5s", path = "/x"))]
    pub struct C;

    #[upstream(addrs = ["10.0.0.4:80"], health = htp(path = "/x", every = "5s"))]
    pub struct D;

    #[route(GET, "/a", to = A)]
    fn a() {}
    #[route(GET, "/b", to = B)]
    fn b() {}
    #[route(GET, "/c", to = C)]
    fn c() {}
    #[route(GET, "/d", to = D)]
    fn d() {}
}

fn main() {}
