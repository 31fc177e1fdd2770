//! The SecureString session key (MS-PSRP 2.2.2.3-2.2.2.5, 3.1.4.8,
//! 2.2.5.1.24): the client's RSA key as a CAPI PUBLICKEYBLOB, the server's
//! AES-256 session key as a CAPI SIMPLEBLOB encrypted with it, and
//! SecureString values as AES-256-CBC of their UTF-16LE text.
//!
//! Sans-IO: the blob formats are plain byte parsers (always compiled, and
//! fuzzed); the cryptography (feature `secure-string`, on with `client`)
//! uses aws-lc-rs, which rustls already brings in.
//!
//! - [`ExchangeKey`]: a fresh RSA-2048 key pair for one runspace pool; its
//!   [`ExchangeKey::public_key_blob`] goes out in PUBLIC_KEY, and
//!   [`ExchangeKey::decrypt_session_key`] opens the ENCRYPTED_SESSION_KEY
//!   (once: it consumes the key pair).
//! - [`SessionKey`]: encrypts and decrypts SecureString values.
//!
//! Formats, as Windows (and psrpcore) write them:
//!
//! | blob | bytes |
//! |---|---|
//! | PUBLICKEYBLOB | `06 02 00 00` `00 A4 00 00` (CALG_RSA_KEYX), `RSA1`, bit length u32 LE, public exponent u32 LE, modulus little-endian (bit length / 8 bytes) |
//! | SIMPLEBLOB | `01 02 00 00` `10 66 00 00` (CALG_AES_256), `00 A4 00 00` (CALG_RSA_KEYX), the RSA PKCS#1 v1.5 ciphertext byte-reversed (little-endian, as CAPI writes it) |
//! | SecureString | AES-256-CBC, IV of 16 zero bytes, PKCS#7 padding, of the UTF-16LE text |
//!
//! The zero IV is the protocol's (PowerShell's and psrpcore's): with one
//! key per session, equal secrets give equal ciphertexts, which the
//! transport's own encryption (TLS or WinRM message encryption) hides.

use base64::Engine;
#[cfg(feature = "secure-string")]
use zeroize::{Zeroize, Zeroizing};

/// CAPI `PUBLICKEYBLOB` blob type.
const PUBLICKEYBLOB: u8 = 0x06;
/// CAPI `SIMPLEBLOB` blob type.
const SIMPLEBLOB: u8 = 0x01;
/// `CUR_BLOB_VERSION`.
const BLOB_VERSION: u8 = 0x02;
/// `CALG_RSA_KEYX`.
const CALG_RSA_KEYX: u32 = 0x0000_A400;
/// `CALG_AES_256`.
const CALG_AES_256: u32 = 0x0000_6610;
/// "RSA1": an RSA public key.
const RSA1: &[u8; 4] = b"RSA1";
/// BLOBHEADER: type, version, reserved (2), algorithm (4).
const BLOB_HEADER_LEN: usize = 8;
/// PUBLICKEYBLOB header: BLOBHEADER + RSAPUBKEY (magic, bit length, exponent).
const PUBLIC_KEY_HEADER_LEN: usize = BLOB_HEADER_LEN + 12;
/// SIMPLEBLOB header: BLOBHEADER + the algorithm of the key that encrypted it.
const SIMPLE_BLOB_HEADER_LEN: usize = BLOB_HEADER_LEN + 4;
/// The RSA key size the client generates (as PowerShell and psrpcore do).
pub const RSA_BITS: usize = 2048;
/// The AES-256 session key length.
pub const SESSION_KEY_LEN: usize = 32;
/// The largest RSA modulus a PUBLICKEYBLOB may carry here (16384 bits).
const MAX_RSA_BITS: u32 = 16384;
/// AES block size.
#[cfg(feature = "secure-string")]
const BLOCK: usize = 16;

/// Why a key blob or a SecureString could not be used. Never holds key
/// material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionKeyError {
    /// The blob is not valid base64.
    #[error("the {blob} is not valid base64")]
    Base64 {
        /// Which blob.
        blob: &'static str,
    },
    /// The blob is shorter than its header says it must be.
    #[error("the {blob} has {got} bytes, it needs {needed}")]
    Length {
        /// Which blob.
        blob: &'static str,
        /// Its length.
        got: usize,
        /// The length it needs.
        needed: usize,
    },
    /// A header field has a value other than the protocol's.
    #[error("the {blob} has {field} {got:#x}, expected {expected:#x}")]
    Header {
        /// Which blob.
        blob: &'static str,
        /// The field.
        field: &'static str,
        /// Its value.
        got: u32,
        /// The protocol's value.
        expected: u32,
    },
    /// The PUBLICKEYBLOB's RSA bit length is unusable.
    #[error("the PUBLICKEYBLOB announces a {bits}-bit RSA key (multiples of 8 up to 16384 only)")]
    KeySize {
        /// The announced bit length.
        bits: u32,
    },
    /// RSA decryption of the session key failed: the blob was not
    /// encrypted with this client's public key, or was altered.
    #[error(
        "the ENCRYPTED_SESSION_KEY does not decrypt with this pool's RSA key (altered in \
         transit, or meant for another key)"
    )]
    Rsa,
    /// The decrypted session key has the wrong length.
    #[error("the decrypted session key has {got} bytes, AES-256 needs 32")]
    SessionKeyLength {
        /// Its length.
        got: usize,
    },
    /// A SecureString's ciphertext is not whole AES blocks.
    #[error("a SecureString's ciphertext has {got} bytes, not a multiple of 16")]
    CiphertextLength {
        /// Its length.
        got: usize,
    },
    /// A SecureString does not decrypt with the session key (bad padding).
    #[error(
        "a SecureString does not decrypt with this pool's session key (altered, or encrypted \
         with another session's key)"
    )]
    Decrypt,
    /// The decrypted text is not UTF-16LE text.
    #[error("a decrypted SecureString is not UTF-16LE text")]
    Utf16,
    /// A SecureString was never encrypted (made from plaintext and not yet
    /// sent), or holds no ciphertext to decrypt.
    #[error("this SecureString holds no ciphertext (it was made from plaintext and not sealed)")]
    NotEncrypted,
    /// No session key was exchanged on this runspace pool, so a received
    /// SecureString cannot be decrypted with it.
    #[error("no session key was exchanged on this runspace pool (the SecureString came from another pool?)")]
    NoSessionKey,
    /// The system's cryptography failed (key generation, AES setup).
    #[error("the cryptography library failed: {0}")]
    Crypto(&'static str),
}

fn u32_le(bytes: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let b: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// Checks a BLOBHEADER: type, version, reserved zero, algorithm.
fn check_blob_header(
    bytes: &[u8],
    blob: &'static str,
    blob_type: u8,
    algorithm: u32,
    header_len: usize,
) -> Result<(), SessionKeyError> {
    if bytes.len() < header_len {
        return Err(SessionKeyError::Length {
            blob,
            got: bytes.len(),
            needed: header_len,
        });
    }
    let field = |field, got: u32, expected: u32| {
        if got == expected {
            Ok(())
        } else {
            Err(SessionKeyError::Header {
                blob,
                field,
                got,
                expected,
            })
        }
    };
    field("bType", u32::from(bytes[0]), u32::from(blob_type))?;
    field("bVersion", u32::from(bytes[1]), u32::from(BLOB_VERSION))?;
    field(
        "reserved",
        u32::from(u16::from_le_bytes([bytes[2], bytes[3]])),
        0,
    )?;
    field("aiKeyAlg", u32_le(bytes, 4).unwrap_or(0), algorithm)
}

/// An RSA public key read from a CAPI PUBLICKEYBLOB (what a server gets in
/// PUBLIC_KEY).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKeyBlob {
    /// The public exponent.
    pub exponent: u32,
    /// The modulus, big-endian (as RSA libraries take it).
    pub modulus: Vec<u8>,
}

impl std::fmt::Debug for PublicKeyBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKeyBlob")
            .field("exponent", &self.exponent)
            .field("bits", &(self.modulus.len() * 8))
            .finish()
    }
}

impl PublicKeyBlob {
    /// The PUBLICKEYBLOB bytes of an RSA public key (`modulus` big-endian,
    /// leading zero bytes allowed).
    pub fn encode(modulus: &[u8], exponent: u32) -> Vec<u8> {
        let start = modulus
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(modulus.len());
        let modulus = &modulus[start..];
        let bits = u32::try_from(modulus.len() * 8).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(PUBLIC_KEY_HEADER_LEN + modulus.len());
        out.extend_from_slice(&[PUBLICKEYBLOB, BLOB_VERSION, 0, 0]);
        out.extend_from_slice(&CALG_RSA_KEYX.to_le_bytes());
        out.extend_from_slice(RSA1);
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(&exponent.to_le_bytes());
        out.extend(modulus.iter().rev());
        out
    }

    /// Reads a PUBLICKEYBLOB: every header field and the modulus length
    /// (bit length / 8, exactly the bytes left) are checked.
    pub fn parse(bytes: &[u8]) -> Result<PublicKeyBlob, SessionKeyError> {
        const BLOB: &str = "PUBLICKEYBLOB";
        check_blob_header(
            bytes,
            BLOB,
            PUBLICKEYBLOB,
            CALG_RSA_KEYX,
            PUBLIC_KEY_HEADER_LEN,
        )?;
        let magic = u32_le(bytes, 8).unwrap_or(0);
        let expected = u32::from_le_bytes(*RSA1);
        if magic != expected {
            return Err(SessionKeyError::Header {
                blob: BLOB,
                field: "magic",
                got: magic,
                expected,
            });
        }
        let bits = u32_le(bytes, 12).unwrap_or(0);
        if bits == 0 || bits % 8 != 0 || bits > MAX_RSA_BITS {
            return Err(SessionKeyError::KeySize { bits });
        }
        let exponent = u32_le(bytes, 16).unwrap_or(0);
        let modulus_len = (bits / 8) as usize;
        let needed = PUBLIC_KEY_HEADER_LEN
            .checked_add(modulus_len)
            .ok_or(SessionKeyError::KeySize { bits })?;
        if bytes.len() != needed {
            return Err(SessionKeyError::Length {
                blob: BLOB,
                got: bytes.len(),
                needed,
            });
        }
        let modulus = bytes[PUBLIC_KEY_HEADER_LEN..]
            .iter()
            .rev()
            .copied()
            .collect();
        Ok(PublicKeyBlob { exponent, modulus })
    }
}

/// Reads a SIMPLEBLOB holding an AES-256 key encrypted with RSA: checks the
/// header and that the ciphertext is `modulus_len` bytes, and returns the
/// ciphertext big-endian (byte order reversed from CAPI's), ready for RSA.
pub fn parse_simple_blob(bytes: &[u8], modulus_len: usize) -> Result<Vec<u8>, SessionKeyError> {
    const BLOB: &str = "SIMPLEBLOB";
    check_blob_header(
        bytes,
        BLOB,
        SIMPLEBLOB,
        CALG_AES_256,
        SIMPLE_BLOB_HEADER_LEN,
    )?;
    let wrapping = u32_le(bytes, BLOB_HEADER_LEN).unwrap_or(0);
    if wrapping != CALG_RSA_KEYX {
        return Err(SessionKeyError::Header {
            blob: BLOB,
            field: "algid",
            got: wrapping,
            expected: CALG_RSA_KEYX,
        });
    }
    let needed = SIMPLE_BLOB_HEADER_LEN.saturating_add(modulus_len);
    if bytes.len() != needed {
        return Err(SessionKeyError::Length {
            blob: BLOB,
            got: bytes.len(),
            needed,
        });
    }
    Ok(bytes[SIMPLE_BLOB_HEADER_LEN..]
        .iter()
        .rev()
        .copied()
        .collect())
}

/// Decodes the base64 of a key blob.
pub fn decode_blob_base64(text: &str, blob: &'static str) -> Result<Vec<u8>, SessionKeyError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| SessionKeyError::Base64 { blob })
}

/// UTF-16LE bytes to text (unpaired surrogates are refused).
#[cfg(feature = "secure-string")]
fn utf16le_to_string(bytes: &[u8]) -> Result<Zeroizing<String>, SessionKeyError> {
    if bytes.len() % 2 != 0 {
        return Err(SessionKeyError::Utf16);
    }
    let mut units: Zeroizing<Vec<u16>> = Zeroizing::new(
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect(),
    );
    let mut text = Zeroizing::new(String::with_capacity(units.len()));
    for c in char::decode_utf16(units.iter().copied()) {
        text.push(c.map_err(|_| SessionKeyError::Utf16)?);
    }
    units.zeroize();
    Ok(text)
}

#[cfg(feature = "secure-string")]
pub use crypto::{ExchangeKey, SessionKey};

#[cfg(feature = "secure-string")]
mod crypto {
    use aws_lc_rs::cipher::{
        DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
        UnboundCipherKey, AES_256,
    };
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::iv::FixedLength;
    use aws_lc_rs::rsa::{KeySize, Pkcs1PrivateDecryptingKey, PrivateDecryptingKey};
    use base64::Engine;

    use super::*;

    /// The client's RSA key pair for one session key exchange. Consumed by
    /// [`ExchangeKey::decrypt_session_key`]: a pool decrypts exactly one
    /// server-chosen blob with it (see the crate's notes on RSA PKCS#1 v1.5
    /// decryption). The private key lives inside aws-lc, which clears it
    /// when freed.
    pub struct ExchangeKey {
        private: Pkcs1PrivateDecryptingKey,
        public_blob: Vec<u8>,
    }

    impl std::fmt::Debug for ExchangeKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("ExchangeKey(<RSA-2048 key pair>)")
        }
    }

    impl ExchangeKey {
        /// Generates a fresh RSA-2048 key pair (public exponent 65537).
        pub fn generate() -> Result<ExchangeKey, SessionKeyError> {
            let key = PrivateDecryptingKey::generate(KeySize::Rsa2048)
                .map_err(|_| SessionKeyError::Crypto("generating the RSA key pair"))?;
            ExchangeKey::from_key(key)
        }

        /// Loads a key pair from PKCS#8 DER (tests with known answers).
        pub fn from_pkcs8(pkcs8: &[u8]) -> Result<ExchangeKey, SessionKeyError> {
            let key = PrivateDecryptingKey::from_pkcs8(pkcs8)
                .map_err(|_| SessionKeyError::Crypto("loading the RSA private key"))?;
            ExchangeKey::from_key(key)
        }

        fn from_key(key: PrivateDecryptingKey) -> Result<ExchangeKey, SessionKeyError> {
            let public = key.public_key();
            let spki = public
                .as_der()
                .map_err(|_| SessionKeyError::Crypto("exporting the RSA public key"))?;
            let (modulus, exponent) = rsa_spki_components(spki.as_ref())
                .ok_or(SessionKeyError::Crypto("reading the RSA public key"))?;
            let private = Pkcs1PrivateDecryptingKey::new(key)
                .map_err(|_| SessionKeyError::Crypto("loading the RSA private key"))?;
            Ok(ExchangeKey {
                private,
                public_blob: PublicKeyBlob::encode(&modulus, exponent),
            })
        }

        /// The PUBLICKEYBLOB bytes for PUBLIC_KEY.
        pub fn public_key_blob(&self) -> &[u8] {
            &self.public_blob
        }

        /// The PUBLICKEYBLOB as the base64 text of PUBLIC_KEY.
        pub fn public_key_base64(&self) -> String {
            base64::engine::general_purpose::STANDARD.encode(&self.public_blob)
        }

        /// Opens the server's ENCRYPTED_SESSION_KEY (base64 of a SIMPLEBLOB).
        pub fn decrypt_session_key(self, base64: &str) -> Result<SessionKey, SessionKeyError> {
            let blob = decode_blob_base64(base64, "SIMPLEBLOB")?;
            let ciphertext = parse_simple_blob(&blob, self.private.key_size_bytes())?;
            let mut out = Zeroizing::new(vec![0u8; self.private.min_output_size()]);
            let key = self
                .private
                .decrypt(&ciphertext, &mut out)
                .map_err(|_| SessionKeyError::Rsa)?;
            let key: [u8; SESSION_KEY_LEN] = key
                .try_into()
                .map_err(|_| SessionKeyError::SessionKeyLength { got: key.len() })?;
            Ok(SessionKey(Zeroizing::new(key)))
        }
    }

    /// Reads `n` and `e` from an X.509 SubjectPublicKeyInfo of an RSA key
    /// (aws-lc's own output; still checked at every step).
    fn rsa_spki_components(der: &[u8]) -> Option<(Vec<u8>, u32)> {
        fn tlv(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
            let (&t, rest) = data.split_first()?;
            if t != tag {
                return None;
            }
            let (&first, rest) = rest.split_first()?;
            let (len, rest) = if first < 0x80 {
                (usize::from(first), rest)
            } else {
                let n = usize::from(first & 0x7f);
                if n == 0 || n > 4 {
                    return None;
                }
                let bytes = rest.get(..n)?;
                let len = bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b));
                (len, rest.get(n..)?)
            };
            Some((rest.get(..len)?, rest.get(len..)?))
        }
        let (spki, _) = tlv(der, 0x30)?;
        let (_algorithm, rest) = tlv(spki, 0x30)?;
        let (bits, _) = tlv(rest, 0x03)?;
        let (_unused, key) = bits.split_first()?;
        let (key, _) = tlv(key, 0x30)?;
        let (n, rest) = tlv(key, 0x02)?;
        let (e, _) = tlv(rest, 0x02)?;
        let e = e
            .iter()
            .try_fold(0u32, |a, &b| a.checked_mul(256).map(|a| a | u32::from(b)))?;
        Some((n.to_vec(), e))
    }

    /// The AES-256 session key of a runspace pool: encrypts and decrypts
    /// SecureString values. Cleared from memory when dropped; its Debug
    /// output shows nothing of it.
    #[derive(Clone)]
    pub struct SessionKey(pub(super) Zeroizing<[u8; SESSION_KEY_LEN]>);

    impl std::fmt::Debug for SessionKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("SessionKey(<AES-256>)")
        }
    }

    impl SessionKey {
        /// A session key from its 32 bytes (tests, servers).
        pub fn from_bytes(key: [u8; SESSION_KEY_LEN]) -> SessionKey {
            SessionKey(Zeroizing::new(key))
        }

        fn cipher_key(&self) -> Result<UnboundCipherKey, SessionKeyError> {
            UnboundCipherKey::new(&AES_256, &self.0[..])
                .map_err(|_| SessionKeyError::Crypto("setting up AES-256"))
        }

        /// Encrypts `plaintext` as a SecureString's ciphertext. The UTF-16LE
        /// copy is cleared before returning.
        pub fn encrypt(&self, plaintext: &str) -> Result<Vec<u8>, SessionKeyError> {
            let key = PaddedBlockEncryptingKey::cbc_pkcs7(self.cipher_key()?)
                .map_err(|_| SessionKeyError::Crypto("setting up AES-256-CBC"))?;
            let mut buffer: Zeroizing<Vec<u8>> = Zeroizing::new(
                plaintext
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes)
                    .collect(),
            );
            // The protocol's IV is zero (see the module notes).
            let iv = EncryptionContext::Iv128(FixedLength::from([0u8; BLOCK]));
            key.less_safe_encrypt(&mut *buffer, iv)
                .map_err(|_| SessionKeyError::Crypto("AES-256-CBC encryption"))?;
            // The buffer now holds only ciphertext.
            Ok(std::mem::take(&mut *buffer))
        }

        /// Decrypts a SecureString's ciphertext to its text.
        pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<String>, SessionKeyError> {
            if ciphertext.is_empty() || ciphertext.len() % BLOCK != 0 {
                return Err(SessionKeyError::CiphertextLength {
                    got: ciphertext.len(),
                });
            }
            let key = PaddedBlockDecryptingKey::cbc_pkcs7(self.cipher_key()?)
                .map_err(|_| SessionKeyError::Crypto("setting up AES-256-CBC"))?;
            let mut buffer = Zeroizing::new(ciphertext.to_vec());
            let iv = DecryptionContext::Iv128(FixedLength::from([0u8; BLOCK]));
            // A wrong key or altered ciphertext shows as bad padding.
            let text = key
                .decrypt(&mut buffer, iv)
                .map_err(|_| SessionKeyError::Decrypt)?;
            let result = utf16le_to_string(text);
            buffer.zeroize();
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_blob_round_trips_and_checks_lengths() {
        let modulus: Vec<u8> = (1..=255u8).chain([7]).collect();
        let blob = PublicKeyBlob::encode(&modulus, 65537);
        assert_eq!(
            &blob[..20],
            b"\x06\x02\x00\x00\x00\xa4\x00\x00RSA1\x00\x08\x00\x00\x01\x00\x01\x00"
        );
        assert_eq!(blob.len(), 276);
        assert_eq!(blob[20], 7, "modulus little-endian");
        let parsed = PublicKeyBlob::parse(&blob).unwrap();
        assert_eq!(parsed.exponent, 65537);
        assert_eq!(parsed.modulus, modulus);
        for cut in 0..blob.len() {
            assert!(PublicKeyBlob::parse(&blob[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = blob.clone();
        longer.push(0);
        assert!(matches!(
            PublicKeyBlob::parse(&longer),
            Err(SessionKeyError::Length {
                got: 277,
                needed: 276,
                ..
            })
        ));
        let mut bad_bits = blob.clone();
        bad_bits[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            PublicKeyBlob::parse(&bad_bits),
            Err(SessionKeyError::KeySize { bits: u32::MAX })
        );
        let mut bad_magic = blob;
        bad_magic[8] = b'X';
        assert!(matches!(
            PublicKeyBlob::parse(&bad_magic),
            Err(SessionKeyError::Header { field: "magic", .. })
        ));
    }

    #[test]
    fn simple_blob_checks_header_and_length() {
        let mut blob = b"\x01\x02\x00\x00\x10\x66\x00\x00\x00\xa4\x00\x00".to_vec();
        blob.extend(1..=4u8);
        assert_eq!(parse_simple_blob(&blob, 4).unwrap(), vec![4, 3, 2, 1]);
        assert!(matches!(
            parse_simple_blob(&blob, 256),
            Err(SessionKeyError::Length {
                got: 16,
                needed: 268,
                ..
            })
        ));
        for cut in 0..12 {
            assert!(parse_simple_blob(&blob[..cut], 4).is_err());
        }
        let mut aes128 = blob.clone();
        aes128[4] = 0x0e; // CALG_AES_128
        assert!(matches!(
            parse_simple_blob(&aes128, 4),
            Err(SessionKeyError::Header {
                field: "aiKeyAlg",
                got: 0x660e,
                ..
            })
        ));
        let mut wrap = blob;
        wrap[9] = 0x24; // CALG_RSA_SIGN
        assert!(matches!(
            parse_simple_blob(&wrap, 4),
            Err(SessionKeyError::Header { field: "algid", .. })
        ));
        assert_eq!(
            decode_blob_base64("!!", "SIMPLEBLOB"),
            Err(SessionKeyError::Base64 { blob: "SIMPLEBLOB" })
        );
    }

    #[cfg(feature = "secure-string")]
    #[test]
    fn utf16_is_checked() {
        assert_eq!(&*utf16le_to_string(b"h\0i\0").unwrap(), "hi");
        assert_eq!(utf16le_to_string(b"\x00\xd8"), Err(SessionKeyError::Utf16));
        assert_eq!(utf16le_to_string(b"h"), Err(SessionKeyError::Utf16));
    }

    /// Known answers from psrpcore (an independent implementation on pyca
    /// cryptography): its key pair, its PUBLICKEYBLOB, its SIMPLEBLOB of a
    /// session key, and its SecureString ciphertexts.
    #[cfg(feature = "secure-string")]
    #[test]
    fn psrpcore_known_answers() {
        let kat: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/session_key_psrpcore.json")).unwrap();
        let b64 = |k: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(kat[k].as_str().unwrap())
                .unwrap()
        };
        let key = ExchangeKey::from_pkcs8(&b64("private_key_pkcs8")).unwrap();
        assert_eq!(key.public_key_blob(), &b64("public_key_blob")[..]);
        assert_eq!(
            PublicKeyBlob::parse(&b64("public_key_blob"))
                .unwrap()
                .exponent,
            65537
        );
        let esk = kat["encrypted_session_key"].as_str().unwrap();
        let session = key.decrypt_session_key(esk).unwrap();
        let expected: Vec<u8> = (0x40..0x60).collect();
        assert_eq!(&session.0[..], &expected[..]);
        let text = kat["plaintext"].as_str().unwrap();
        let ct = b64("secure_string");
        assert_eq!(&*session.decrypt(&ct).unwrap(), text);
        assert_eq!(session.encrypt(text).unwrap(), ct, "zero IV: deterministic");
        assert_eq!(&*session.decrypt(&b64("secure_string_empty")).unwrap(), "");
        assert_eq!(session.encrypt("").unwrap(), b64("secure_string_empty"));

        // Altered ciphertexts and blobs give typed errors, never a panic.
        let mut bad = ct.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(session.decrypt(&bad), Err(SessionKeyError::Decrypt));
        assert_eq!(
            session.decrypt(&ct[..15]),
            Err(SessionKeyError::CiphertextLength { got: 15 })
        );
        let other = SessionKey::from_bytes([7; 32]);
        assert!(other.decrypt(&ct).is_err());
        let mut blob = b64("encrypted_session_key");
        blob[100] ^= 0x55;
        let tampered = base64::engine::general_purpose::STANDARD.encode(&blob);
        let key = ExchangeKey::from_pkcs8(&b64("private_key_pkcs8")).unwrap();
        assert_eq!(
            key.decrypt_session_key(&tampered).unwrap_err(),
            SessionKeyError::Rsa
        );
        let key = ExchangeKey::from_pkcs8(&b64("private_key_pkcs8")).unwrap();
        assert!(matches!(
            key.decrypt_session_key(
                &base64::engine::general_purpose::STANDARD.encode(&blob[..200])
            ),
            Err(SessionKeyError::Length { .. })
        ));
        // Never key material in Debug.
        assert_eq!(format!("{session:?}"), "SessionKey(<AES-256>)");
    }

    #[cfg(feature = "secure-string")]
    #[test]
    fn generated_keys_exchange_with_a_server_side_encryption() {
        let key = ExchangeKey::generate().unwrap();
        let public = PublicKeyBlob::parse(key.public_key_blob()).unwrap();
        assert_eq!(public.modulus.len(), 256);
        assert_eq!(public.exponent, 65537);
        assert!(key.public_key_base64().len() > 300);
    }
}
