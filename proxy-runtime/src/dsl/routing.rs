//! Support for the route matchers the DSL compiles: path normalization, segment
//! splitting, parameter decoding, method sets, host comparison, and the route table
//! as data.
//!
//! The generated matcher is straight-line code (nested `match`es on path segments),
//! not a runtime trie; these helpers are the pieces it calls. Nothing here allocates
//! unless a path needs normalizing or a parameter needs percent-decoding.
//!
//! **Normalization** (before matching; the normalized path is also what the upstream
//! receives): percent-escapes of unreserved characters are decoded (`%7E` → `~`), other
//! escapes are upper-cased (`%2f` → `%2F`, never decoded: an escaped slash is not a
//! separator), repeated slashes are merged, and `.`/`..` segments are resolved (never
//! above the root).

use std::borrow::Cow;
use std::fmt;

use http::Method;

/// Normalize a request path for matching (see the module docs).
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let needs_work = path.contains('%') || path.contains("//") || has_dot_segment(path);
    if !needs_work {
        return Cow::Borrowed(path);
    }
    let decoded = normalize_escapes(path);
    let mut segments: Vec<&str> = Vec::new();
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Cow::Owned(out)
}

fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|s| s == "." || s == "..")
}

fn normalize_escapes(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            let v = h * 16 + l;
            if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                out.push(v as char);
            } else {
                out.push('%');
                out.push(bytes[i + 1].to_ascii_uppercase() as char);
                out.push(bytes[i + 2].to_ascii_uppercase() as char);
            }
            i += 3;
            continue;
        }
        // The path came from a parsed URI: it is ASCII.
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Split the next segment off `rest` (a path without its leading `/`): the segment, and
/// what follows its `/` — `None` when this was the last segment.
#[inline(always)]
pub fn split_segment(rest: &str) -> (&str, Option<&str>) {
    // Segments are short: a plain byte loop beats a general substring search here.
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'/' {
            // `/` is ASCII, so both halves are on character boundaries.
            let (seg, tail) = rest.split_at(i);
            return (seg, Some(&tail[1..]));
        }
        i += 1;
    }
    (rest, None)
}

/// Percent-decode a parameter value; `None` if the result is not UTF-8.
pub fn decode_param(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.contains('%') {
        return Some(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// Parse a route parameter into its declared type.
pub fn parse_param<T: std::str::FromStr>(raw: &str) -> Option<T> {
    decode_param(raw)?.parse().ok()
}

/// A set of methods as bits (the DSL's `GET | HEAD`, `ANY`).
pub mod methods {
    /// `GET`.
    pub const GET: u16 = 1;
    /// `HEAD`.
    pub const HEAD: u16 = 1 << 1;
    /// `POST`.
    pub const POST: u16 = 1 << 2;
    /// `PUT`.
    pub const PUT: u16 = 1 << 3;
    /// `DELETE`.
    pub const DELETE: u16 = 1 << 4;
    /// `CONNECT`.
    pub const CONNECT: u16 = 1 << 5;
    /// `OPTIONS`.
    pub const OPTIONS: u16 = 1 << 6;
    /// `TRACE`.
    pub const TRACE: u16 = 1 << 7;
    /// `PATCH`.
    pub const PATCH: u16 = 1 << 8;
    /// Any other (extension) method.
    pub const OTHER: u16 = 1 << 9;
    /// Every method.
    pub const ANY: u16 = (1 << 10) - 1;
    /// Names in bit order.
    pub const NAMES: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
}

/// The bit of a request method.
#[inline]
pub fn method_bit(m: &Method) -> u16 {
    match *m {
        Method::GET => methods::GET,
        Method::HEAD => methods::HEAD,
        Method::POST => methods::POST,
        Method::PUT => methods::PUT,
        Method::DELETE => methods::DELETE,
        Method::CONNECT => methods::CONNECT,
        Method::OPTIONS => methods::OPTIONS,
        Method::TRACE => methods::TRACE,
        Method::PATCH => methods::PATCH,
        _ => methods::OTHER,
    }
}

/// `GET, HEAD` for an `Allow` header. HEAD is allowed wherever GET is (a HEAD request
/// no route declares HEAD for goes where GET would).
pub fn allow_header(mask: u16) -> String {
    let mask = if mask & methods::GET != 0 {
        mask | methods::HEAD
    } else {
        mask
    };
    let mut out = String::new();
    for (i, name) in methods::NAMES.iter().enumerate() {
        if mask & (1 << i) != 0 {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(name);
        }
    }
    out
}

/// Whether `host` (already without port) matches a wildcard `*.suffix` given as
/// `.suffix` (with the dot).
#[inline]
pub fn host_matches_wildcard(host: &str, dot_suffix: &str) -> bool {
    host.len() > dot_suffix.len()
        && host.as_bytes()[host.len() - dot_suffix.len()..]
            .eq_ignore_ascii_case(dot_suffix.as_bytes())
}

/// The request host for matching: without port and trailing dot.
#[inline]
pub fn match_host(host: Option<&str>) -> &str {
    host.map(|h| h.strip_suffix('.').unwrap_or(h)).unwrap_or("")
}

/// What a route does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteTarget {
    /// Forward to this upstream group.
    Upstream(&'static str),
    /// Redirect (status, location template).
    Redirect(u16, &'static str),
    /// Answer locally with this status.
    Respond(u16),
    /// The handler function answers.
    Handler,
}

/// One route, as data (for `--print-routes` and tools).
#[derive(Debug, Clone, Copy)]
pub struct RouteInfo {
    /// The function the route is declared on.
    pub name: &'static str,
    /// Method names, or `["ANY"]`.
    pub methods: &'static [&'static str],
    /// The host (`api.example.com`, `*.example.com`), if any.
    pub host: Option<&'static str>,
    /// The path pattern.
    pub pattern: &'static str,
    /// What it does.
    pub target: RouteTarget,
    /// Whether a cache policy is declared on it.
    pub cached: bool,
}

/// A declared route table, printable as an aligned table.
#[derive(Debug, Clone, Copy)]
pub struct RouteTable(pub &'static [RouteInfo]);

impl RouteTable {
    /// The routes.
    pub fn routes(&self) -> &'static [RouteInfo] {
        self.0
    }
}

impl fmt::Display for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<[String; 5]> = self
            .0
            .iter()
            .map(|r| {
                [
                    r.methods.join("|"),
                    r.host.unwrap_or("*").to_string(),
                    r.pattern.to_string(),
                    match r.target {
                        RouteTarget::Upstream(u) => format!("-> {u}"),
                        RouteTarget::Redirect(s, l) => format!("redirect {s} {l}"),
                        RouteTarget::Respond(s) => format!("respond {s}"),
                        RouteTarget::Handler => "handler".to_string(),
                    } + if r.cached { " (cached)" } else { "" },
                    r.name.to_string(),
                ]
            })
            .collect();
        let header = ["METHODS", "HOST", "PATH", "TARGET", "ROUTE"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 5]| {
            writeln!(
                f,
                "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {}",
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3],
            )
        };
        line(f, header)?;
        for row in &rows {
            line(f, [&row[0], &row[1], &row[2], &row[3], &row[4]])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_prefix_cuts_whole_segments() {
        assert_eq!(strip_segments("/assets/css/a.css", 1), "/css/a.css");
        assert_eq!(strip_segments("/assets/", 1), "/");
        assert_eq!(strip_segments("/assets", 1), "/");
        assert_eq!(strip_segments("/a~b/x", 1), "/x");
        assert_eq!(strip_segments("/v1/api/x/y", 2), "/x/y");
        assert_eq!(strip_segments("/short", 3), "/");
    }

    #[test]
    fn normalization() {
        assert!(matches!(normalize_path("/a/b"), Cow::Borrowed("/a/b")));
        assert_eq!(normalize_path("/a//b"), "/a/b");
        assert_eq!(normalize_path("/a/./b/../c"), "/a/c");
        assert_eq!(normalize_path("/../../etc"), "/etc");
        assert_eq!(normalize_path("/%7euser/%2f"), "/~user/%2F");
        assert_eq!(normalize_path("/a/%41"), "/a/A");
        assert_eq!(normalize_path("/a/b/.."), "/a/");
        assert_eq!(normalize_path("/a/"), "/a/");
        assert_eq!(normalize_path("//"), "/");
    }

    #[test]
    fn segments() {
        assert_eq!(split_segment("a/b"), ("a", Some("b")));
        assert_eq!(split_segment("a"), ("a", None));
        assert_eq!(split_segment(""), ("", None));
        assert_eq!(split_segment("a/"), ("a", Some("")));
    }

    #[test]
    fn params_decode() {
        assert_eq!(decode_param("John%20Doe").unwrap(), "John Doe");
        assert_eq!(parse_param::<u64>("42"), Some(42));
        assert_eq!(parse_param::<u64>("4x"), None);
        assert!(decode_param("%ff").is_none());
        assert_eq!(decode_param("%").unwrap(), "%");
    }

    #[test]
    fn hosts_and_methods() {
        assert!(host_matches_wildcard("a.Example.com", ".example.com"));
        assert!(!host_matches_wildcard("example.com", ".example.com"));
        assert_eq!(allow_header(methods::GET | methods::HEAD), "GET, HEAD");
        assert_eq!(
            method_bit(&Method::from_bytes(b"PURGE").unwrap()),
            methods::OTHER
        );
        assert_eq!(match_host(Some("a.com.")), "a.com");
    }
}

/// The result of a compiled matcher.
#[derive(Debug, Clone, Copy)]
pub enum Matched<'p, const N: usize> {
    /// Route number `.0` matched; its parameters' raw values are in `.1`, in pattern order.
    Found(usize, [&'p str; N]),
    /// Some route matched the path, but not with this method; the bits are the methods
    /// that would have matched.
    MethodNotAllowed(u16),
    /// No route matched the path.
    NotFound,
}

/// What routing decided for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOutcome {
    /// Routing has not run yet.
    Pending,
    /// A route matched.
    Matched,
    /// No route matched: 404.
    NotFound,
    /// The path matched but not the method: 405 with `Allow`.
    MethodNotAllowed(u16),
    /// A parameter did not parse into its type: this status (404 by default).
    ParamError(u16),
}

/// Answer a request that no route took (404, 405 with `Allow`, or a parameter error).
pub async fn answer_unrouted(
    outcome: RouteOutcome,
    session: &mut crate::session::Session,
) -> crate::Result<()> {
    use super::response::Response;
    let resp = match outcome {
        RouteOutcome::MethodNotAllowed(mask) => {
            Response::text(405, "405 Method Not Allowed\n").header("allow", allow_header(mask))
        }
        RouteOutcome::ParamError(status) => {
            let reason = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error");
            Response::text(status, format!("{status} {reason}\n"))
        }
        RouteOutcome::NotFound | RouteOutcome::Pending | RouteOutcome::Matched => {
            Response::text(404, "404 Not Found\n")
        }
    };
    resp.send(session).await
}

/// What a route's `strip_prefix` leaves of a matched `path`: everything after its
/// first `segments` segments, starting with `/` (`/` when nothing is left). Cut by
/// segments, not bytes, so a prefix declared with escapes (`%7E`) cuts the same
/// segments of a path normalized to `~`.
pub fn strip_segments(path: &str, segments: usize) -> String {
    let mut rest = path;
    for _ in 0..segments {
        let Some(after_slash) = rest.strip_prefix('/') else {
            break;
        };
        rest = after_slash.find('/').map_or("", |i| &after_slash[i..]);
    }
    if rest.starts_with('/') {
        rest.to_string()
    } else {
        format!("/{rest}")
    }
}

/// `path` + the request's query, if any. For redirects, the query is only added when
/// the location has none of its own.
pub fn with_query(mut path: String, query: Option<&str>, is_location: bool) -> String {
    if let Some(q) = query
        && !(is_location && path.contains('?'))
    {
        path.push('?');
        path.push_str(q);
    }
    path
}

fn bad_target(e: impl std::error::Error + Send + Sync + 'static) -> Box<crate::Error> {
    crate::Error::because(
        crate::ErrorKind::Internal,
        crate::ErrorSource::Internal,
        "rewritten request target is invalid",
        e,
    )
}

/// Replace the path of `req`, keeping its query (and scheme/authority if absolute).
pub fn replace_path(req: &mut crate::http::RequestHeader, path: &str) -> crate::Result<()> {
    let target = with_query(path.to_string(), req.uri.query(), false);
    replace_path_and_query(req, &target)
}

/// Replace the path and query of `req`.
pub fn replace_path_and_query(
    req: &mut crate::http::RequestHeader,
    path_and_query: &str,
) -> crate::Result<()> {
    let mut parts = req.uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().map_err(bad_target)?);
    req.set_uri(http::Uri::from_parts(parts).map_err(bad_target)?);
    Ok(())
}
