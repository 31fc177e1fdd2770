//! NTLM session security with extended session security (MS-NLMP 3.4.3,
//! 3.4.4.2): one RC4 stream and one sequence number per direction, kept for
//! the life of the connection.

use super::crypto::{hmac_md5, new_rc4, session_keys, SessionKeys};
use super::NtlmError;
use rc4::{Rc4, StreamCipher};

/// Length of an NTLMSSP_MESSAGE_SIGNATURE.
pub const SIGNATURE_LEN: usize = 16;

/// Signing and sealing state of an established NTLM context, client side.
pub struct NtlmSession {
    keys: SessionKeys,
    send_rc4: Rc4,
    recv_rc4: Rc4,
    send_seq: u32,
    recv_seq: u32,
    key_exch: bool,
}

impl std::fmt::Debug for NtlmSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtlmSession")
            .field("send_seq", &self.send_seq)
            .field("recv_seq", &self.recv_seq)
            .finish_non_exhaustive()
    }
}

impl NtlmSession {
    /// State for the client side of a context whose ExportedSessionKey is
    /// `exported_session_key`; `seal_key_len` is 16, 7 or 5 (MS-NLMP 3.4.5.3).
    pub fn client(exported_session_key: &[u8; 16], seal_key_len: usize, key_exch: bool) -> Self {
        let keys = session_keys(exported_session_key, seal_key_len);
        NtlmSession {
            send_rc4: new_rc4(&keys.client_seal),
            recv_rc4: new_rc4(&keys.server_seal),
            keys,
            send_seq: 0,
            recv_seq: 0,
            key_exch,
        }
    }

    fn signature(sign_key: &[u8], rc4: &mut Rc4, key_exch: bool, seq: u32, msg: &[u8]) -> [u8; 16] {
        let mac = hmac_md5(sign_key, &[&seq.to_le_bytes(), msg]);
        let mut checksum = [0u8; 8];
        checksum.copy_from_slice(&mac[..8]);
        if key_exch {
            rc4.apply_keystream(&mut checksum);
        }
        let mut sig = [0u8; 16];
        sig[..4].copy_from_slice(&1u32.to_le_bytes());
        sig[4..12].copy_from_slice(&checksum);
        sig[12..].copy_from_slice(&seq.to_le_bytes());
        sig
    }

    /// Seals `msg` for the server: returns (signature, ciphertext). The data
    /// is encrypted before the checksum, both from the same RC4 stream.
    pub fn seal(&mut self, msg: &[u8]) -> ([u8; SIGNATURE_LEN], Vec<u8>) {
        let mut data = msg.to_vec();
        self.send_rc4.apply_keystream(&mut data);
        let seq = self.send_seq;
        let sig = Self::signature(
            &self.keys.client_sign,
            &mut self.send_rc4,
            self.key_exch,
            seq,
            msg,
        );
        self.send_seq = self.send_seq.wrapping_add(1);
        (sig, data)
    }

    /// Unseals a server message and verifies its signature and sequence number.
    pub fn unseal(&mut self, signature: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, NtlmError> {
        let mut data = ciphertext.to_vec();
        self.unseal_in_place(signature, &mut data)?;
        Ok(data)
    }

    /// [`Self::unseal`] in place: `data` holds the ciphertext and is left
    /// holding the plaintext (also when the signature does not verify, in
    /// which case the session is unusable anyway).
    pub fn unseal_in_place(&mut self, signature: &[u8], data: &mut [u8]) -> Result<(), NtlmError> {
        if signature.len() != SIGNATURE_LEN {
            return Err(NtlmError::BadSignature(format!(
                "signature is {} bytes, expected {SIGNATURE_LEN}",
                signature.len()
            )));
        }
        self.recv_rc4.apply_keystream(data);
        let seq = self.recv_seq;
        let expected = Self::signature(
            &self.keys.server_sign,
            &mut self.recv_rc4,
            self.key_exch,
            seq,
            data,
        );
        self.recv_seq = self.recv_seq.wrapping_add(1);
        // Constant-time compare: the checksum is a MAC.
        let diff = expected
            .iter()
            .zip(signature)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(NtlmError::BadSignature(format!(
                "message signature does not verify (expected sequence number {seq})"
            )));
        }
        Ok(())
    }
}
