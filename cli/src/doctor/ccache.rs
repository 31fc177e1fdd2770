//! Reading an MIT `FILE:` credential cache (formats 0x0503 and 0x0504,
//! big-endian) for what GSSAPI does not tell: each ticket's flags
//! (forwardable, renewable), end time and session key type, and the
//! KDC time offset. The file is the user's, but may be damaged: every
//! length is checked against what remains and every loop consumes bytes.

/// One credential of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The client principal, `user@REALM`.
    pub client: String,
    /// The service principal, `krbtgt/REALM@REALM` for a TGT.
    pub server: String,
    /// Session key encryption type number.
    pub key_enctype: u16,
    /// Encryption type of the ticket itself (the service's key), when the
    /// ticket could be read.
    pub ticket_enctype: Option<i64>,
    /// Seconds since the epoch.
    pub start: u32,
    /// Seconds since the epoch.
    pub end: u32,
    /// Seconds since the epoch (0: not renewable).
    pub renew_till: u32,
    /// TicketFlags.
    pub flags: u32,
}

/// What the cache holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    /// The default principal.
    pub principal: String,
    /// The KDC time offset recorded by kdc_timesync, in seconds.
    pub time_offset: Option<i64>,
    /// Credentials (configuration entries left out).
    pub credentials: Vec<Credential>,
}

/// Ticket flag bits (RFC 4120 5.3, as MIT stores them).
pub const FORWARDABLE: u32 = 0x4000_0000;
/// RENEWABLE.
pub const RENEWABLE: u32 = 0x0080_0000;

/// The names of the flags set in `flags`.
pub fn flag_names(flags: u32) -> Vec<&'static str> {
    const NAMES: &[(u32, &str)] = &[
        (FORWARDABLE, "forwardable"),
        (0x2000_0000, "forwarded"),
        (0x1000_0000, "proxiable"),
        (0x0800_0000, "proxy"),
        (0x0400_0000, "may-postdate"),
        (0x0200_0000, "postdated"),
        (0x0100_0000, "invalid"),
        (RENEWABLE, "renewable"),
        (0x0040_0000, "initial"),
        (0x0020_0000, "pre-authenticated"),
        (0x0010_0000, "hw-authenticated"),
        (0x0008_0000, "transit-policy-checked"),
        (0x0004_0000, "ok-as-delegate"),
        (0x0002_0000, "anonymous"),
    ];
    NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| *n)
        .collect()
}

/// The name of an encryption type number.
pub fn enctype_name(e: i64) -> String {
    match e {
        1 => "des-cbc-crc".into(),
        3 => "des-cbc-md5".into(),
        16 => "des3-cbc-sha1".into(),
        17 => "aes128-cts-hmac-sha1-96".into(),
        18 => "aes256-cts-hmac-sha1-96".into(),
        19 => "aes128-cts-hmac-sha256-128".into(),
        20 => "aes256-cts-hmac-sha384-192".into(),
        23 => "rc4-hmac".into(),
        24 => "rc4-hmac-exp".into(),
        25 => "camellia128-cts-cmac".into(),
        26 => "camellia256-cts-cmac".into(),
        n => format!("enctype {n}"),
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.b.len() {
            return Err(format!(
                "truncated: {n} bytes wanted, {} left",
                self.b.len()
            ));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn counted(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }
    fn principal(&mut self) -> Result<String, String> {
        let _name_type = self.u32()?;
        let count = self.u32()? as usize;
        let realm = String::from_utf8_lossy(self.counted()?).into_owned();
        // Each component takes at least 4 bytes: a count larger than that
        // cannot be real.
        if count > self.b.len() / 4 {
            return Err(format!("{count} principal components do not fit"));
        }
        let mut parts = Vec::with_capacity(count);
        for _ in 0..count {
            parts.push(String::from_utf8_lossy(self.counted()?).into_owned());
        }
        Ok(format!("{}@{realm}", parts.join("/")))
    }
    /// A list of (u16 type, counted data): addresses and authdata.
    fn skip_list(&mut self) -> Result<(), String> {
        let count = self.u32()? as usize;
        if count > self.b.len() / 6 {
            return Err(format!("{count} list entries do not fit"));
        }
        for _ in 0..count {
            self.u16()?;
            self.counted()?;
        }
        Ok(())
    }
}

/// One DER element: (tag, contents, rest).
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | x as usize);
        (len, &rest[n..])
    };
    (len <= rest.len()).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The etype of a Ticket's enc-part: `[APPLICATION 1] SEQUENCE { [0]
/// tkt-vno, [1] realm, [2] sname, [3] EncryptedData { [0] etype ... } }`.
fn ticket_enctype(ticket: &[u8]) -> Option<i64> {
    let (0x61, app, _) = der(ticket)? else {
        return None;
    };
    let (0x30, mut fields, _) = der(app)? else {
        return None;
    };
    while !fields.is_empty() {
        let (tag, v, rest) = der(fields)?;
        if tag == 0xa3 {
            let (0x30, enc, _) = der(v)? else {
                return None;
            };
            let (0xa0, etype, _) = der(enc)? else {
                return None;
            };
            let (0x02, int, _) = der(etype)? else {
                return None;
            };
            if int.is_empty() || int.len() > 4 {
                return None;
            }
            let negative = int[0] & 0x80 != 0;
            let start: i64 = if negative { -1 } else { 0 };
            return Some(int.iter().fold(start, |acc, &x| (acc << 8) | i64::from(x)));
        }
        fields = rest;
    }
    None
}

/// Parses a credential cache file's bytes.
pub fn parse(data: &[u8]) -> Result<Cache, String> {
    let mut r = Reader { b: data };
    let version = r.u16()?;
    if version != 0x0503 && version != 0x0504 {
        return Err(format!(
            "credential cache format 0x{version:04x} is not supported (0x0503, 0x0504)"
        ));
    }
    let mut time_offset = None;
    if version == 0x0504 {
        let len = r.u16()? as usize;
        let mut h = Reader { b: r.bytes(len)? };
        while !h.b.is_empty() {
            let tag = h.u16()?;
            let n = h.u16()? as usize;
            let v = h.bytes(n)?;
            if tag == 1 && n == 8 {
                let secs = i32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                time_offset = Some(i64::from(secs));
            }
        }
    }
    let principal = r.principal()?;
    let mut credentials = Vec::new();
    while !r.b.is_empty() {
        let client = r.principal()?;
        let server = r.principal()?;
        let key_enctype = r.u16()?;
        if version == 0x0503 {
            r.u16()?;
        }
        r.counted()?;
        let _auth = r.u32()?;
        let start = r.u32()?;
        let end = r.u32()?;
        let renew_till = r.u32()?;
        let _is_skey = r.u8()?;
        let flags = r.u32()?;
        r.skip_list()?;
        r.skip_list()?;
        let ticket = r.counted()?;
        r.counted()?;
        if server.ends_with("@X-CACHECONF:") {
            continue;
        }
        credentials.push(Credential {
            client,
            server,
            key_enctype,
            ticket_enctype: ticket_enctype(ticket),
            start,
            end,
            renew_till,
            flags,
        });
    }
    Ok(Cache {
        principal,
        time_offset,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    }

    fn principal(out: &mut Vec<u8>, parts: &[&str], realm: &str) {
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&(parts.len() as u32).to_be_bytes());
        counted(out, realm.as_bytes());
        for p in parts {
            counted(out, p.as_bytes());
        }
    }

    /// A cache as MIT writes it: header with a time offset, one TGT.
    fn sample() -> Vec<u8> {
        let mut b = vec![0x05, 0x04, 0x00, 0x0c, 0x00, 0x01, 0x00, 0x08];
        b.extend_from_slice(&3600i32.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        principal(&mut b, &["alice"], "EXAMPLE.COM");
        principal(&mut b, &["alice"], "EXAMPLE.COM");
        principal(&mut b, &["krbtgt", "EXAMPLE.COM"], "EXAMPLE.COM");
        b.extend_from_slice(&18u16.to_be_bytes());
        counted(&mut b, &[7; 32]);
        for t in [100u32, 100, 200, 300] {
            b.extend_from_slice(&t.to_be_bytes());
        }
        b.push(0);
        b.extend_from_slice(&(FORWARDABLE | RENEWABLE).to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0u32.to_be_bytes());
        // Ticket: [APPLICATION 1] { SEQ { [0] 5, [3] { SEQ { [0] 18 } } } }
        let ticket = [
            0x61, 0x0e, 0x30, 0x0c, 0xa0, 0x03, 0x02, 0x01, 0x05, 0xa3, 0x05, 0x30, 0x03, 0xa0,
            0x01, 0x12,
        ];
        // (the inner [0] is malformed on purpose: no INTEGER inside)
        counted(&mut b, &ticket);
        counted(&mut b, &[]);
        b
    }

    #[test]
    fn reads_a_cache_and_refuses_every_truncation() {
        let data = sample();
        let c = parse(&data).unwrap();
        assert_eq!(c.principal, "alice@EXAMPLE.COM");
        assert_eq!(c.time_offset, Some(3600));
        assert_eq!(c.credentials.len(), 1);
        let t = &c.credentials[0];
        assert_eq!(t.server, "krbtgt/EXAMPLE.COM@EXAMPLE.COM");
        assert_eq!((t.key_enctype, t.end, t.renew_till), (18, 200, 300));
        assert_eq!(t.ticket_enctype, None);
        assert_eq!(flag_names(t.flags), ["forwardable", "renewable"]);
        for n in 1..data.len() {
            if let Ok(c) = parse(&data[..n]) {
                // Only a cut right after the default principal parses.
                assert!(c.credentials.is_empty(), "{n}");
            }
        }
        assert!(parse(&[0x05, 0x02]).is_err());
    }

    #[test]
    fn ticket_enctype_from_der() {
        let t = [
            0x61, 0x10, 0x30, 0x0e, 0xa0, 0x03, 0x02, 0x01, 0x05, 0xa3, 0x07, 0x30, 0x05, 0xa0,
            0x03, 0x02, 0x01, 0x12,
        ];
        assert_eq!(ticket_enctype(&t), Some(18));
        assert_eq!(ticket_enctype(&t[..10]), None);
    }
}
