//! The configuration templates of `bench/load/` (compiled into the binary) and how
//! they are filled in: `@NAME@` placeholders, every one of which must be given.

/// The origin: nginx, one worker, `/1k` and `/100k` (and the same bodies with
/// `Cache-Control: max-age=3600` under `/cached/`), h2c port, `stub_status` port.
pub const ORIGIN_NGINX: &str = include_str!("../../load/origin-nginx.conf");
/// nginx as a reverse proxy (upstream keep-alive pool of 64).
pub const PROXY_NGINX: &str = include_str!("../../load/proxy-nginx.conf");
/// nginx as a caching reverse proxy (`proxy_cache` in `@CACHE_DIR@`, `X-Cache-Status`).
pub const PROXY_NGINX_CACHE: &str = include_str!("../../load/proxy-nginx-cache.conf");
/// haproxy as a reverse proxy (`nbthread 1`, `http-reuse always`).
pub const PROXY_HAPROXY: &str = include_str!("../../load/proxy-haproxy.cfg");

/// Replace every `@NAME@` of `template` with its value; an error names a placeholder
/// left unfilled (a template and the harness out of step).
pub fn render(template: &str, vars: &[(&str, String)]) -> Result<String, String> {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("@{name}@"), value);
    }
    // Any `@WORD@` left (comments included) is a placeholder nobody filled.
    for (i, _) in out.match_indices('@') {
        let rest = &out[i + 1..];
        if let Some(end) = rest.find('@') {
            let word = &rest[..end];
            if !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                return Err(format!("template placeholder @{word}@ has no value"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_and_checks() {
        let t = "listen @PORT@; root @DIR@/www; # @NAME@ placeholders";
        let vars = [("PORT", "1".to_string()), ("DIR", "/w".to_string())];
        assert!(
            render(t, &vars).is_err(),
            "the comment's @NAME@ is unfilled"
        );
        let vars = [
            ("PORT", "1".to_string()),
            ("DIR", "/w".to_string()),
            ("NAME", "x".to_string()),
        ];
        assert_eq!(
            render(t, &vars).expect("renders"),
            "listen 1; root /w/www; # x placeholders"
        );
    }

    #[test]
    fn templates_have_known_placeholders() {
        let vars: Vec<(&str, String)> = [
            "DIR",
            "PORT",
            "H2_PORT",
            "STATUS_PORT",
            "ORIGIN_PORT",
            "CONNS",
            "NOFILE",
            "CACHE_DIR",
        ]
        .iter()
        .map(|&n| (n, "1".to_string()))
        .collect();
        for t in [ORIGIN_NGINX, PROXY_NGINX, PROXY_NGINX_CACHE, PROXY_HAPROXY] {
            render(t, &vars).expect("every placeholder is known");
        }
    }
}
