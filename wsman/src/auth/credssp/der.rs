//! The DER structures of MS-CSSP 2.2.1: TSRequest (with NegoData),
//! TSCredentials and TSPasswordCreds, encoded and decoded here.
//!
//! Sans-IO. Decoding takes what the server sent inside the TLS channel:
//! every length is checked against what remains of its enclosing element,
//! every loop consumes at least one element or fails, nesting is fixed by
//! the structures (no recursion on input), and nothing panics. Unknown
//! context tags are refused rather than skipped: MS-CSSP defines tags `[0]` to `[5]`
//! only, and a TSRequest we misread must not pass as a valid one.

use crate::secret::Secret;
use zeroize::Zeroizing;

/// Why a CredSSP structure could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed CredSSP {what}: {why}")]
pub struct CodecError {
    /// The structure being read (`TSRequest`, `TSCredentials`, ...).
    pub what: &'static str,
    /// What was wrong.
    pub why: String,
}

fn bad<T>(what: &'static str, why: impl Into<String>) -> Result<T, CodecError> {
    Err(CodecError {
        what,
        why: why.into(),
    })
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;

/// `[n]` constructed, context-specific.
const fn ctx(n: u8) -> u8 {
    0xa0 | n
}

/// Reads DER elements from a slice; positions only move forward.
struct Reader<'a> {
    what: &'static str,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(what: &'static str, b: &'a [u8]) -> Self {
        Reader { what, rest: b }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// One element: (tag, contents). Definite lengths of at most 4 bytes
    /// only (DER has no indefinite form; 4 GiB is beyond any token).
    fn element(&mut self) -> Result<(u8, &'a [u8]), CodecError> {
        let what = self.what;
        let (&tag, rest) = match self.rest.split_first() {
            Some(x) => x,
            None => return bad(what, "truncated: an element was expected"),
        };
        if tag & 0x1f == 0x1f {
            return bad(what, format!("multi-byte tag 0x{tag:02x} is not used here"));
        }
        let (&first, rest) = match rest.split_first() {
            Some(x) => x,
            None => return bad(what, "truncated length"),
        };
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 {
                return bad(what, "indefinite length is not DER");
            }
            if n > 4 {
                return bad(what, format!("length of {n} bytes is too long"));
            }
            let Some(bytes) = rest.get(..n) else {
                return bad(what, "truncated length");
            };
            let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
            (len, &rest[n..])
        };
        if len > rest.len() {
            return bad(
                what,
                format!(
                    "element 0x{tag:02x} declares {len} bytes but {} are left",
                    rest.len()
                ),
            );
        }
        let (contents, after) = rest.split_at(len);
        self.rest = after;
        Ok((tag, contents))
    }

    /// One element that must have `tag`.
    fn expect(&mut self, tag: u8, name: &str) -> Result<&'a [u8], CodecError> {
        let (t, v) = self.element()?;
        if t != tag {
            return bad(
                self.what,
                format!("{name}: tag 0x{t:02x}, expected 0x{tag:02x}"),
            );
        }
        Ok(v)
    }

    /// `[n] EXPLICIT <inner tag>`: the contents of the inner element, which
    /// must fill the context element exactly.
    fn explicit(&mut self, n: u8, inner: u8, name: &str) -> Result<&'a [u8], CodecError> {
        let wrapped = self.expect(ctx(n), name)?;
        let mut r = Reader::new(self.what, wrapped);
        let v = r.expect(inner, name)?;
        if !r.is_empty() {
            return bad(self.what, format!("{name}: bytes after the value"));
        }
        Ok(v)
    }

    fn finish(&self, name: &str) -> Result<(), CodecError> {
        if self.is_empty() {
            Ok(())
        } else {
            bad(self.what, format!("unexpected bytes after {name}"))
        }
    }
}

/// A DER INTEGER as u32. Non-negative values up to 2^32-1 (encoded with a
/// leading zero byte when the top bit is set) and, for errorCode, negative
/// values down to -2^31 (an NTSTATUS written as a signed 32-bit number, as
/// some encoders do) map to their 32-bit pattern.
fn integer_u32(what: &'static str, v: &[u8], name: &str) -> Result<u32, CodecError> {
    if v.is_empty() || v.len() > 5 {
        return bad(what, format!("{name}: INTEGER of {} bytes", v.len()));
    }
    let negative = v[0] & 0x80 != 0;
    let mut x: i64 = if negative { -1 } else { 0 };
    for &b in v {
        x = (x << 8) | b as i64;
    }
    if (-(1i64 << 31)..(1i64 << 32)).contains(&x) {
        Ok(x as u32)
    } else {
        bad(what, format!("{name}: INTEGER {x} out of the 32-bit range"))
    }
}

/// Appends a DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// One element with `tag` around `contents`.
fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    out.push(tag);
    push_len(&mut out, contents.len());
    out.extend_from_slice(contents);
    out
}

/// A non-negative INTEGER, minimal DER.
fn integer(x: u32) -> Vec<u8> {
    let bytes = x.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count().min(3);
    let mut v = Vec::with_capacity(5);
    if bytes[skip] & 0x80 != 0 {
        v.push(0);
    }
    v.extend_from_slice(&bytes[skip..]);
    tlv(INTEGER, &v)
}

/// The TSRequest message (MS-CSSP 2.2.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TsRequest {
    /// `version`: the sender's CredSSP version (2 to 6).
    pub version: u32,
    /// `negoTokens`: SPNEGO, NTLM or Kerberos tokens, in order.
    pub nego_tokens: Vec<Vec<u8>>,
    /// `authInfo`: the encrypted TSCredentials.
    pub auth_info: Option<Vec<u8>>,
    /// `pubKeyAuth`: the encrypted public key binding.
    pub pub_key_auth: Option<Vec<u8>>,
    /// `errorCode`: an NTSTATUS or HRESULT from the server (version 3 and
    /// later).
    pub error_code: Option<u32>,
    /// `clientNonce`: 32 random bytes (version 5 and later).
    pub client_nonce: Option<[u8; 32]>,
}

impl TsRequest {
    /// DER encoding. Fields appear in tag order; absent ones are left out.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = tlv(ctx(0), &integer(self.version));
        if !self.nego_tokens.is_empty() {
            let mut items = Vec::new();
            for t in &self.nego_tokens {
                items.extend(tlv(SEQUENCE, &tlv(ctx(0), &tlv(OCTET_STRING, t))));
            }
            body.extend(tlv(ctx(1), &tlv(SEQUENCE, &items)));
        }
        if let Some(a) = &self.auth_info {
            body.extend(tlv(ctx(2), &tlv(OCTET_STRING, a)));
        }
        if let Some(p) = &self.pub_key_auth {
            body.extend(tlv(ctx(3), &tlv(OCTET_STRING, p)));
        }
        if let Some(e) = self.error_code {
            body.extend(tlv(ctx(4), &integer(e)));
        }
        if let Some(n) = &self.client_nonce {
            body.extend(tlv(ctx(5), &tlv(OCTET_STRING, n)));
        }
        tlv(SEQUENCE, &body)
    }

    /// Decodes one TSRequest that fills `b` exactly.
    pub fn decode(b: &[u8]) -> Result<TsRequest, CodecError> {
        const W: &str = "TSRequest";
        let mut outer = Reader::new(W, b);
        let seq = outer.expect(SEQUENCE, "TSRequest")?;
        outer.finish("the TSRequest")?;
        let mut r = Reader::new(W, seq);
        let version = integer_u32(W, r.explicit(0, INTEGER, "version")?, "version")?;
        let mut req = TsRequest {
            version,
            ..TsRequest::default()
        };
        // Optional fields, each at most once and in increasing tag order.
        let mut last = 0u8;
        while let Some(tag) = r.peek_tag() {
            let n = tag ^ 0xa0;
            if tag & 0xe0 != 0xa0 || !(1..=5).contains(&n) {
                return bad(W, format!("unknown field tag 0x{tag:02x}"));
            }
            if n <= last {
                return bad(W, format!("field [{n}] repeated or out of order"));
            }
            last = n;
            match n {
                1 => {
                    let nego = r.explicit(1, SEQUENCE, "negoTokens")?;
                    let mut items = Reader::new(W, nego);
                    while !items.is_empty() {
                        let item = items.expect(SEQUENCE, "NegoData item")?;
                        let mut it = Reader::new(W, item);
                        let token = it.explicit(0, OCTET_STRING, "negoToken")?;
                        it.finish("negoToken")?;
                        req.nego_tokens.push(token.to_vec());
                    }
                }
                2 => req.auth_info = Some(r.explicit(2, OCTET_STRING, "authInfo")?.to_vec()),
                3 => req.pub_key_auth = Some(r.explicit(3, OCTET_STRING, "pubKeyAuth")?.to_vec()),
                4 => {
                    let v = r.explicit(4, INTEGER, "errorCode")?;
                    req.error_code = Some(integer_u32(W, v, "errorCode")?);
                }
                _ => {
                    let v = r.explicit(5, OCTET_STRING, "clientNonce")?;
                    let nonce: [u8; 32] = match v.try_into() {
                        Ok(n) => n,
                        Err(_) => {
                            return bad(W, format!("clientNonce is {} bytes, not 32", v.len()))
                        }
                    };
                    req.client_nonce = Some(nonce);
                }
            }
        }
        Ok(req)
    }
}

/// `credType` of TSCredentials for a TSPasswordCreds.
pub const CRED_TYPE_PASSWORD: u32 = 1;

/// TSPasswordCreds (MS-CSSP 2.2.1.2.1): the user's domain, name and
/// password, which the server uses to log on as the user. `Debug` never
/// shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct TsPasswordCreds {
    /// `domainName` (may be empty: a UPN in `user`, or a local account).
    pub domain: String,
    /// `userName`.
    pub user: String,
    /// `password`.
    pub password: Secret,
}

impl std::fmt::Debug for TsPasswordCreds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsPasswordCreds")
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("password", &self.password)
            .finish()
    }
}

fn utf16le(s: &str) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(s.encode_utf16().flat_map(u16::to_le_bytes).collect())
}

fn from_utf16le(what: &'static str, b: &[u8], name: &str) -> Result<String, CodecError> {
    if b.len() % 2 != 0 {
        return bad(
            what,
            format!("{name} has an odd number of bytes for UTF-16"),
        );
    }
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).or_else(|_| bad(what, format!("{name} is not valid UTF-16")))
}

/// Copies `v` into a buffer cleared when dropped (the password's bytes
/// go through every layer of the encoding).
fn secret_tlv(tag: u8, contents: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(contents.len() + 6));
    out.push(tag);
    push_len(&mut out, contents.len());
    out.extend_from_slice(contents);
    out
}

impl TsPasswordCreds {
    /// The TSCredentials (credType 1) that carries these credentials, DER;
    /// the buffer is cleared when dropped.
    pub fn encode_ts_credentials(&self) -> Zeroizing<Vec<u8>> {
        let mut creds = Zeroizing::new(Vec::new());
        for (n, v) in [
            (0u8, utf16le(&self.domain)),
            (1, utf16le(&self.user)),
            (2, utf16le(self.password.expose())),
        ] {
            creds.extend_from_slice(&secret_tlv(ctx(n), &secret_tlv(OCTET_STRING, &v)));
        }
        let password_creds = secret_tlv(SEQUENCE, &creds);
        let mut body = Zeroizing::new(tlv(ctx(0), &integer(CRED_TYPE_PASSWORD)));
        body.extend_from_slice(&secret_tlv(
            ctx(1),
            &secret_tlv(OCTET_STRING, &password_creds),
        ));
        secret_tlv(SEQUENCE, &body)
    }

    /// Decodes a TSCredentials that must carry a TSPasswordCreds (the
    /// server side, and tests).
    pub fn decode_ts_credentials(b: &[u8]) -> Result<TsPasswordCreds, CodecError> {
        const W: &str = "TSCredentials";
        let mut outer = Reader::new(W, b);
        let seq = outer.expect(SEQUENCE, "TSCredentials")?;
        outer.finish("the TSCredentials")?;
        let mut r = Reader::new(W, seq);
        let cred_type = integer_u32(W, r.explicit(0, INTEGER, "credType")?, "credType")?;
        if cred_type != CRED_TYPE_PASSWORD {
            return bad(W, format!("credType {cred_type} is not a password (1)"));
        }
        let inner = r.explicit(1, OCTET_STRING, "credentials")?;
        r.finish("credentials")?;
        const P: &str = "TSPasswordCreds";
        let mut outer = Reader::new(P, inner);
        let seq = outer.expect(SEQUENCE, "TSPasswordCreds")?;
        outer.finish("the TSPasswordCreds")?;
        let mut r = Reader::new(P, seq);
        let domain = from_utf16le(P, r.explicit(0, OCTET_STRING, "domainName")?, "domainName")?;
        let user = from_utf16le(P, r.explicit(1, OCTET_STRING, "userName")?, "userName")?;
        let password = from_utf16le(P, r.explicit(2, OCTET_STRING, "password")?, "password")?;
        r.finish("password")?;
        Ok(TsPasswordCreds {
            domain,
            user,
            password: Secret::new(password),
        })
    }
}
