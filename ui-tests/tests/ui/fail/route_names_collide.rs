use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/a", to = Api)]
    fn user_profile() {}

    // Both would be the variant `Route::UserProfile`.
    #[allow(non_snake_case)]
    #[route(GET, "/b", to = Api)]
    fn userProfile() {}

    #[route(GET, "/c", to = Api)]
    fn get_a() {}

    #[route(GET, "/d", to = Api)]
    fn get__a() {}
}

fn main() {}
