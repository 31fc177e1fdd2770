//! NTLMv2 client with MIC, key exchange, channel bindings and session
//! security, written on RustCrypto primitives (MS-NLMP).
//!
//! Sans-IO: [`NtlmClient::new`] gives the NEGOTIATE token, and
//! [`NtlmClient::authenticate`] turns the server's CHALLENGE into the
//! AUTHENTICATE token plus the [`NtlmSession`] that seals and unseals messages.

pub mod crypto;
pub mod messages;
pub mod session;

pub use session::NtlmSession;

use crate::secret::Secret;
use crypto::{hmac_md5, ntlmv2_response, ntlmv2_temp, ntowfv2, rc4_once, utf16le};
use messages::{av, flags, Authenticate, Challenge};
use zeroize::{Zeroize, Zeroizing};

/// NTLM failures (no secrets in the text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    /// A token from the server could not be parsed.
    #[error("malformed NTLM message: {0}")]
    Malformed(String),
    /// The server would not agree to what WinRM needs.
    #[error("NTLM negotiation: {0}")]
    Negotiation(String),
    /// The server's CHALLENGE lacks session-security flags this client
    /// requires ([`REQUIRED_FLAGS`]): without NEGOTIATE_128, messages would
    /// be sealed with 40- or 56-bit RC4 keys; without KEY_EXCH, the session
    /// key would not be random but derived from the password hash alone.
    #[error(
        "the server's NTLM CHALLENGE does not offer {} (it offered {offered:#010x}: {}); this client requires {}. \
         Require 128-bit NTLM session security on the server (policy \"Network security: Minimum \
         session security for NTLM SSP based servers\": require 128-bit encryption), check that \
         nothing on the path rewrites the NTLM messages, or use Kerberos",
        flag_names(*missing).join(", "),
        flag_names(*offered).join(", "),
        flag_names(REQUIRED_FLAGS).join(", ")
    )]
    MissingFlags {
        /// The required NegotiateFlags the server did not set.
        missing: u32,
        /// The NegotiateFlags of the CHALLENGE.
        offered: u32,
    },
    /// A sealed message failed verification.
    #[error("NTLM message verification failed: {0}")]
    BadSignature(String),
    /// The system random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
}

/// NegotiateFlags the server's CHALLENGE must carry: NTLMv2 session
/// security (extended session security), signing and sealing with 128-bit
/// keys and a random exported session key (key exchange), Unicode strings.
/// Windows has offered all of them since Windows 2000 / Vista (128-bit).
pub const REQUIRED_FLAGS: u32 = flags::EXTENDED_SESSIONSECURITY
    | flags::SIGN
    | flags::SEAL
    | flags::NEG_128
    | flags::KEY_EXCH
    | flags::UNICODE;

/// Names of the NegotiateFlags bits this client knows, for messages
/// (MS-NLMP 2.2.2.5 names without the `NTLMSSP_NEGOTIATE_` prefix).
pub fn flag_names(bits: u32) -> Vec<&'static str> {
    const NAMES: [(u32, &str); 12] = [
        (flags::UNICODE, "UNICODE"),
        (flags::REQUEST_TARGET, "REQUEST_TARGET"),
        (flags::SIGN, "SIGN"),
        (flags::SEAL, "SEAL"),
        (flags::NTLM, "NTLM"),
        (flags::ALWAYS_SIGN, "ALWAYS_SIGN"),
        (flags::EXTENDED_SESSIONSECURITY, "EXTENDED_SESSIONSECURITY"),
        (flags::TARGET_INFO, "TARGET_INFO"),
        (flags::VERSION, "VERSION"),
        (flags::NEG_128, "128"),
        (flags::KEY_EXCH, "KEY_EXCH"),
        (flags::NEG_56, "56"),
    ];
    let mut names: Vec<&'static str> = NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() {
        names.push("none of them");
    }
    names
}

/// Who to authenticate as.
#[derive(Clone)]
pub struct NtlmCredentials {
    /// User name without domain.
    pub user: String,
    /// Domain (may be empty, e.g. for a UPN in `user` or a local account).
    pub domain: String,
    /// Password.
    pub password: Secret,
}

impl std::fmt::Debug for NtlmCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtlmCredentials")
            .field("user", &self.user)
            .field("domain", &self.domain)
            .field("password", &self.password)
            .finish()
    }
}

impl NtlmCredentials {
    /// Splits `DOMAIN\user`; `user@domain` (a UPN) and plain `user` keep an
    /// empty domain, as Windows clients send them.
    pub fn from_username(username: &str, password: Secret) -> Self {
        let (domain, user) = match username.split_once('\\') {
            Some((d, u)) => (d.to_string(), u.to_string()),
            None => (String::new(), username.to_string()),
        };
        NtlmCredentials {
            user,
            domain,
            password,
        }
    }
}

/// Inputs that are random or time-based in real use, fixed in tests.
pub struct Nonces {
    /// Client challenge.
    pub client_challenge: [u8; 8],
    /// ExportedSessionKey when key exchange is negotiated (cleared when
    /// dropped).
    pub exported_session_key: [u8; 16],
    /// FILETIME used when the server sends no MsvAvTimestamp.
    pub now_filetime: u64,
}

impl Drop for Nonces {
    fn drop(&mut self) {
        self.exported_session_key.zeroize();
    }
}

impl Nonces {
    /// Fresh values from the OS random generator and the clock.
    pub fn generate() -> Result<Self, NtlmError> {
        let mut buf = Zeroizing::new([0u8; 24]);
        getrandom::fill(&mut *buf).map_err(|e| NtlmError::Random(e.to_string()))?;
        let mut client_challenge = [0u8; 8];
        client_challenge.copy_from_slice(&buf[..8]);
        let mut exported_session_key = [0u8; 16];
        exported_session_key.copy_from_slice(&buf[8..]);
        // FILETIME: 100 ns intervals since 1601-01-01.
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let now_filetime = (unix.as_nanos() / 100) as u64 + 116_444_736_000_000_000;
        Ok(Nonces {
            client_challenge,
            exported_session_key,
            now_filetime,
        })
    }
}

/// An NTLM client waiting for the server's CHALLENGE.
pub struct NtlmClient {
    creds: NtlmCredentials,
    negotiate: Vec<u8>,
    target_spn: Option<String>,
}

impl std::fmt::Debug for NtlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtlmClient")
            .field("creds", &self.creds)
            .field("target_spn", &self.target_spn)
            .finish_non_exhaustive()
    }
}

impl NtlmClient {
    /// Starts a context; returns the client and the NEGOTIATE token to send.
    /// `target_spn` (e.g. `HTTP/host`) goes into MsvAvTargetName.
    pub fn new(creds: NtlmCredentials, target_spn: Option<String>) -> (Self, Vec<u8>) {
        let negotiate = messages::negotiate(flags::CLIENT);
        let token = negotiate.clone();
        (
            NtlmClient {
                creds,
                negotiate,
                target_spn,
            },
            token,
        )
    }

    /// Answers the CHALLENGE: returns the AUTHENTICATE token and the session.
    /// `channel_binding_hash` is MD5 of the gss_channel_bindings_struct
    /// (see [`crate::auth::channel_bindings`]); `None` sends 16 zero bytes.
    pub fn authenticate(
        self,
        challenge: &[u8],
        channel_binding_hash: Option<[u8; 16]>,
    ) -> Result<(Vec<u8>, NtlmSession), NtlmError> {
        self.authenticate_with(challenge, channel_binding_hash, &Nonces::generate()?)
    }

    /// [`Self::authenticate`] with given nonces (deterministic, for tests).
    pub fn authenticate_with(
        self,
        challenge: &[u8],
        channel_binding_hash: Option<[u8; 16]>,
        nonces: &Nonces,
    ) -> Result<(Vec<u8>, NtlmSession), NtlmError> {
        let ch = Challenge::parse(challenge)?;
        let negotiated = flags::CLIENT & ch.flags | (ch.flags & flags::TARGET_INFO);
        let missing = REQUIRED_FLAGS & !negotiated;
        if missing != 0 {
            return Err(NtlmError::MissingFlags {
                missing,
                offered: ch.flags,
            });
        }

        // Amend the server's target info: MIC flag, channel bindings, SPN.
        let mut pairs = messages::parse_av_pairs(&ch.target_info)?;
        let server_time = pairs
            .iter()
            .find(|(id, v)| *id == av::TIMESTAMP && v.len() == 8)
            .map(|(_, v)| {
                let mut b = [0u8; 8];
                b.copy_from_slice(v);
                u64::from_le_bytes(b)
            });
        let mut had_flags = false;
        for (id, v) in pairs.iter_mut() {
            if *id == av::FLAGS && v.len() == 4 {
                let f = u32::from_le_bytes([v[0], v[1], v[2], v[3]]) | av::FLAG_MIC;
                *v = f.to_le_bytes().to_vec();
                had_flags = true;
            }
        }
        pairs.retain(|(id, _)| *id != av::CHANNEL_BINDINGS && *id != av::TARGET_NAME);
        if !had_flags {
            pairs.push((av::FLAGS, av::FLAG_MIC.to_le_bytes().to_vec()));
        }
        pairs.push((
            av::CHANNEL_BINDINGS,
            channel_binding_hash.unwrap_or([0; 16]).to_vec(),
        ));
        if let Some(spn) = &self.target_spn {
            pairs.push((av::TARGET_NAME, utf16le(spn)));
        }
        let target_info = messages::encode_av_pairs(&pairs);

        let key = ntowfv2(
            self.creds.password.expose(),
            &self.creds.user,
            &self.creds.domain,
        );
        let timestamp = server_time.unwrap_or(nonces.now_filetime);
        let temp = ntlmv2_temp(timestamp, &nonces.client_challenge, &target_info);
        let resp = ntlmv2_response(&key, &ch.server_challenge, &nonces.client_challenge, &temp);
        // With a server timestamp the LM response must be Z(24) (MS-NLMP 3.1.5.1.2).
        let lm_response = if server_time.is_some() {
            [0u8; 24]
        } else {
            resp.lm_response
        };

        // Key exchange (required): a random ExportedSessionKey, sent
        // encrypted with the key derived from the password.
        let exported = Zeroizing::new(nonces.exported_session_key);
        let encrypted_key = rc4_once(&*resp.session_base_key, &*exported);
        let domain = utf16le(&self.creds.domain);
        let user = utf16le(&self.creds.user);
        let mut msg = messages::authenticate(&Authenticate {
            lm_response: &lm_response,
            nt_response: &resp.nt_response,
            domain: &domain,
            user: &user,
            workstation: &[],
            encrypted_session_key: &encrypted_key,
            flags: negotiated,
        })?;
        let mic = hmac_md5(&*exported, &[&self.negotiate, challenge, &msg]);
        msg[messages::MIC_OFFSET..messages::MIC_OFFSET + 16].copy_from_slice(&mic);

        // REQUIRED_FLAGS holds NEG_128 and KEY_EXCH: 128-bit sealing keys
        // and an RC4-encrypted checksum.
        Ok((msg, NtlmSession::client(&exported, 16, true)))
    }
}

#[cfg(test)]
mod tests;
