//! Small unauthenticated exchanges that explain why a connection fails
//! (used by `psrp doctor`): what the server offers before authentication,
//! the TLS session and certificates it shows, WS-Man Identify, the proxy in
//! use, and the NTLM target information of its CHALLENGE. Each uses the
//! same proxy, timeouts and TLS settings as [`crate::WsmanClient`] with the
//! same configuration, and sends no credentials.
//!
//! ```no_run
//! # async fn run(config: wsman::WsmanConfig) -> Result<(), wsman::Error> {
//! let probe = wsman::diagnose::probe(&config).await?;
//! println!("HTTP {} offers {:?}", probe.status, probe.schemes);
//! let id = wsman::diagnose::identify(&config).await?;
//! println!("{} {}", id.product_vendor, id.product_version);
//! # Ok(()) }
//! ```

use crate::auth::ntlm::messages::{self, Challenge};
use crate::auth::scheme;
use crate::config::WsmanConfig;
use crate::error::Error;
use crate::soap::{dom, ns};
use crate::transport::{self, DiagTls, HttpConn, Reply, Shared};
use base64::Engine as _;
use hyper::header::{HeaderName, HeaderValue, DATE, SERVER};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const IDENTITY_NS: &str = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd";
const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";

/// What a TLS handshake settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPeer {
    /// The protocol version, e.g. `TLSv1_3`.
    pub protocol: String,
    /// The cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The certificates the server sent, leaf first (DER).
    pub certificates: Vec<Vec<u8>>,
}

/// The answer to an unauthenticated, empty POST to the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// HTTP status (a WinRM listener answers 401).
    pub status: u16,
    /// Authentication schemes offered in `WWW-Authenticate`, in order.
    pub schemes: Vec<String>,
    /// The `Server` header (`Microsoft-HTTPAPI/2.0` for WinRM).
    pub server: Option<String>,
    /// The `Date` header (the server's clock).
    pub date: Option<String>,
    /// The TLS session, over HTTPS.
    pub tls: Option<TlsPeer>,
}

/// The WS-Man Identify answer (DSP0226 11).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// `ProtocolVersion`, the WS-Man namespace URI.
    pub protocol_version: String,
    /// `ProductVendor`, e.g. `Microsoft Corporation`.
    pub product_vendor: String,
    /// `ProductVersion`, e.g. `OS: 10.0.17763 SP: 0.0 Stack: 3.0` (an
    /// unauthenticated Identify may hide the OS version).
    pub product_version: String,
    /// `SecurityProfiles/SecurityProfileName` URIs.
    pub security_profiles: Vec<String>,
}

/// The server's NTLM CHALLENGE, as far as it identifies the server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NtlmTarget {
    /// The HTTP scheme it came under (`Negotiate` or `NTLM`).
    pub scheme: String,
    /// NegotiateFlags of the CHALLENGE.
    pub flags: u32,
    /// MsvAvNbDomainName.
    pub netbios_domain: Option<String>,
    /// MsvAvNbComputerName.
    pub netbios_computer: Option<String>,
    /// MsvAvDnsDomainName.
    pub dns_domain: Option<String>,
    /// MsvAvDnsComputerName.
    pub dns_computer: Option<String>,
    /// MsvAvDnsTreeName (the forest).
    pub dns_tree: Option<String>,
}

fn tls_peer(conn: &HttpConn) -> Option<TlsPeer> {
    conn.tls_session.as_ref().map(|s| TlsPeer {
        protocol: s.protocol.clone(),
        cipher_suite: s.cipher_suite.clone(),
        certificates: s.certificates.clone(),
    })
}

async fn post(
    conn: &mut HttpConn,
    shared: &Shared,
    body: Vec<u8>,
    content_type: Option<&str>,
    authorization: Option<&str>,
) -> Result<Reply, Error> {
    let r = conn
        .post(body, content_type, authorization)
        .await
        .map_err(|f| shared.diagnostic_error(f))?;
    Ok(Reply {
        status: r.status,
        headers: r.headers,
        body: r.body,
    })
}

fn header(reply: &Reply, name: HeaderName) -> Option<String> {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// An empty POST without credentials, over the connection the client would
/// make (TLS verified as configured): the status, the offered schemes and,
/// over HTTPS, the TLS session.
pub async fn probe(config: &WsmanConfig) -> Result<Probe, Error> {
    let (mut conn, shared) =
        transport::diagnostic_connection(config, DiagTls::AsConfigured).await?;
    let tls = tls_peer(&conn);
    let reply = post(&mut conn, &shared, Vec::new(), None, None).await?;
    Ok(Probe {
        status: reply.status,
        schemes: reply.offered_schemes(),
        server: header(&reply, SERVER),
        date: header(&reply, DATE),
        tls,
    })
}

/// A TLS handshake with the endpoint's host and port whatever its scheme
/// (to tell an HTTPS listener from an HTTP one); `verify` checks the
/// certificate as configured, otherwise any certificate is accepted so
/// that it can be looked at. Nothing is sent after the handshake.
pub async fn tls_handshake(config: &WsmanConfig, verify: bool) -> Result<TlsPeer, Error> {
    let mode = if verify {
        DiagTls::Verified
    } else {
        DiagTls::AnyCertificate
    };
    let (conn, _) = transport::diagnostic_connection(config, mode).await?;
    tls_peer(&conn).ok_or_else(|| Error::Config("no TLS session".into()))
}

/// An HTTP request without TLS to the endpoint's host and port whatever its
/// scheme: `Ok(status)` when a plain HTTP server answers there.
pub async fn plain_http_status(config: &WsmanConfig) -> Result<u16, Error> {
    let mut plain = config.clone();
    plain
        .endpoint
        .set_scheme("http")
        .map_err(|()| Error::Config("cannot use http:// for this endpoint".into()))?;
    if config.endpoint.port().is_none() {
        let port = config.endpoint.port_or_known_default();
        plain
            .endpoint
            .set_port(port)
            .map_err(|()| Error::Config("cannot set the port".into()))?;
    }
    let (mut conn, shared) =
        transport::diagnostic_connection(&plain, DiagTls::AsConfigured).await?;
    Ok(post(&mut conn, &shared, Vec::new(), None, None)
        .await?
        .status)
}

/// WS-Man Identify without authentication (the `WSMANIDENTIFY:
/// unauthenticated` header WinRM honours).
pub async fn identify(config: &WsmanConfig) -> Result<Identity, Error> {
    let (mut conn, shared) =
        transport::diagnostic_connection(config, DiagTls::AsConfigured).await?;
    conn.extra_headers.push((
        HeaderName::from_static("wsmanidentify"),
        HeaderValue::from_static("unauthenticated"),
    ));
    let body = format!(
        "<s:Envelope xmlns:s=\"{}\" xmlns:wsmid=\"{IDENTITY_NS}\"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>",
        ns::S
    );
    let reply = post(
        &mut conn,
        &shared,
        body.into_bytes(),
        Some(SOAP_CONTENT_TYPE),
        None,
    )
    .await?;
    let endpoint = config.endpoint.to_string();
    if reply.status != 200 {
        return Err(Error::HttpStatus {
            endpoint,
            status: reply.status,
            body: dom::excerpt(&String::from_utf8_lossy(&reply.body), 200),
        });
    }
    parse_identify(&reply.body).map_err(|e| Error::Response {
        endpoint,
        action: "Identify".into(),
        source: crate::soap::envelope::ResponseError::Xml(e),
    })
}

/// Reads an IdentifyResponse envelope.
pub fn parse_identify(body: &[u8]) -> Result<Identity, dom::XmlError> {
    let text = std::str::from_utf8(body).map_err(|e| dom::XmlError(format!("not UTF-8: {e}")))?;
    let root = dom::parse(text)?;
    let response = root
        .find(IDENTITY_NS, "IdentifyResponse")
        .ok_or_else(|| dom::XmlError("no IdentifyResponse".into()))?;
    let text_of = |name: &str| {
        response
            .child(IDENTITY_NS, name)
            .map(|e| e.text.trim().to_string())
            .unwrap_or_default()
    };
    Ok(Identity {
        protocol_version: text_of("ProtocolVersion"),
        product_vendor: text_of("ProductVendor"),
        product_version: text_of("ProductVersion"),
        security_profiles: response
            .child(IDENTITY_NS, "SecurityProfiles")
            .map(|p| {
                p.children_named(IDENTITY_NS, "SecurityProfileName")
                    .map(|e| e.text.trim().to_string())
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Sends an NTLM NEGOTIATE (under `Negotiate`, else `NTLM`, as offered)
/// and reads the server's CHALLENGE: which names it gives for itself and
/// its domain. Sends no credentials; the connection is then dropped.
pub async fn ntlm_challenge(config: &WsmanConfig) -> Result<NtlmTarget, Error> {
    let (mut conn, shared) =
        transport::diagnostic_connection(config, DiagTls::AsConfigured).await?;
    let first = post(&mut conn, &shared, Vec::new(), None, None).await?;
    let offered = first.offered_schemes();
    let has = |s: &str| offered.iter().any(|o| o.eq_ignore_ascii_case(s));
    let http_scheme = if has(scheme::NEGOTIATE) {
        scheme::NEGOTIATE
    } else if has(scheme::NTLM) {
        scheme::NTLM
    } else {
        return Err(Error::Auth {
            endpoint: config.endpoint.to_string(),
            reason: format!(
                "the server offers neither Negotiate nor NTLM (it offers: {})",
                offered.join(", ")
            ),
        });
    };
    let negotiate = messages::negotiate(crate::auth::ntlm::messages::flags::CLIENT);
    let authorization = format!("{http_scheme} {}", B64.encode(negotiate));
    let reply = post(&mut conn, &shared, Vec::new(), None, Some(&authorization)).await?;
    let token = reply
        .server_token(http_scheme)
        .map_err(|reason| Error::Auth {
            endpoint: config.endpoint.to_string(),
            reason,
        })?
        .ok_or_else(|| Error::Auth {
            endpoint: config.endpoint.to_string(),
            reason: format!(
                "the server answered HTTP {} to an NTLM NEGOTIATE without a CHALLENGE",
                reply.status
            ),
        })?;
    let challenge = Challenge::parse(&token)?;
    let mut target = NtlmTarget {
        scheme: http_scheme.to_string(),
        flags: challenge.flags,
        ..NtlmTarget::default()
    };
    for (id, value) in messages::parse_av_pairs(&challenge.target_info)? {
        let units: Vec<u16> = value
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let text = Some(String::from_utf16_lossy(&units));
        match id {
            1 => target.netbios_computer = text,
            2 => target.netbios_domain = text,
            3 => target.dns_computer = text,
            4 => target.dns_domain = text,
            5 => target.dns_tree = text,
            _ => {}
        }
    }
    Ok(target)
}

/// The proxy the client would use for this endpoint (`host:port`, never
/// its credentials), from [`WsmanConfig::proxy`] and, by default, the
/// `HTTP(S)_PROXY`/`ALL_PROXY`/`NO_PROXY` variables.
pub fn proxy(config: &WsmanConfig) -> Result<Option<String>, Error> {
    transport::proxy_in_use(config)
}

/// The `tls-server-end-point` channel binding hash the client sends for
/// this certificate (the hash of the certificate with the hash function of
/// its signature, SHA-256 at least), in hex.
pub fn channel_binding_hex(cert_der: &[u8]) -> Result<String, Error> {
    let cb = crate::auth::channel_bindings::ChannelBindings::tls_server_end_point(cert_der)?;
    let data = cb.application_data();
    let hash = data
        .strip_prefix(b"tls-server-end-point:".as_slice())
        .unwrap_or(data);
    Ok(hash.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_response() {
        let xml = format!(
            r#"<s:Envelope xmlns:s="{}" xmlns:wsmid="{IDENTITY_NS}"><s:Header/><s:Body><wsmid:IdentifyResponse><wsmid:ProtocolVersion>http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd</wsmid:ProtocolVersion><wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor><wsmid:ProductVersion>OS: 0.0.0 SP: 0.0 Stack: 3.0</wsmid:ProductVersion><wsmid:SecurityProfiles><wsmid:SecurityProfileName>http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/spnego-kerberos</wsmid:SecurityProfileName></wsmid:SecurityProfiles></wsmid:IdentifyResponse></s:Body></s:Envelope>"#,
            ns::S
        );
        let id = parse_identify(xml.as_bytes()).unwrap();
        assert_eq!(id.product_vendor, "Microsoft Corporation");
        assert_eq!(id.product_version, "OS: 0.0.0 SP: 0.0 Stack: 3.0");
        assert_eq!(id.security_profiles.len(), 1);
        assert!(parse_identify(b"<a/>").is_err());
    }
}
