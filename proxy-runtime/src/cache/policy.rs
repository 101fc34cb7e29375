//! The default storage decision: RFC 9111 for a shared cache, bounded by the limits a
//! phase (or the DSL's `#[cache(...)]`) set for the request.
//!
//! This is what [`ProxyHttp::response_cache_filter`](crate::ProxyHttp::response_cache_filter)
//! does unless a proxy overrides it.

use std::time::{Duration, SystemTime};

use http::header;

use super::control::CacheControl;
use super::freshness::{
    Storable, corrected_initial_age, freshness_lifetime, response_forbids_stale, storable,
};
use super::key::vary_names;
use super::state::CacheOverrides;
use super::{CacheMeta, NoCacheReason, RespCacheable};
use crate::http::{RequestHeader, ResponseHeader};

/// Whether and how to store `resp`, the origin's answer to `req` sent at
/// `request_time`.
///
/// - what RFC 9111 forbids is never stored, whatever the overrides (`no-store`,
///   `private`, `Vary: *`, `Set-Cookie`, `Authorization` without permission, ...);
/// - freshness is the origin's (`s-maxage`, `max-age`, `Expires`, or the heuristic);
///   `overrides.ttl` replaces a heuristic or missing one, or — with `force_ttl` — any;
/// - stale windows are the origin's `stale-while-revalidate` / `stale-if-error`, or the
///   overrides' when the origin gives none;
/// - a response that would be stale at once and has no validator and no stale window is
///   not worth storing.
pub fn decide(
    req: &RequestHeader,
    resp: &ResponseHeader,
    request_time: SystemTime,
    overrides: &CacheOverrides,
) -> RespCacheable {
    if let Storable::No(reason) = storable(req, resp) {
        return RespCacheable::Uncacheable(NoCacheReason::Custom(reason));
    }
    let Some(mut vary) = vary_names(resp.header_values(http::header::VARY)) else {
        return RespCacheable::Uncacheable(NoCacheReason::Custom("vary *"));
    };
    for extra in overrides.vary {
        if let Ok(name) = http::HeaderName::from_bytes(extra.as_bytes())
            && !vary.contains(&name)
        {
            vary.push(name);
        }
    }
    vary.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let response_time = SystemTime::now();
    let cc = CacheControl::from_lines(resp.header_values(header::CACHE_CONTROL));
    let origin = freshness_lifetime(resp, response_time);
    let fresh_for = match overrides.ttl {
        Some(ttl) if overrides.force_ttl || origin.heuristic || !has_explicit(resp, &cc) => ttl,
        _ => origin.lifetime,
    };
    let secs = |s: Option<u32>| s.map(|s| Duration::from_secs(u64::from(s)));
    let mut header = resp.clone();
    for name in &crate::cache::conditional::NEVER_STORED {
        header.remove_header(name);
    }
    let meta = CacheMeta {
        header,
        request_time,
        response_time,
        initial_age: corrected_initial_age(resp, request_time, response_time),
        fresh_for,
        stale_while_revalidate: secs(cc.stale_while_revalidate)
            .or(overrides.stale_while_revalidate)
            .unwrap_or_default(),
        stale_if_error: secs(cc.stale_if_error)
            .or(overrides.stale_if_error)
            .unwrap_or_default(),
        must_revalidate: response_forbids_stale(&cc),
        no_cache: cc.no_cache,
        vary,
    };
    let has_validator = resp.has_header(header::ETAG) || resp.has_header(header::LAST_MODIFIED);
    if meta.initial_age >= meta.fresh_for
        && !has_validator
        && meta.stale_if_error.is_zero()
        && meta.stale_while_revalidate.is_zero()
    {
        return RespCacheable::Uncacheable(NoCacheReason::Custom("stale on arrival"));
    }
    RespCacheable::Cacheable(Box::new(meta))
}

/// Whether the origin gave an explicit lifetime (`s-maxage`, `max-age`, `Expires`).
fn has_explicit(resp: &ResponseHeader, cc: &CacheControl) -> bool {
    cc.max_age.is_some() || cc.s_maxage.is_some() || resp.has_header(header::EXPIRES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Version};

    fn req() -> RequestHeader {
        RequestHeader::build(Method::GET, "/", Version::HTTP_11).unwrap()
    }

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    fn meta(d: RespCacheable) -> CacheMeta {
        match d {
            RespCacheable::Cacheable(m) => *m,
            RespCacheable::Uncacheable(r) => panic!("not cacheable: {r:?}"),
        }
    }

    #[test]
    fn origin_freshness_wins_unless_forced() {
        let now = SystemTime::now();
        let r = resp(200, &[("cache-control", "max-age=60")]);
        let ov = CacheOverrides {
            ttl: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        assert_eq!(
            meta(decide(&req(), &r, now, &ov)).fresh_for,
            Duration::from_secs(60)
        );
        let forced = CacheOverrides {
            force_ttl: true,
            ..ov
        };
        assert_eq!(
            meta(decide(&req(), &r, now, &forced)).fresh_for,
            Duration::from_secs(5)
        );
        // No explicit freshness: the policy's TTL.
        let r = resp(200, &[("etag", "\"x\"")]);
        assert_eq!(
            meta(decide(&req(), &r, now, &ov)).fresh_for,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn forbidden_responses_are_never_stored() {
        let now = SystemTime::now();
        let ov = CacheOverrides {
            ttl: Some(Duration::from_secs(60)),
            force_ttl: true,
            ..Default::default()
        };
        for headers in [
            &[("cache-control", "no-store")][..],
            &[("cache-control", "private, max-age=60")],
            &[("set-cookie", "a=b"), ("cache-control", "max-age=60")],
            &[("vary", "*"), ("cache-control", "max-age=60")],
        ] {
            assert!(matches!(
                decide(&req(), &resp(200, headers), now, &ov),
                RespCacheable::Uncacheable(_)
            ));
        }
    }

    #[test]
    fn stale_on_arrival_without_validators_is_not_stored() {
        let now = SystemTime::now();
        let r = resp(200, &[("cache-control", "max-age=0")]);
        assert!(matches!(
            decide(&req(), &r, now, &CacheOverrides::default()),
            RespCacheable::Uncacheable(_)
        ));
        let r = resp(200, &[("cache-control", "max-age=0"), ("etag", "\"v\"")]);
        assert!(matches!(
            decide(&req(), &r, now, &CacheOverrides::default()),
            RespCacheable::Cacheable(_)
        ));
    }

    #[test]
    fn stale_windows_and_vary_come_from_origin_and_policy() {
        let now = SystemTime::now();
        let ov = CacheOverrides {
            stale_if_error: Some(Duration::from_secs(300)),
            vary: &["accept-language"],
            ..Default::default()
        };
        let r = resp(
            200,
            &[
                ("cache-control", "max-age=10, stale-while-revalidate=30"),
                ("vary", "Accept-Encoding"),
            ],
        );
        let m = meta(decide(&req(), &r, now, &ov));
        assert_eq!(m.stale_while_revalidate, Duration::from_secs(30));
        assert_eq!(m.stale_if_error, Duration::from_secs(300));
        let names: Vec<&str> = m.vary.iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["accept-encoding", "accept-language"]);
        let r = resp(200, &[("cache-control", "max-age=10, must-revalidate")]);
        assert!(meta(decide(&req(), &r, now, &ov)).must_revalidate);
    }
}
