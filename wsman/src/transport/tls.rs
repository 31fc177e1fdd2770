//! rustls client configuration from [`TlsOptions`]: system roots by default
//! (rustls-platform-verifier), a CA bundle instead when given, and the
//! explicitly named "accept anything" verifier.

use crate::config::TlsOptions;
use crate::error::Error;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::{Arc, OnceLock};

/// Builds the TLS configuration used for every HTTPS connection of a client.
/// `client_cert` is presented when the server asks for one (certificate
/// authentication).
pub(crate) fn client_config(
    opts: &TlsOptions,
    client_cert: Option<&crate::ClientCertificate>,
) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if opts.danger_accept_invalid_certs {
        tracing::warn!("TLS certificate verification is DISABLED (danger_accept_invalid_certs)");
        Arc::new(AcceptAnyCertificate::new(provider))
    } else if let Some(path) = &opts.ca_bundle {
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| Error::Config(format!("cannot read CA bundle {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| {
                Error::Config(format!(
                    "CA bundle {} is not valid PEM: {e}",
                    path.display()
                ))
            })?;
            roots.add(cert).map_err(|e| {
                Error::Config(format!(
                    "CA bundle {}: unusable certificate: {e}",
                    path.display()
                ))
            })?;
        }
        if roots.is_empty() {
            return Err(Error::Config(format!(
                "CA bundle {} holds no certificate",
                path.display()
            )));
        }
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| Error::Config(format!("TLS verifier: {e}")))?
    } else {
        Arc::new(
            rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| Error::Config(format!("system certificate store: {e}")))?,
        )
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match client_cert {
        Some(c) => builder
            .with_client_auth_cert(c.chain(), c.key())
            .map_err(|e| {
                Error::Config(format!(
                    "client certificate: the key does not fit the certificate or is not usable: {e}"
                ))
            })?,
        None => builder.with_no_client_auth(),
    };
    // WinRM speaks HTTP/1.1 only.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Accepts any certificate chain (still checks the handshake signatures, so
/// the peer must hold the key of the certificate it shows). When made
/// [`AcceptAnyCertificate::recording`], it keeps what a function extracts
/// from the end-entity certificate (CredSSP binds its public key instead of
/// trusting a CA), and refuses a certificate it cannot extract that from.
#[derive(Debug)]
pub(crate) struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
    record: Option<(Extract, OnceLock<Vec<u8>>)>,
}

/// What [`AcceptAnyCertificate::recording`] keeps of a DER certificate.
pub(crate) type Extract = fn(&[u8]) -> Result<Vec<u8>, String>;

impl AcceptAnyCertificate {
    pub(crate) fn new(provider: Arc<CryptoProvider>) -> Self {
        AcceptAnyCertificate {
            provider,
            record: None,
        }
    }

    pub(crate) fn recording(provider: Arc<CryptoProvider>, extract: Extract) -> Self {
        AcceptAnyCertificate {
            provider,
            record: Some((extract, OnceLock::new())),
        }
    }

    /// What was extracted from the server's certificate, once seen.
    pub(crate) fn recorded(&self) -> Option<&[u8]> {
        self.record.as_ref()?.1.get().map(Vec::as_slice)
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some((extract, slot)) = &self.record {
            let value = extract(end_entity).map_err(rustls::Error::General)?;
            // One handshake per channel: a second certificate cannot
            // replace what the first one gave.
            if slot.set(value).is_err() {
                return Err(rustls::Error::General(
                    "a second server certificate on one TLS channel".into(),
                ));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
