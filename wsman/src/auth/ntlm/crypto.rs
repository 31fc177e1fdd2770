//! NTLMv2 key derivation and responses (MS-NLMP 3.3.2, 3.4.5), pure functions.

use hmac::{Hmac, KeyInit, Mac};
use md4::Md4;
use md5::{Digest, Md5};
use rc4::{Rc4, StreamCipher};
use zeroize::{Zeroize, Zeroizing};

type HmacMd5 = Hmac<Md5>;

/// UTF-16LE encoding as NTLM strings use it.
pub fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

/// HMAC-MD5 over the concatenation of `parts`.
pub fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacMd5 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// MD5 over the concatenation of `parts`.
pub fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// NTOWFv2 = HMAC_MD5(MD4(UNICODE(password)), UNICODE(Upper(user) ‖ domain)).
/// The result is as good as the password for this account, so it, the NT
/// hash and the UTF-16 password are cleared when dropped.
pub fn ntowfv2(password: &str, user: &str, domain: &str) -> Zeroizing<[u8; 16]> {
    let unicode_password = Zeroizing::new(utf16le(password));
    let nt_hash: Zeroizing<[u8; 16]> = Zeroizing::new(Md4::digest(&*unicode_password).into());
    let who = utf16le(&format!("{}{}", user.to_uppercase(), domain));
    Zeroizing::new(hmac_md5(&*nt_hash, &[&who]))
}

/// The NTLMv2 client blob ("temp" in MS-NLMP 3.3.2) for a timestamp, client
/// challenge and the (possibly amended) target info.
pub fn ntlmv2_temp(timestamp: u64, client_challenge: &[u8; 8], target_info: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(28 + target_info.len() + 4);
    t.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    t.extend_from_slice(&timestamp.to_le_bytes());
    t.extend_from_slice(client_challenge);
    t.extend_from_slice(&[0; 4]);
    t.extend_from_slice(target_info);
    t.extend_from_slice(&[0; 4]);
    t
}

/// What an NTLMv2 computation yields.
pub struct V2Response {
    /// NtChallengeResponse = NTProofStr ‖ temp.
    pub nt_response: Vec<u8>,
    /// LmChallengeResponse = HMAC_MD5(key, server ‖ client challenge) ‖ client challenge.
    pub lm_response: [u8; 24],
    /// SessionBaseKey = HMAC_MD5(key, NTProofStr); also the KeyExchangeKey
    /// for NTLMv2 (cleared when dropped).
    pub session_base_key: Zeroizing<[u8; 16]>,
}

/// Computes the NTLMv2 responses (MS-NLMP 3.3.2).
pub fn ntlmv2_response(
    response_key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
    temp: &[u8],
) -> V2Response {
    let proof = hmac_md5(response_key, &[server_challenge, temp]);
    let mut nt_response = proof.to_vec();
    nt_response.extend_from_slice(temp);
    let lm = hmac_md5(response_key, &[server_challenge, client_challenge]);
    let mut lm_response = [0u8; 24];
    lm_response[..16].copy_from_slice(&lm);
    lm_response[16..].copy_from_slice(client_challenge);
    V2Response {
        nt_response,
        lm_response,
        session_base_key: Zeroizing::new(hmac_md5(response_key, &[&proof])),
    }
}

/// RC4 of `data` under `key` with a fresh cipher state.
pub fn rc4_once(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    new_rc4(key).apply_keystream(&mut out);
    out
}

/// A fresh RC4 state; NTLM keys are 5 to 16 bytes, always valid for RC4.
pub fn new_rc4(key: &[u8]) -> Rc4 {
    <Rc4 as rc4::KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

const C2S_SIGN: &[u8] = b"session key to client-to-server signing key magic constant\0";
const S2C_SIGN: &[u8] = b"session key to server-to-client signing key magic constant\0";
const C2S_SEAL: &[u8] = b"session key to client-to-server sealing key magic constant\0";
const S2C_SEAL: &[u8] = b"session key to server-to-client sealing key magic constant\0";

/// Signing and sealing keys for both directions (MS-NLMP 3.4.5.2/3.4.5.3).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// Client-to-server signing key.
    pub client_sign: [u8; 16],
    /// Client-to-server sealing key.
    pub client_seal: [u8; 16],
    /// Server-to-client signing key.
    pub server_sign: [u8; 16],
    /// Server-to-client sealing key.
    pub server_seal: [u8; 16],
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        self.client_sign.zeroize();
        self.client_seal.zeroize();
        self.server_sign.zeroize();
        self.server_seal.zeroize();
    }
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(<redacted>)")
    }
}

/// Derives the session keys from the ExportedSessionKey; `key_len` is 16
/// (NEGOTIATE_128), 7 (NEGOTIATE_56) or 5 bytes for the sealing keys.
pub fn session_keys(exported_session_key: &[u8; 16], seal_key_len: usize) -> SessionKeys {
    let seal_base = &exported_session_key[..seal_key_len.min(16)];
    SessionKeys {
        client_sign: md5(&[exported_session_key, C2S_SIGN]),
        server_sign: md5(&[exported_session_key, S2C_SIGN]),
        client_seal: md5(&[seal_base, C2S_SEAL]),
        server_seal: md5(&[seal_base, S2C_SEAL]),
    }
}
