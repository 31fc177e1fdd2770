//! The HTTP legs of CredSSP authentication (MS-WSMV 2.2.9.1.2): each
//! token of [`CredSspClient`] goes out as `Authorization: CredSSP
//! <base64>`, the server's comes back in a 401's `WWW-Authenticate:
//! CredSSP <base64>`, until the server accepts the delegated credentials.

use super::{Connection, PostError, Reply, Shared, B64, SOAP_CONTENT_TYPE};
use crate::auth::credssp::{CredSspClient, CredSspError};
use crate::auth::gss::GssMech;
use crate::auth::{scheme, Security};
use crate::config::Auth;
use crate::encryption::Protocol;
use crate::error::Error;
use base64::Engine as _;
use zeroize::Zeroizing;

/// Bound on round trips: TLS 1.2 takes 2, TLS 1.3 up to 2, then
/// negotiate, public key and credentials: 5; a few more for slack.
const MAX_LEGS: usize = 10;

impl Shared {
    fn credssp_error(&self, source: CredSspError) -> Error {
        Error::CredSsp {
            endpoint: self.endpoint.clone(),
            source,
        }
    }
}

impl Connection {
    /// Runs the CredSSP exchange on this connection; as
    /// [`Connection::authenticate`] for the other mechanisms.
    pub(super) async fn authenticate_credssp(
        &mut self,
        shared: &Shared,
        body: Option<&[u8]>,
    ) -> Result<Reply, PostError> {
        let cfg = &shared.config;
        let Auth::CredSsp { username, password } = &cfg.auth else {
            return Err(Error::Config("CredSSP legs without CredSSP credentials".into()).into());
        };
        let leg_body = || body.map(<[u8]>::to_vec).unwrap_or_default();
        let leg_ct = body.map(|_| SOAP_CONTENT_TYPE);
        self.reset();
        self.conn(shared).await?;
        let generation = self.generation;
        // Inside CredSSP, SPNEGO as Windows clients use it: Kerberos when a
        // ticket-granting ticket of this user comes from the ticket cache or
        // from the KDC with the password, else NTLM. (The password goes to
        // the server either way.)
        let spn = cfg.spn();
        let kerberos = match super::start_gss(
            shared,
            Some(username.clone()),
            Some(password.clone()),
            &spn,
            GssMech::Spnego,
            false,
            None,
        )
        .await
        {
            Ok(started) => Some(started),
            Err(e) => {
                tracing::debug!(error = %e, "no Kerberos inside CredSSP; using NTLM");
                None
            }
        };
        let (mut client, mut token) =
            CredSspClient::new(username, password.clone(), Some(spn), kerberos)
                .map_err(|e| shared.credssp_error(e))?;
        for leg in 0..MAX_LEGS {
            // The tokens are TLS records: the password inside is encrypted,
            // but the header is cleared anyway.
            let header = Zeroizing::new(format!("{} {}", scheme::CREDSSP, B64.encode(&token)));
            let reply = self
                .post(shared, leg_body(), leg_ct, Some(header.as_str()))
                .await?;
            if self.generation != generation || self.http.is_none() && reply.status == 401 {
                return Err(shared
                    .auth_error("the server closed the connection during CredSSP authentication")
                    .into());
            }
            let server_token = reply
                .server_token(scheme::CREDSSP)
                .map_err(|e| shared.auth_error(e))?;
            if reply.status == 401 && server_token.is_none() && !client.accepts_empty_reply() {
                let offered = reply.offered_schemes();
                let reason = if leg == 0
                    && !offered
                        .iter()
                        .any(|o| o.eq_ignore_ascii_case(scheme::CREDSSP))
                {
                    format!(
                        "the server does not accept CredSSP (it offers: {}); CredSSP must be \
                         enabled on the server (Enable-WSManCredSSP -Role Server, or winrm set \
                         winrm/config/service/auth @{{CredSSP=\"true\"}}), or use another \
                         authentication method",
                        if offered.is_empty() {
                            "nothing".to_string()
                        } else {
                            offered.join(", ")
                        }
                    )
                } else if client.credentials_sent() {
                    format!(
                        "the server refused the credentials of {username:?} delegated with \
                         CredSSP (HTTP 401); check the user name and password, and that the \
                         server allows this account to log on"
                    )
                } else {
                    format!(
                        "the server rejected the credentials of {username:?} (credssp, HTTP \
                         401); check the user name, password and domain"
                    )
                };
                return Err(shared.auth_error(reason).into());
            }
            if reply.status == 401 {
                token = client
                    .step(server_token.as_deref())
                    .map_err(|e| shared.credssp_error(e))?;
                continue;
            }
            // Accepted.
            let version = client.version();
            let mechanism = client.mechanism();
            let session = client.finish().map_err(|e| shared.credssp_error(e))?;
            tracing::debug!(?version, ?mechanism, "CredSSP authentication complete");
            if !(200..300).contains(&reply.status) && body.is_none() {
                return Err(shared
                    .auth_error(format!(
                        "CredSSP authentication finished with HTTP {}",
                        reply.status
                    ))
                    .into());
            }
            self.security = Some((Security::CredSsp(Box::new(session)), Protocol::CredSsp));
            self.authenticated = self.http.is_some();
            return if body.is_some() {
                self.decrypt_reply(shared, reply, cfg.encrypts())
                    .map_err(Into::into)
            } else {
                Ok(reply)
            };
        }
        Err(shared
            .auth_error(format!(
                "CredSSP authentication did not finish within {MAX_LEGS} round trips"
            ))
            .into())
    }
}
