//! Kerberos and SPNEGO through the system GSSAPI (MIT krb5) with libgssapi,
//! so users' `kinit`, ticket caches, keytabs and krb5.conf work as with every
//! other Kerberos tool.
//!
//! These calls may block (KDC round trips); the transport runs them on the
//! blocking thread pool.

use crate::secret::Secret;
use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::name::Name;
use libgssapi::oid::{
    OidSet, GSS_MECH_KRB5, GSS_MECH_SPNEGO, GSS_NT_HOSTBASED_SERVICE, GSS_NT_KRB5_PRINCIPAL,
};
use libgssapi::util::{GssIov, GssIovType};

/// A GSSAPI failure with the library's own explanation (major and minor
/// status text, e.g. "No Kerberos credentials available").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GSSAPI {what}: {message}")]
pub struct GssError {
    /// What was being done.
    pub what: String,
    /// gss_display_status text.
    pub message: String,
}

fn gss_err(what: &str) -> impl FnOnce(libgssapi::error::Error) -> GssError + '_ {
    move |e| GssError {
        what: what.to_string(),
        message: e.to_string().trim().to_string(),
    }
}

/// Kerberos delegation was asked for, but the context carries no forwarded
/// ticket-granting ticket: MIT GSSAPI leaves the delegation out (and says
/// so only in the flags it grants) when the user's TGT is not forwardable
/// or the KDC refuses to issue a forwarded one. The server would then hold
/// no credentials for a second hop, so the connection is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Kerberos delegation to {spn} was requested, but the ticket-granting ticket of {principal} \
     could not be forwarded, so the server would get no credentials for a second hop. Either \
     the ticket is not forwardable (get one with `kinit -f`, or set `forwardable = true` in \
     krb5.conf [libdefaults] when a password is used), or the KDC refused a forwarded ticket \
     (the account must not be \"sensitive and cannot be delegated\", and the KDC policy must \
     allow forwardable tickets for it)"
)]
pub struct DelegationRefused {
    /// The client principal, e.g. `alice@EXAMPLE.COM` (empty if unknown).
    pub principal: String,
    /// The service principal delegated to.
    pub spn: String,
}

/// Which GSSAPI mechanism to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GssMech {
    /// Raw Kerberos 5 tokens (HTTP scheme `Kerberos`).
    Kerberos,
    /// SPNEGO (HTTP scheme `Negotiate`).
    Spnego,
}

/// Converts `DOMAIN\user` into `user@DOMAIN` (realms are upper case); other
/// forms pass through.
pub fn kerberos_principal(username: &str) -> String {
    match username.split_once('\\') {
        Some((domain, user)) => format!("{user}@{}", domain.to_uppercase()),
        None => username.to_string(),
    }
}

/// Gets initiator credentials: with a password, a fresh TGT from the KDC
/// (kept in memory); otherwise the default ticket cache (`KRB5CCNAME`),
/// optionally for a given principal.
pub fn acquire_credentials(
    username: Option<&str>,
    password: Option<&Secret>,
) -> Result<Cred, GssError> {
    // Both mechanisms: a credential with only a Kerberos element has nothing
    // MIT's SPNEGO can use when it was made from a password (Negotiate then
    // fell back to NTLM on a Kerberos domain).
    let mut mechs =
        OidSet::singleton(GSS_MECH_KRB5).map_err(gss_err("creating a mechanism set"))?;
    mechs
        .add(GSS_MECH_SPNEGO)
        .map_err(gss_err("creating a mechanism set"))?;
    let name = match username {
        Some(u) => Some(
            Name::new(
                kerberos_principal(u).as_bytes(),
                Some(GSS_NT_KRB5_PRINCIPAL),
            )
            .map_err(gss_err("parsing the user principal"))?,
        ),
        None => None,
    };
    match password {
        Some(pw) => Cred::acquire_with_password(
            name.as_ref(),
            pw.expose(),
            None,
            CredUsage::Initiate,
            Some(&mechs),
        )
        .map_err(gss_err("getting a Kerberos ticket with the password")),
        None => Cred::acquire(name.as_ref(), None, CredUsage::Initiate, Some(&mechs))
            .map_err(gss_err("finding Kerberos credentials in the ticket cache")),
    }
}

/// Imports the target: `svc/host@REALM` as a Kerberos principal, `svc/host`
/// as the host-based service `svc@host` (realm from krb5.conf domain_realm).
fn target_name(spn: &str) -> Result<Name, GssError> {
    if spn.contains('@') {
        Name::new(spn.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL))
    } else {
        let hostbased = match spn.split_once('/') {
            Some((svc, host)) => format!("{svc}@{host}"),
            None => spn.to_string(),
        };
        Name::new(hostbased.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE))
    }
    .map_err(gss_err("parsing the service principal name"))
}

/// The flags an established context must have been granted: MUTUAL
/// always (the server proved it holds the service key: over plain HTTP,
/// or HTTPS without certificate checks, nothing else authenticates it);
/// CONF and INTEG when the context seals WinRM messages (HTTP), since
/// otherwise `gss_wrap` would send them signed but readable. Over HTTPS
/// without message encryption the context seals nothing, so CONF and INTEG
/// are not needed.
pub fn missing_flags(granted: CtxFlags, seals_messages: bool) -> Vec<&'static str> {
    let mut required = vec![(CtxFlags::GSS_C_MUTUAL_FLAG, "mutual authentication")];
    if seals_messages {
        required.push((CtxFlags::GSS_C_CONF_FLAG, "confidentiality"));
        required.push((CtxFlags::GSS_C_INTEG_FLAG, "integrity"));
    }
    required
        .into_iter()
        .filter(|(flag, _)| !granted.contains(*flag))
        .map(|(_, name)| name)
        .collect()
}

/// How many bytes of a message [`GssClient::unwrap_in_place`] compares
/// before and after unwrapping: an encrypted message changes them (the
/// chance that 16 bytes of AES or RC4 ciphertext equal the plaintext is
/// 2^-128); a message that was only signed does not.
const CONF_CHECK_LEN: usize = 16;

/// The client side of a Kerberos or SPNEGO context.
pub struct GssClient {
    ctx: ClientCtx,
    channel_bindings: Option<Vec<u8>>,
    spn: String,
}

impl std::fmt::Debug for GssClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GssClient")
            .field("complete", &self.ctx.is_complete())
            .finish_non_exhaustive()
    }
}

/// Output of a GSS wrap in WinRM's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    /// Security trailer / token header sent before the data.
    pub header: Vec<u8>,
    /// Encrypted data followed by any padding.
    pub data: Vec<u8>,
    /// Padding length included in `data`.
    pub padding: usize,
}

impl GssClient {
    /// Prepares a context towards `spn` (`HTTP/host` form); `channel_bindings`
    /// is the TLS application data, if any.
    pub fn new(
        cred: Option<Cred>,
        spn: &str,
        mech: GssMech,
        delegate: bool,
        channel_bindings: Option<Vec<u8>>,
    ) -> Result<Self, GssError> {
        let mut flags = CtxFlags::GSS_C_MUTUAL_FLAG
            | CtxFlags::GSS_C_REPLAY_FLAG
            | CtxFlags::GSS_C_SEQUENCE_FLAG
            | CtxFlags::GSS_C_CONF_FLAG
            | CtxFlags::GSS_C_INTEG_FLAG;
        if delegate {
            flags |= CtxFlags::GSS_C_DELEG_FLAG;
        }
        let oid = match mech {
            GssMech::Kerberos => GSS_MECH_KRB5,
            GssMech::Spnego => GSS_MECH_SPNEGO,
        };
        Ok(GssClient {
            ctx: ClientCtx::new(cred, target_name(spn)?, flags, Some(oid)),
            channel_bindings,
            spn: spn.to_owned(),
        })
    }

    /// One context step: feed the server token (None at first), get the next
    /// token to send (None when nothing more is to be sent).
    pub fn step(&mut self, server_token: Option<&[u8]>) -> Result<Option<Vec<u8>>, GssError> {
        let out = self
            .ctx
            .step(server_token, self.channel_bindings.as_deref())
            .map_err(gss_err("initiating the security context"))?;
        Ok(out.map(|b| b.to_vec()))
    }

    /// Whether the context is established.
    pub fn is_complete(&self) -> bool {
        self.ctx.is_complete()
    }

    /// Checks the flags the established context was granted (see
    /// [`missing_flags`]); `seals_messages` when it will encrypt WinRM
    /// messages.
    pub fn verify_granted(&self, seals_messages: bool) -> Result<(), GssError> {
        let what = "checking the established security context";
        if !self.ctx.is_complete() {
            return Err(GssError {
                what: what.into(),
                message: "the context is not established".into(),
            });
        }
        let granted = self.ctx.flags().map_err(gss_err(what))?;
        let missing = missing_flags(granted, seals_messages);
        if missing.is_empty() {
            return Ok(());
        }
        Err(GssError {
            what: what.into(),
            message: format!(
                "the server's Kerberos context did not grant {} (granted flags {:#x}); WinRM needs \
                 mutual authentication{}. Check the server's Kerberos configuration, or use HTTPS",
                missing.join(", "),
                granted.bits(),
                if seals_messages {
                    ", confidentiality and integrity to encrypt messages over HTTP"
                } else {
                    ""
                }
            ),
        })
    }

    /// Checks that the established context delegated the user's TGT
    /// (GSS_C_DELEG_FLAG granted, not just requested). MIT drops the
    /// delegation silently when the TGT is not forwardable or the KDC
    /// refuses to forward it; this turns that into [`DelegationRefused`].
    pub fn verify_delegated(&self) -> Result<(), DelegationRefused> {
        let refused = || DelegationRefused {
            principal: self
                .ctx
                .source_name()
                .map(|n| n.to_string())
                .unwrap_or_default(),
            spn: self.spn.clone(),
        };
        // gss_inquire_context: the flags the mechanism granted. (libgssapi's
        // own record of the flags also holds the requested ones.)
        match self.ctx.flags() {
            Ok(granted) if granted.contains(CtxFlags::GSS_C_DELEG_FLAG) => Ok(()),
            _ => Err(refused()),
        }
    }

    /// Encrypts with gss_wrap_iov over HEADER | DATA | PADDING, which yields
    /// the DCE-style token WinRM expects (trailer folded into the header).
    pub fn wrap(&mut self, msg: &[u8]) -> Result<Wrapped, GssError> {
        let mut data = msg.to_vec();
        let mut iovs = [
            GssIov::new_alloc(GssIovType::Header),
            GssIov::new(GssIovType::Data, &mut data),
            GssIov::new_alloc(GssIovType::Padding),
        ];
        self.ctx
            .wrap_iov(true, &mut iovs)
            .map_err(gss_err("encrypting a message"))?;
        let header = iovs[0].to_vec();
        let padding = iovs[2].to_vec();
        drop(iovs);
        let pad_len = padding.len();
        data.extend_from_slice(&padding);
        Ok(Wrapped {
            header,
            data,
            padding: pad_len,
        })
    }

    /// Encrypts `msg` into one gss_wrap token (CredSSP's `pubKeyAuth` and
    /// `authInfo`).
    pub fn wrap_token(&mut self, msg: &[u8]) -> Result<Vec<u8>, GssError> {
        let token = self
            .ctx
            .wrap(true, msg)
            .map_err(gss_err("encrypting a message"))?;
        Ok(token.to_vec())
    }

    /// Verifies and decrypts one gss_wrap token from the server.
    pub fn unwrap_token(&mut self, token: &[u8]) -> Result<Vec<u8>, GssError> {
        let msg = self
            .ctx
            .unwrap(token)
            .map_err(gss_err("decrypting a message"))?;
        Ok(msg.to_vec())
    }

    /// Decrypts and verifies a server message given as (header, data).
    pub fn unwrap(&mut self, header: &[u8], data: &[u8]) -> Result<Vec<u8>, GssError> {
        let mut header = header.to_vec();
        let mut data = data.to_vec();
        self.unwrap_in_place(&mut header, &mut data)?;
        Ok(data)
    }

    /// Decrypts and verifies a server message in place: `data` holds the
    /// plaintext afterwards (`header` is scratch). No copies: WinRM
    /// responses are up to MaxEnvelopeSize.
    ///
    /// A message that verifies but was not encrypted (an integrity-only
    /// wrap, conf_state 0) is refused. libgssapi 0.11 passes no conf_state
    /// to gss_unwrap_iov and does not expose the context handle, so this is
    /// seen from the data itself: unwrapping an encrypted message changes
    /// its first bytes, unwrapping a signed-only one leaves them as they
    /// were (see [`CONF_CHECK_LEN`]). Empty messages cannot show either
    /// and are refused (WinRM never sends one).
    pub fn unwrap_in_place(&mut self, header: &mut [u8], data: &mut [u8]) -> Result<(), GssError> {
        let what = "decrypting a message";
        if data.is_empty() {
            return Err(GssError {
                what: what.into(),
                message:
                    "the server sent an empty sealed message, which cannot be shown to be encrypted"
                        .into(),
            });
        }
        let mut before = [0u8; CONF_CHECK_LEN];
        let checked = data.len().min(CONF_CHECK_LEN);
        before[..checked].copy_from_slice(&data[..checked]);
        let mut iovs = [
            GssIov::new(GssIovType::Header, header),
            GssIov::new(GssIovType::Data, data),
        ];
        self.ctx.unwrap_iov(&mut iovs).map_err(gss_err(what))?;
        drop(iovs);
        if data[..checked] == before[..checked] {
            return Err(GssError {
                what: what.into(),
                message: "the server's message is signed but not encrypted (an integrity-only \
                          Kerberos wrap); refusing it, as the session requires encryption"
                    .into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_context_flags() {
        let all = CtxFlags::GSS_C_MUTUAL_FLAG
            | CtxFlags::GSS_C_CONF_FLAG
            | CtxFlags::GSS_C_INTEG_FLAG
            | CtxFlags::GSS_C_REPLAY_FLAG;
        assert!(missing_flags(all, true).is_empty());
        assert_eq!(
            missing_flags(all - CtxFlags::GSS_C_CONF_FLAG, true),
            ["confidentiality"]
        );
        assert_eq!(
            missing_flags(CtxFlags::GSS_C_REPLAY_FLAG, true),
            ["mutual authentication", "confidentiality", "integrity"]
        );
        // Over HTTPS without message encryption only mutual authentication
        // is required.
        assert!(missing_flags(CtxFlags::GSS_C_MUTUAL_FLAG, false).is_empty());
        assert_eq!(
            missing_flags(all - CtxFlags::GSS_C_MUTUAL_FLAG, false),
            ["mutual authentication"]
        );
    }

    #[test]
    fn principal_forms() {
        assert_eq!(kerberos_principal("PEER\\bob"), "bob@PEER");
        assert_eq!(kerberos_principal("bob@PEER.TEST"), "bob@PEER.TEST");
        assert_eq!(kerberos_principal("bob"), "bob");
    }
}

/// The Kerberos credentials the client would use, for diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSummary {
    /// The principal, e.g. `alice@EXAMPLE.COM`.
    pub principal: String,
    /// How long the credentials remain valid (zero when expired).
    pub lifetime: std::time::Duration,
}

/// Finds the credentials the client would use (the ticket cache, or a TGT
/// from the KDC with a password) and says whose they are and for how long.
/// Blocking (KDC round trip with a password).
pub fn credential_summary(
    username: Option<&str>,
    password: Option<&Secret>,
) -> Result<CredentialSummary, GssError> {
    let cred = acquire_credentials(username, password)?;
    let info = cred
        .info()
        .map_err(gss_err("reading the credentials' name and lifetime"))?;
    Ok(CredentialSummary {
        principal: info.name.to_string(),
        lifetime: info.lifetime,
    })
}

/// Requests a service ticket for `spn` with the client's credentials (the
/// first step of a raw Kerberos context, which asks the KDC for it): `Ok`
/// when the KDC issued one; otherwise the KDC's error as MIT krb5 reports
/// it in the minor status (e.g. `Server not found in Kerberos database`,
/// `Clock skew too great`, `KDC has no support for encryption type`).
/// Nothing is sent to the service. Blocking.
pub fn request_service_ticket(
    username: Option<&str>,
    password: Option<&Secret>,
    spn: &str,
) -> Result<(), GssError> {
    let cred = acquire_credentials(username, password)?;
    let mut ctx = GssClient::new(Some(cred), spn, GssMech::Kerberos, false, None)?;
    ctx.step(None).map(drop)
}

/// The Kerberos principal GSSAPI makes of `spn` (`HTTP/host` as a
/// host-based service, canonicalized as krb5.conf says: DNS
/// canonicalization of the host, and its realm from `[domain_realm]`; an
/// empty realm means none is mapped and the KDC's referrals decide), e.g.
/// `HTTP/win01.example.com@EXAMPLE.COM`.
pub fn canonical_service_principal(spn: &str) -> Result<String, GssError> {
    let name = target_name(spn)?;
    let canonical = name
        .canonicalize(Some(GSS_MECH_KRB5))
        .map_err(gss_err("canonicalizing the service principal name"))?;
    Ok(canonical.to_string())
}
