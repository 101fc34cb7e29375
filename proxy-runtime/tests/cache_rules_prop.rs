//! Property tests for the cache's pure rules: the `Cache-Control` parser and the
//! HTTP-date and age arithmetic in `proxy_runtime::cache::{control, freshness}`.
//!
//! Unit tests pin each RFC rule to an example; these check that the rules hold for
//! every input proptest can think of: the parser never panics, a directive set survives
//! being written out and read back, spelling variations do not change the meaning,
//! dates round-trip, and age only grows with time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use proxy_runtime::cache::control::{CacheControl, DELTA_SECONDS_MAX};
use proxy_runtime::cache::freshness::{current_age, fmt_http_date, parse_http_date};

/// A delta-seconds value as the parser can return it (saturated at 2^31).
fn delta() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..100_000, 0..=DELTA_SECONDS_MAX]
}

/// `max-stale` may also be "any" (`u32::MAX`, written without a value).
fn max_stale() -> impl Strategy<Value = u32> {
    prop_oneof![delta(), Just(u32::MAX)]
}

/// Any combination of the directives `CacheControl` holds.
fn cache_control() -> impl Strategy<Value = CacheControl> {
    (
        (
            proptest::option::of(delta()),
            proptest::option::of(delta()),
            proptest::option::of(delta()),
            proptest::option::of(delta()),
            proptest::option::of(max_stale()),
            proptest::option::of(delta()),
        ),
        proptest::collection::vec(any::<bool>(), 10),
    )
        .prop_map(|(deltas, flags)| CacheControl {
            max_age: deltas.0,
            s_maxage: deltas.1,
            stale_while_revalidate: deltas.2,
            stale_if_error: deltas.3,
            max_stale: deltas.4,
            min_fresh: deltas.5,
            no_store: flags[0],
            no_cache: flags[1],
            private: flags[2],
            public: flags[3],
            must_revalidate: flags[4],
            proxy_revalidate: flags[5],
            must_understand: flags[6],
            no_transform: flags[7],
            immutable: flags[8],
            only_if_cached: flags[9],
        })
}

/// The directives of `cc` as `(name, value)` pairs, in a fixed order.
fn directives(cc: &CacheControl) -> Vec<(&'static str, Option<u32>)> {
    let mut out = Vec::new();
    let deltas = [
        ("max-age", cc.max_age),
        ("s-maxage", cc.s_maxage),
        ("stale-while-revalidate", cc.stale_while_revalidate),
        ("stale-if-error", cc.stale_if_error),
        ("min-fresh", cc.min_fresh),
    ];
    for (name, value) in deltas {
        if let Some(v) = value {
            out.push((name, Some(v)));
        }
    }
    match cc.max_stale {
        Some(u32::MAX) => out.push(("max-stale", None)),
        Some(v) => out.push(("max-stale", Some(v))),
        None => {}
    }
    let flags = [
        ("no-store", cc.no_store),
        ("no-cache", cc.no_cache),
        ("private", cc.private),
        ("public", cc.public),
        ("must-revalidate", cc.must_revalidate),
        ("proxy-revalidate", cc.proxy_revalidate),
        ("must-understand", cc.must_understand),
        ("no-transform", cc.no_transform),
        ("immutable", cc.immutable),
        ("only-if-cached", cc.only_if_cached),
    ];
    for (name, set) in flags {
        if set {
            out.push((name, None));
        }
    }
    out
}

/// Write `cc` as one canonical field value.
fn format(cc: &CacheControl) -> String {
    directives(cc)
        .iter()
        .map(|(name, value)| match value {
            Some(v) => format!("{name}={v}"),
            None => name.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How to spell one directive differently without changing its meaning.
#[derive(Debug, Clone)]
struct Spelling {
    upper_case: Vec<bool>,
    quote_value: bool,
    space_before: String,
    space_after: String,
}

fn spelling() -> impl Strategy<Value = Spelling> {
    (
        proptest::collection::vec(any::<bool>(), 24),
        any::<bool>(),
        "[ \t]{0,3}",
        "[ \t]{0,3}",
    )
        .prop_map(
            |(upper_case, quote_value, space_before, space_after)| Spelling {
                upper_case,
                quote_value,
                space_before,
                space_after,
            },
        )
}

/// Write `cc` with random letter case, quoting, spacing, empty list elements, and each
/// directive possibly written twice (identically).
fn format_varied(cc: &CacheControl, spellings: &[Spelling], repeat: &[bool]) -> String {
    let mut parts = Vec::new();
    for (i, (name, value)) in directives(cc).iter().enumerate() {
        let look = &spellings[i % spellings.len()];
        let name: String = name
            .chars()
            .zip(look.upper_case.iter().cycle())
            .map(|(c, &up)| if up { c.to_ascii_uppercase() } else { c })
            .collect();
        let text = match value {
            Some(v) if look.quote_value => format!("{name}=\"{v}\""),
            Some(v) => format!("{name}={v}"),
            None => name,
        };
        let text = format!("{}{text}{}", look.space_before, look.space_after);
        if repeat[i % repeat.len()] {
            parts.push(text.clone());
            parts.push(String::new());
        }
        parts.push(text);
    }
    parts.join(",")
}

proptest! {
    #[test]
    fn parser_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = CacheControl::parse(&bytes);
    }

    #[test]
    fn parser_never_panics_on_directive_like_text(text in "[a-zA-Z=,\" \t\\\\0-9-]{0,80}") {
        let _ = CacheControl::parse(text.as_bytes());
    }

    #[test]
    fn formatted_directives_parse_back_to_the_same_set(cc in cache_control()) {
        prop_assert_eq!(CacheControl::parse(format(&cc).as_bytes()), cc);
    }

    #[test]
    fn case_spacing_quoting_and_repeats_do_not_change_the_meaning(
        cc in cache_control(),
        spellings in proptest::collection::vec(spelling(), 1..8),
        repeat in proptest::collection::vec(any::<bool>(), 1..8),
    ) {
        let varied = format_varied(&cc, &spellings, &repeat);
        prop_assert_eq!(CacheControl::parse(varied.as_bytes()), cc, "{}", varied);
    }

    #[test]
    fn http_date_round_trips_from_1970_to_9999(secs in 0u64..=253_402_300_799) {
        let t = UNIX_EPOCH + Duration::from_secs(secs);
        let text = fmt_http_date(t);
        prop_assert_eq!(text.len(), 29);
        prop_assert_eq!(parse_http_date(&text), Some(t), "{}", text);
    }

    #[test]
    fn http_date_parser_never_panics(text in "\\PC{0,40}") {
        let _ = parse_http_date(&text);
    }

    #[test]
    fn current_age_never_decreases_as_time_passes(
        initial in 0u64..1_000_000_000,
        response_at in 0u64..4_000_000_000,
        first in 0u64..4_000_000_000,
        later_by in 0u64..1_000_000_000,
    ) {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let initial = Duration::from_secs(initial);
        let earlier = current_age(initial, at(response_at), at(first));
        let later = current_age(initial, at(response_at), at(first + later_by));
        prop_assert!(earlier <= later);
        prop_assert!(earlier >= initial);
    }
}
