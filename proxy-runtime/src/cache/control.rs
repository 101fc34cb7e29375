//! `Cache-Control` directives (RFC 9111 §5.2), parsed once into plain fields.
//!
//! A message may carry several `Cache-Control` field lines, each a comma-separated list
//! of `name[=value]` directives; [`CacheControl::from_headers`] folds all of them into one
//! [`CacheControl`] that the freshness and storability rules in
//! [`freshness`](super::freshness) read. Request and response directives share the one
//! struct: a request simply leaves the response-only fields unset, and vice versa.
//!
//! The parser takes whatever an origin or client sends and never panics: directive names
//! are matched without regard to case, whitespace around names, `=` and values is
//! skipped, values may be tokens or quoted strings (commas inside quotes do not split
//! directives), and directives it does not know are ignored.
//!
//! Where RFC 9111 leaves a choice, this module takes the one that keeps a shared cache
//! from serving something it should not:
//!
//! - **Large deltas.** A delta-seconds value above 2^31 saturates at
//!   [`DELTA_SECONDS_MAX`] (2147483648), as §1.2.2 asks.
//! - **Invalid `max-age` / `s-maxage`** (`max-age=abc`, `max-age=-1`, `max-age=`, a
//!   missing value, or trailing junk such as `max-age=6 0`) count as `0`: the response
//!   is stale at once (§4.2.1). The same holds for a request's `max-age`, which then asks
//!   for revalidation.
//! - **Invalid extension and request deltas** (`stale-while-revalidate`,
//!   `stale-if-error`, `min-fresh`, a `max-stale` with a bad value) are ignored, as if
//!   the directive were absent: they only ever widen or narrow what a client accepts, and
//!   guessing a number would be worse than not having one.
//! - **Duplicates.** The first occurrence of a directive wins, across field lines.
//!   For `max-age` and `s-maxage` the duplicates must agree: if any later occurrence has
//!   a different value, the directive counts as `0` (stale), the second option §4.2.1
//!   offers, because either value could be the one the origin meant.
//! - **Qualified forms.** `no-cache="Set-Cookie"` and `private="X-Foo"` name fields that
//!   may not be reused or shared; rather than strip those fields, the whole response is
//!   treated as if the unqualified `no-cache` / `private` had been sent.
//! - **Quoted numbers.** `max-age="60"` is accepted as `max-age=60` (§5.2 says senders
//!   should not quote it, and recipients should accept both).
//! - **Arguments on flag directives** (`no-store=1`) are ignored; the flag is set.

use std::borrow::Cow;

use http::HeaderMap;

/// The largest delta-seconds value kept: 2^31. Larger values saturate to it
/// (RFC 9111 §1.2.2), and it still fits the `u32` fields of [`CacheControl`].
pub const DELTA_SECONDS_MAX: u32 = 1 << 31;

/// Every `Cache-Control` directive of one message that this cache acts on.
///
/// Built with [`CacheControl::from_headers`] (all field lines of a message) or
/// [`CacheControl::parse`] (one field value). `Default` is "no directives at all".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `max-age=N`: the response is fresh for N seconds (response), or the client wants
    /// a response no older than N seconds (request). Invalid values count as 0.
    pub max_age: Option<u32>,
    /// `s-maxage=N`: the freshness lifetime for shared caches, overriding `max-age`.
    pub s_maxage: Option<u32>,
    /// `no-store`: do not store the request or response at all.
    pub no_store: bool,
    /// `no-cache`: a stored response must be revalidated before every use (response),
    /// or the client wants a revalidated response (request). Also set by the qualified
    /// form `no-cache="field"`.
    pub no_cache: bool,
    /// `private`: only a private (browser) cache may store the response. Also set by the
    /// qualified form `private="field"`.
    pub private: bool,
    /// `public`: a shared cache may store the response even where it otherwise would not
    /// (for instance a response to a request with `Authorization`).
    pub public: bool,
    /// `must-revalidate`: once stale, the response may not be served without a
    /// successful revalidation, not even when the client accepts stale responses.
    pub must_revalidate: bool,
    /// `proxy-revalidate`: `must-revalidate` for shared caches only.
    pub proxy_revalidate: bool,
    /// `must-understand`: store only if the cache understands the status code's caching
    /// rules.
    pub must_understand: bool,
    /// `no-transform`: intermediaries must not change the content.
    pub no_transform: bool,
    /// `immutable` (RFC 8246): the content will not change while fresh.
    pub immutable: bool,
    /// `stale-while-revalidate=N` (RFC 5861): may be served up to N seconds stale while a
    /// revalidation runs in the background.
    pub stale_while_revalidate: Option<u32>,
    /// `stale-if-error=N` (RFC 5861): may be served up to N seconds stale when the origin
    /// fails.
    pub stale_if_error: Option<u32>,
    /// Request `max-stale[=N]`: the client accepts a response stale by up to N seconds;
    /// `u32::MAX` when the directive has no value (any staleness is accepted).
    pub max_stale: Option<u32>,
    /// Request `min-fresh=N`: the client wants a response that stays fresh for at least N
    /// more seconds.
    pub min_fresh: Option<u32>,
    /// Request `only-if-cached`: answer from the cache or with 504, never from the origin.
    pub only_if_cached: bool,
}

impl CacheControl {
    /// All `Cache-Control` field lines of a message, combined as if they were one list.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self::from_lines(headers.get_all(http::header::CACHE_CONTROL))
    }

    /// `Cache-Control` field lines, combined as if they were one list (for example
    /// `head.header_values(CACHE_CONTROL)`).
    pub fn from_lines<'a>(lines: impl IntoIterator<Item = &'a http::HeaderValue>) -> Self {
        let mut acc = Accumulator::default();
        for line in lines {
            acc.feed(line.as_bytes());
        }
        acc.finish()
    }

    /// One `Cache-Control` field value (the part after the colon).
    pub fn parse(value: &[u8]) -> Self {
        let mut acc = Accumulator::default();
        acc.feed(value);
        acc.finish()
    }
}

/// Parse a delta-seconds value (RFC 9111 §1.2.2): one or more ASCII digits, no sign, no
/// whitespace. Values above 2^31 saturate at [`DELTA_SECONDS_MAX`]. `None` if invalid.
pub(crate) fn parse_delta_seconds(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        // Saturating keeps arbitrarily long digit strings from overflowing; the clamp
        // below turns anything past 2^31 into exactly 2^31.
        value = value.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Some(value.min(u64::from(DELTA_SECONDS_MAX)) as u32)
}

/// What followed a directive's name.
enum Argument<'a> {
    /// Nothing: `no-store`.
    Absent,
    /// A token or an unescaped quoted string: `max-age=60`, `private="a, b"`.
    Value(Cow<'a, [u8]>),
    /// Something that is neither: `max-age=6 0`, `max-age="6"0`.
    Malformed,
}

impl Argument<'_> {
    /// The argument as delta-seconds, if it is one.
    fn delta(&self) -> Option<u32> {
        match self {
            Argument::Value(v) => parse_delta_seconds(v),
            Argument::Absent | Argument::Malformed => None,
        }
    }
}

/// `max-age` and `s-maxage` remember whether their occurrences agreed.
#[derive(Default, Clone, Copy)]
enum AgreedDelta {
    #[default]
    Unset,
    Seen(u32),
    /// Two occurrences disagreed: stale.
    Conflict,
}

impl AgreedDelta {
    fn see(&mut self, value: u32) {
        *self = match *self {
            AgreedDelta::Unset => AgreedDelta::Seen(value),
            AgreedDelta::Seen(first) if first == value => AgreedDelta::Seen(first),
            AgreedDelta::Seen(_) | AgreedDelta::Conflict => AgreedDelta::Conflict,
        };
    }

    fn get(self) -> Option<u32> {
        match self {
            AgreedDelta::Unset => None,
            AgreedDelta::Seen(v) => Some(v),
            AgreedDelta::Conflict => Some(0),
        }
    }
}

/// Collects directives from any number of field values.
#[derive(Default)]
struct Accumulator {
    cc: CacheControl,
    max_age: AgreedDelta,
    s_maxage: AgreedDelta,
}

impl Accumulator {
    fn feed(&mut self, value: &[u8]) {
        let mut cursor = Cursor {
            bytes: value,
            at: 0,
        };
        while let Some((name, arg)) = cursor.next_directive() {
            self.apply(name, &arg);
        }
    }

    fn apply(&mut self, name: &[u8], arg: &Argument<'_>) {
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        let cc = &mut self.cc;
        if is("max-age") {
            self.max_age.see(arg.delta().unwrap_or(0));
        } else if is("s-maxage") {
            self.s_maxage.see(arg.delta().unwrap_or(0));
        } else if is("no-store") {
            cc.no_store = true;
        } else if is("no-cache") {
            cc.no_cache = true;
        } else if is("private") {
            cc.private = true;
        } else if is("public") {
            cc.public = true;
        } else if is("must-revalidate") {
            cc.must_revalidate = true;
        } else if is("proxy-revalidate") {
            cc.proxy_revalidate = true;
        } else if is("must-understand") {
            cc.must_understand = true;
        } else if is("no-transform") {
            cc.no_transform = true;
        } else if is("immutable") {
            cc.immutable = true;
        } else if is("only-if-cached") {
            cc.only_if_cached = true;
        } else if is("stale-while-revalidate") {
            first_valid(&mut cc.stale_while_revalidate, arg.delta());
        } else if is("stale-if-error") {
            first_valid(&mut cc.stale_if_error, arg.delta());
        } else if is("min-fresh") {
            first_valid(&mut cc.min_fresh, arg.delta());
        } else if is("max-stale") {
            let accepted = match arg {
                Argument::Absent => Some(u32::MAX),
                _ => arg.delta(),
            };
            first_valid(&mut cc.max_stale, accepted);
        }
        // Anything else is an extension we do not implement: ignored (§5.2.3).
    }

    fn finish(self) -> CacheControl {
        CacheControl {
            max_age: self.max_age.get(),
            s_maxage: self.s_maxage.get(),
            ..self.cc
        }
    }
}

/// Keep the first valid value of a directive; invalid ones count as absent.
fn first_valid(slot: &mut Option<u32>, value: Option<u32>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// Optional whitespace (RFC 9110 §5.6.3).
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Walks one field value directive by directive.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_while(&mut self, pred: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&pred) {
            self.at += 1;
        }
    }

    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.at;
        self.skip_while(pred);
        &self.bytes[start..self.at]
    }

    /// The next `name[=argument]`, skipping empty list elements. After it the cursor
    /// stands on the comma that ends it, or at the end.
    fn next_directive(&mut self) -> Option<(&'a [u8], Argument<'a>)> {
        loop {
            self.skip_while(|b| b == b',' || is_ows(b));
            self.peek()?;
            let name = self.take_while(|b| b != b'=' && b != b',' && !is_ows(b));
            self.skip_while(is_ows);
            let mut arg = Argument::Absent;
            if self.peek() == Some(b'=') {
                self.at += 1;
                self.skip_while(is_ows);
                arg = if self.peek() == Some(b'"') {
                    Argument::Value(Cow::Owned(self.quoted_string()))
                } else {
                    Argument::Value(Cow::Borrowed(self.take_while(|b| b != b',' && !is_ows(b))))
                };
                self.skip_while(is_ows);
            }
            // Whatever stands between the directive and the next comma is not HTTP;
            // remember that, so a number followed by junk is not trusted.
            if self.peek().is_some_and(|b| b != b',') {
                self.skip_while(|b| b != b',');
                if !matches!(arg, Argument::Absent) {
                    arg = Argument::Malformed;
                }
            }
            if !name.is_empty() {
                return Some((name, arg));
            }
        }
    }

    /// A quoted string starting at the opening quote, with `\x` escapes resolved. An
    /// unterminated string runs to the end of the value.
    fn quoted_string(&mut self) -> Vec<u8> {
        self.at += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        out.push(escaped);
                        self.at += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cc(value: &str) -> CacheControl {
        CacheControl::parse(value.as_bytes())
    }

    #[test]
    fn empty_value_has_no_directives() {
        assert_eq!(cc(""), CacheControl::default());
        assert_eq!(cc(" , ,, "), CacheControl::default());
    }

    #[test]
    fn every_flag_directive_is_recognised() {
        let parsed = cc(
            "no-store, no-cache, private, public, must-revalidate, proxy-revalidate, \
             must-understand, no-transform, immutable, only-if-cached",
        );
        assert!(parsed.no_store && parsed.no_cache && parsed.private && parsed.public);
        assert!(parsed.must_revalidate && parsed.proxy_revalidate && parsed.must_understand);
        assert!(parsed.no_transform && parsed.immutable && parsed.only_if_cached);
    }

    #[test]
    fn every_delta_directive_is_recognised() {
        let parsed = cc(
            "max-age=1, s-maxage=2, stale-while-revalidate=3, stale-if-error=4, \
             max-stale=5, min-fresh=6",
        );
        assert_eq!(parsed.max_age, Some(1));
        assert_eq!(parsed.s_maxage, Some(2));
        assert_eq!(parsed.stale_while_revalidate, Some(3));
        assert_eq!(parsed.stale_if_error, Some(4));
        assert_eq!(parsed.max_stale, Some(5));
        assert_eq!(parsed.min_fresh, Some(6));
    }

    #[test]
    fn directive_names_are_case_insensitive() {
        assert_eq!(cc("MAX-AGE=60, No-Store"), cc("max-age=60, no-store"));
        assert_eq!(cc("Max-Age=60").max_age, Some(60));
    }

    #[test]
    fn whitespace_around_directives_and_equals_is_tolerated() {
        let parsed = cc(" \tmax-age = 60 ,\tpublic\t, s-maxage=\t5 ");
        assert_eq!(parsed.max_age, Some(60));
        assert_eq!(parsed.s_maxage, Some(5));
        assert!(parsed.public);
    }

    #[test]
    fn unknown_directives_are_ignored() {
        let parsed = cc("community=\"UCI\", foo, bar=1, max-age=5");
        assert_eq!(
            parsed,
            CacheControl {
                max_age: Some(5),
                ..Default::default()
            }
        );
    }

    #[test]
    fn commas_inside_quoted_strings_do_not_split_directives() {
        let parsed = cc("foo=\"a, no-store, b\", max-age=9");
        assert!(!parsed.no_store);
        assert_eq!(parsed.max_age, Some(9));
        let parsed = cc("no-cache=\"Set-Cookie, X-Foo\", public");
        assert!(parsed.no_cache && parsed.public);
    }

    #[test]
    fn escaped_quotes_inside_quoted_strings_are_skipped() {
        let parsed = cc(r#"foo="a \", no-store", max-age=3"#);
        assert!(!parsed.no_store);
        assert_eq!(parsed.max_age, Some(3));
    }

    #[test]
    fn unterminated_quoted_string_swallows_the_rest() {
        let parsed = cc("max-age=4, foo=\"x, no-store");
        assert_eq!(parsed.max_age, Some(4));
        assert!(!parsed.no_store);
    }

    #[test]
    fn quoted_delta_value_is_accepted() {
        assert_eq!(cc("max-age=\"60\"").max_age, Some(60));
        assert_eq!(cc("stale-if-error=\"30\"").stale_if_error, Some(30));
    }

    #[test]
    fn delta_seconds_above_two_to_the_31_saturates() {
        assert_eq!(cc("max-age=2147483648").max_age, Some(DELTA_SECONDS_MAX));
        assert_eq!(cc("max-age=2147483649").max_age, Some(DELTA_SECONDS_MAX));
        assert_eq!(
            cc("max-age=99999999999999999999999999999999").max_age,
            Some(DELTA_SECONDS_MAX)
        );
        assert_eq!(cc("max-age=2147483647").max_age, Some(2_147_483_647));
    }

    #[test]
    fn invalid_max_age_makes_the_response_stale() {
        for bad in [
            "max-age=abc",
            "max-age=-1",
            "max-age=",
            "max-age",
            "max-age=+5",
            "max-age=1.5",
            "max-age=6 0",
            "max-age=\"\"",
            "max-age=\"6\"0",
        ] {
            assert_eq!(cc(bad).max_age, Some(0), "{bad}");
        }
    }

    #[test]
    fn invalid_s_maxage_makes_the_response_stale() {
        assert_eq!(cc("s-maxage=abc").s_maxage, Some(0));
        assert_eq!(cc("s-maxage").s_maxage, Some(0));
    }

    #[test]
    fn invalid_stale_extensions_are_ignored() {
        let parsed = cc("stale-while-revalidate=abc, stale-if-error=-1");
        assert_eq!(parsed.stale_while_revalidate, None);
        assert_eq!(parsed.stale_if_error, None);
        assert_eq!(cc("stale-if-error").stale_if_error, None);
    }

    #[test]
    fn invalid_extension_does_not_block_a_later_valid_one() {
        assert_eq!(
            cc("stale-if-error=x, stale-if-error=20").stale_if_error,
            Some(20)
        );
    }

    #[test]
    fn duplicate_directives_first_occurrence_wins() {
        let parsed = cc("stale-while-revalidate=10, stale-while-revalidate=20");
        assert_eq!(parsed.stale_while_revalidate, Some(10));
        assert_eq!(cc("min-fresh=1, min-fresh=2").min_fresh, Some(1));
    }

    #[test]
    fn identical_duplicate_max_age_is_kept() {
        assert_eq!(cc("max-age=60, max-age=60").max_age, Some(60));
    }

    #[test]
    fn disagreeing_duplicate_max_age_makes_the_response_stale() {
        assert_eq!(cc("max-age=60, max-age=30").max_age, Some(0));
        assert_eq!(cc("max-age=60, max-age=30, max-age=60").max_age, Some(0));
        assert_eq!(cc("max-age=60, max-age=abc").max_age, Some(0));
        assert_eq!(cc("s-maxage=1, s-maxage=2").s_maxage, Some(0));
    }

    #[test]
    fn qualified_no_cache_is_treated_as_unqualified() {
        assert!(cc("no-cache=\"Set-Cookie\"").no_cache);
        assert!(cc("no-cache=Set-Cookie").no_cache);
    }

    #[test]
    fn qualified_private_is_treated_as_unqualified() {
        assert!(cc("private=\"x\"").private);
    }

    #[test]
    fn argument_on_a_flag_directive_still_sets_it() {
        assert!(cc("no-store=1").no_store);
        assert!(cc("no-store junk").no_store);
    }

    #[test]
    fn max_stale_without_value_accepts_any_staleness() {
        assert_eq!(cc("max-stale").max_stale, Some(u32::MAX));
        assert_eq!(cc("max-stale=30").max_stale, Some(30));
        assert_eq!(cc("max-stale=abc").max_stale, None);
    }

    #[test]
    fn all_field_lines_of_a_message_are_combined() {
        let mut headers = HeaderMap::new();
        headers.append("cache-control", HeaderValue::from_static("public"));
        headers.append("Cache-Control", HeaderValue::from_static("max-age=60"));
        headers.append("x-other", HeaderValue::from_static("no-store"));
        let parsed = CacheControl::from_headers(&headers);
        assert!(parsed.public);
        assert_eq!(parsed.max_age, Some(60));
        assert!(!parsed.no_store);
    }

    #[test]
    fn duplicates_across_field_lines_follow_the_same_rules() {
        let mut headers = HeaderMap::new();
        headers.append("cache-control", HeaderValue::from_static("max-age=60"));
        headers.append("cache-control", HeaderValue::from_static("max-age=10"));
        assert_eq!(CacheControl::from_headers(&headers).max_age, Some(0));
    }

    #[test]
    fn non_ascii_bytes_do_not_panic() {
        let parsed = CacheControl::parse(b"\xff\xfe=\x80, max-age=\xc3\xa9, public");
        assert!(parsed.public);
        assert_eq!(parsed.max_age, Some(0));
        let _ = CacheControl::parse(b"\"\\");
        let _ = CacheControl::parse(b"=\"\\");
    }

    #[test]
    fn delta_seconds_grammar() {
        assert_eq!(parse_delta_seconds(b"0"), Some(0));
        assert_eq!(parse_delta_seconds(b"007"), Some(7));
        assert_eq!(parse_delta_seconds(b""), None);
        assert_eq!(parse_delta_seconds(b" 1"), None);
        assert_eq!(parse_delta_seconds(b"+1"), None);
    }
}
