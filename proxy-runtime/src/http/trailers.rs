//! Which fields a trailer section may carry across the proxy (RFC 9110 §6.5.1).
//!
//! A trailer arrives after the content, so a field whose meaning is needed before it —
//! framing, routing, authentication, request modifiers, response controls, the content's
//! format — cannot be a trailer. A recipient that merged such a trailer into the header
//! section (some back ends do) could be steered by it, and hop-by-hop fields never cross
//! a proxy at all (§7.6.1). Those fields are dropped from every trailer section the
//! proxy receives, from clients and from origins, over HTTP/1.1 and HTTP/2; anything
//! else (checksums, `grpc-status`, timing) passes.

use http::{HeaderMap, HeaderName, header};

/// The names never relayed in a trailer section.
static NOT_IN_TRAILERS: [HeaderName; 33] = [
    // Framing and connection management (hop-by-hop included).
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::TRAILER,
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::UPGRADE,
    // Routing and request modifiers.
    header::HOST,
    header::EXPECT,
    header::MAX_FORWARDS,
    header::RANGE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
    header::COOKIE,
    // Authentication.
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::WWW_AUTHENTICATE,
    header::PROXY_AUTHENTICATE,
    header::SET_COOKIE,
    // Response controls and content format.
    header::CACHE_CONTROL,
    header::PRAGMA,
    header::EXPIRES,
    header::AGE,
    header::VARY,
    header::LOCATION,
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONTENT_RANGE,
    header::RETRY_AFTER,
];

/// Drop from `trailers` every field that may not be sent as a trailer; returns how
/// many fields went (for a log line).
pub(crate) fn drop_disallowed(trailers: &mut HeaderMap) -> usize {
    let before = trailers.len();
    if NOT_IN_TRAILERS.iter().any(|n| trailers.contains_key(n)) {
        for name in &NOT_IN_TRAILERS {
            trailers.remove(name);
        }
    }
    before - trailers.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_routing_and_auth_fields_are_dropped_others_kept() {
        let mut t = HeaderMap::new();
        for (n, v) in [
            ("content-length", "50"),
            ("transfer-encoding", "chunked"),
            ("host", "evil"),
            ("connection", "close"),
            ("authorization", "x"),
            ("set-cookie", "a=b"),
            ("x-checksum", "abc"),
            ("grpc-status", "0"),
        ] {
            t.append(HeaderName::from_static(n), v.parse().unwrap());
        }
        assert_eq!(drop_disallowed(&mut t), 6);
        let mut left: Vec<&str> = t.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["grpc-status", "x-checksum"]);
    }
}
