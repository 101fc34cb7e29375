//! The rules a shared cache lives by (RFC 9111 §3, §4): may a response be stored, how
//! long is it fresh, how old is it, and does a request accept it as it is.
//!
//! Everything here is a pure function of message heads and instants, so the cache
//! engine can call it from any phase and tests can pin every rule down. Times come in as
//! [`SystemTime`]s taken by the caller (when the request was sent, when the response
//! arrived, now); nothing here reads the clock except [`parse_http_date`], which needs
//! the current year to place two-digit years.
//!
//! Choices this module makes where the RFCs leave room:
//!
//! - **Storability is conservative.** Only `GET` responses are stored (the engine answers
//!   `HEAD` from a stored `GET`); 206 is left to the engine's range handling; a
//!   `Set-Cookie` response is never stored, even with `public`, because one client's
//!   cookie must not reach another (a policy may relax this later); `must-understand`
//!   does not override `no-store` (caches are never required to store).
//! - **Only statuses defined in RFC 9110 §15 are understood**; a response with any other
//!   final status is not stored.
//! - **Heuristic freshness** is 10% of the time since `Last-Modified` (§4.2.2), capped at
//!   [`HEURISTIC_MAX`] (one day), and used only for heuristically cacheable statuses or
//!   `public` responses.
//! - **Several `Expires` lines that disagree**, like disagreeing `max-age`s, make the
//!   response stale; an `Expires` that is not an HTTP-date (`0`, `-1`) means "already
//!   expired" (§5.3).
//! - **A missing or invalid `Date`** is taken to be the response time (the time the
//!   response arrived), as a proxy that adds `Date` would set it.
//! - **Two-digit years** (RFC 850 dates) are placed within 50 years of now: one that
//!   would be more than 50 years in the future belongs to the previous century
//!   (RFC 9110 §5.6.7), one more than 50 years in the past to the next.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, header};

use super::control::{CacheControl, parse_delta_seconds};
use crate::http::{RequestHeader, ResponseHeader};

/// The longest freshness lifetime the heuristic may give: one day.
pub const HEURISTIC_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// Status codes cacheable by default (heuristically cacheable), RFC 9110 §15.1.
pub fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Final status codes whose meaning this cache knows: those defined in RFC 9110 §15.
/// 206 and 304 are in the list but get their own treatment in [`storable`].
fn understood_status(status: u16) -> bool {
    matches!(
        status,
        200..=206 | 300..=305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// Whether a shared cache may store a response, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storable {
    /// The response may be stored.
    Yes,
    /// The response may not be stored; the reason is short and fit for logs and
    /// `x-cache-status`.
    No(&'static str),
}

/// RFC 9111 §3 for a SHARED cache: may this response to this request be stored?
///
/// In order, a response is refused when the request is not `GET` ("method not GET"),
/// the status is informational ("non-final status"), 206 ("partial content"), 304
/// ("not modified") or not defined in RFC 9110 ("status not understood"); when the
/// request or the response says `no-store` ("request no-store", "no-store"); when the
/// response is `private` ("private"); when the request carries `Authorization` and the
/// response has none of `must-revalidate`, `public`, `s-maxage` ("authorization",
/// §3.5); when it varies on `*` ("vary *"); when it sets a cookie ("set-cookie").
/// Otherwise it is stored if it has explicit freshness (`max-age`, `s-maxage`,
/// `Expires`), is `public`, or has a heuristically cacheable status ("no freshness
/// information" if none). A `no-cache` response is storable: it is revalidated on every
/// use instead.
pub fn storable(req: &RequestHeader, resp: &ResponseHeader) -> Storable {
    if req.method != Method::GET {
        return Storable::No("method not GET");
    }
    let status = resp.status.as_u16();
    match status {
        0..=199 => return Storable::No("non-final status"),
        206 => return Storable::No("partial content"),
        304 => return Storable::No("not modified"),
        s if !understood_status(s) => return Storable::No("status not understood"),
        _ => {}
    }
    let req_cc = CacheControl::from_lines(req.header_values(header::CACHE_CONTROL));
    if req_cc.no_store {
        return Storable::No("request no-store");
    }
    let cc = CacheControl::from_lines(resp.header_values(header::CACHE_CONTROL));
    if cc.no_store {
        return Storable::No("no-store");
    }
    if cc.private {
        return Storable::No("private");
    }
    if req.has_header(header::AUTHORIZATION)
        && !(cc.must_revalidate || cc.public || cc.s_maxage.is_some())
    {
        return Storable::No("authorization");
    }
    if varies_on_everything(resp) {
        return Storable::No("vary *");
    }
    if resp.has_header(header::SET_COOKIE) {
        return Storable::No("set-cookie");
    }
    let explicit =
        cc.max_age.is_some() || cc.s_maxage.is_some() || resp.has_header(header::EXPIRES);
    if explicit || cc.public || heuristically_cacheable(status) {
        Storable::Yes
    } else {
        Storable::No("no freshness information")
    }
}

/// `Vary: *` (possibly one member of a list, possibly on any of several lines).
fn varies_on_everything(resp: &ResponseHeader) -> bool {
    resp.header_values(header::VARY)
        .flat_map(|line| line.as_bytes().split(|&b| b == b','))
        .any(|member| member.trim_ascii() == b"*")
}

/// How long a response is fresh, and whether that was guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// The freshness lifetime: fresh while its current age is below this.
    pub lifetime: Duration,
    /// True when the lifetime comes from the `Last-Modified` heuristic rather than the
    /// origin's own `s-maxage`, `max-age` or `Expires`.
    pub heuristic: bool,
}

/// Freshness lifetime (RFC 9111 §4.2.1): s-maxage, else max-age, else Expires − Date
/// (Date missing: the response time), else a heuristic: 10% of (Date − Last-Modified),
/// at most [`HEURISTIC_MAX`] (one day), only for heuristically cacheable statuses or
/// `public`; else zero.
///
/// An `Expires` that is not a valid HTTP-date, or several `Expires` lines that disagree,
/// give zero (already expired). An `Expires` or `Last-Modified` later than `Date` gives
/// zero, never a negative lifetime.
pub fn freshness_lifetime(resp: &ResponseHeader, response_time: SystemTime) -> Freshness {
    let cc = CacheControl::from_lines(resp.header_values(header::CACHE_CONTROL));
    let explicit = |lifetime| Freshness {
        lifetime,
        heuristic: false,
    };
    if let Some(secs) = cc.s_maxage.or(cc.max_age) {
        return explicit(Duration::from_secs(u64::from(secs)));
    }
    let date = header_date(resp, header::DATE).unwrap_or(response_time);
    if let Some(expires) = expires(resp) {
        let lifetime = expires
            .and_then(|at| at.duration_since(date).ok())
            .unwrap_or(Duration::ZERO);
        return explicit(lifetime);
    }
    let heuristic_allowed = heuristically_cacheable(resp.status.as_u16()) || cc.public;
    match header_date(resp, header::LAST_MODIFIED) {
        Some(modified) if heuristic_allowed => {
            let unchanged_for = date.duration_since(modified).unwrap_or(Duration::ZERO);
            Freshness {
                lifetime: (unchanged_for / 10).min(HEURISTIC_MAX),
                heuristic: true,
            }
        }
        _ => explicit(Duration::ZERO),
    }
}

/// The `Expires` time: `None` without the header, `Some(None)` when it is invalid or its
/// lines disagree (both mean "already expired").
fn expires(resp: &ResponseHeader) -> Option<Option<SystemTime>> {
    let mut lines = resp.header_values(header::EXPIRES);
    let first = lines.next()?;
    if lines.any(|other| other != first) {
        return Some(None);
    }
    Some(first.to_str().ok().and_then(parse_http_date))
}

/// The first line of a date header, if it parses.
fn header_date(resp: &ResponseHeader, name: header::HeaderName) -> Option<SystemTime> {
    resp.header(name)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date)
}

/// The `Age` header (RFC 9111 §5.1): the first member of the first line; an invalid
/// value is ignored (zero).
fn age_header(resp: &ResponseHeader) -> Duration {
    let secs = resp
        .header(header::AGE)
        .and_then(|v| v.as_bytes().split(|&b| b == b',').next())
        .and_then(|first| parse_delta_seconds(first.trim_ascii()))
        .unwrap_or(0);
    Duration::from_secs(u64::from(secs))
}

/// Age on arrival, corrected (RFC 9111 §4.2.3): apparent_age = max(0, response_time −
/// Date); response_delay = response_time − request_time; corrected_age_value = Age +
/// response_delay; corrected_initial_age = max(apparent_age, corrected_age_value).
///
/// A missing or invalid `Date` gives an apparent age of zero; a missing or invalid `Age`
/// counts as zero; a `response_time` before `request_time` gives no delay.
pub fn corrected_initial_age(
    resp: &ResponseHeader,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let apparent_age = header_date(resp, header::DATE)
        .and_then(|date| response_time.duration_since(date).ok())
        .unwrap_or(Duration::ZERO);
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    let corrected_age_value = age_header(resp).saturating_add(response_delay);
    apparent_age.max(corrected_age_value)
}

/// current_age = corrected_initial_age + (now − response_time); a `now` before
/// `response_time` adds nothing.
pub fn current_age(
    corrected_initial_age: Duration,
    response_time: SystemTime,
    now: SystemTime,
) -> Duration {
    let resident_time = now.duration_since(response_time).unwrap_or(Duration::ZERO);
    corrected_initial_age.saturating_add(resident_time)
}

/// A request's cache directives (§5.2.1), with `Pragma: no-cache` counted as `no-cache`
/// when the request has no `Cache-Control` field at all (§5.4).
pub fn request_cache_control(req: &RequestHeader) -> CacheControl {
    let mut cc = CacheControl::from_lines(req.header_values(header::CACHE_CONTROL));
    if !req.has_header(header::CACHE_CONTROL) && pragma_no_cache(req) {
        cc.no_cache = true;
    }
    cc
}

/// `Pragma: no-cache` on any line, as a member of the list.
fn pragma_no_cache(req: &RequestHeader) -> bool {
    req.header_values(header::PRAGMA)
        .flat_map(|line| line.as_bytes().split(|&b| b == b','))
        .any(|member| member.trim_ascii().eq_ignore_ascii_case(b"no-cache"))
}

/// Whether the client demands a response validated with the origin: `Cache-Control:
/// no-cache` or `max-age=0`, or `Pragma: no-cache` when no `Cache-Control` is present.
pub fn request_no_cache(req: &RequestHeader) -> bool {
    let cc = request_cache_control(req);
    cc.no_cache || cc.max_age == Some(0)
}

/// What the client's request allows (§5.2.1): given the stored response's current age
/// and freshness lifetime, can it be served without revalidation?
///
/// `req_cc` should come from [`request_cache_control`] so that `Pragma: no-cache`
/// counts. The answer is no when the request says `no-cache`; when the response is older
/// than the request's `max-age`; when it will not stay fresh for the request's
/// `min-fresh`; and when it is stale, unless it is stale by no more than the request's
/// `max-stale`. The response's own directives (`no-cache`, `must-revalidate`, ...) are
/// not considered here: see [`response_forbids_stale`].
pub fn request_allows_stale_or_fresh(
    req_cc: &CacheControl,
    current_age: Duration,
    lifetime: Duration,
) -> bool {
    let secs = |s: u32| Duration::from_secs(u64::from(s));
    if req_cc.no_cache {
        return false;
    }
    if req_cc.max_age.is_some_and(|max| current_age > secs(max)) {
        return false;
    }
    if req_cc
        .min_fresh
        .is_some_and(|min| lifetime < current_age.saturating_add(secs(min)))
    {
        return false;
    }
    if lifetime > current_age {
        return true;
    }
    let staleness = current_age - lifetime;
    req_cc
        .max_stale
        .is_some_and(|max| max == u32::MAX || staleness <= secs(max))
}

/// Whether the response forbids serving it stale without revalidation, whatever the
/// request accepts (§4.2.4): `must-revalidate`, and for a shared cache also
/// `proxy-revalidate` and `s-maxage` (§5.2.2.10). A `no-cache` response must be
/// revalidated even while fresh; the caller checks [`CacheControl::no_cache`] for that.
pub fn response_forbids_stale(resp_cc: &CacheControl) -> bool {
    resp_cc.must_revalidate || resp_cc.proxy_revalidate || resp_cc.s_maxage.is_some()
}

const SECS_PER_DAY: i64 = 86_400;
const SHORT_DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
/// Fifty average Gregorian years, the two-digit-year window.
const FIFTY_YEARS_SECS: i64 = 50 * 31_556_952;
/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: what four digits of year can say.
const FIRST_SECOND: i64 = -62_135_596_800;
const LAST_SECOND: i64 = 253_402_300_799;

/// Parse an HTTP-date (RFC 9110 §5.6.7) in any of its three forms: IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37
/// GMT`) and asctime (`Sun Nov  6 08:49:37 1994`). `None` if it is none of them.
///
/// Names of days and months are matched without regard to case, runs of spaces count
/// as one, and the day name is checked for spelling but not against the date. A leap
/// second (`:60`) is accepted as the second after `:59`. Two-digit years are placed
/// relative to the current time; see [`parse_http_date_at`].
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    parse_http_date_at(s, SystemTime::now())
}

/// [`parse_http_date`] with the current time given: an RFC 850 two-digit year that would
/// be more than 50 years after `now` is taken to be in the previous century, and one
/// that would be more than 50 years before `now` in the next.
pub fn parse_http_date_at(s: &str, now: SystemTime) -> Option<SystemTime> {
    let mut words = s.split_ascii_whitespace();
    let first = words.next()?;
    let fields = if let Some(day_name) = first.strip_suffix(',') {
        if !is_day_name(day_name) {
            return None;
        }
        let next = words.next()?;
        if next.contains('-') {
            // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`.
            let mut parts = next.split('-');
            let day = number(parts.next()?, 1, 2)?;
            let month = month_number(parts.next()?)?;
            let year_text = parts.next()?;
            if parts.next().is_some() {
                return None;
            }
            let year = match year_text.len() {
                2 => place_two_digit_year(number(year_text, 2, 2)?, now),
                // Four digits where two belong: take them as written.
                _ => i64::from(number(year_text, 4, 4)?),
            };
            let time = time_of_day(words.next()?)?;
            expect_gmt(words.next()?)?;
            (year, month, day, time)
        } else {
            // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
            let day = number(next, 1, 2)?;
            let month = month_number(words.next()?)?;
            let year = i64::from(number(words.next()?, 4, 4)?);
            let time = time_of_day(words.next()?)?;
            expect_gmt(words.next()?)?;
            (year, month, day, time)
        }
    } else {
        // asctime: `Sun Nov  6 08:49:37 1994`.
        if !is_day_name(first) {
            return None;
        }
        let month = month_number(words.next()?)?;
        let day = number(words.next()?, 1, 2)?;
        let time = time_of_day(words.next()?)?;
        let year = i64::from(number(words.next()?, 4, 4)?);
        (year, month, day, time)
    };
    if words.next().is_some() {
        return None;
    }
    let (year, month, day, time) = fields;
    if year < 1 || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let secs = days_from_civil(year, month, day) * SECS_PER_DAY + time;
    system_time_from_unix(secs)
}

/// Format `t` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form every
/// sender must use. Fractions of a second are dropped; times outside years 1 to 9999
/// are clamped to that range.
pub fn fmt_http_date(t: SystemTime) -> String {
    let secs = unix_from_system_time(t).clamp(FIRST_SECOND, LAST_SECOND);
    let days = secs.div_euclid(SECS_PER_DAY);
    let in_day = secs.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday, index 3 from Monday.
    let weekday = SHORT_DAYS[(days + 3).rem_euclid(7) as usize];
    format!(
        "{weekday}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        MONTHS[(month - 1) as usize],
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60,
    )
}

fn is_day_name(word: &str) -> bool {
    SHORT_DAYS
        .iter()
        .chain(LONG_DAYS.iter())
        .any(|name| name.eq_ignore_ascii_case(word))
}

/// January is 1.
fn month_number(word: &str) -> Option<u32> {
    let index = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(word))?;
    Some(index as u32 + 1)
}

fn expect_gmt(word: &str) -> Option<()> {
    word.eq_ignore_ascii_case("GMT").then_some(())
}

/// ASCII digits only (no sign), between `min` and `max` of them.
fn number(text: &str, min: usize, max: usize) -> Option<u32> {
    if !(min..=max).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `HH:MM:SS` as seconds into the day.
fn time_of_day(text: &str) -> Option<i64> {
    let mut parts = text.split(':');
    let hour = number(parts.next()?, 2, 2)?;
    let minute = number(parts.next()?, 2, 2)?;
    let second = number(parts.next()?, 2, 2)?;
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second))
}

/// The full year of an RFC 850 two-digit year, within fifty years of `now`.
fn place_two_digit_year(two_digits: u32, now: SystemTime) -> i64 {
    let now_secs = unix_from_system_time(now);
    let (now_year, _, _) = civil_from_days(now_secs.div_euclid(SECS_PER_DAY));
    let year = now_year - now_year.rem_euclid(100) + i64::from(two_digits);
    // Compare the start of the candidate year with now; the day and time inside the
    // year change the answer only in the rare year exactly fifty years away.
    let starts = |y: i64| days_from_civil(y, 1, 1) * SECS_PER_DAY;
    if starts(year) > now_secs + FIFTY_YEARS_SECS {
        year - 100
    } else if starts(year + 100) <= now_secs + FIFTY_YEARS_SECS {
        year + 100
    } else {
        year
    }
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date. Counting years from March puts
/// the leap day at the end of the counting year, so each 400-year cycle (146097 days)
/// has a fixed shape.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let cycle = year.div_euclid(400);
    let year_of_cycle = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_cycle = year_of_cycle * 365 + year_of_cycle / 4 - year_of_cycle / 100 + day_of_year;
    // 719468 days separate 0000-03-01 from 1970-01-01.
    cycle * 146_097 + day_of_cycle - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let from_origin = days + 719_468;
    let cycle = from_origin.div_euclid(146_097);
    let day_of_cycle = from_origin.rem_euclid(146_097);
    let year_of_cycle =
        (day_of_cycle - day_of_cycle / 1460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365;
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = cycle * 400 + year_of_cycle + i64::from(month <= 2);
    (year, month, day)
}

/// Whole seconds since the epoch, rounded down (negative before 1970).
fn unix_from_system_time(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let before = before.duration();
            let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            -whole - i64::from(before.subsec_nanos() > 0)
        }
    }
}

fn system_time_from_unix(secs: i64) -> Option<SystemTime> {
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Version;

    const IMF: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    /// 1994-11-06T08:49:37Z.
    const IMF_SECS: u64 = 784_111_777;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn get() -> RequestHeader {
        RequestHeader::build(Method::GET, "/", Version::HTTP_11).expect("valid request")
    }

    fn request(method: Method, headers: &[(&'static str, &'static str)]) -> RequestHeader {
        let mut req = RequestHeader::build(method, "/", Version::HTTP_11).expect("valid");
        for (name, value) in headers {
            req.append_header(*name, *value).expect("valid header");
        }
        req
    }

    fn response(status: u16, headers: &[(&'static str, &'static str)]) -> ResponseHeader {
        let mut resp = ResponseHeader::build(status, None).expect("valid status");
        for (name, value) in headers {
            resp.append_header(*name, *value).expect("valid header");
        }
        resp
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    // ---- heuristically cacheable statuses ----

    #[test]
    fn heuristically_cacheable_statuses_are_those_of_rfc_9110() {
        for s in [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501] {
            assert!(heuristically_cacheable(s), "{s}");
        }
        for s in [201, 202, 302, 303, 304, 307, 400, 403, 500, 502, 503] {
            assert!(!heuristically_cacheable(s), "{s}");
        }
    }

    // ---- storable (§3) ----

    #[test]
    fn plain_200_to_get_is_storable() {
        assert_eq!(storable(&get(), &response(200, &[])), Storable::Yes);
    }

    #[test]
    fn head_and_post_responses_are_not_stored() {
        let resp = response(200, &[("cache-control", "max-age=60")]);
        for method in [Method::HEAD, Method::POST, Method::PUT] {
            assert_eq!(
                storable(&request(method, &[]), &resp),
                Storable::No("method not GET")
            );
        }
    }

    #[test]
    fn informational_status_is_not_stored() {
        assert_eq!(
            storable(&get(), &response(100, &[])),
            Storable::No("non-final status")
        );
    }

    #[test]
    fn partial_content_is_left_to_the_range_engine() {
        let resp = response(206, &[("cache-control", "max-age=60")]);
        assert_eq!(storable(&get(), &resp), Storable::No("partial content"));
    }

    #[test]
    fn not_modified_is_not_stored() {
        assert_eq!(
            storable(&get(), &response(304, &[])),
            Storable::No("not modified")
        );
    }

    #[test]
    fn status_not_understood_is_not_stored() {
        let resp = response(299, &[("cache-control", "max-age=60, public")]);
        assert_eq!(
            storable(&get(), &resp),
            Storable::No("status not understood")
        );
    }

    #[test]
    fn request_no_store_forbids_storing() {
        let req = request(Method::GET, &[("cache-control", "no-store")]);
        let resp = response(200, &[("cache-control", "max-age=60")]);
        assert_eq!(storable(&req, &resp), Storable::No("request no-store"));
    }

    #[test]
    fn response_no_store_forbids_storing() {
        let resp = response(200, &[("cache-control", "max-age=60, no-store")]);
        assert_eq!(storable(&get(), &resp), Storable::No("no-store"));
    }

    #[test]
    fn must_understand_does_not_override_no_store() {
        let resp = response(200, &[("cache-control", "no-store, must-understand")]);
        assert_eq!(storable(&get(), &resp), Storable::No("no-store"));
    }

    #[test]
    fn private_response_is_not_stored_by_a_shared_cache() {
        let resp = response(200, &[("cache-control", "private, max-age=60")]);
        assert_eq!(storable(&get(), &resp), Storable::No("private"));
        let resp = response(200, &[("cache-control", "private=\"set-cookie\"")]);
        assert_eq!(storable(&get(), &resp), Storable::No("private"));
    }

    #[test]
    fn authorized_request_needs_explicit_permission() {
        let req = request(Method::GET, &[("authorization", "Basic Zm9vOmJhcg==")]);
        let resp = response(200, &[("cache-control", "max-age=60")]);
        assert_eq!(storable(&req, &resp), Storable::No("authorization"));
        for allowing in ["public", "must-revalidate", "s-maxage=60"] {
            let resp = response(200, &[("cache-control", allowing)]);
            assert_eq!(storable(&req, &resp), Storable::Yes, "{allowing}");
        }
    }

    #[test]
    fn vary_star_is_not_stored() {
        let resp = response(200, &[("vary", "accept-encoding, *")]);
        assert_eq!(storable(&get(), &resp), Storable::No("vary *"));
        let resp = response(200, &[("vary", "accept-encoding")]);
        assert_eq!(storable(&get(), &resp), Storable::Yes);
    }

    #[test]
    fn set_cookie_response_is_never_shared() {
        let resp = response(
            200,
            &[
                ("cache-control", "public, s-maxage=60"),
                ("set-cookie", "a=b"),
            ],
        );
        assert_eq!(storable(&get(), &resp), Storable::No("set-cookie"));
    }

    #[test]
    fn explicit_freshness_makes_any_understood_status_storable() {
        for headers in [
            [("cache-control", "max-age=60")],
            [("cache-control", "s-maxage=60")],
            [("expires", IMF)],
            [("expires", "0")],
        ] {
            assert_eq!(storable(&get(), &response(302, &headers)), Storable::Yes);
        }
    }

    #[test]
    fn public_makes_any_understood_status_storable() {
        let resp = response(500, &[("cache-control", "public")]);
        assert_eq!(storable(&get(), &resp), Storable::Yes);
    }

    #[test]
    fn heuristically_cacheable_status_is_storable_without_freshness() {
        assert_eq!(storable(&get(), &response(404, &[])), Storable::Yes);
    }

    #[test]
    fn other_status_without_freshness_is_not_stored() {
        assert_eq!(
            storable(&get(), &response(302, &[])),
            Storable::No("no freshness information")
        );
    }

    #[test]
    fn no_cache_response_is_storable() {
        let resp = response(200, &[("cache-control", "no-cache")]);
        assert_eq!(storable(&get(), &resp), Storable::Yes);
    }

    // ---- freshness lifetime (§4.2.1, §4.2.2) ----

    fn lifetime(resp: &ResponseHeader) -> Freshness {
        freshness_lifetime(resp, at(IMF_SECS))
    }

    #[test]
    fn s_maxage_wins_over_max_age_and_expires() {
        let resp = response(
            200,
            &[
                ("cache-control", "max-age=60, s-maxage=10"),
                ("expires", "Sun, 06 Nov 1994 09:49:37 GMT"),
                ("date", IMF),
            ],
        );
        assert_eq!(
            lifetime(&resp),
            Freshness {
                lifetime: secs(10),
                heuristic: false
            }
        );
    }

    #[test]
    fn max_age_wins_over_expires() {
        let resp = response(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("expires", "Sun, 06 Nov 1994 09:49:37 GMT"),
            ],
        );
        assert_eq!(lifetime(&resp).lifetime, secs(60));
    }

    #[test]
    fn expires_minus_date_is_the_lifetime() {
        let resp = response(
            200,
            &[
                ("date", "Sun, 06 Nov 1994 08:00:00 GMT"),
                ("expires", "Sun, 06 Nov 1994 09:00:00 GMT"),
            ],
        );
        assert_eq!(lifetime(&resp).lifetime, secs(3600));
    }

    #[test]
    fn expires_without_date_counts_from_the_response_time() {
        let resp = response(200, &[("expires", "Sun, 06 Nov 1994 08:50:37 GMT")]);
        assert_eq!(lifetime(&resp).lifetime, secs(60));
    }

    #[test]
    fn invalid_expires_means_already_expired() {
        for bad in ["0", "-1", "tomorrow"] {
            let resp = response(200, &[("expires", bad), ("last-modified", IMF)]);
            assert_eq!(
                lifetime(&resp),
                Freshness {
                    lifetime: Duration::ZERO,
                    heuristic: false
                },
                "{bad}"
            );
        }
    }

    #[test]
    fn expires_before_date_is_zero_not_negative() {
        let resp = response(
            200,
            &[("date", IMF), ("expires", "Sun, 06 Nov 1994 08:00:00 GMT")],
        );
        assert_eq!(lifetime(&resp).lifetime, Duration::ZERO);
    }

    #[test]
    fn disagreeing_expires_lines_mean_stale() {
        let resp = response(
            200,
            &[
                ("date", IMF),
                ("expires", "Sun, 06 Nov 1994 10:00:00 GMT"),
                ("expires", "Sun, 06 Nov 1994 11:00:00 GMT"),
            ],
        );
        assert_eq!(lifetime(&resp).lifetime, Duration::ZERO);
    }

    #[test]
    fn heuristic_is_ten_percent_of_time_since_last_modified() {
        let resp = response(
            200,
            &[
                ("date", "Sun, 06 Nov 1994 10:00:00 GMT"),
                ("last-modified", "Sun, 06 Nov 1994 00:00:00 GMT"),
            ],
        );
        assert_eq!(
            lifetime(&resp),
            Freshness {
                lifetime: secs(3600),
                heuristic: true
            }
        );
    }

    #[test]
    fn heuristic_is_capped_at_one_day() {
        let resp = response(
            200,
            &[
                ("date", IMF),
                ("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ],
        );
        assert_eq!(lifetime(&resp).lifetime, HEURISTIC_MAX);
    }

    #[test]
    fn heuristic_only_for_cacheable_status_or_public() {
        let modified = ("last-modified", "Sun, 06 Nov 1994 00:00:00 GMT");
        let not_by_default = response(302, &[("date", IMF), modified]);
        assert_eq!(lifetime(&not_by_default).lifetime, Duration::ZERO);
        assert!(!lifetime(&not_by_default).heuristic);
        let public = response(302, &[("date", IMF), modified, ("cache-control", "public")]);
        assert!(lifetime(&public).heuristic);
        assert!(lifetime(&public).lifetime > Duration::ZERO);
    }

    #[test]
    fn no_freshness_information_gives_zero() {
        assert_eq!(
            lifetime(&response(200, &[])),
            Freshness {
                lifetime: Duration::ZERO,
                heuristic: false
            }
        );
    }

    #[test]
    fn invalid_max_age_gives_zero_lifetime() {
        let resp = response(200, &[("cache-control", "max-age=soon"), ("expires", IMF)]);
        assert_eq!(lifetime(&resp).lifetime, Duration::ZERO);
    }

    // ---- age (§4.2.3) ----

    #[test]
    fn apparent_age_is_response_time_minus_date() {
        let resp = response(200, &[("date", IMF)]);
        let age = corrected_initial_age(&resp, at(IMF_SECS + 30), at(IMF_SECS + 30));
        assert_eq!(age, secs(30));
    }

    #[test]
    fn date_in_the_future_gives_no_negative_apparent_age() {
        let resp = response(200, &[("date", IMF)]);
        let age = corrected_initial_age(&resp, at(IMF_SECS - 10), at(IMF_SECS - 10));
        assert_eq!(age, Duration::ZERO);
    }

    #[test]
    fn age_header_plus_response_delay_is_the_corrected_age_value() {
        let resp = response(200, &[("date", IMF), ("age", "100")]);
        let age = corrected_initial_age(&resp, at(IMF_SECS), at(IMF_SECS + 2));
        assert_eq!(age, secs(102));
    }

    #[test]
    fn corrected_initial_age_is_the_larger_estimate() {
        let resp = response(200, &[("date", IMF), ("age", "5")]);
        let age = corrected_initial_age(&resp, at(IMF_SECS + 99), at(IMF_SECS + 100));
        assert_eq!(age, secs(100));
    }

    #[test]
    fn invalid_age_header_is_ignored() {
        for bad in ["abc", "-5", ""] {
            let resp = response(200, &[("age", bad)]);
            assert_eq!(corrected_initial_age(&resp, at(0), at(1)), secs(1), "{bad}");
        }
    }

    #[test]
    fn age_list_uses_its_first_member() {
        let resp = response(200, &[("age", "7, 90")]);
        assert_eq!(corrected_initial_age(&resp, at(0), at(0)), secs(7));
    }

    #[test]
    fn current_age_adds_resident_time() {
        assert_eq!(current_age(secs(10), at(100), at(150)), secs(60));
        assert_eq!(current_age(secs(10), at(100), at(50)), secs(10));
    }

    // ---- request directives (§5.2.1, §5.4) ----

    fn req_cc(value: &str) -> CacheControl {
        CacheControl::parse(value.as_bytes())
    }

    #[test]
    fn fresh_response_is_allowed_without_directives() {
        assert!(request_allows_stale_or_fresh(
            &req_cc(""),
            secs(10),
            secs(60)
        ));
        assert!(!request_allows_stale_or_fresh(
            &req_cc(""),
            secs(60),
            secs(60)
        ));
    }

    #[test]
    fn request_no_cache_forbids_serving_stored() {
        assert!(!request_allows_stale_or_fresh(
            &req_cc("no-cache"),
            secs(0),
            secs(60)
        ));
    }

    #[test]
    fn request_max_age_limits_the_age() {
        let cc = req_cc("max-age=20");
        assert!(request_allows_stale_or_fresh(&cc, secs(20), secs(60)));
        assert!(!request_allows_stale_or_fresh(&cc, secs(21), secs(60)));
    }

    #[test]
    fn request_max_age_alone_does_not_accept_stale() {
        assert!(!request_allows_stale_or_fresh(
            &req_cc("max-age=3600"),
            secs(100),
            secs(50)
        ));
    }

    #[test]
    fn request_min_fresh_needs_remaining_freshness() {
        let cc = req_cc("min-fresh=30");
        assert!(request_allows_stale_or_fresh(&cc, secs(30), secs(60)));
        assert!(!request_allows_stale_or_fresh(&cc, secs(31), secs(60)));
    }

    #[test]
    fn request_max_stale_accepts_bounded_staleness() {
        let cc = req_cc("max-stale=10");
        assert!(request_allows_stale_or_fresh(&cc, secs(70), secs(60)));
        assert!(!request_allows_stale_or_fresh(&cc, secs(71), secs(60)));
    }

    #[test]
    fn request_max_stale_without_value_accepts_any_staleness() {
        assert!(request_allows_stale_or_fresh(
            &req_cc("max-stale"),
            secs(1_000_000_000),
            secs(1)
        ));
    }

    #[test]
    fn pragma_no_cache_counts_only_without_cache_control() {
        let pragma = request(Method::GET, &[("pragma", "no-cache")]);
        assert!(request_cache_control(&pragma).no_cache);
        assert!(request_no_cache(&pragma));
        let both = request(
            Method::GET,
            &[("pragma", "no-cache"), ("cache-control", "max-stale")],
        );
        assert!(!request_cache_control(&both).no_cache);
        assert!(!request_no_cache(&both));
    }

    #[test]
    fn request_no_cache_detects_no_cache_and_max_age_zero() {
        assert!(request_no_cache(&request(
            Method::GET,
            &[("cache-control", "no-cache")]
        )));
        assert!(request_no_cache(&request(
            Method::GET,
            &[("cache-control", "max-age=0")]
        )));
        assert!(!request_no_cache(&request(
            Method::GET,
            &[("cache-control", "max-age=5")]
        )));
        assert!(!request_no_cache(&get()));
    }

    #[test]
    fn must_revalidate_proxy_revalidate_and_s_maxage_forbid_stale() {
        for value in ["must-revalidate", "proxy-revalidate", "s-maxage=5"] {
            assert!(response_forbids_stale(&req_cc(value)), "{value}");
        }
        assert!(!response_forbids_stale(&req_cc("max-age=5, public")));
    }

    // ---- HTTP-date (RFC 9110 §5.6.7) ----

    #[test]
    fn imf_fixdate_parses() {
        assert_eq!(parse_http_date(IMF), Some(at(IMF_SECS)));
    }

    #[test]
    fn rfc850_date_parses() {
        let now = at(1_750_000_000); // 2025
        assert_eq!(
            parse_http_date_at("Sunday, 06-Nov-94 08:49:37 GMT", now),
            Some(at(IMF_SECS))
        );
    }

    #[test]
    fn asctime_date_parses() {
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(at(IMF_SECS))
        );
    }

    #[test]
    fn two_digit_year_more_than_fifty_years_ahead_is_last_century() {
        let now = at(1_750_000_000); // June 2025
        let year_of = |text: &str| {
            let t = parse_http_date_at(text, now).expect("valid date");
            civil_from_days(unix_from_system_time(t).div_euclid(SECS_PER_DAY)).0
        };
        assert_eq!(year_of("Sunday, 06-Nov-94 08:49:37 GMT"), 1994);
        assert_eq!(year_of("Monday, 06-Nov-30 08:49:37 GMT"), 2030);
        assert_eq!(year_of("Monday, 06-Nov-75 08:49:37 GMT"), 2075);
        assert_eq!(year_of("Monday, 06-Nov-76 08:49:37 GMT"), 1976);
        let late_century = at(4_070_908_800); // 2099-01-01
        let t =
            parse_http_date_at("Monday, 06-Nov-01 08:49:37 GMT", late_century).expect("valid date");
        assert_eq!(
            civil_from_days(unix_from_system_time(t).div_euclid(SECS_PER_DAY)).0,
            2101
        );
    }

    #[test]
    fn malformed_dates_are_rejected() {
        for bad in [
            "",
            "0",
            "-1",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 PST",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sun Nov  6 08:49:37",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn leap_day_is_accepted_only_in_leap_years() {
        assert!(parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT").is_some());
        assert!(parse_http_date("Mon, 29 Feb 1900 00:00:00 GMT").is_none());
    }

    #[test]
    fn http_date_formats_as_imf_fixdate() {
        assert_eq!(fmt_http_date(at(IMF_SECS)), IMF);
        assert_eq!(fmt_http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            fmt_http_date(at(IMF_SECS) + Duration::from_millis(999)),
            IMF
        );
    }

    #[test]
    fn http_date_before_the_epoch_round_trips() {
        let t = UNIX_EPOCH - secs(86_400 * 365);
        assert_eq!(fmt_http_date(t), "Wed, 01 Jan 1969 00:00:00 GMT");
        assert_eq!(parse_http_date(&fmt_http_date(t)), Some(t));
    }

    #[test]
    fn civil_day_conversion_round_trips() {
        for days in [-719_468, -1, 0, 1, 10_957, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
