//! Route path patterns.
//!
//! ```text
//! /                         the root
//! /health                   a static path
//! /users/{id}               a parameter: one whole, non-empty segment
//! /users/{id}/posts/{post}  several parameters
//! /assets/{*path}           a catch-all: the rest of the path (may be empty), last only
//! /docs/                    a trailing slash is significant
//! ```
//!
//! Static segments may use any character allowed in a URL path except `{`, `}`, `?`, `#`;
//! percent-escapes must be well formed. `.`/`..` segments and empty segments (`//`)
//! are rejected: requests are normalized before matching, so such a pattern could never
//! match.

use crate::SyntaxError;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Matches exactly this text.
    Static(String),
    /// `{name}`: any one non-empty segment.
    Param(String),
    /// `{*name}`: the rest of the path.
    CatchAll(String),
}

/// A parsed pattern, with where each segment sits in the source string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The segments after the leading `/` (the root `/` is one empty static segment).
    pub segments: Vec<Segment>,
    /// Byte offset of each segment in the source.
    pub offsets: Vec<usize>,
}

impl Pattern {
    /// Names of the parameters and catch-all, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(n) | Segment::CatchAll(n) => Some(n.as_str()),
            Segment::Static(_) => None,
        })
    }

    /// The shape of the pattern with parameter names erased: two patterns with the
    /// same shape match exactly the same paths.
    pub fn shape(&self) -> String {
        let mut s = String::new();
        for seg in &self.segments {
            s.push('/');
            match seg {
                Segment::Static(t) => s.push_str(t),
                Segment::Param(_) => s.push_str("{}"),
                Segment::CatchAll(_) => s.push_str("{*}"),
            }
        }
        s
    }
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

/// Names that cannot be Rust variables even as raw identifiers (`r#name`); every
/// other keyword (`ref`, `type`, `match`...) is fine as a parameter name.
const RESERVED_NAMES: &[&str] = &["self", "Self", "super", "crate", "_"];

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%".contains(c)
}

/// Parse a route pattern.
pub fn parse_pattern(input: &str) -> Result<Pattern, SyntaxError> {
    if !input.starts_with('/') {
        return Err(
            SyntaxError::new(0, 1, "a route pattern must start with `/`")
                .hint(format!("write \"/{}\"", input.trim_start_matches('/'))),
        );
    }
    let mut segments = Vec::new();
    let mut offsets = Vec::new();
    let mut names: Vec<(String, usize)> = Vec::new();
    let body = &input[1..];
    let mut at = 1;
    let parts: Vec<&str> = body.split('/').collect();
    let count = parts.len();
    for (i, part) in parts.into_iter().enumerate() {
        let last = i + 1 == count;
        let seg = parse_segment(part, at, last, &mut names)?;
        if let Segment::CatchAll(_) = seg
            && !last
        {
            return Err(
                SyntaxError::new(at, part.len(), "a catch-all must be the last segment")
                    .hint("move `{*...}` to the end of the pattern"),
            );
        }
        segments.push(seg);
        offsets.push(at);
        at += part.len() + 1;
    }
    Ok(Pattern { segments, offsets })
}

fn parse_segment(
    part: &str,
    at: usize,
    last: bool,
    names: &mut Vec<(String, usize)>,
) -> Result<Segment, SyntaxError> {
    if part.is_empty() {
        if last {
            return Ok(Segment::Static(String::new())); // root or trailing slash
        }
        return Err(
            SyntaxError::new(at.saturating_sub(1), 2, "empty segment (`//`) in pattern")
                .hint("requests are normalized: `//` becomes `/`"),
        );
    }
    if part == "." || part == ".." {
        return Err(
            SyntaxError::new(at, part.len(), "`.` and `..` segments can never match")
                .hint("requests are normalized before matching"),
        );
    }
    if let Some(open) = part.find('{') {
        let Some(close_rel) = part[open..].find('}') else {
            return Err(
                SyntaxError::new(at + open, part.len() - open, "`{` is never closed")
                    .hint("write `{name}` or `{*name}`"),
            );
        };
        let close = open + close_rel;
        if open != 0 || close + 1 != part.len() {
            return Err(
                SyntaxError::new(at, part.len(), "a parameter must be a whole segment")
                    .hint("write `/{name}/`, not `/prefix{name}/`"),
            );
        }
        let inner = &part[1..close];
        let (catch_all, name) = match inner.strip_prefix('*') {
            Some(n) => (true, n),
            None => (false, inner),
        };
        let name_at = at + 1 + usize::from(catch_all);
        let mut chars = name.chars();
        match chars.next() {
            None => {
                return Err(SyntaxError::new(at, part.len(), "parameter without a name")
                    .hint("write `{id}` or `{*rest}`"));
            }
            Some(c) if !is_ident_start(c) => {
                return Err(SyntaxError::new(
                    name_at,
                    name.len(),
                    format!("invalid parameter name `{name}`"),
                )
                .hint("a parameter name is a Rust identifier"));
            }
            _ => {}
        }
        if let Some(bad) = name.char_indices().find(|(_, c)| !is_ident_char(*c)) {
            return Err(SyntaxError::new(
                name_at + bad.0,
                bad.1.len_utf8(),
                format!("invalid character `{}` in parameter name", bad.1),
            )
            .hint("a parameter name is a Rust identifier"));
        }
        if RESERVED_NAMES.contains(&name) {
            return Err(SyntaxError::new(
                name_at,
                name.len(),
                format!("`{name}` cannot name a parameter"),
            )
            .hint("parameters become variables: choose another name"));
        }
        if let Some((_, _)) = names.iter().find(|(n, _)| n == name) {
            return Err(SyntaxError::new(
                name_at,
                name.len(),
                format!("parameter `{name}` appears twice"),
            ));
        }
        names.push((name.to_string(), name_at));
        return Ok(if catch_all {
            Segment::CatchAll(name.to_string())
        } else {
            Segment::Param(name.to_string())
        });
    }
    if let Some(close) = part.find('}') {
        return Err(SyntaxError::new(at + close, 1, "`}` without `{`"));
    }
    if let Some((i, c)) = part.char_indices().find(|(_, c)| !is_path_char(*c)) {
        let hint = match c {
            '?' => "a pattern matches the path only; the query is not part of it",
            '#' => "fragments are never sent to servers",
            _ => "percent-encode it",
        };
        return Err(SyntaxError::new(
            at + i,
            c.len_utf8(),
            format!("character `{c}` is not allowed in a path"),
        )
        .hint(hint));
    }
    let bytes = part.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let ok = bytes.len() >= i + 3
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(SyntaxError::new(at + i, 1, "malformed percent-escape")
                    .hint("write `%` as `%25`"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(Segment::Static(normalize_static(part)))
}

/// Decode percent-escapes of unreserved characters and upper-case the rest, as the
/// request path normalizer does, so equal paths compare equal.
pub fn normalize_static(part: &str) -> String {
    let bytes = part.as_bytes();
    let mut out = String::with_capacity(part.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = &part[i + 1..i + 3];
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                    out.push(v as char);
                } else {
                    out.push('%');
                    out.push_str(&hex.to_ascii_uppercase());
                }
                i += 3;
                continue;
            }
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_segments() {
        let p = parse_pattern("/users/{id}/files/{*path}").unwrap();
        assert_eq!(
            p.segments,
            [
                Segment::Static("users".into()),
                Segment::Param("id".into()),
                Segment::Static("files".into()),
                Segment::CatchAll("path".into()),
            ]
        );
        assert_eq!(p.params().collect::<Vec<_>>(), ["id", "path"]);
        assert_eq!(p.shape(), "/users/{}/files/{*}");
        assert_eq!(
            parse_pattern("/").unwrap().segments,
            [Segment::Static(String::new())]
        );
        assert_eq!(parse_pattern("/a/").unwrap().shape(), "/a/");
    }

    #[test]
    fn shapes_ignore_parameter_names() {
        assert_eq!(
            parse_pattern("/a/{x}").unwrap().shape(),
            parse_pattern("/a/{y}").unwrap().shape()
        );
        assert_eq!(
            parse_pattern("/%7euser").unwrap().shape(),
            parse_pattern("/~user").unwrap().shape()
        );
    }

    #[test]
    fn errors_point_inside_the_string() {
        let cases: &[(&str, usize, &str)] = &[
            ("users", 0, "must start with"),
            ("/users/{id", 7, "never closed"),
            ("/a/{*rest}/b", 3, "catch-all must be the last"),
            ("/a/x{id}", 3, "whole segment"),
            ("/a/{}", 3, "without a name"),
            ("/a/{1d}", 4, "invalid parameter name"),
            ("/a/{i-d}", 5, "invalid character"),
            ("/a/{self}", 4, "cannot name a parameter"),
            ("/a/{id}/{id}", 9, "appears twice"),
            ("/a//b", 2, "empty segment"),
            ("/a/../b", 3, "can never match"),
            ("/a?b=1", 2, "not allowed"),
            ("/a/%zz", 3, "percent-escape"),
            ("/a/}", 3, "without `{`"),
        ];
        for (input, offset, msg) in cases {
            let e = parse_pattern(input).unwrap_err();
            assert_eq!(e.offset, *offset, "{input}: {e}");
            assert!(e.message.contains(msg), "{input}: {e}");
        }
    }

    #[test]
    fn caret_marks_the_spot() {
        let e = parse_pattern("/users/{id").unwrap_err();
        assert_eq!(e.caret("/users/{id"), "/users/{id\n       ^^^");
    }
}
