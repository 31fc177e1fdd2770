//! Authentication: Basic, NTLM (our own), Kerberos and SPNEGO (system
//! GSSAPI), CredSSP (TLS and NTLM, ours), TLS channel bindings, and the
//! per-connection session security that seals WinRM messages.

pub mod certificate;
pub mod channel_bindings;
pub mod credssp;
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
    /// `CredSSP`.
    pub const CREDSSP: &str = "CredSSP";
}

/// Established session security of one connection.
pub(crate) enum Security {
    /// NTLM signing and sealing.
    Ntlm(Box<NtlmSession>),
    /// A complete GSSAPI context.
    Gss(Box<GssClient>),
    /// The TLS session of a CredSSP exchange.
    CredSsp(Box<credssp::CredSspSession>),
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
            Security::CredSsp(c) => {
                let (header, data) = c
                    .wrap_winrm(msg)
                    .map_err(|e| EncryptionError::Seal(e.to_string()))?;
                Ok((header, data, 0))
            }
        }
    }

    /// Seals a SOAP message into an encrypted HTTP body.
    pub(crate) fn encrypt_body(
        &mut self,
        protocol: Protocol,
        msg: &[u8],
    ) -> Result<Vec<u8>, EncryptionError> {
        if let Security::CredSsp(_) = self {
            // One TLS record's worth per part, as WinRM cuts CredSSP messages.
            let mut parts = Vec::with_capacity(msg.len().div_ceil(credssp::PART_SIZE));
            for chunk in msg.chunks(credssp::PART_SIZE) {
                let (header, data, _) = self.wrap(chunk)?;
                parts.push((chunk.len(), header, data));
            }
            return Ok(crate::encryption::encode_parts(protocol, &parts));
        }
        let (header, data, padding) = self.wrap(msg)?;
        Ok(crate::encryption::encode(
            protocol,
            msg.len() + padding,
            &header,
            &data,
        ))
    }

    /// Decrypts an encrypted HTTP body, checking every part's length.
    /// Parts are decrypted in place (Kerberos and NTLM alike) and the
    /// plaintext moved to the front of the same buffer: response bodies are
    /// large.
    pub(crate) fn decrypt_body(
        &mut self,
        content_type: &str,
        mut body: Vec<u8>,
    ) -> Result<Vec<u8>, EncryptionError> {
        let parts = crate::encryption::decode_ranges(content_type, &body)?;
        let mut written = 0;
        for p in parts {
            // NTLM and Kerberos decrypt in place: the plaintext is the data
            // range (RC4 and the Kerberos wrap token keep the length). The
            // CredSSP TLS record is longer than its plaintext, which is
            // written back at the start of the data range.
            let (header, data) = body[p.header.start..p.data.end].split_at_mut(p.header.len());
            let plain = match self {
                Security::Gss(g) => {
                    g.unwrap_in_place(header, data)
                        .map_err(|e| EncryptionError::Unseal(e.to_string()))?;
                    p.data.clone()
                }
                Security::Ntlm(s) => {
                    s.unseal_in_place(header, data)
                        .map_err(|e| EncryptionError::Unseal(e.to_string()))?;
                    p.data.clone()
                }
                Security::CredSsp(c) => {
                    let plain = c
                        .unwrap_winrm(header, data)
                        .map_err(|e| EncryptionError::Unseal(e.to_string()))?;
                    if plain.len() > p.data.len() {
                        return Err(EncryptionError::LengthMismatch {
                            declared: p.original_length,
                            actual: plain.len(),
                        });
                    }
                    let at = p.data.start;
                    body[at..at + plain.len()].copy_from_slice(&plain);
                    at..at + plain.len()
                }
            };
            if plain.len() != p.original_length {
                return Err(EncryptionError::LengthMismatch {
                    declared: p.original_length,
                    actual: plain.len(),
                });
            }
            // Parts follow each other: a plaintext never starts before what
            // is already written.
            body.copy_within(plain.clone(), written);
            written += plain.len();
        }
        body.truncate(written);
        Ok(body)
    }
}
