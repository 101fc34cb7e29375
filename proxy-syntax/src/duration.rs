//! Durations: a sequence of `<number><unit>` parts, e.g. `"500ms"`, `"5s"`, `"1m30s"`,
//! `"2h"`, `"1d"`. Units: `ms`, `s`, `m`, `h`, `d`. A bare number is an error (say
//! which unit you mean).

use std::time::Duration;

use crate::SyntaxError;

/// Parse a duration.
pub fn parse_duration(input: &str) -> Result<Duration, SyntaxError> {
    let bytes = input.as_bytes();
    if input.trim().is_empty() {
        return Err(SyntaxError::new(0, 1, "empty duration").hint("write e.g. \"5s\" or \"250ms\""));
    }
    if let Some(ws) = input.find(char::is_whitespace) {
        let compact: String = input.split_whitespace().collect();
        return Err(
            SyntaxError::new(ws, 1, "spaces are not allowed in a duration")
                .hint(format!("write \"{compact}\"")),
        );
    }
    let mut total: u128 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(SyntaxError::new(start, 1, "expected a number in duration")
                .hint("write e.g. \"5s\", \"1m30s\" or \"250ms\""));
        }
        let number: u128 = input[start..i]
            .parse()
            .map_err(|_| SyntaxError::new(start, i - start, "number too large in duration"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &input[unit_start..i];
        let millis_per_unit: u128 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => {
                return Err(
                    SyntaxError::new(start, i - start, "duration without a unit")
                        .hint(format!("write \"{number}s\" or \"{number}ms\"")),
                );
            }
            other => {
                return Err(SyntaxError::new(
                    unit_start,
                    other.len(),
                    format!("unknown duration unit `{other}`"),
                )
                .hint("units are ms, s, m, h, d"));
            }
        };
        total = number
            .checked_mul(millis_per_unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| SyntaxError::new(start, i - start, "duration too large"))?;
    }
    let millis =
        u64::try_from(total).map_err(|_| SyntaxError::new(0, input.len(), "duration too large"))?;
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse_duration("5 s").unwrap_err();
        assert_eq!(e.offset, 1);
        assert!(e.hint.unwrap().contains("\"5s\""));
        let e = parse_duration("5sec").unwrap_err();
        assert_eq!((e.offset, e.len), (1, 3));
        assert!(
            parse_duration("10")
                .unwrap_err()
                .hint
                .unwrap()
                .contains("10s")
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999999d").is_err());
    }
}
