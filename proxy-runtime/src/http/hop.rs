//! The hop-by-hop header names (RFC 9110 §7.6.1): fields that concern one connection
//! only and never cross a proxy, each with a bit so that a set of them fits in a `u8`.
//!
//! [`super::fields::Fields`] keeps the bits of the names it may hold, so that the proxy
//! knows without a scan whether a head carries any of them (most carry none, or only
//! `Connection`).

use http::{HeaderName, header};

/// The hop-by-hop names, in bit order (`1 << index`).
// A `static`, not a `const`: a `const` array of names is built and dropped again at
// every use.
pub(crate) static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The bit of `Connection`.
pub(crate) const CONNECTION: u8 = 1 << 0;
/// The bit of `Transfer-Encoding`.
pub(crate) const TRANSFER_ENCODING: u8 = 1 << 5;
/// The bit of `Upgrade`.
pub(crate) const UPGRADE: u8 = 1 << 6;

/// The position of `name` in [`HOP_BY_HOP`]: `name` in lower case (as header names are
/// stored), or in any case with `ignore_case`. The length rules out almost every name
/// before any byte is compared.
pub(crate) fn index(name: &[u8], ignore_case: bool) -> Option<usize> {
    let first = name.first()?.to_ascii_lowercase();
    let candidate = match (name.len(), first) {
        (2, _) => 3,
        (7, b't') => 4,
        (7, _) => 6,
        (10, b'c') => 0,
        (10, _) => 1,
        (16, _) => 2,
        (17, _) => 5,
        _ => return None,
    };
    let hop = HOP_BY_HOP[candidate].as_str().as_bytes();
    let same = if ignore_case {
        name.eq_ignore_ascii_case(hop)
    } else {
        name == hop
    };
    same.then_some(candidate)
}

/// The bit of `name` if it is hop-by-hop, else 0.
pub(crate) fn bit(name: &HeaderName) -> u8 {
    index(name.as_str().as_bytes(), false).map_or(0, |i| 1 << i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_names_are_found_by_length_then_bytes() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(index(name.as_str().as_bytes(), false), Some(i));
            assert_eq!(bit(name), 1 << i);
            let upper = name.as_str().to_ascii_uppercase();
            assert_eq!(index(upper.as_bytes(), true), Some(i));
            assert_eq!(index(upper.as_bytes(), false), None);
        }
        assert_eq!(bit(&header::CONNECTION), CONNECTION);
        assert_eq!(bit(&header::TRANSFER_ENCODING), TRANSFER_ENCODING);
        assert_eq!(bit(&header::UPGRADE), UPGRADE);
        for other in [
            "",
            "t",
            "tk",
            "trailers",
            "upgrader",
            "content-type",
            "connectio",
            "keep-alivf",
        ] {
            assert_eq!(index(other.as_bytes(), true), None, "{other}");
        }
    }
}
