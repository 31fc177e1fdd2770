//! Client certificate authentication (WinRM's HTTPS mutual profile): the
//! certificate and key the TLS handshake presents, loaded from PEM, with
//! encrypted PKCS#8 keys (PBES2: PBKDF2 with HMAC-SHA1/SHA-256/384/512 and
//! AES-128/192/256-CBC, what `openssl pkcs8 -topk8 -v2 aes256` and
//! OpenSSL-based tools write) decrypted with a password.
//!
//! The key never appears in `Debug` output or errors; the file contents
//! and the decrypted intermediates are cleared when dropped.

use crate::secret::Secret;
use aws_lc_rs::cipher::{
    DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey, AES_128, AES_192, AES_256,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::pbkdf2;
use rustls_pki_types::pem::{self, PemObject, SectionKind};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::num::NonZeroU32;
use std::path::Path;
use zeroize::Zeroizing;

/// The `Authorization` header value of WinRM certificate authentication
/// (the WS-Management HTTPS mutual-authentication security profile).
pub const MUTUAL_PROFILE: &str =
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual";

/// Most PBKDF2 iterations accepted from a key file (OpenSSL writes 2048;
/// this bounds the work a crafted file can ask for).
const MAX_ITERATIONS: u32 = 10_000_000;

/// Why a client certificate or key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("client certificate: {0}")]
pub struct CertificateError(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, CertificateError> {
    Err(CertificateError(msg.into()))
}

/// A client certificate chain and its private key for TLS client
/// authentication.
pub struct ClientCertificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for ClientCertificate {
    fn clone(&self) -> Self {
        ClientCertificate {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("certificates", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl ClientCertificate {
    /// Reads the certificate (PEM, the client certificate first, then any
    /// intermediates) and the key (PEM: `PRIVATE KEY`, `RSA PRIVATE KEY`,
    /// `EC PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with `password`).
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        password: Option<&Secret>,
    ) -> Result<Self, CertificateError> {
        let cert_pem = std::fs::read(cert).map_err(|e| {
            CertificateError(format!(
                "cannot read certificate file {}: {e}",
                cert.display()
            ))
        })?;
        let key_pem = Zeroizing::new(std::fs::read(key).map_err(|e| {
            CertificateError(format!("cannot read key file {}: {e}", key.display()))
        })?);
        Self::from_pem(&cert_pem, &key_pem, password).map_err(|CertificateError(e)| {
            CertificateError(format!("{} / {}: {e}", cert.display(), key.display()))
        })
    }

    /// [`ClientCertificate::from_pem_files`] on PEM text in memory.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        password: Option<&Secret>,
    ) -> Result<Self, CertificateError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertificateError(format!("certificate PEM: {e}")))?;
        if chain.is_empty() {
            return fail("the certificate file holds no CERTIFICATE");
        }
        let key = read_key(key_pem, password)?;
        Ok(ClientCertificate { chain, key })
    }

    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.clone()
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

fn read_key(
    pem_text: &[u8],
    password: Option<&Secret>,
) -> Result<PrivateKeyDer<'static>, CertificateError> {
    let mut rest = pem_text;
    loop {
        let (kind, der) = match pem::from_buf(&mut rest) {
            Ok(Some((kind, der))) => (kind, Zeroizing::new(der)),
            Ok(None) => break,
            Err(e) => return fail(format!("key PEM: {e}")),
        };
        let key = match kind {
            SectionKind::PrivateKey => PrivateKeyDer::Pkcs8(der.to_vec().into()),
            SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.to_vec().into()),
            SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(der.to_vec().into()),
            _ => continue,
        };
        if password.is_some() {
            tracing::debug!("the client key is not encrypted; the password is not used for it");
        }
        return Ok(key);
    }
    // rustls-pki-types skips sections it does not know: look for an
    // encrypted PKCS#8 key by its label.
    let der = encrypted_section(pem_text)?;
    let Some(password) = password else {
        return fail(
            "the key is encrypted (ENCRYPTED PRIVATE KEY) and no password was given to decrypt it",
        );
    };
    let plain = decrypt_pkcs8(&der, password.expose().as_bytes())?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        plain.to_vec(),
    )))
}

/// The DER of the first `ENCRYPTED PRIVATE KEY` PEM section.
fn encrypted_section(text: &[u8]) -> Result<Zeroizing<Vec<u8>>, CertificateError> {
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let text = std::str::from_utf8(text)
        .map_err(|_| CertificateError("the key file is not PEM text".into()))?;
    let Some(start) = text.find(BEGIN) else {
        return fail("the key file holds no private key (PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED PRIVATE KEY)");
    };
    let body = &text[start + BEGIN.len()..];
    let Some(end) = body.find(END) else {
        return fail("the ENCRYPTED PRIVATE KEY section has no END line");
    };
    let b64: Zeroizing<String> =
        Zeroizing::new(body[..end].chars().filter(|c| !c.is_whitespace()).collect());
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| CertificateError(format!("the ENCRYPTED PRIVATE KEY is not base64: {e}")))
}

/// One DER element: (tag, contents, rest); every length checked against
/// what remains.
fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), CertificateError> {
    let bad = || CertificateError("the encrypted key is not valid DER".into());
    let (&tag, rest) = b.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if len > rest.len() {
        return Err(bad());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// An element that must have `tag`: (contents, rest).
fn expect<'a>(b: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), CertificateError> {
    let (t, v, rest) = tlv(b)?;
    if t != tag {
        return fail(format!(
            "encrypted key: {what} has tag 0x{t:02x}, expected 0x{tag:02x}"
        ));
    }
    Ok((v, rest))
}

// OIDs (DER contents).
const OID_PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
const OID_PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
const OID_HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
const OID_HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
const OID_HMAC_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0a];
const OID_HMAC_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
const OID_AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
const OID_AES192_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const INTEGER: u8 = 0x02;

/// Decrypts an EncryptedPrivateKeyInfo (RFC 5958) protected with PBES2
/// (RFC 8018): the PKCS#8 PrivateKeyInfo inside.
fn decrypt_pkcs8(der: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>, CertificateError> {
    let (info, _) = expect(der, SEQUENCE, "EncryptedPrivateKeyInfo")?;
    let (alg, rest) = expect(info, SEQUENCE, "encryptionAlgorithm")?;
    let (data, _) = expect(rest, OCTET_STRING, "encryptedData")?;
    let (oid, params) = expect(alg, OID, "the encryption algorithm")?;
    if oid != OID_PBES2 {
        return fail("the key is encrypted with a scheme other than PBES2 (re-encrypt it: openssl pkcs8 -topk8 -v2 aes256)");
    }
    let (pbes2, _) = expect(params, SEQUENCE, "PBES2 parameters")?;
    let (kdf, rest) = expect(pbes2, SEQUENCE, "keyDerivationFunc")?;
    let (scheme, _) = expect(rest, SEQUENCE, "encryptionScheme")?;

    let (kdf_oid, kdf_params) = expect(kdf, OID, "the key derivation function")?;
    if kdf_oid != OID_PBKDF2 {
        return fail("the key's password is derived with a function other than PBKDF2 (scrypt is not supported; re-encrypt it: openssl pkcs8 -topk8 -v2 aes256)");
    }
    let (p, _) = expect(kdf_params, SEQUENCE, "PBKDF2 parameters")?;
    let (salt, p) = expect(p, OCTET_STRING, "the PBKDF2 salt")?;
    let (iter, mut p) = expect(p, INTEGER, "the PBKDF2 iteration count")?;
    let iterations = der_u32(iter)
        .filter(|n| *n <= MAX_ITERATIONS)
        .and_then(NonZeroU32::new)
        .ok_or_else(|| {
            CertificateError(format!(
                "the PBKDF2 iteration count is not between 1 and {MAX_ITERATIONS}"
            ))
        })?;
    let mut key_length = None;
    if let Ok((INTEGER, v, rest)) = tlv(p) {
        key_length = der_u32(v);
        p = rest;
    }
    let prf = if p.is_empty() {
        pbkdf2::PBKDF2_HMAC_SHA1
    } else {
        let (prf, _) = expect(p, SEQUENCE, "the PBKDF2 PRF")?;
        let (prf_oid, _) = expect(prf, OID, "the PBKDF2 PRF")?;
        match prf_oid {
            OID_HMAC_SHA1 => pbkdf2::PBKDF2_HMAC_SHA1,
            OID_HMAC_SHA256 => pbkdf2::PBKDF2_HMAC_SHA256,
            OID_HMAC_SHA384 => pbkdf2::PBKDF2_HMAC_SHA384,
            OID_HMAC_SHA512 => pbkdf2::PBKDF2_HMAC_SHA512,
            _ => return fail("the PBKDF2 PRF is not HMAC-SHA1/256/384/512"),
        }
    };

    let (enc_oid, enc_params) = expect(scheme, OID, "the encryption scheme")?;
    let (algorithm, key_len) = match enc_oid {
        OID_AES128_CBC => (&AES_128, 16),
        OID_AES192_CBC => (&AES_192, 24),
        OID_AES256_CBC => (&AES_256, 32),
        _ => return fail("the key is encrypted with a cipher other than AES-CBC (re-encrypt it: openssl pkcs8 -topk8 -v2 aes256)"),
    };
    let (iv, _) = expect(enc_params, OCTET_STRING, "the AES-CBC IV")?;
    let iv: [u8; 16] = iv
        .try_into()
        .map_err(|_| CertificateError("the AES-CBC IV is not 16 bytes".into()))?;
    if key_length.is_some_and(|n| n as usize != key_len) {
        return fail("the PBKDF2 key length does not match the cipher");
    }

    let mut key = Zeroizing::new(vec![0u8; key_len]);
    pbkdf2::derive(prf, iterations, salt, password, &mut key);
    let wrong = || {
        CertificateError(
            "the key could not be decrypted: wrong password (or a damaged key file)".into(),
        )
    };
    let cipher = UnboundCipherKey::new(algorithm, &key)
        .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
        .map_err(|_| wrong())?;
    let mut buf = Zeroizing::new(data.to_vec());
    let plain = cipher
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(&iv)))
        .map_err(|_| wrong())?;
    // A wrong password passes the padding check about once in 256: the
    // result must at least be a DER SEQUENCE filling the plaintext.
    match tlv(plain) {
        Ok((SEQUENCE, _, [])) => Ok(Zeroizing::new(plain.to_vec())),
        _ => Err(wrong()),
    }
}

/// A small non-negative DER INTEGER.
fn der_u32(v: &[u8]) -> Option<u32> {
    // Negative numbers have the top bit set; a leading zero byte only
    // keeps a positive number's top bit clear.
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        return None;
    }
    let v = match v {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => v,
    };
    if v.len() > 4 {
        return None;
    }
    Some(v.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_truncated_der() {
        assert_eq!(der_u32(&[0x08, 0x00]), Some(2048));
        assert_eq!(der_u32(&[0x00, 0x80]), Some(128));
        assert_eq!(der_u32(&[0x80]), None);
        assert_eq!(der_u32(&[]), None);
        assert!(tlv(&[0x30, 0x05, 0x01]).is_err());
        assert!(tlv(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decrypt_pkcs8(&[0x30, 0x00], b"pw").is_err());
    }

    // A throwaway P-256 test key, and the same key encrypted by OpenSSL 3
    // (`openssl pkcs8 -topk8 -v2 aes-128-cbc -v2prf hmacWithSHA1 -iter 1000`,
    // the PRF left out as its default, and `-v2 aes-256-cbc -v2prf
    // hmacWithSHA512`), password `kat-password`: known answers from an
    // independent implementation.
    const PLAIN: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgU7aU6IEqewivIw6B\nM6tnnBMBpKVtMvae5EQP0qMQs6qhRANCAARxPtyHQbi+Br1BskqF3SY9YLG8OqUt\nenQzrFkT/pxSTZiHbwgs/Pvy8BYnaPo/IsjYjrS8yMRUxXRqKJyNoVhk\n-----END PRIVATE KEY-----";
    const AES128_SHA1: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIHeMEkGCSqGSIb3DQEFDTA8MBsGCSqGSIb3DQEFDDAOBAh6j/Sm/NFOQQICA+gw\nHQYJYIZIAWUDBAECBBA91qiVbPRYXDtMy6qdofwnBIGQ/bzALD/W7BHLLDTcvAjR\nfoYmdtKxBZfzUR8Q1eam4Hnvkw31e4XW4Wsj0QpiuKSe/XzchNfGTd34IIEDpENm\n1sSvydWnczkVibD6BaxsRwqpRh3Uad23nstJLZIGm9hwnh/CXWjaXzIA1e38ZN5Q\n82Zwbdx3/yCV1x1388HXefup+L2mLeFO1n4GYKC8+82Z\n-----END ENCRYPTED PRIVATE KEY-----";
    const AES256_SHA512: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAhm872aKPOtDgICA+gw\nDAYIKoZIhvcNAgsFADAdBglghkgBZQMEASoEEGzZFQup3lcFCvHxXXsIUMEEgZAt\nXaXJgWdMFhKgntBjLsvmZQrQwnFH1gwZEtEYeOOa9P8gZGG0ZvVObuT6dwyNPFZA\nZtkl/IFQrEU67gNqTsaNRN/WoJuvW9Zij4ZgZGgnOpQ+Gq4GT5Et978D6QgAvTLa\nFQOdz2qBU8n7uNoMZQoVzdkHCMs1tOxHssPRrzKZgrLqn4aV2CPEAL5Mfmcw350=\n-----END ENCRYPTED PRIVATE KEY-----";

    fn pkcs8(key: PrivateKeyDer<'_>) -> Vec<u8> {
        match key {
            PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
            other => panic!("not PKCS#8: {other:?}"),
        }
    }

    #[test]
    fn openssl_encrypted_keys_decrypt_to_the_plain_key() {
        let want = pkcs8(read_key(PLAIN.as_bytes(), None).unwrap());
        let pw = Secret::from("kat-password");
        for pem in [AES128_SHA1, AES256_SHA512] {
            assert_eq!(pkcs8(read_key(pem.as_bytes(), Some(&pw)).unwrap()), want);
            let wrong = read_key(pem.as_bytes(), Some(&Secret::from("nope"))).unwrap_err();
            assert!(wrong.0.contains("wrong password"), "{wrong}");
            let none = read_key(pem.as_bytes(), None).unwrap_err();
            assert!(none.0.contains("no password"), "{none}");
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let c = ClientCertificate {
            chain: vec![CertificateDer::from(vec![0x30, 0x00])],
            key: PrivateKeyDer::Pkcs8(vec![0x30, 0x01, 0x42].into()),
        };
        let text = format!("{c:?}");
        assert!(
            text.contains("<redacted>") && !text.contains("66"),
            "{text}"
        );
    }
}
