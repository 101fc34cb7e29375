//! Benchmarks of `proxy-runtime` (see `bench/README.md`): the route matcher the DSL
//! compiles against `matchit`, HTTP/1 head parsing and serialization, and the compile
//! cost of a large `#[proxy]` declaration (`bench/compile-cost/measure.sh`).
//!
//! The benchmarks live in `benches/`; this library holds what they share, and the
//! parts of the load benchmark `loadbench` (`src/bin/loadbench.rs`, module [`load`]).

/// A browser-like request head (Chrome on Linux, a GitHub API call): request line and
/// 12 header fields.
pub const BROWSER_REQUEST: &[u8] = b"GET /repos/octocat/hello-world/issues?state=open&per_page=50 HTTP/1.1\r\n\
Host: api.github.com\r\n\
Connection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n\
Accept: application/vnd.github+json\r\n\
sec-ch-ua-mobile: ?0\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Sec-Fetch-Site: same-site\r\n\
Sec-Fetch-Mode: cors\r\n\
Referer: https://github.com/octocat/hello-world/issues\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n\
Cookie: _octo=GH1.1.1234567890.1700000000; logged_in=yes; dotcom_user=octocat; color_mode=%7B%22color_mode%22%3A%22auto%22%7D\r\n\
\r\n";

pub mod load;
