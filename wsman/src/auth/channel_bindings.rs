//! TLS channel bindings, `tls-server-end-point` (RFC 5929), from the server
//! certificate, and their encodings for GSSAPI and NTLM.

use crate::auth::ntlm::crypto::md5;
use sha2::Digest;

/// Channel binding data for one TLS connection.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelBindings {
    application_data: Vec<u8>,
}

impl std::fmt::Debug for ChannelBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelBindings")
            .field("application_data_len", &self.application_data.len())
            .finish()
    }
}

/// Why a certificate could not be turned into channel bindings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot compute tls-server-end-point channel binding: {0}")]
pub struct ChannelBindingError(String);

/// Hash functions RFC 5929 can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertHash {
    /// SHA-256 (also for MD5/SHA-1 signatures and unknown algorithms).
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl ChannelBindings {
    /// `tls-server-end-point:` ‖ H(cert), H per the certificate's signature
    /// algorithm; MD5 and SHA-1 become SHA-256 (RFC 5929 4.1).
    pub fn tls_server_end_point(cert_der: &[u8]) -> Result<Self, ChannelBindingError> {
        let hash = signature_hash(cert_der)?;
        let digest: Vec<u8> = match hash {
            CertHash::Sha256 => sha2::Sha256::digest(cert_der).to_vec(),
            CertHash::Sha384 => sha2::Sha384::digest(cert_der).to_vec(),
            CertHash::Sha512 => sha2::Sha512::digest(cert_der).to_vec(),
        };
        let mut application_data = b"tls-server-end-point:".to_vec();
        application_data.extend_from_slice(&digest);
        Ok(ChannelBindings { application_data })
    }

    /// The application data (what GSSAPI takes as channel bindings).
    pub fn application_data(&self) -> &[u8] {
        &self.application_data
    }

    /// The gss_channel_bindings_struct serialisation with empty addresses
    /// (RFC 2744 as MS-NLMP hashes it): five little-endian fields.
    pub fn gss_struct_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(20 + self.application_data.len());
        b.extend_from_slice(&0u32.to_le_bytes()); // initiator_addrtype
        b.extend_from_slice(&0u32.to_le_bytes()); // initiator_address length
        b.extend_from_slice(&0u32.to_le_bytes()); // acceptor_addrtype
        b.extend_from_slice(&0u32.to_le_bytes()); // acceptor_address length
        b.extend_from_slice(&(self.application_data.len() as u32).to_le_bytes());
        b.extend_from_slice(&self.application_data);
        b
    }

    /// MsvAvChannelBindings value: MD5 of [`Self::gss_struct_bytes`].
    pub fn ntlm_hash(&self) -> [u8; 16] {
        md5(&[&self.gss_struct_bytes()])
    }
}

/// A DER TLV: (tag, content, rest).
fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), ChannelBindingError> {
    let err = || ChannelBindingError("certificate is not valid DER".into());
    let (&tag, rest) = b.split_first().ok_or_else(err)?;
    let (&first, mut rest) = rest.split_first().ok_or_else(err)?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(err());
        }
        let mut len = 0usize;
        for &byte in &rest[..n] {
            len = (len << 8) | byte as usize;
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(err());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;

/// Reads Certificate.signatureAlgorithm and maps it to the RFC 5929 hash.
pub fn signature_hash(cert_der: &[u8]) -> Result<CertHash, ChannelBindingError> {
    let (tag, cert, _) = tlv(cert_der)?;
    if tag != SEQUENCE {
        return Err(ChannelBindingError(
            "certificate is not a DER SEQUENCE".into(),
        ));
    }
    let (_, _tbs, rest) = tlv(cert)?;
    let (tag, alg, _) = tlv(rest)?;
    if tag != SEQUENCE {
        return Err(ChannelBindingError(
            "signatureAlgorithm is not a SEQUENCE".into(),
        ));
    }
    let (tag, oid, params) = tlv(alg)?;
    if tag != OID {
        return Err(ChannelBindingError("signatureAlgorithm has no OID".into()));
    }
    Ok(match oid {
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03] => CertHash::Sha384,
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d]
        | [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04] => CertHash::Sha512,
        // RSASSA-PSS: the hash is in the parameters.
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a] => pss_hash(params),
        // SHA-256, MD5, SHA-1 and anything else: SHA-256.
        _ => CertHash::Sha256,
    })
}

fn pss_hash(params: &[u8]) -> CertHash {
    // RSASSA-PSS-params ::= SEQUENCE { [0] hashAlgorithm AlgorithmIdentifier, ... }
    let hash_oid = (|| {
        let (_, seq, _) = tlv(params).ok()?;
        let (tag, explicit, _) = tlv(seq).ok()?;
        if tag != 0xa0 {
            return None;
        }
        let (_, alg, _) = tlv(explicit).ok()?;
        let (tag, oid, _) = tlv(alg).ok()?;
        (tag == OID).then(|| oid.to_vec())
    })();
    match hash_oid.as_deref() {
        Some([0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02]) => CertHash::Sha384,
        Some([0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03]) => CertHash::Sha512,
        _ => CertHash::Sha256,
    }
}
