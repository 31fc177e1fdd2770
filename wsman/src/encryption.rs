//! WinRM message encryption framing over HTTP (MS-WSMV 2.2.9.1): the
//! `multipart/encrypted` body that carries a sealed SOAP message, both ways.
//!
//! Pure byte handling; sealing itself is done by the authentication context.

/// MIME boundary WinRM uses.
pub const BOUNDARY: &str = "Encrypted Boundary";

/// Which session-encrypted protocol the body declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `application/HTTP-SPNEGO-session-encrypted` (HTTP scheme Negotiate, also raw NTLM).
    Spnego,
    /// `application/HTTP-Kerberos-session-encrypted` (HTTP scheme Kerberos).
    Kerberos,
}

impl Protocol {
    /// The protocol string.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Spnego => "application/HTTP-SPNEGO-session-encrypted",
            Protocol::Kerberos => "application/HTTP-Kerberos-session-encrypted",
        }
    }

    /// The HTTP Content-Type of an encrypted body.
    pub fn content_type(self) -> String {
        format!(
            "multipart/encrypted;protocol=\"{}\";boundary=\"{BOUNDARY}\"",
            self.as_str()
        )
    }
}

/// Why an encrypted body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptionError {
    /// The body is not in the expected multipart form.
    #[error("malformed encrypted body: {0}")]
    Malformed(String),
    /// The server answered in clear text although encryption is required.
    #[error(
        "the server sent an unencrypted response (Content-Type {0:?}) on an encrypted session"
    )]
    NotEncrypted(String),
    /// The decrypted size differs from the declared one.
    #[error("decrypted message is {actual} bytes but the body declared {declared}")]
    LengthMismatch {
        /// OriginalContent Length.
        declared: usize,
        /// What decryption produced.
        actual: usize,
    },
    /// The security context rejected the data (bad signature, wrong key, replay).
    #[error("decryption failed: {0}")]
    Unseal(String),
    /// The security context could not seal the request.
    #[error("encryption failed: {0}")]
    Seal(String),
}

/// Builds the body for one sealed message. `original_length` is the
/// plaintext length plus any padding the context added.
pub fn encode(protocol: Protocol, original_length: usize, header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(256 + header.len() + data.len());
    b.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\n\tContent-Type: {}\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={original_length}\r\n--{BOUNDARY}\r\n\tContent-Type: application/octet-stream\r\n",
            protocol.as_str()
        )
        .as_bytes(),
    );
    b.extend_from_slice(&(header.len() as u32).to_le_bytes());
    b.extend_from_slice(header);
    b.extend_from_slice(data);
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    b
}

/// One sealed part of a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// Declared plaintext length (OriginalContent Length).
    pub original_length: usize,
    /// The signature / token header.
    pub header: &'a [u8],
    /// The sealed bytes.
    pub data: &'a [u8],
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Extracts the boundary from a `multipart/encrypted` Content-Type, or
/// fails with [`EncryptionError::NotEncrypted`].
pub fn boundary_of(content_type: &str) -> Result<String, EncryptionError> {
    let lower = content_type.to_ascii_lowercase();
    if !(lower.starts_with("multipart/encrypted")
        || lower.starts_with("multipart/x-multi-encrypted"))
    {
        return Err(EncryptionError::NotEncrypted(content_type.to_string()));
    }
    for param in content_type.split(';').skip(1) {
        if let Some((k, v)) = param.split_once('=') {
            if k.trim().eq_ignore_ascii_case("boundary") {
                return Ok(v.trim().trim_matches('"').to_string());
            }
        }
    }
    Err(EncryptionError::Malformed(
        "Content-Type has no boundary".into(),
    ))
}

/// Where one sealed part is in a body: the header is directly followed by
/// the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartRange {
    pub(crate) original_length: usize,
    pub(crate) header: std::ops::Range<usize>,
    pub(crate) data: std::ops::Range<usize>,
}

/// Splits an encrypted body into its sealed parts.
pub fn decode<'a>(content_type: &str, body: &'a [u8]) -> Result<Vec<Part<'a>>, EncryptionError> {
    Ok(decode_ranges(content_type, body)?
        .into_iter()
        .map(|p| Part {
            original_length: p.original_length,
            header: &body[p.header],
            data: &body[p.data],
        })
        .collect())
}

/// [`decode`], as positions in `body` (for decrypting in place).
pub(crate) fn decode_ranges(
    content_type: &str,
    body: &[u8],
) -> Result<Vec<PartRange>, EncryptionError> {
    let boundary = boundary_of(content_type)?;
    let delim = format!("--{boundary}").into_bytes();
    let mut open = delim.clone();
    open.extend_from_slice(b"\r\n");
    let malformed = |m: &str| EncryptionError::Malformed(m.to_string());
    let mut parts = Vec::new();
    let mut pos = 0;
    loop {
        if body.get(pos..pos + delim.len() + 2) == Some(&[delim.as_slice(), b"--"].concat()[..]) {
            break; // closing delimiter
        }
        if body.get(pos..pos + open.len()) != Some(&open[..]) {
            return Err(malformed(if parts.is_empty() {
                "body does not start with the boundary"
            } else {
                "missing boundary between parts"
            }));
        }
        pos += open.len();
        // First part: MIME headers up to the next boundary line.
        let next = find(body, &open, pos).ok_or_else(|| malformed("second boundary missing"))?;
        let headers = std::str::from_utf8(&body[pos..next])
            .map_err(|_| malformed("part headers are not UTF-8"))?;
        let original_length = headers
            .split(';')
            .find_map(|p| {
                let p = p.trim();
                p.strip_prefix("Length=")
                    .or_else(|| p.strip_prefix("length="))
            })
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or_else(|| malformed("OriginalContent has no Length"))?;
        pos = next + open.len();
        // Second part: one header line, then the binary payload.
        let line_end =
            find(body, b"\r\n", pos).ok_or_else(|| malformed("truncated part header"))?;
        let line = String::from_utf8_lossy(&body[pos..line_end]);
        if !line
            .trim()
            .to_ascii_lowercase()
            .starts_with("content-type: application/octet-stream")
        {
            return Err(malformed("second part is not application/octet-stream"));
        }
        pos = line_end + 2;
        let len_bytes = body
            .get(pos..pos + 4)
            .ok_or_else(|| malformed("truncated signature length"))?;
        let header_len =
            u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        pos += 4;
        let header = pos..pos.saturating_add(header_len);
        if body.get(header.clone()).is_none() {
            return Err(malformed("signature longer than the body"));
        }
        pos += header_len;
        // The sealed data normally has exactly the declared length; prefer
        // that end so boundary-like bytes inside the ciphertext do no harm.
        let end = match body.get(pos + original_length..) {
            Some(rest) if rest.starts_with(&delim) => pos + original_length,
            _ => find(body, &delim, pos).ok_or_else(|| malformed("closing boundary missing"))?,
        };
        parts.push(PartRange {
            original_length,
            header,
            data: pos..end,
        });
        pos = end;
    }
    if parts.is_empty() {
        return Err(malformed("no encrypted part"));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";

    #[test]
    fn exact_layout() {
        let b = encode(Protocol::Spnego, 5, &[1, 2, 3], b"abcde");
        let mut want = b"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=5\r\n--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n".to_vec();
        want.extend_from_slice(&[3, 0, 0, 0, 1, 2, 3]);
        want.extend_from_slice(b"abcde--Encrypted Boundary--\r\n");
        assert_eq!(b, want);
        assert_eq!(Protocol::Spnego.content_type(), CT);
    }

    #[test]
    fn round_trip_including_boundary_bytes_in_data() {
        let data = b"xx--Encrypted Boundary--\r\nyy";
        let b = encode(Protocol::Kerberos, data.len(), &[9; 60], data);
        let parts = decode(&Protocol::Kerberos.content_type(), &b).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].original_length, data.len());
        assert_eq!(parts[0].header, &[9; 60]);
        assert_eq!(parts[0].data, data);
    }

    #[test]
    fn several_parts() {
        let mut b = encode(Protocol::Spnego, 2, &[1], b"ab");
        b.truncate(b.len() - b"--Encrypted Boundary--\r\n".len());
        b.extend_from_slice(&encode(Protocol::Spnego, 3, &[2], b"cde"));
        let parts = decode(CT, &b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].data, b"cde");
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            decode("application/soap+xml;charset=UTF-8", b"<s:Envelope/>"),
            Err(EncryptionError::NotEncrypted(_))
        ));
        let good = encode(Protocol::Spnego, 5, &[1; 16], b"abcde");
        for cut in 0..good.len() - 2 {
            assert!(
                decode(CT, &good[..cut]).is_err(),
                "accepted a body cut at {cut}"
            );
        }
        let mut bad_len = good.clone();
        let at = find(&bad_len, b"\r\n--", 0).unwrap() + 4 + 20; // inside the header length
        bad_len[at] = 0xff;
        let _ = decode(CT, &bad_len); // must not panic
        assert!(decode("multipart/encrypted", &good).is_err());
    }
}
