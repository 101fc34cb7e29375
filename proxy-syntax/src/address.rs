//! Upstream addresses as written in a declaration: `"10.0.0.1:80"`, `"[::1]:8080"`,
//! `"api.internal:443"` (resolved at start-up), `"unix:/run/app.sock"`.

use std::net::SocketAddr;

use crate::SyntaxError;

/// A syntactically valid address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// An IP literal and port.
    Ip(SocketAddr),
    /// A host name and port, resolved when the proxy starts.
    Host(String, u16),
    /// A Unix domain socket path.
    Unix(String),
}

/// Check an address without resolving it.
pub fn parse_address(input: &str) -> Result<Address, SyntaxError> {
    if let Some(path) = input.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err(SyntaxError::new(
                5,
                path.len().max(1),
                "a Unix socket path must be absolute",
            )
            .hint("write \"unix:/path/to.sock\""));
        }
        return Ok(Address::Unix(path.to_string()));
    }
    if input.is_empty() {
        return Err(SyntaxError::new(0, 0, "empty address")
            .hint("write \"host:port\", e.g. \"10.0.0.1:80\""));
    }
    if let Some(scheme_end) = input.find("://") {
        return Err(
            SyntaxError::new(0, scheme_end + 3, "an address has no scheme")
                .hint("write \"host:port\"; for TLS add `tls` to the upstream"),
        );
    }
    if let Ok(a) = input.parse::<SocketAddr>() {
        return Ok(Address::Ip(a));
    }
    if input.starts_with('[') && input.ends_with(']') {
        return Err(SyntaxError::new(0, input.len(), "address without a port")
            .hint(format!("write \"{input}:80\"")));
    }
    let Some(colon) = input.rfind(':') else {
        return Err(SyntaxError::new(0, input.len(), "address without a port")
            .hint(format!("write \"{input}:80\"")));
    };
    let (host, port) = (&input[..colon], &input[colon + 1..]);
    let port: u16 = port.parse().map_err(|_| {
        SyntaxError::new(
            colon + 1,
            port.len().max(1),
            format!("invalid port `{port}`"),
        )
        .hint("a port is 1-65535")
    })?;
    if port == 0 {
        return Err(SyntaxError::new(
            colon + 1,
            1,
            "port 0 cannot be connected to",
        ));
    }
    if host.is_empty() {
        return Err(SyntaxError::new(0, 1, "address without a host"));
    }
    if host.starts_with('[') || host.contains(':') {
        return Err(
            SyntaxError::new(0, host.len(), "invalid IPv6 address").hint("write \"[::1]:80\"")
        );
    }
    for (i, label) in host.split('.').enumerate() {
        let at = host.split('.').take(i).map(|l| l.len() + 1).sum::<usize>();
        let valid = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(SyntaxError::new(
                at,
                label.len().max(1),
                format!("invalid host name label `{label}`"),
            ));
        }
    }
    Ok(Address::Host(host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_form() {
        assert!(matches!(parse_address("10.0.0.1:80"), Ok(Address::Ip(_))));
        assert!(matches!(parse_address("[::1]:8080"), Ok(Address::Ip(_))));
        assert_eq!(
            parse_address("api.internal:443"),
            Ok(Address::Host("api.internal".into(), 443))
        );
        assert_eq!(
            parse_address("unix:/run/a.sock"),
            Ok(Address::Unix("/run/a.sock".into()))
        );
    }

    #[test]
    fn rejects_with_position() {
        assert_eq!(parse_address("10.0.0.1:99999").unwrap_err().offset, 9);
        assert!(
            parse_address("api.internal")
                .unwrap_err()
                .hint
                .unwrap()
                .contains(":80")
        );
        assert_eq!(parse_address("bad_host:80").unwrap_err().offset, 0);
        assert!(parse_address("unix:relative").is_err());
        assert!(parse_address("a:0").is_err());
        assert_eq!(parse_address("").unwrap_err().message, "empty address");
        assert!(
            parse_address("http://api:80")
                .unwrap_err()
                .message
                .contains("scheme")
        );
        assert!(
            parse_address("[::1]")
                .unwrap_err()
                .hint
                .unwrap()
                .contains("[::1]:80")
        );
    }
}
