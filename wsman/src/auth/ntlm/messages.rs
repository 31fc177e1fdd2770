//! NTLM message encoding (MS-NLMP 2.2.1): NEGOTIATE, CHALLENGE, AUTHENTICATE
//! and AV pairs. Parsing checks every offset against the buffer.

use super::NtlmError;

/// "NTLMSSP\0", the first eight bytes of every NTLM message.
pub const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// NegotiateFlags bits used here (MS-NLMP 2.2.2.5).
pub mod flags {
    /// NTLMSSP_NEGOTIATE_UNICODE.
    pub const UNICODE: u32 = 0x0000_0001;
    /// NTLMSSP_REQUEST_TARGET.
    pub const REQUEST_TARGET: u32 = 0x0000_0004;
    /// NTLMSSP_NEGOTIATE_SIGN.
    pub const SIGN: u32 = 0x0000_0010;
    /// NTLMSSP_NEGOTIATE_SEAL.
    pub const SEAL: u32 = 0x0000_0020;
    /// NTLMSSP_NEGOTIATE_NTLM.
    pub const NTLM: u32 = 0x0000_0200;
    /// NTLMSSP_NEGOTIATE_ALWAYS_SIGN.
    pub const ALWAYS_SIGN: u32 = 0x0000_8000;
    /// NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY.
    pub const EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
    /// NTLMSSP_NEGOTIATE_TARGET_INFO.
    pub const TARGET_INFO: u32 = 0x0080_0000;
    /// NTLMSSP_NEGOTIATE_VERSION.
    pub const VERSION: u32 = 0x0200_0000;
    /// NTLMSSP_NEGOTIATE_128.
    pub const NEG_128: u32 = 0x2000_0000;
    /// NTLMSSP_NEGOTIATE_KEY_EXCH.
    pub const KEY_EXCH: u32 = 0x4000_0000;
    /// NTLMSSP_NEGOTIATE_56.
    pub const NEG_56: u32 = 0x8000_0000;

    /// What this client asks for: NTLMv2 with extended session security,
    /// signing, sealing, 128-bit keys and key exchange.
    pub const CLIENT: u32 = UNICODE
        | REQUEST_TARGET
        | SIGN
        | SEAL
        | NTLM
        | ALWAYS_SIGN
        | EXTENDED_SESSIONSECURITY
        | VERSION
        | NEG_128
        | KEY_EXCH
        | NEG_56;
}

/// AV pair ids (MS-NLMP 2.2.2.1).
pub mod av {
    /// MsvAvEOL.
    pub const EOL: u16 = 0;
    /// MsvAvFlags.
    pub const FLAGS: u16 = 6;
    /// MsvAvTimestamp.
    pub const TIMESTAMP: u16 = 7;
    /// MsvAvTargetName.
    pub const TARGET_NAME: u16 = 9;
    /// MsvAvChannelBindings.
    pub const CHANNEL_BINDINGS: u16 = 10;
    /// MsvAvFlags bit: the AUTHENTICATE message carries a MIC.
    pub const FLAG_MIC: u32 = 0x2;
}

/// Our VERSION field: Windows 10.0 build 20348, NTLM revision 15. Servers use
/// it only for diagnostics.
const VERSION: [u8; 8] = [10, 0, 0x7c, 0x4f, 0, 0, 0, 0x0f];

/// Builds a NEGOTIATE_MESSAGE with empty domain and workstation fields.
pub fn negotiate(flags: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(40);
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&flags.to_le_bytes());
    for _ in 0..2 {
        // Empty DomainNameFields / WorkstationFields pointing at the payload end.
        m.extend_from_slice(&0u16.to_le_bytes());
        m.extend_from_slice(&0u16.to_le_bytes());
        m.extend_from_slice(&40u32.to_le_bytes());
    }
    m.extend_from_slice(&VERSION);
    m
}

/// The parts of a CHALLENGE_MESSAGE the client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// NegotiateFlags chosen by the server.
    pub flags: u32,
    /// The 8-byte server challenge.
    pub server_challenge: [u8; 8],
    /// Raw TargetInfo (AV pairs).
    pub target_info: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, NtlmError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| NtlmError::Malformed(format!("message too short for field at {at}")))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, NtlmError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| NtlmError::Malformed(format!("message too short for field at {at}")))
}

/// Reads a (len, maxlen, offset) field descriptor at `at` and returns its bytes.
fn field<'a>(b: &'a [u8], at: usize, what: &str) -> Result<&'a [u8], NtlmError> {
    let len = u16_at(b, at)? as usize;
    let off = u32_at(b, at + 4)? as usize;
    if len == 0 {
        return Ok(&[]);
    }
    b.get(off..off.saturating_add(len))
        .ok_or_else(|| NtlmError::Malformed(format!("{what} points outside the message")))
}

impl Challenge {
    /// Parses a CHALLENGE_MESSAGE.
    pub fn parse(b: &[u8]) -> Result<Self, NtlmError> {
        if b.len() < 32 || &b[..8] != SIGNATURE {
            return Err(NtlmError::Malformed(
                "server token is not an NTLM message".into(),
            ));
        }
        let kind = u32_at(b, 8)?;
        if kind != 2 {
            return Err(NtlmError::Malformed(format!(
                "expected CHALLENGE (type 2), got type {kind}"
            )));
        }
        let flags = u32_at(b, 20)?;
        let mut server_challenge = [0u8; 8];
        server_challenge.copy_from_slice(&b[24..32]);
        let target_info = if b.len() >= 48 && flags & flags::TARGET_INFO != 0 {
            field(b, 40, "TargetInfo")?.to_vec()
        } else {
            Vec::new()
        };
        Ok(Challenge {
            flags,
            server_challenge,
            target_info,
        })
    }
}

/// Splits AV pairs into (id, value) until MsvAvEOL.
pub fn parse_av_pairs(mut b: &[u8]) -> Result<Vec<(u16, Vec<u8>)>, NtlmError> {
    let mut out = Vec::new();
    loop {
        if b.len() < 4 {
            // Some servers omit the terminator; accept a clean end.
            return if b.is_empty() {
                Ok(out)
            } else {
                Err(NtlmError::Malformed("truncated AV pair".into()))
            };
        }
        let id = u16::from_le_bytes([b[0], b[1]]);
        let len = u16::from_le_bytes([b[2], b[3]]) as usize;
        if id == av::EOL {
            return Ok(out);
        }
        let value = b
            .get(4..4 + len)
            .ok_or_else(|| NtlmError::Malformed("AV pair longer than TargetInfo".into()))?;
        out.push((id, value.to_vec()));
        b = &b[4 + len..];
    }
}

/// Encodes AV pairs followed by MsvAvEOL.
pub fn encode_av_pairs(pairs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, v) in pairs {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
        out.extend_from_slice(v);
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out
}

/// Fields of an AUTHENTICATE_MESSAGE.
pub struct Authenticate<'a> {
    /// LmChallengeResponse.
    pub lm_response: &'a [u8],
    /// NtChallengeResponse.
    pub nt_response: &'a [u8],
    /// Domain, UTF-16LE.
    pub domain: &'a [u8],
    /// User, UTF-16LE.
    pub user: &'a [u8],
    /// Workstation, UTF-16LE.
    pub workstation: &'a [u8],
    /// EncryptedRandomSessionKey (empty without KEY_EXCH).
    pub encrypted_session_key: &'a [u8],
    /// NegotiateFlags.
    pub flags: u32,
}

/// Offset of the MIC inside an AUTHENTICATE_MESSAGE that has a VERSION.
pub const MIC_OFFSET: usize = 72;
const AUTH_HEADER: usize = 88;

/// Builds an AUTHENTICATE_MESSAGE with a zeroed MIC field (filled in later).
pub fn authenticate(a: &Authenticate<'_>) -> Result<Vec<u8>, NtlmError> {
    let payloads = [
        a.lm_response,
        a.nt_response,
        a.domain,
        a.user,
        a.workstation,
        a.encrypted_session_key,
    ];
    let mut m = Vec::with_capacity(AUTH_HEADER + payloads.iter().map(|p| p.len()).sum::<usize>());
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&3u32.to_le_bytes());
    let mut off = AUTH_HEADER;
    for p in payloads {
        let len = u16::try_from(p.len()).map_err(|_| {
            NtlmError::Malformed("AUTHENTICATE field longer than 65535 bytes".into())
        })?;
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&(off as u32).to_le_bytes());
        off += p.len();
    }
    m.extend_from_slice(&a.flags.to_le_bytes());
    m.extend_from_slice(&VERSION);
    m.extend_from_slice(&[0u8; 16]);
    debug_assert_eq!(m.len(), AUTH_HEADER);
    for p in payloads {
        m.extend_from_slice(p);
    }
    Ok(m)
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// The CHALLENGE_MESSAGE of MS-NLMP 4.2.4.3.
    pub const SPEC_CHALLENGE: &str = concat!(
        "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef",
        "00000000000000002400240044000000060070170000000f5300650072007600",
        "6500720002000c0044006f006d00610069006e0001000c005300650072007600",
        "6500720000000000"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiate_layout() {
        let m = negotiate(flags::CLIENT);
        assert_eq!(m.len(), 40);
        assert_eq!(&m[..8], SIGNATURE);
        assert_eq!(u32_at(&m, 8).unwrap(), 1);
        assert_eq!(u32_at(&m, 12).unwrap(), 0xE208_8235);
    }

    use super::tests_support::SPEC_CHALLENGE;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn parses_the_spec_challenge() {
        let c = Challenge::parse(&unhex(SPEC_CHALLENGE)).unwrap();
        assert_eq!(c.flags, 0xe28a_8233);
        assert_eq!(
            c.server_challenge,
            [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]
        );
        let pairs = parse_av_pairs(&c.target_info).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[0].0, 2);
        assert_eq!(pairs[1].0, 1);
        assert_eq!(encode_av_pairs(&pairs), c.target_info);
    }

    #[test]
    fn malformed_challenges_are_errors_not_panics() {
        let good = unhex(SPEC_CHALLENGE);
        for cut in 0..good.len() {
            let _ = Challenge::parse(&good[..cut]);
        }
        let mut bad = good.clone();
        bad[44] = 0xff; // TargetInfo offset far outside
        assert!(Challenge::parse(&bad).is_err());
        assert!(Challenge::parse(b"NTLMSSP\0\x01\0\0\0xxxxxxxxxxxxxxxxxxxxxxxx").is_err());
        assert!(parse_av_pairs(&[6, 0, 9, 0, 1]).is_err());
    }

    #[test]
    fn authenticate_offsets_point_at_payloads() {
        let a = Authenticate {
            lm_response: &[1; 24],
            nt_response: &[2; 50],
            domain: &[3; 4],
            user: &[4; 6],
            workstation: &[],
            encrypted_session_key: &[5; 16],
            flags: 7,
        };
        let m = authenticate(&a).unwrap();
        assert_eq!(field(&m, 12, "lm").unwrap(), &[1; 24]);
        assert_eq!(field(&m, 20, "nt").unwrap(), &[2; 50]);
        assert_eq!(field(&m, 28, "dom").unwrap(), &[3; 4]);
        assert_eq!(field(&m, 36, "user").unwrap(), &[4; 6]);
        assert_eq!(field(&m, 52, "key").unwrap(), &[5; 16]);
        assert_eq!(u32_at(&m, 60).unwrap(), 7);
        assert_eq!(&m[MIC_OFFSET..MIC_OFFSET + 16], &[0; 16]);
    }
}
