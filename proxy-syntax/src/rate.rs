//! Request rates: `<count>/<period>`, e.g. `"100/s"`, `"5/min"`, `"20/10s"`.
//!
//! The period is either a unit word, meaning one of that unit (`s`, `sec`, `second`,
//! `m`, `min`, `minute`, `h`, `hour`, `d`, `day`, and `ms`), or a duration in the
//! language of [`crate::duration`] (`"100ms"`, `"10s"`, `"1m30s"`). The count is at
//! least 1 and the period longer than zero: a rate that allows nothing is a mistake,
//! not a way to block traffic.

use std::time::Duration;

use crate::SyntaxError;

/// The accepted forms, repeated in every error's hint.
const FORMS: &str = "write e.g. \"100/s\", \"5/min\", \"3600/h\" or \"20/10s\"";

/// Unit words a period may be written with, and the length of one such unit.
const PERIOD_WORDS: [(&str, Duration); 11] = [
    ("ms", Duration::from_millis(1)),
    ("s", Duration::from_secs(1)),
    ("sec", Duration::from_secs(1)),
    ("second", Duration::from_secs(1)),
    ("m", Duration::from_secs(60)),
    ("min", Duration::from_secs(60)),
    ("minute", Duration::from_secs(60)),
    ("h", Duration::from_secs(3600)),
    ("hour", Duration::from_secs(3600)),
    ("d", Duration::from_secs(86_400)),
    ("day", Duration::from_secs(86_400)),
];

/// `count` requests every `per`: the long-run pace of a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many requests the period allows (at least 1 when parsed).
    pub count: u32,
    /// The length of the period (longer than zero when parsed).
    pub per: Duration,
}

/// Parse a rate such as `"100/s"`, `"10/min"` or `"5/100ms"`.
///
/// ```
/// use std::time::Duration;
/// use proxy_syntax::rate::{Rate, parse_rate};
///
/// assert_eq!(
///     parse_rate("5/min").unwrap(),
///     Rate { count: 5, per: Duration::from_secs(60) }
/// );
/// assert!(parse_rate("0/s").is_err());
/// ```
pub fn parse_rate(input: &str) -> Result<Rate, SyntaxError> {
    if input.trim().is_empty() {
        return Err(SyntaxError::new(0, 1, "empty rate").hint(FORMS));
    }
    if let Some(ws) = input.find(char::is_whitespace) {
        let compact: String = input.split_whitespace().collect();
        return Err(SyntaxError::new(ws, 1, "spaces are not allowed in a rate")
            .hint(format!("write \"{compact}\"")));
    }
    let Some(slash) = input.find('/') else {
        return Err(SyntaxError::new(
            0,
            input.len(),
            "a rate needs a count and a period separated by `/`",
        )
        .hint(FORMS));
    };
    let count = parse_count(&input[..slash])?;
    let per = parse_period(&input[slash + 1..], slash + 1)?;
    Ok(Rate { count, per })
}

/// The part before the `/`: a whole number of at least 1.
fn parse_count(text: &str) -> Result<u32, SyntaxError> {
    if text.is_empty() {
        return Err(SyntaxError::new(0, 1, "expected a number of requests before `/`").hint(FORMS));
    }
    if let Some(bad) = text.find(|c: char| !c.is_ascii_digit()) {
        let width = text[bad..].chars().next().map_or(1, char::len_utf8);
        return Err(
            SyntaxError::new(bad, width, "the number of requests must be a whole number")
                .hint(FORMS),
        );
    }
    let count: u32 = text.parse().map_err(|_| {
        SyntaxError::new(0, text.len(), "number of requests too large in rate")
            .hint(format!("at most {} requests per period", u32::MAX))
    })?;
    if count == 0 {
        return Err(
            SyntaxError::new(0, text.len(), "a rate must allow at least one request").hint(FORMS),
        );
    }
    Ok(count)
}

/// The part after the `/` (which starts at byte `offset` of the whole input): a unit
/// word or a duration, longer than zero.
fn parse_period(text: &str, offset: usize) -> Result<Duration, SyntaxError> {
    if text.is_empty() {
        return Err(SyntaxError::new(offset, 1, "expected a period after `/`").hint(FORMS));
    }
    let per = if text.starts_with(|c: char| c.is_ascii_digit()) {
        crate::duration::parse_duration(text).map_err(|mut e| {
            e.offset += offset;
            e.hint.get_or_insert_with(|| FORMS.to_string());
            e
        })?
    } else {
        period_word(text).ok_or_else(|| unknown_period(text, offset))?
    };
    if per.is_zero() {
        return Err(SyntaxError::new(
            offset,
            text.len(),
            "the period of a rate must be longer than zero",
        )
        .hint(FORMS));
    }
    Ok(per)
}

/// The length of one `word` (`"min"` → 60 s), if it names a unit.
fn period_word(word: &str) -> Option<Duration> {
    PERIOD_WORDS
        .iter()
        .find(|(w, _)| *w == word)
        .map(|&(_, per)| per)
}

/// The error for a period that is neither a unit word nor a duration, with the right
/// spelling when only the case or a letter is off.
fn unknown_period(text: &str, offset: usize) -> SyntaxError {
    let words = PERIOD_WORDS.iter().map(|(w, _)| *w);
    let hint = match PERIOD_WORDS
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(text))
    {
        Some((w, _)) => format!("units are lower case: write `{w}`"),
        None => match crate::suggest::closest(text, words) {
            Some(w) => format!("did you mean `{w}`? {FORMS}"),
            None => format!(
                "a period is one of s, sec, second, m, min, minute, h, hour, d, day, ms \
                 or a duration; {FORMS}"
            ),
        },
    };
    SyntaxError::new(offset, text.len(), format!("unknown rate period `{text}`")).hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(count: u32, per: Duration) -> Rate {
        Rate { count, per }
    }

    #[test]
    fn parses_unit_words() {
        let second = Duration::from_secs(1);
        let minute = Duration::from_secs(60);
        let hour = Duration::from_secs(3600);
        let day = Duration::from_secs(86_400);
        assert_eq!(parse_rate("100/s").unwrap(), rate(100, second));
        assert_eq!(parse_rate("100/sec").unwrap(), rate(100, second));
        assert_eq!(parse_rate("100/second").unwrap(), rate(100, second));
        assert_eq!(parse_rate("10/m").unwrap(), rate(10, minute));
        assert_eq!(parse_rate("5/min").unwrap(), rate(5, minute));
        assert_eq!(parse_rate("5/minute").unwrap(), rate(5, minute));
        assert_eq!(parse_rate("3600/h").unwrap(), rate(3600, hour));
        assert_eq!(parse_rate("3600/hour").unwrap(), rate(3600, hour));
        assert_eq!(parse_rate("1000/d").unwrap(), rate(1000, day));
        assert_eq!(parse_rate("1000/day").unwrap(), rate(1000, day));
        assert_eq!(
            parse_rate("2/ms").unwrap(),
            rate(2, Duration::from_millis(1))
        );
    }

    #[test]
    fn parses_duration_periods() {
        assert_eq!(
            parse_rate("5/100ms").unwrap(),
            rate(5, Duration::from_millis(100))
        );
        assert_eq!(
            parse_rate("20/10s").unwrap(),
            rate(20, Duration::from_secs(10))
        );
        assert_eq!(
            parse_rate("1/1m30s").unwrap(),
            rate(1, Duration::from_secs(90))
        );
        assert_eq!(
            parse_rate("4294967295/s").unwrap(),
            rate(u32::MAX, Duration::from_secs(1))
        );
    }

    #[test]
    fn rejects_rates_that_allow_nothing() {
        let e = parse_rate("0/s").unwrap_err();
        assert_eq!((e.offset, e.len), (0, 1));
        assert!(e.message.contains("at least one request"));
        assert!(e.hint.unwrap().contains("\"100/s\""));

        let e = parse_rate("5/0s").unwrap_err();
        assert_eq!((e.offset, e.len), (2, 2));
        assert!(e.message.contains("longer than zero"));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse_rate("100").unwrap_err();
        assert!(e.message.contains('/'));
        assert!(e.hint.unwrap().contains("\"5/min\""));

        let e = parse_rate("/s").unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("number of requests"));

        let e = parse_rate("1x0/s").unwrap_err();
        assert_eq!((e.offset, e.len), (1, 1));

        let e = parse_rate("10/").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.message.contains("period"));

        let e = parse_rate("99999999999/s").unwrap_err();
        assert_eq!((e.offset, e.len), (0, 11));
        assert!(e.message.contains("too large"));

        let e = parse_rate("10 / s").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.hint.unwrap().contains("\"10/s\""));

        assert!(parse_rate("").is_err());
    }

    #[test]
    fn unknown_periods_get_a_suggestion() {
        let e = parse_rate("10/S").unwrap_err();
        assert_eq!((e.offset, e.len), (3, 1));
        assert!(e.hint.unwrap().contains("`s`"));

        let e = parse_rate("10/minut").unwrap_err();
        assert_eq!((e.offset, e.len), (3, 5));
        assert!(e.message.contains("`minut`"));
        assert!(e.hint.unwrap().contains("`minute`"));

        let e = parse_rate("10/fortnight").unwrap_err();
        assert!(e.hint.unwrap().contains("duration"));
    }

    #[test]
    fn duration_errors_point_into_the_whole_rate() {
        // "10/5sec": the duration parser rejects `sec` at offset 1 of "5sec".
        let e = parse_rate("10/5sec").unwrap_err();
        assert_eq!((e.offset, e.len), (4, 3));
        let e = parse_rate("10/5").unwrap_err();
        assert_eq!(e.offset, 3);
        assert!(e.hint.unwrap().contains("5s"));
    }
}
