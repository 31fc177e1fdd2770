//! The TLS channel inside CredSSP: a rustls client over in-memory buffers.
//! Its records travel base64-encoded in the `Authorization: CredSSP` and
//! `WWW-Authenticate: CredSSP` headers during authentication, and as the
//! sealed parts of encrypted WinRM messages afterwards; never on a socket.
//!
//! The server's certificate is not checked against any CA (MS-CSSP 3.1.5
//! step 1: Windows presents a self-signed one): a narrow verifier accepts
//! it, still checks the handshake signatures (so the server holds the key),
//! and records the certificate's public key, which the CredSSP public-key
//! binding then ties to the authenticated server.
//!
//! Protocols and suites: TLS 1.2 and 1.3 (what pyspnego's acceptor allows,
//! minimum 1.2, and what current Windows negotiates) with AES-GCM suites
//! only: WinRM's message framing needs the record trailer size, which is
//! fixed for GCM (16 bytes in TLS 1.2, 17 in TLS 1.3 with the inner content
//! type) and which SChannel and pyspnego compute the same way.

use super::binding::subject_public_key;
use crate::transport::tls::AcceptAnyCertificate;
use rustls::{ClientConfig, ClientConnection};
use rustls_pki_types::ServerName;
use std::io::{Read, Write};
use std::sync::Arc;

/// A TLS failure inside CredSSP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS inside CredSSP: {0}")]
pub struct TlsError(pub String);

/// A client TLS session driven through byte buffers.
pub struct TlsChannel {
    conn: ClientConnection,
    verifier: Arc<AcceptAnyCertificate>,
}

impl std::fmt::Debug for TlsChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsChannel")
            .field("handshaking", &self.conn.is_handshaking())
            .field("version", &self.conn.protocol_version())
            .finish_non_exhaustive()
    }
}

fn tls_err(e: impl std::fmt::Display) -> TlsError {
    TlsError(e.to_string())
}

impl TlsChannel {
    /// A new client session; the ClientHello is ready in [`Self::take_output`].
    pub fn new() -> Result<Self, TlsError> {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.cipher_suites.retain(|s| {
            format!("{:?}", s.suite()).contains("_AES_")
                && format!("{:?}", s.suite()).contains("_GCM_")
        });
        let provider = Arc::new(provider);
        // The server's certificate is recorded as its public key, for the
        // binding.
        let verifier = Arc::new(AcceptAnyCertificate::recording(provider.clone(), |cert| {
            subject_public_key(cert).map_err(|e| e.to_string())
        }));
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(tls_err)?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        // No SNI (the name is not checked anyway) and no resumption: one
        // full handshake per CredSSP context, as Windows clients do.
        config.enable_sni = false;
        config.resumption = rustls::client::Resumption::disabled();
        let name = ServerName::try_from("credssp.invalid").map_err(tls_err)?;
        let conn = ClientConnection::new(Arc::new(config), name).map_err(tls_err)?;
        Ok(TlsChannel { conn, verifier })
    }

    /// Whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The TLS records waiting to be sent.
    pub fn take_output(&mut self) -> Result<Vec<u8>, TlsError> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            self.conn.write_tls(&mut out).map_err(tls_err)?;
        }
        Ok(out)
    }

    /// Feeds records from the server; returns the application data they
    /// carried (nothing during the handshake).
    pub fn feed(&mut self, mut input: &[u8]) -> Result<Vec<u8>, TlsError> {
        let mut plain = Vec::new();
        // read_tls takes at most one buffer's worth per call; an empty
        // input would mean end of stream, so it is never passed.
        while !input.is_empty() {
            let n = self.conn.read_tls(&mut input).map_err(tls_err)?;
            if n == 0 {
                return Err(TlsError("the TLS layer accepted no more data".into()));
            }
            let state = self.conn.process_new_packets().map_err(tls_err)?;
            if state.peer_has_closed() {
                return Err(TlsError("the server closed the TLS channel".into()));
            }
            self.drain(&mut plain)?;
        }
        Ok(plain)
    }

    fn drain(&mut self, plain: &mut Vec<u8>) -> Result<(), TlsError> {
        let mut buf = [0u8; 4096];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => plain.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(tls_err(e)),
            }
        }
    }

    /// Encrypts `data` into TLS records.
    pub fn wrap(&mut self, data: &[u8]) -> Result<Vec<u8>, TlsError> {
        if self.conn.is_handshaking() {
            return Err(TlsError(
                "data to send before the handshake finished".into(),
            ));
        }
        self.conn.writer().write_all(data).map_err(tls_err)?;
        self.take_output()
    }

    /// Decrypts records that must hold application data only.
    pub fn unwrap(&mut self, records: &[u8]) -> Result<Vec<u8>, TlsError> {
        self.feed(records)
    }

    /// The server certificate's public key, once the handshake has seen it.
    pub fn server_public_key(&self) -> Option<&[u8]> {
        self.verifier.recorded()
    }

    /// The negotiated protocol and suite, for logs (`TLSv1_3`,
    /// `TLS13_AES_256_GCM_SHA384`).
    pub fn describe(&self) -> String {
        format!(
            "{:?} {:?}",
            self.conn.protocol_version(),
            self.conn.negotiated_cipher_suite().map(|s| s.suite())
        )
    }

    /// The size of the record trailer WinRM's framing puts in the header
    /// length field: 17 for TLS 1.3 (GCM tag and the inner content type),
    /// 16 for TLS 1.2 GCM.
    pub fn winrm_trailer_len(&self) -> usize {
        if self.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            17
        } else {
            16
        }
    }
}
