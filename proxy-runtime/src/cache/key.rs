//! Cache keys as the storage sees them: a 128-bit hash of the [`CacheKey`] (scheme,
//! authority, path and query, user parts) and a 64-bit variance over the request
//! headers a response's `Vary` names.
//!
//! Hashes are keyed randomly per process (SipHash through [`RandomState`](std::hash::RandomState)), so nobody
//! can build a request whose key collides with another's offline; with 128 bits,
//! accidental collisions do not happen in practice. Keys are therefore not stable
//! across restarts, which an in-memory store does not need.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::OnceLock;

use http::HeaderName;

use super::CacheKey;
use crate::http::RequestHeader;

/// The hash of a [`CacheKey`]: every variant of one URL shares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrimaryKey(pub u128);

/// One stored object: its primary key and its variance (0 when the response does not
/// vary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// The URL's key.
    pub primary: PrimaryKey,
    /// Which variant (see [`variance`]).
    pub variance: u64,
}

fn hashers() -> &'static [std::collections::hash_map::RandomState; 2] {
    static KEYS: OnceLock<[std::collections::hash_map::RandomState; 2]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            std::collections::hash_map::RandomState::new(),
            std::collections::hash_map::RandomState::new(),
        ]
    })
}

fn write_key(h: &mut impl Hasher, key: &CacheKey) {
    // Length-prefixed parts: ("ab", "c") and ("a", "bc") hash differently.
    for part in [&key.scheme, &key.authority, &key.path_and_query] {
        h.write_usize(part.len());
        h.write(part.as_bytes());
    }
    h.write_usize(key.extra.len());
    for part in &key.extra {
        h.write_usize(part.len());
        h.write(part.as_bytes());
    }
}

impl PrimaryKey {
    /// The primary key of `key`.
    pub fn of(key: &CacheKey) -> Self {
        let [a, b] = hashers();
        let mut ha = a.build_hasher();
        let mut hb = b.build_hasher();
        write_key(&mut ha, key);
        write_key(&mut hb, key);
        PrimaryKey((u128::from(ha.finish()) << 64) | u128::from(hb.finish()))
    }
}

/// The variance of `req` over the `Vary` header names `vary` (lower case, sorted): a
/// hash of each name with its values as received. No names: 0.
pub fn variance(vary: &[HeaderName], req: &RequestHeader) -> u64 {
    if vary.is_empty() {
        return 0;
    }
    let mut h = hashers()[0].build_hasher();
    for name in vary {
        name.as_str().hash(&mut h);
        for v in req.header_values(name) {
            h.write(v.as_bytes());
            h.write_u8(0);
        }
        h.write_u8(0xff);
    }
    // 0 means "does not vary".
    h.finish().max(1)
}

/// The header names a response's `Vary` lines list (`resp.header_values(VARY)`), lower
/// case, sorted, deduplicated; `None` for `Vary: *` (never cached).
pub fn vary_names<'a>(
    vary_lines: impl IntoIterator<Item = &'a http::HeaderValue>,
) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for v in vary_lines {
        for part in v.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() {
                continue;
            }
            if part == b"*" {
                return None;
            }
            if let Ok(n) = HeaderName::from_bytes(part) {
                names.push(n);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Version};

    fn key(authority: &str, path: &str) -> CacheKey {
        CacheKey {
            scheme: "http".into(),
            authority: authority.into(),
            path_and_query: path.into(),
            extra: Vec::new(),
        }
    }

    #[test]
    fn parts_are_length_prefixed_and_host_matters() {
        assert_eq!(
            PrimaryKey::of(&key("a", "/b")),
            PrimaryKey::of(&key("a", "/b"))
        );
        assert_ne!(
            PrimaryKey::of(&key("a", "/b")),
            PrimaryKey::of(&key("b", "/b"))
        );
        assert_ne!(
            PrimaryKey::of(&key("a/", "b")),
            PrimaryKey::of(&key("a", "/b"))
        );
        let with_extra = key("a", "/b").with_extra("mobile");
        assert_ne!(PrimaryKey::of(&with_extra), PrimaryKey::of(&key("a", "/b")));
    }

    #[test]
    fn variance_follows_the_varied_headers_only() {
        let req = |enc: &str, ua: &str| {
            let mut r = RequestHeader::build(Method::GET, "/", Version::HTTP_11).unwrap();
            r.insert_header("accept-encoding", enc).unwrap();
            r.insert_header("user-agent", ua).unwrap();
            r
        };
        let vary = vary_names([&http::HeaderValue::from_static("Accept-Encoding")]).unwrap();
        assert_eq!(vary, [HeaderName::from_static("accept-encoding")]);
        assert_eq!(
            variance(&vary, &req("gzip", "a")),
            variance(&vary, &req("gzip", "b"))
        );
        assert_ne!(
            variance(&vary, &req("gzip", "a")),
            variance(&vary, &req("br", "a"))
        );
        assert_eq!(variance(&[], &req("gzip", "a")), 0);
    }

    #[test]
    fn vary_star_is_never_cached() {
        let mut h = http::HeaderMap::new();
        h.append("vary", "accept, *".parse().unwrap());
        assert_eq!(vary_names(h.get_all("vary")), None);
        let mut h = http::HeaderMap::new();
        h.append("vary", "B, a".parse().unwrap());
        h.append("vary", "a".parse().unwrap());
        let names = vary_names(h.get_all("vary")).unwrap();
        assert_eq!(
            names,
            [HeaderName::from_static("a"), HeaderName::from_static("b")]
        );
    }
}
