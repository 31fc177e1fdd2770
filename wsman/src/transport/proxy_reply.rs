//! The reply of an HTTP proxy to `CONNECT` (RFC 9110 9.3.6): the head is
//! read up to its blank line (at most [`MAX_HEAD`] bytes) and only its
//! status line is used. Sans-IO: the caller reads, this judges the bytes.

/// Longest reply head accepted (status line and header lines).
pub const MAX_HEAD: usize = 16 * 1024;

/// Longest part of a refusal's status line quoted in the error.
const MAX_QUOTED: usize = 200;

/// Why the proxy's reply does not open a tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectReplyError {
    /// Not an HTTP/1.x reply head.
    Malformed(String),
    /// A well-formed reply with a status other than 2xx.
    Refused {
        /// The status code.
        status: u16,
        /// The reason phrase, control characters escaped and cut to 200 characters.
        reason: String,
    },
}

impl std::fmt::Display for ConnectReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectReplyError::Malformed(m) => write!(f, "malformed proxy reply: {m}"),
            ConnectReplyError::Refused { status, reason } => {
                write!(f, "proxy answered HTTP {status}")?;
                if !reason.is_empty() {
                    write!(f, " {reason}")?;
                }
                Ok(())
            }
        }
    }
}

/// Whether `buf` (bytes read so far) ends with the head's blank line.
pub fn head_complete(buf: &[u8]) -> bool {
    buf.ends_with(b"\r\n\r\n")
}

/// Server text made safe to show: control characters escaped, at most
/// [`MAX_QUOTED`] characters.
fn quoted(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_QUOTED {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Judges a complete reply head (status line, header lines, blank line):
/// `Ok(status)` for a 2xx status, which opens the tunnel.
pub fn parse(head: &[u8]) -> Result<u16, ConnectReplyError> {
    let malformed = |m: &str| ConnectReplyError::Malformed(m.to_string());
    if head.len() > MAX_HEAD {
        return Err(ConnectReplyError::Malformed(format!(
            "reply head longer than {MAX_HEAD} bytes"
        )));
    }
    if !head_complete(head) {
        return Err(malformed("reply head does not end with a blank line"));
    }
    let line_end = memchr::memmem::find(head, b"\r\n").unwrap_or(head.len());
    let line = &head[..line_end];
    // HTTP-version SP status-code SP [reason-phrase]
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))
        .ok_or_else(|| {
            ConnectReplyError::Malformed(format!("status line {:?} is not HTTP/1.x", quoted(line)))
        })?;
    let (code, reason) = match rest {
        [a, b, c] => ([*a, *b, *c], &[][..]),
        [a, b, c, b' ', reason @ ..] => ([*a, *b, *c], reason),
        _ => {
            return Err(ConnectReplyError::Malformed(format!(
                "status line {:?} has no three-digit status",
                quoted(line)
            )))
        }
    };
    if !code.iter().all(u8::is_ascii_digit) || code[0] == b'0' {
        return Err(ConnectReplyError::Malformed(format!(
            "status line {:?} has no three-digit status",
            quoted(line)
        )));
    }
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(ConnectReplyError::Refused {
            status,
            reason: quoted(reason),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn established() {
        assert_eq!(
            parse(b"HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n"),
            Ok(200)
        );
        assert_eq!(parse(b"HTTP/1.1 200\r\n\r\n"), Ok(200));
        assert_eq!(parse(b"HTTP/1.1 204 \r\n\r\n"), Ok(204));
    }

    #[test]
    fn refusals_quote_a_safe_reason() {
        assert_eq!(
            parse(b"HTTP/1.1 407 Proxy Authentication Required\r\nX: y\r\n\r\n"),
            Err(ConnectReplyError::Refused {
                status: 407,
                reason: "Proxy Authentication Required".into()
            })
        );
        let mut evil = b"HTTP/1.1 403 \x1b[2Jhidden".to_vec();
        evil.extend(std::iter::repeat_n(b'x', 1000));
        evil.extend_from_slice(b"\r\n\r\n");
        let e = parse(&evil).unwrap_err();
        let shown = e.to_string();
        assert!(!shown.contains('\x1b'), "{shown}");
        assert!(shown.starts_with("proxy answered HTTP 403 \\u{1b}[2Jhidden"));
        assert!(shown.chars().count() < 260, "{}", shown.len());
    }

    #[test]
    fn malformed_heads() {
        for bad in [
            &b""[..],
            b"\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"http/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 099 OK\r\n\r\n",
            b"HTTP/1.1  200 OK\r\n\r\n",
            b"HTTP/1.1 200\tOK\r\n\r\n",
            b"SSH-2.0-OpenSSH 200 OK\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ConnectReplyError::Malformed(_))),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut long = b"HTTP/1.1 200 OK\r\n".to_vec();
        long.resize(MAX_HEAD + 1, b'x');
        long.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(parse(&long), Err(ConnectReplyError::Malformed(_))));
    }
}
