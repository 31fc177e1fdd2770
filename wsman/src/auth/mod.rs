//! Authentication: Basic, NTLM (our own), Kerberos and SPNEGO (system
//! GSSAPI), TLS channel bindings, and the per-connection session security
//! that seals WinRM messages.

pub mod channel_bindings;
pub mod gss;
pub mod ntlm;

use crate::encryption::{EncryptionError, Protocol};
use gss::GssClient;
use ntlm::NtlmSession;

/// HTTP authentication scheme words.
pub mod scheme {
    /// `Negotiate` (SPNEGO, or raw NTLM / Kerberos tokens).
    pub const NEGOTIATE: &str = "Negotiate";
    /// `Kerberos` (raw Kerberos tokens).
    pub const KERBEROS: &str = "Kerberos";
    /// `NTLM`.
    pub const NTLM: &str = "NTLM";
    /// `Basic`.
    pub const BASIC: &str = "Basic";
}

/// Established session security of one connection.
pub(crate) enum Security {
    /// NTLM signing and sealing.
    Ntlm(Box<NtlmSession>),
    /// A complete GSSAPI context.
    Gss(Box<GssClient>),
}

impl Security {
    /// Seals `msg`: (header, data, padding length).
    pub(crate) fn wrap(
        &mut self,
        msg: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>, usize), EncryptionError> {
        match self {
            Security::Ntlm(s) => {
                let (sig, data) = s.seal(msg);
                Ok((sig.to_vec(), data, 0))
            }
            Security::Gss(g) => {
                let w = g
                    .wrap(msg)
                    .map_err(|e| EncryptionError::Seal(e.to_string()))?;
                Ok((w.header, w.data, w.padding))
            }
        }
    }

    /// Unseals and verifies one part.
    pub(crate) fn unwrap(
        &mut self,
        header: &[u8],
        data: &[u8],
    ) -> Result<Vec<u8>, EncryptionError> {
        match self {
            Security::Ntlm(s) => s
                .unseal(header, data)
                .map_err(|e| EncryptionError::Unseal(e.to_string())),
            Security::Gss(g) => g
                .unwrap(header, data)
                .map_err(|e| EncryptionError::Unseal(e.to_string())),
        }
    }

    /// Seals a SOAP message into an encrypted HTTP body.
    pub(crate) fn encrypt_body(
        &mut self,
        protocol: Protocol,
        msg: &[u8],
    ) -> Result<Vec<u8>, EncryptionError> {
        let (header, data, padding) = self.wrap(msg)?;
        Ok(crate::encryption::encode(
            protocol,
            msg.len() + padding,
            &header,
            &data,
        ))
    }

    /// Decrypts an encrypted HTTP body, checking every part's length.
    pub(crate) fn decrypt_body(
        &mut self,
        content_type: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, EncryptionError> {
        let parts = crate::encryption::decode(content_type, body)?;
        let mut out = Vec::with_capacity(body.len());
        for p in parts {
            let plain = self.unwrap(p.header, p.data)?;
            if plain.len() != p.original_length {
                return Err(EncryptionError::LengthMismatch {
                    declared: p.original_length,
                    actual: plain.len(),
                });
            }
            out.extend_from_slice(&plain);
        }
        Ok(out)
    }
}
