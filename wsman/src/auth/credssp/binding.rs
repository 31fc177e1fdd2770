//! The public-key binding of MS-CSSP 3.1.5: what `pubKeyAuth` holds before
//! the inner context encrypts it, and the server certificate's public key
//! it is computed from.
//!
//! The TLS certificate inside CredSSP is not checked against any CA; the
//! binding is what ties the TLS channel to the authenticated server: only a
//! server that completed the SPNEGO exchange (holds the session key) can
//! return the matching value for the key it presented in the handshake.

use sha2::{Digest, Sha256};

/// Client-to-server magic of versions 5 and later (with its NUL).
const CLIENT_MAGIC: &[u8] = b"CredSSP Client-To-Server Binding Hash\0";
/// Server-to-client magic of versions 5 and later (with its NUL).
const SERVER_MAGIC: &[u8] = b"CredSSP Server-To-Client Binding Hash\0";

/// Whether `version` uses the nonce and hash binding (5 and later) rather
/// than the raw public key (2 to 4).
pub fn uses_hash(version: u32) -> bool {
    version >= 5
}

/// What the client encrypts into its `pubKeyAuth`: the public key itself
/// (versions 2 to 4), or SHA-256 over the client magic, the nonce and the
/// key (5 and later).
pub fn client_value(version: u32, public_key: &[u8], nonce: &[u8; 32]) -> Vec<u8> {
    if uses_hash(version) {
        hash(CLIENT_MAGIC, nonce, public_key)
    } else {
        public_key.to_vec()
    }
}

/// What the server's `pubKeyAuth` must decrypt to: the public key with its
/// first byte plus one (versions 2 to 4), or SHA-256 over the server magic,
/// the nonce and the key (5 and later).
pub fn server_value(version: u32, public_key: &[u8], nonce: &[u8; 32]) -> Vec<u8> {
    if uses_hash(version) {
        hash(SERVER_MAGIC, nonce, public_key)
    } else {
        let mut v = public_key.to_vec();
        if let Some(first) = v.first_mut() {
            *first = first.wrapping_add(1);
        }
        v
    }
}

fn hash(magic: &[u8], nonce: &[u8; 32], public_key: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(magic);
    h.update(nonce);
    h.update(public_key);
    h.finalize().to_vec()
}

/// Why the certificate's public key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the public key of the CredSSP server certificate: {0}")]
pub struct KeyError(String);

/// One DER element: (tag, contents, rest). Lengths checked against what is left.
fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), KeyError> {
    let e = |m: &str| KeyError(m.to_string());
    let (&tag, rest) = b.split_first().ok_or_else(|| e("truncated element"))?;
    let (&first, rest) = rest.split_first().ok_or_else(|| e("truncated length"))?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return Err(e("bad length"));
        }
        let bytes = rest.get(..n).ok_or_else(|| e("truncated length"))?;
        let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if len > rest.len() {
        return Err(e("element longer than the data left"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect<'a>(b: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), KeyError> {
    let (t, v, rest) = tlv(b)?;
    if t != tag {
        return Err(KeyError(format!(
            "{what}: tag 0x{t:02x}, expected 0x{tag:02x}"
        )));
    }
    Ok((v, rest))
}

/// The `subjectPublicKey` of an X.509 certificate (DER): the contents of
/// the BIT STRING in SubjectPublicKeyInfo without its unused-bits byte; for
/// RSA the DER RSAPublicKey. This is what CredSSP binds (as Windows and
/// pyspnego do), not the whole SubjectPublicKeyInfo.
pub fn subject_public_key(cert_der: &[u8]) -> Result<Vec<u8>, KeyError> {
    let (cert, _) = expect(cert_der, 0x30, "Certificate")?;
    let (tbs, _) = expect(cert, 0x30, "TBSCertificate")?;
    let mut b = tbs;
    if b.first() == Some(&0xa0) {
        b = tlv(b)?.2; // version
    }
    b = expect(b, 0x02, "serialNumber")?.1;
    b = expect(b, 0x30, "signature")?.1;
    b = expect(b, 0x30, "issuer")?.1;
    b = expect(b, 0x30, "validity")?.1;
    b = expect(b, 0x30, "subject")?.1;
    let (spki, _) = expect(b, 0x30, "subjectPublicKeyInfo")?;
    let (_, rest) = expect(spki, 0x30, "algorithm")?;
    let (bits, _) = expect(rest, 0x03, "subjectPublicKey")?;
    match bits.split_first() {
        Some((0, key)) if !key.is_empty() => Ok(key.to_vec()),
        Some((0, _)) => Err(KeyError("the public key is empty".into())),
        _ => Err(KeyError("the public key BIT STRING has unused bits".into())),
    }
}
