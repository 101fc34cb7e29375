//! Validators: answering a client's conditional request from a stored response
//! (RFC 9110 §13), revalidating a stored response with the origin (RFC 9111 §4.3), and
//! refreshing it from the origin's `304` (RFC 9111 §3.2, §4.3.4).

use http::{HeaderName, Method, header};

use super::freshness::parse_http_date;
use crate::http::{RequestHeader, ResponseHeader};

/// Request fields the cache evaluates itself: they are not sent to the origin when the
/// response may be stored (the origin must send the whole representation).
static CLIENT_CONDITIONALS: [HeaderName; 4] = [
    header::RANGE,
    header::IF_RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
];

/// Whether the client's `If-None-Match` / `If-Modified-Since` say it already has the
/// representation `resp` (RFC 9110 §13.1.2, §13.1.3, precedence of §13.2.2): then the
/// answer is `304`. Only for GET and HEAD.
pub fn not_modified(req: &RequestHeader, resp: &ResponseHeader) -> bool {
    if req.method != Method::GET && req.method != Method::HEAD {
        return false;
    }
    if !resp.status.is_success() {
        return false;
    }
    let inm: Vec<&[u8]> = req
        .header_values(header::IF_NONE_MATCH)
        .map(|v| v.as_bytes())
        .collect();
    if !inm.is_empty() {
        let Some(etag) = resp.header(header::ETAG) else {
            return false;
        };
        return inm
            .iter()
            .flat_map(|v| entity_tags(v))
            .any(|t| t == b"*" || weak_eq(t, etag.as_bytes()));
    }
    let (Some(ims), Some(lm)) = (
        req.header(header::IF_MODIFIED_SINCE),
        resp.header(header::LAST_MODIFIED),
    ) else {
        return false;
    };
    let (Some(ims), Some(lm)) = (
        ims.to_str().ok().and_then(parse_http_date),
        lm.to_str().ok().and_then(parse_http_date),
    ) else {
        return false;
    };
    lm <= ims
}

/// Whether the client's `If-Match` / `If-Unmodified-Since` fail against the stored
/// `resp` (RFC 9110 §13.1.1, §13.1.4, precedence of §13.2.2): then the answer is `412`
/// instead of the stored response. Preconditions are ignored when the response would
/// not be a 2xx (§13.2.1).
pub fn precondition_failed(req: &RequestHeader, resp: &ResponseHeader) -> bool {
    if !resp.status.is_success() {
        return false;
    }
    let im: Vec<&[u8]> = req
        .header_values(header::IF_MATCH)
        .map(|v| v.as_bytes())
        .collect();
    if !im.is_empty() {
        let etag = resp.header(header::ETAG).map(|e| e.as_bytes());
        let matched = im
            .iter()
            .flat_map(|v| entity_tags(v))
            .any(|t| t == b"*" || etag.is_some_and(|e| strong_eq(t, e)));
        return !matched;
    }
    let (Some(ius), Some(lm)) = (
        req.header(header::IF_UNMODIFIED_SINCE),
        resp.header(header::LAST_MODIFIED),
    ) else {
        return false;
    };
    match (
        ius.to_str().ok().and_then(parse_http_date),
        lm.to_str().ok().and_then(parse_http_date),
    ) {
        (Some(ius), Some(lm)) => lm > ius,
        // An invalid date is ignored (§13.1.4).
        _ => false,
    }
}

/// The entity-tags of an `If-None-Match` value (`*`, or a list; commas inside quotes
/// are part of a tag).
fn entity_tags(v: &[u8]) -> Vec<&[u8]> {
    let mut tags = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, &b) in v.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                tags.push(v[start..i].trim_ascii());
                start = i + 1;
            }
            _ => {}
        }
    }
    tags.push(v[start..].trim_ascii());
    tags.retain(|t| !t.is_empty());
    tags
}

/// Strong comparison (RFC 9110 §8.8.3.2): neither tag is weak, and they are equal.
fn strong_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (a.trim_ascii(), b.trim_ascii());
    a.len() >= 2 && a.starts_with(b"\"") && a.ends_with(b"\"") && a == b
}

/// Weak comparison (RFC 9110 §8.8.3.2): the opaque tags are equal, `W/` ignored.
pub fn weak_eq(a: &[u8], b: &[u8]) -> bool {
    let strip = |t: &[u8]| -> Vec<u8> {
        t.trim_ascii()
            .strip_prefix(b"W/")
            .unwrap_or(t.trim_ascii())
            .to_vec()
    };
    let (a, b) = (strip(a), strip(b));
    a.len() >= 2 && a.starts_with(b"\"") && a.ends_with(b"\"") && a == b
}

/// The `304 Not Modified` for `resp` (RFC 9110 §15.4.5): the fields a cache needs to
/// update its own copy, no body — and `Set-Cookie`, which is not metadata of the
/// representation: when the 304 stands for the origin's answer to this very client
/// (a conditional request on a miss), its cookie is the client's. A stored head never
/// has one (`NEVER_STORED`).
pub fn not_modified_head(resp: &ResponseHeader) -> ResponseHeader {
    static KEPT: [HeaderName; 9] = [
        header::SET_COOKIE,
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::VARY,
        header::LAST_MODIFIED,
        header::AGE,
    ];
    let mut head = resp.clone();
    head.set_status(304).ok();
    head.fields_mut().retain(|name, _| KEPT.contains(name));
    head
}

/// Prepare the request for the origin when its response may be stored: the client's
/// own validators and ranges are removed (the cache answers them), and a stored
/// response's validators are added to revalidate it.
pub fn prepare_upstream_request(req: &mut RequestHeader, revalidating: Option<&ResponseHeader>) {
    for name in &CLIENT_CONDITIONALS {
        req.remove_header(name);
    }
    let Some(stored) = revalidating else { return };
    if let Some(etag) = stored.header(header::ETAG).cloned() {
        let _ = req.insert_header(header::IF_NONE_MATCH, etag);
    }
    if let Some(lm) = stored.header(header::LAST_MODIFIED).cloned() {
        let _ = req.insert_header(header::IF_MODIFIED_SINCE, lm);
    }
}

/// Whether a `304` from revalidation stands for a representation other than the stored
/// one (RFC 9111 §4.3.4): it carries an entity-tag the stored response does not match
/// (strongly, when the 304's tag is strong). Such a 304 must not update the stored
/// response; it says nothing about the body the cache holds. A 304 without a tag is
/// taken to be about the stored response (origins often leave validators out).
pub fn names_other_representation(stored: &ResponseHeader, not_modified: &ResponseHeader) -> bool {
    let Some(new) = not_modified.header(header::ETAG) else {
        return false;
    };
    let new = new.as_bytes();
    let weak = new.trim_ascii().starts_with(b"W/");
    !stored.header(header::ETAG).is_some_and(|old| {
        let old = old.as_bytes();
        if weak {
            weak_eq(old, new)
        } else {
            strong_eq(old, new)
        }
    })
}

/// Fields of a `304` that do not update the stored response (RFC 9111 §3.2).
static NOT_UPDATED: [HeaderName; 5] = [
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::CONTENT_RANGE,
    header::TRANSFER_ENCODING,
    header::CONTENT_TYPE,
];

/// Fields a shared cache never stores (RFC 9111 §3.1: they concern the proxy or the
/// one client that got them). Responses with `Set-Cookie` are not stored at all; a
/// `Set-Cookie` arriving on a `304` must not be merged into a stored head either.
pub(crate) static NEVER_STORED: [HeaderName; 3] = [
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("proxy-authentication-info"),
    header::SET_COOKIE,
];

/// The stored head updated with the fields of the origin's `304` (RFC 9111 §3.2): each
/// field present in the 304 replaces the stored one, except those describing the body,
/// those never stored, and `Age` (the age comes from the 304's exchange: a stored `Age`
/// would make the refreshed response look older than it is).
pub fn refreshed_head(stored: &ResponseHeader, not_modified: &ResponseHeader) -> ResponseHeader {
    let mut head = stored.clone();
    head.remove_header(header::AGE);
    let mut replaced: Vec<&HeaderName> = Vec::new();
    for (name, _) in not_modified.header_fields() {
        if NOT_UPDATED.contains(name)
            || NEVER_STORED.contains(name)
            || name == header::AGE
            || replaced.contains(&name)
        {
            continue;
        }
        replaced.push(name);
        head.remove_header(name);
        for v in not_modified.header_values(name) {
            let _ = head.append_header(name.clone(), v.clone());
        }
    }
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Version;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(Method::GET, "/", Version::HTTP_11).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    fn resp(headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_star() {
        let stored = resp(&[("etag", "W/\"v1\"")]);
        assert!(not_modified(&req(&[("if-none-match", "\"v1\"")]), &stored));
        assert!(not_modified(
            &req(&[("if-none-match", "\"x\", W/\"v1\"")]),
            &stored
        ));
        assert!(not_modified(&req(&[("if-none-match", "*")]), &stored));
        assert!(!not_modified(&req(&[("if-none-match", "\"v2\"")]), &stored));
        // A quoted comma does not split a tag.
        let stored = resp(&[("etag", "\"a,b\"")]);
        assert!(not_modified(&req(&[("if-none-match", "\"a,b\"")]), &stored));
        assert!(!not_modified(&req(&[("if-none-match", "\"a\"")]), &stored));
    }

    #[test]
    fn if_none_match_takes_precedence_over_if_modified_since() {
        let stored = resp(&[
            ("etag", "\"v1\""),
            ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ]);
        let r = req(&[
            ("if-none-match", "\"v2\""),
            ("if-modified-since", "Tue, 02 Jan 2024 00:00:00 GMT"),
        ]);
        assert!(!not_modified(&r, &stored));
        let r = req(&[("if-modified-since", "Tue, 02 Jan 2024 00:00:00 GMT")]);
        assert!(not_modified(&r, &stored));
        let r = req(&[("if-modified-since", "Sun, 31 Dec 2023 00:00:00 GMT")]);
        assert!(!not_modified(&r, &stored));
        let r = req(&[("if-modified-since", "garbage")]);
        assert!(!not_modified(&r, &stored));
    }

    #[test]
    fn conditionals_only_for_get_and_head() {
        let stored = resp(&[("etag", "\"v1\"")]);
        let mut r = req(&[("if-none-match", "\"v1\"")]);
        r.set_method(Method::POST);
        assert!(!not_modified(&r, &stored));
    }

    #[test]
    fn not_modified_head_keeps_cache_fields_only() {
        let stored = resp(&[
            ("etag", "\"v1\""),
            ("cache-control", "max-age=60"),
            ("content-type", "text/html"),
            ("content-length", "42"),
            ("x-custom", "1"),
        ]);
        let head = not_modified_head(&stored);
        assert_eq!(head.status, 304);
        let names: Vec<&str> = head.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["etag", "cache-control"]);
    }

    #[test]
    fn upstream_requests_lose_client_validators_and_gain_stored_ones() {
        let mut r = req(&[
            ("range", "bytes=0-1"),
            ("if-none-match", "\"client\""),
            ("accept", "*/*"),
        ]);
        let stored = resp(&[
            ("etag", "\"stored\""),
            ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ]);
        prepare_upstream_request(&mut r, Some(&stored));
        assert_eq!(r.header_str("range"), None);
        assert_eq!(r.header_str("if-none-match"), Some("\"stored\""));
        assert_eq!(
            r.header_str("if-modified-since"),
            Some("Mon, 01 Jan 2024 00:00:00 GMT")
        );
        assert_eq!(r.header_str("accept"), Some("*/*"));
    }

    #[test]
    fn a_304_with_another_entity_tag_names_another_representation() {
        let stored = resp(&[("etag", "\"v1\"")]);
        let other = |tag: &str| names_other_representation(&stored, &resp(&[("etag", tag)]));
        assert!(!other("\"v1\""));
        assert!(!other("W/\"v1\""), "a weak tag compares weakly");
        assert!(other("\"v2\""));
        assert!(!names_other_representation(&stored, &resp(&[])));
        let weak_stored = resp(&[("etag", "W/\"v1\"")]);
        assert!(names_other_representation(
            &weak_stored,
            &resp(&[("etag", "\"v1\"")])
        ));
        assert!(names_other_representation(
            &resp(&[]),
            &resp(&[("etag", "\"v1\"")])
        ));
    }

    #[test]
    fn a_304_refreshes_the_stored_head_except_body_fields() {
        let stored = resp(&[
            ("cache-control", "max-age=10"),
            ("content-length", "5"),
            ("etag", "\"v1\""),
            ("x-kept", "yes"),
        ]);
        let fresh = {
            let mut r = resp(&[
                ("cache-control", "max-age=600"),
                ("content-length", "0"),
                ("date", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ]);
            r.set_status(304).unwrap();
            r
        };
        let head = refreshed_head(&stored, &fresh);
        assert_eq!(head.status, 200);
        assert_eq!(head.header_str("cache-control"), Some("max-age=600"));
        assert_eq!(head.header_str("content-length"), Some("5"));
        assert_eq!(head.header_str("x-kept"), Some("yes"));
        assert_eq!(
            head.header_str("date"),
            Some("Mon, 01 Jan 2024 00:00:00 GMT")
        );
    }
}
