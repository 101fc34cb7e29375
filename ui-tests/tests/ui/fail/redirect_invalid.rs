use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[route(GET, "/a", redirect = "")]
    fn a() {}

    #[route(GET, "/b", redirect = "/x\r\nset-cookie: a=1")]
    fn b() {}

    #[route(GET, "/c/{id}", redirect = "/c2/{id}}")]
    fn c() {}

    #[route(GET, "/d", redirect = "/bücher")]
    fn d() {}
}

fn main() {}
