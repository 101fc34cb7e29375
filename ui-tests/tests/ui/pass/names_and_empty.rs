// Names that meet what the expansion generates: parameters named like its locals
// (`session`, `ctx`) or like phase flags (`reused`, `eos`), raw identifiers; and a
// proxy without any route (everything answers 404).
use proxy_runtime::prelude::*;

#[proxy(listen = "127.0.0.1:8080")]
mod edge {
    use super::*;

    #[ctx]
    #[derive(Default)]
    pub struct Ctx {
        pub seen: u32,
    }

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/s/{session}/{ctx}", to = Api)]
    fn shadow(session: String, ctx: u32, c: &mut Ctx, req: &mut RequestHeader) -> Result<()> {
        c.seen = ctx;
        req.insert_header("x-session", session)
    }

    #[route(GET, "/flags/{reused}/{eos}", to = Api)]
    fn flags(reused: bool, eos: bool) {
        let _ = (reused, eos);
    }

    #[route(GET, "/kinds/{match}", to = Api)]
    fn r#type(r#match: String) {
        let _ = r#match;
    }

    /// The prefix is written with an escape; requests are normalized to `~`.
    #[route(GET, "/a%7Eb/{*rest}", to = Api, strip_prefix = "/a%7Eb/")]
    fn tilde() {}
}

#[proxy(listen = "127.0.0.1:8081")]
mod empty {}

fn main() {
    let names: Vec<&str> = edge::ROUTES.routes().iter().map(|r| r.name).collect();
    assert_eq!(names, ["shadow", "flags", "type", "tilde"]);
    let kind = edge::Route::Type {
        r#match: "x".into(),
    };
    assert_eq!(kind.name(), "type");
    assert!(empty::ROUTES.routes().is_empty());
}
