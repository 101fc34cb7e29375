// The smallest declaration: no options, no #[ctx] (the context is `()`), one route.
use proxy_runtime::prelude::*;

#[proxy]
mod plain {
    use super::*;

    #[upstream(addrs = "127.0.0.1:9001")]
    pub struct Origin;

    #[route(ANY, "/{*path}", to = Origin)]
    fn everything(_path: String, req: &RequestHeader) {
        let _ = req;
    }
}

fn main() {
    assert_eq!(plain::SPEC.name, "plain");
    assert!(plain::SPEC.listen.is_empty());
    assert_eq!(plain::SPEC.threads, None);
    assert_eq!(plain::SPEC.upstreams[0].addrs, ["127.0.0.1:9001"]);
    let route = plain::Route::Everything {
        path: "a/b".to_string(),
    };
    assert_eq!(route.name(), "everything");
    print!("{}", plain::ROUTES);
}
