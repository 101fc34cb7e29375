// Three independent mistakes: all three are reported in one build, and the module's
// own items (`helper`) are still there for `main`.
use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"], read_timeout = "5 secs")]
    pub struct Api;

    #[route(GET, "/users/{id}", to = Apii)]
    fn user(id: u64, req: &mut RequestHeader) -> Result<()> {
        req.insert_header("x-user-id", id.to_string())
    }

    #[phase(logging)]
    fn log(session: &mut Session, route: Option<&Route>) {
        let _ = (session, route.map(Route::name));
    }

    #[phase(reponse_filter)]
    fn tag(resp: &mut ResponseHeader) -> Result<()> {
        resp.insert_header("x-served-by", helper())
    }

    pub fn helper() -> &'static str {
        "edge"
    }
}

fn main() {
    println!("{}", edge::helper());
}
