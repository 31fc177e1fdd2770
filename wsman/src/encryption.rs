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
    /// `application/HTTP-CredSSP-session-encrypted` (HTTP scheme CredSSP);
    /// messages over 16 KiB go in several parts, as
    /// `multipart/x-multi-encrypted`.
    CredSsp,
}

impl Protocol {
    /// The protocol string.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Spnego => "application/HTTP-SPNEGO-session-encrypted",
            Protocol::Kerberos => "application/HTTP-Kerberos-session-encrypted",
            Protocol::CredSsp => "application/HTTP-CredSSP-session-encrypted",
        }
    }

    /// The HTTP Content-Type of an encrypted body holding a message of
    /// `len` bytes: CredSSP cuts messages over 16 KiB into parts and says
    /// so with `multipart/x-multi-encrypted`.
    pub fn content_type_for(self, len: usize) -> String {
        if self == Protocol::CredSsp && len > crate::auth::credssp::PART_SIZE {
            format!(
                "multipart/x-multi-encrypted;protocol=\"{}\";boundary=\"{BOUNDARY}\"",
                self.as_str()
            )
        } else {
            self.content_type()
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

/// Builds a body of several sealed parts (CredSSP's 16 KiB parts): each
/// `(original_length, header, data)` with its own MIME headers, one closing
/// boundary at the end.
pub fn encode_parts(protocol: Protocol, parts: &[(usize, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let close = format!("--{BOUNDARY}--\r\n");
    let mut b = Vec::new();
    for (len, header, data) in parts {
        let mut one = encode(protocol, *len, header, data);
        one.truncate(one.len() - close.len());
        b.extend_from_slice(&one);
    }
    b.extend_from_slice(close.as_bytes());
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
    // memmem is linear in the body whatever the needle; a naive window
    // compare is not.
    memchr::memmem::find(hay.get(from..)?, needle).map(|p| p + from)
}

/// Most sealed parts accepted in one body. WinRM sends one part per message
/// (CredSSP's `multipart/x-multi-encrypted` cuts messages into 16 KiB
/// parts, so 4096 parts is 64 MiB of those); the bound keeps a hostile body
/// from making us keep more than this many part positions.
pub const MAX_PARTS: usize = 4096;

/// Longest boundary accepted (RFC 2046 allows 1 to 70 characters).
const MAX_BOUNDARY: usize = 70;

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

/// The declared plaintext length: the `Length=` parameter of the first
/// part's MIME headers (`OriginalContent: type=...;Length=N`).
fn original_length(headers: &str) -> Result<usize, EncryptionError> {
    let value = headers
        .split(';')
        .find_map(|p| {
            let p = p.trim();
            p.strip_prefix("Length=")
                .or_else(|| p.strip_prefix("length="))
        })
        .ok_or_else(|| EncryptionError::Malformed("OriginalContent has no Length".into()))?
        .trim();
    // Digits only: `usize::from_str` would also take a leading `+`.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EncryptionError::Malformed(format!(
            "OriginalContent Length {:?} is not a byte count",
            value.chars().take(40).collect::<String>()
        )));
    }
    value.parse::<usize>().map_err(|_| {
        EncryptionError::Malformed(format!(
            "OriginalContent Length {} is too large",
            value.chars().take(40).collect::<String>()
        ))
    })
}

/// [`decode`], as positions in `body` (for decrypting in place).
///
/// Everything here is untrusted (the MIME headers are outside the seal):
/// every length is checked against what is left of the body before use,
/// every iteration consumes at least one boundary line or fails, and at
/// most [`MAX_PARTS`] parts are accepted.
pub(crate) fn decode_ranges(
    content_type: &str,
    body: &[u8],
) -> Result<Vec<PartRange>, EncryptionError> {
    let boundary = boundary_of(content_type)?;
    let malformed = |m: &str| EncryptionError::Malformed(m.to_string());
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY {
        return Err(malformed(
            "Content-Type boundary is empty or longer than 70 characters",
        ));
    }
    let delim = format!("--{boundary}").into_bytes();
    let mut open = delim.clone();
    open.extend_from_slice(b"\r\n");
    let mut close = delim.clone();
    close.extend_from_slice(b"--");
    let mut parts = Vec::new();
    // Invariant: pos <= body.len().
    let mut pos = 0;
    loop {
        let rest = &body[pos..];
        if rest.starts_with(&close) {
            break;
        }
        if !rest.starts_with(&open) {
            return Err(malformed(if parts.is_empty() {
                "body does not start with the boundary"
            } else {
                "missing boundary between parts"
            }));
        }
        if parts.len() == MAX_PARTS {
            return Err(EncryptionError::Malformed(format!(
                "more than {MAX_PARTS} encrypted parts in one body"
            )));
        }
        pos += open.len();
        // First part: MIME headers up to the next boundary line.
        let next = find(body, &open, pos).ok_or_else(|| malformed("second boundary missing"))?;
        let headers = std::str::from_utf8(&body[pos..next])
            .map_err(|_| malformed("part headers are not UTF-8"))?;
        let original_length = original_length(headers)?;
        pos = next + open.len();
        // Second part: one header line, then the binary payload.
        let line_end =
            find(body, b"\r\n", pos).ok_or_else(|| malformed("truncated part header"))?;
        if !body[pos..line_end]
            .trim_ascii()
            .to_ascii_lowercase()
            .starts_with(b"content-type: application/octet-stream")
        {
            return Err(malformed("second part is not application/octet-stream"));
        }
        pos = line_end + 2;
        let len_bytes: [u8; 4] = body[pos..]
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed("truncated signature length"))?;
        pos += 4;
        let header_len = u32::from_le_bytes(len_bytes) as usize;
        if header_len > body.len() - pos {
            return Err(malformed("signature longer than the body"));
        }
        let header = pos..pos + header_len;
        pos += header_len;
        let remaining = body.len() - pos;
        if original_length > remaining {
            return Err(EncryptionError::Malformed(format!(
                "OriginalContent Length {original_length} is more than the {remaining} bytes left in the body"
            )));
        }
        // The sealed data normally has exactly the declared length; prefer
        // that end so boundary-like bytes inside the ciphertext do no harm.
        let declared_end = pos + original_length;
        let end = if body[declared_end..].starts_with(&delim) {
            declared_end
        } else {
            find(body, &delim, pos).ok_or_else(|| malformed("closing boundary missing"))?
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

    /// A body like `encode`'s with the OriginalContent parameter text replaced.
    fn with_length(length: &str, header: &[u8], data: &[u8]) -> Vec<u8> {
        let good = encode(Protocol::Spnego, data.len(), header, data);
        let text = format!("Length={}\r\n", data.len());
        let at = find(&good, text.as_bytes(), 0).unwrap();
        let mut b = good[..at].to_vec();
        b.extend_from_slice(length.as_bytes());
        b.extend_from_slice(&good[at + text.len() - 2..]);
        b
    }

    fn malformed(body: &[u8]) -> String {
        match decode(CT, body) {
            Err(EncryptionError::Malformed(m)) => m,
            Err(e) => panic!("expected Malformed, got {e:?}"),
            Ok(parts) => panic!("expected Malformed, got {} parts", parts.len()),
        }
    }

    #[test]
    fn huge_declared_lengths_are_refused() {
        // usize::MAX overflowed `pos + Length` (a debug panic; a release
        // build wrapped to the start of the body and pushed parts forever).
        for huge in [
            usize::MAX.to_string(),
            (usize::MAX - 100).to_string(),
            u64::MAX.to_string(),
            "99999999999999999999999999".to_string(),
            (1usize << 40).to_string(),
        ] {
            let m = malformed(&with_length(&format!("Length={huge}"), &[1; 16], b"abcde"));
            assert!(m.contains("Length"), "{huge}: {m}");
        }
        // One byte more than the rest of the body is already too much.
        let body = with_length("Length=5", &[1; 16], b"abcde");
        let rest = body.len() - find(&body, &[16, 0, 0, 0], 0).unwrap() - 4 - 16;
        let m = malformed(&with_length(
            &format!("Length={}", rest + 1),
            &[1; 16],
            b"abcde",
        ));
        assert!(m.contains("more than"), "{m}");
    }

    #[test]
    fn negative_absent_or_garbled_lengths_are_refused() {
        for bad in [
            "Length=-1",
            "Length=",
            "Length=5x",
            "Length=0x10",
            "Foo=5",
            "",
        ] {
            let m = malformed(&with_length(bad, &[1; 16], b"abcde"));
            assert!(m.contains("Length"), "{bad:?}: {m}");
        }
    }

    #[test]
    fn boundary_inside_the_ciphertext() {
        // A whole fake part inside the sealed bytes: with the right Length
        // it stays data.
        let fake = encode(Protocol::Spnego, 3, &[7; 16], b"xyz");
        let b = encode(Protocol::Spnego, fake.len(), &[1; 16], &fake);
        let parts = decode(CT, &b).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].data, &fake[..]);
        // With a Length that does not end at a boundary, the data ends at
        // the first delimiter found: the fake part then shows up as parts
        // that will not decrypt, never as a crash or a loop.
        let b = with_length("Length=1", &[1; 16], &fake);
        if let Ok(parts) = decode(CT, &b) {
            assert!(parts.iter().all(|p| p.data.len() <= fake.len()));
        }
    }

    #[test]
    fn truncated_parts_are_refused() {
        let mut two = encode(Protocol::Spnego, 2, &[1; 16], b"ab");
        two.truncate(two.len() - b"--Encrypted Boundary--\r\n".len());
        two.extend_from_slice(&encode(Protocol::Spnego, 3, &[2; 16], b"cde"));
        for cut in 0..two.len() - 2 {
            assert!(decode(CT, &two[..cut]).is_err(), "accepted a cut at {cut}");
        }
        // A signature length pointing past the end.
        let mut b = encode(Protocol::Spnego, 5, &[1; 16], b"abcde");
        let at = find(&b, &[16, 0, 0, 0], 0).unwrap();
        b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(malformed(&b).contains("signature"));
    }

    #[test]
    fn zero_length_parts_and_the_part_limit() {
        let one = encode(Protocol::Spnego, 0, &[], b"");
        let parts = decode(CT, &one).unwrap();
        assert_eq!(
            (parts.len(), parts[0].header, parts[0].data),
            (1, &[][..], &[][..])
        );
        let close = b"--Encrypted Boundary--\r\n".len();
        let many = |n: usize| {
            let mut b = Vec::new();
            for _ in 0..n {
                b.extend_from_slice(&one[..one.len() - close]);
            }
            b.extend_from_slice(&one[one.len() - close..]);
            b
        };
        assert_eq!(decode(CT, &many(MAX_PARTS)).unwrap().len(), MAX_PARTS);
        assert!(malformed(&many(MAX_PARTS + 1)).contains("parts"));
    }

    #[test]
    fn credssp_parts_and_content_type() {
        let parts = vec![
            (16384, vec![1; 16], vec![2; 16400]),
            (10, vec![3; 16], vec![4; 30]),
        ];
        let body = encode_parts(Protocol::CredSsp, &parts);
        let ct = Protocol::CredSsp.content_type_for(16394);
        assert!(ct.starts_with("multipart/x-multi-encrypted;"), "{ct}");
        assert!(ct.contains("application/HTTP-CredSSP-session-encrypted"));
        let back = decode(&ct, &body).unwrap();
        assert_eq!(back.len(), 2);
        // The TLS records are longer than the plaintext: each part's data
        // runs to the next boundary.
        assert_eq!(
            (back[0].original_length, back[0].data.len()),
            (16384, 16400)
        );
        assert_eq!((back[1].header, back[1].data), (&[3; 16][..], &[4; 30][..]));
        assert!(body.ends_with(b"--Encrypted Boundary--\r\n"));
        assert_eq!(
            Protocol::CredSsp.content_type_for(16384),
            Protocol::CredSsp.content_type()
        );
        assert_eq!(
            Protocol::Spnego.content_type_for(1 << 20),
            Protocol::Spnego.content_type()
        );
    }

    #[test]
    fn odd_boundaries_are_refused() {
        let good = encode(Protocol::Spnego, 5, &[1; 16], b"abcde");
        assert!(decode("multipart/encrypted;boundary=\"\"", &good).is_err());
        let long = format!("multipart/encrypted;boundary=\"{}\"", "a".repeat(71));
        assert!(decode(&long, &good).is_err());
    }
}
