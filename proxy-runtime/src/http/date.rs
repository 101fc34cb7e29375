//! The `Date` a response gets when it has none: RFC 9110 §6.6.1 asks an origin with a
//! clock (the proxy, for the answers it makes itself) to send one, and a proxy to add one
//! to a response it forwards without. The formatted value is kept per thread for the
//! current second, so a busy thread formats it once a second.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;

use crate::cache::freshness::fmt_http_date;

thread_local! {
    /// The second last formatted, and its value.
    static CURRENT: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
}

/// The current time as a `Date` value (an IMF-fixdate).
pub(crate) fn now() -> HeaderValue {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        match &*current {
            Some((s, v)) if *s == second => v.clone(),
            _ => {
                let v = HeaderValue::from_str(&fmt_http_date(now))
                    .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
                *current = Some((second, v.clone()));
                v
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::freshness::parse_http_date;

    #[test]
    fn is_a_parsable_http_date_of_now() {
        let v = now();
        let t = parse_http_date(v.to_str().unwrap_or("")).expect("an HTTP-date");
        let drift = SystemTime::now()
            .duration_since(t)
            .unwrap_or_default()
            .as_secs();
        assert!(drift <= 2, "{v:?}");
        assert!(v.to_str().unwrap_or("").ends_with(" GMT"));
    }
}
