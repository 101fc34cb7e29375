//! Sizes in bytes: `"512"`, `"64KiB"`, `"10MiB"`, `"1GiB"` (powers of 1024) or
//! `"10KB"`, `"10MB"`, `"1GB"` (powers of 1000), `"B"` optional.

use crate::SyntaxError;

/// Parse a size in bytes.
pub fn parse_size(input: &str) -> Result<u64, SyntaxError> {
    if let Some(ws) = input.find(char::is_whitespace) {
        let compact: String = input.split_whitespace().collect();
        let suggestion = corrected(&compact).unwrap_or(compact);
        return Err(SyntaxError::new(ws, 1, "spaces are not allowed in a size")
            .hint(format!("write \"{suggestion}\"")));
    }
    let digits = input.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(SyntaxError::new(0, 1, "expected a number in size")
            .hint("write e.g. \"64KiB\" or \"10MB\""));
    }
    let number: u64 = input[..digits]
        .parse()
        .map_err(|_| SyntaxError::new(0, digits, "number too large in size"))?;
    let unit = &input[digits..];
    let factor: u64 = match unit {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(SyntaxError::new(
                digits,
                other.len(),
                format!("unknown size unit `{other}`"),
            )
            .hint(
                match ["B", "KB", "MB", "GB", "KiB", "MiB", "GiB"]
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(other))
                {
                    Some(k) => format!("units are case-sensitive: write `{k}`"),
                    None => "units are B, KB, MB, GB (×1000) and KiB, MiB, GiB (×1024)".to_string(),
                },
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| SyntaxError::new(0, input.len(), "size too large"))
}

/// `10mb` → `10MB`: the same size with the unit spelled right, if that is the problem.
fn corrected(compact: &str) -> Option<String> {
    let digits = compact.bytes().take_while(u8::is_ascii_digit).count();
    let unit = &compact[digits..];
    ["B", "KB", "MB", "GB", "KiB", "MiB", "GiB"]
        .iter()
        .find(|k| k.eq_ignore_ascii_case(unit))
        .map(|k| format!("{}{k}", &compact[..digits]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("10mb").unwrap_err().offset, 2);
        assert!(
            parse_size("10mb")
                .unwrap_err()
                .hint
                .unwrap()
                .contains("`MB`")
        );
        assert_eq!(parse_size("10 MB").unwrap_err().offset, 2);
        assert!(
            parse_size("10 mb")
                .unwrap_err()
                .hint
                .unwrap()
                .contains("\"10MB\"")
        );
        assert!(parse_size("MB").is_err());
    }
}
