//! What a server certificate says, for diagnostics: subject, issuer,
//! validity and the names it is issued for. A small DER reader for the
//! fields of X.509 that explain a failed TLS check (which CA is missing,
//! which names the certificate has, when it expired); it verifies nothing
//! (rustls does that). The certificate comes from the server: every length
//! is checked against what remains, and anything unexpected is an error.
//!
//! ```
//! # fn show(der: &[u8]) -> Result<(), wsman::cert::CertError> {
//! let c = wsman::cert::CertSummary::from_der(der)?;
//! println!("{} issued by {}, names {:?}, expires {}", c.subject, c.issuer, c.dns_names,
//!          wsman::cert::format_utc(c.not_after));
//! # Ok(()) }
//! ```

use std::net::IpAddr;

/// A certificate that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the certificate: {0}")]
pub struct CertError(String);

fn err<T>(what: &str) -> Result<T, CertError> {
    Err(CertError(what.to_string()))
}

/// The fields of a certificate that explain TLS failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject, as `CN=..., O=...` (the common attributes only).
    pub subject: String,
    /// Issuer, in the same form.
    pub issuer: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// DNS names of the subjectAltName extension.
    pub dns_names: Vec<String>,
    /// IP addresses of the subjectAltName extension.
    pub ip_addresses: Vec<IpAddr>,
    /// Issuer and subject are the same name (self-signed, or a root).
    pub self_issued: bool,
}

/// One DER element: tag, contents, and what follows it.
fn tlv(b: &[u8]) -> Result<(u8, &[u8], &[u8]), CertError> {
    let (&tag, rest) = b
        .split_first()
        .ok_or(CertError("truncated element".into()))?;
    if tag & 0x1f == 0x1f {
        return err("multi-byte tags are not used in certificates");
    }
    let (&first, rest) = rest
        .split_first()
        .ok_or(CertError("truncated length".into()))?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return err("bad length");
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if len > rest.len() {
        return err("element longer than the data left");
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// Skips an element that must have `tag`; returns what follows.
fn skip<'a>(b: &'a [u8], tag: u8, what: &str) -> Result<&'a [u8], CertError> {
    let (t, _, rest) = tlv(b)?;
    if t != tag {
        return Err(CertError(format!(
            "{what}: tag 0x{t:02x}, expected 0x{tag:02x}"
        )));
    }
    Ok(rest)
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_O: &[u8] = &[0x55, 0x04, 0x0a];
const OID_OU: &[u8] = &[0x55, 0x04, 0x0b];
const OID_C: &[u8] = &[0x55, 0x04, 0x06];
const OID_DC: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// A directory string as text (UTF-8, printable, IA5, T61 as Latin-1,
/// BMP as UTF-16BE).
fn string_value(tag: u8, v: &[u8]) -> String {
    match tag {
        0x1e => {
            let units: Vec<u16> = v
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        0x14 => v.iter().map(|&b| b as char).collect(),
        _ => String::from_utf8_lossy(v).into_owned(),
    }
}

/// A Name as `CN=..., O=...`, most specific first.
fn name(mut b: &[u8]) -> Result<String, CertError> {
    let mut parts = Vec::new();
    while !b.is_empty() {
        let (tag, mut set, rest) = tlv(b)?;
        if tag != 0x31 {
            return err("name: expected a SET");
        }
        while !set.is_empty() {
            let (tag, atv, next) = tlv(set)?;
            if tag != 0x30 {
                return err("name: expected an attribute");
            }
            let (otag, oid, value) = tlv(atv)?;
            if otag != 0x06 {
                return err("name: expected an OID");
            }
            let (vtag, v, _) = tlv(value)?;
            let label = match oid {
                OID_CN => Some("CN"),
                OID_O => Some("O"),
                OID_OU => Some("OU"),
                OID_C => Some("C"),
                OID_DC => Some("DC"),
                _ => None,
            };
            if let Some(label) = label {
                parts.push(format!("{label}={}", string_value(vtag, v)));
            }
            set = next;
        }
        b = rest;
    }
    parts.reverse();
    Ok(parts.join(", "))
}

fn digits(s: &[u8]) -> Result<i64, CertError> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return err("time: expected digits");
    }
    Ok(s.iter()
        .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0')))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// UTCTime or GeneralizedTime (`Z` form) as Unix seconds.
fn time(tag: u8, v: &[u8]) -> Result<i64, CertError> {
    let (year, rest) = match (tag, v.len()) {
        (0x17, 13) => {
            let yy = digits(&v[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &v[2..])
        }
        (0x18, 15) => (digits(&v[..4])?, &v[4..]),
        _ => return err("time: not a UTCTime or GeneralizedTime in Z form"),
    };
    if rest[10] != b'Z' {
        return err("time: not in UTC");
    }
    let f = |i: usize| digits(&rest[i..i + 2]);
    let (mo, d, h, mi, s) = (f(0)?, f(2)?, f(4)?, f(6)?, f(8)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return err("time: out of range");
    }
    Ok(days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let t = secs.rem_euclid(86_400);
    // civil_from_days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

fn subject_alt_names(mut b: &[u8], out: &mut CertSummary) -> Result<(), CertError> {
    while !b.is_empty() {
        let (tag, v, rest) = tlv(b)?;
        match tag {
            0x82 => out.dns_names.push(String::from_utf8_lossy(v).into_owned()),
            0x87 => match v.len() {
                4 => out
                    .ip_addresses
                    .push(IpAddr::from(<[u8; 4]>::try_from(v).unwrap_or_default())),
                16 => out
                    .ip_addresses
                    .push(IpAddr::from(<[u8; 16]>::try_from(v).unwrap_or_default())),
                _ => return err("subjectAltName: bad IP address length"),
            },
            _ => {}
        }
        b = rest;
    }
    Ok(())
}

fn extensions(mut b: &[u8], out: &mut CertSummary) -> Result<(), CertError> {
    while !b.is_empty() {
        let (tag, ext, rest) = tlv(b)?;
        if tag != 0x30 {
            return err("extension: expected a SEQUENCE");
        }
        let (otag, oid, mut after) = tlv(ext)?;
        if otag != 0x06 {
            return err("extension: expected an OID");
        }
        if after.first() == Some(&0x01) {
            after = tlv(after)?.2; // critical flag
        }
        if oid == OID_SAN {
            let (vtag, value, _) = tlv(after)?;
            if vtag != 0x04 {
                return err("subjectAltName: expected an OCTET STRING");
            }
            let (stag, names, _) = tlv(value)?;
            if stag != 0x30 {
                return err("subjectAltName: expected a SEQUENCE");
            }
            subject_alt_names(names, out)?;
        }
        b = rest;
    }
    Ok(())
}

impl CertSummary {
    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertSummary, CertError> {
        let (tag, cert, _) = tlv(der)?;
        if tag != 0x30 {
            return err("expected the Certificate SEQUENCE");
        }
        let (tag, tbs, _) = tlv(cert)?;
        if tag != 0x30 {
            return err("expected the TBSCertificate SEQUENCE");
        }
        let mut b = tbs;
        if b.first() == Some(&0xa0) {
            b = tlv(b)?.2; // version
        }
        b = skip(b, 0x02, "serial number")?;
        b = skip(b, 0x30, "signature algorithm")?;
        let (tag, issuer_raw, rest) = tlv(b)?;
        if tag != 0x30 {
            return err("expected the issuer Name");
        }
        b = rest;
        let (tag, validity, rest) = tlv(b)?;
        if tag != 0x30 {
            return err("expected the validity SEQUENCE");
        }
        b = rest;
        let (t1, v1, after) = tlv(validity)?;
        let (t2, v2, _) = tlv(after)?;
        let (tag, subject_raw, rest) = tlv(b)?;
        if tag != 0x30 {
            return err("expected the subject Name");
        }
        b = rest;
        let mut out = CertSummary {
            subject: name(subject_raw)?,
            issuer: name(issuer_raw)?,
            not_before: time(t1, v1)?,
            not_after: time(t2, v2)?,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            self_issued: issuer_raw == subject_raw,
        };
        // subjectPublicKeyInfo, then optional [1], [2] and [3] extensions.
        while !b.is_empty() {
            let (tag, v, rest) = tlv(b)?;
            if tag == 0xa3 {
                let (stag, exts, _) = tlv(v)?;
                if stag != 0x30 {
                    return err("expected the extensions SEQUENCE");
                }
                extensions(exts, &mut out)?;
            }
            b = rest;
        }
        Ok(out)
    }

    /// Whether the certificate is issued for `host` (a DNS name, with one
    /// leading `*.` wildcard label, or an IP address); the common name
    /// counts only when there is no subjectAltName, as in browsers.
    pub fn matches_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.ip_addresses.contains(&ip);
        }
        let host = host.to_ascii_lowercase();
        let matches = |pattern: &str| {
            let p = pattern.to_ascii_lowercase();
            match p.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
                None => p == host,
            }
        };
        if self.dns_names.is_empty() && self.ip_addresses.is_empty() {
            return self
                .subject
                .split(", ")
                .filter_map(|p| p.strip_prefix("CN="))
                .any(matches);
        }
        self.dns_names.iter().any(|n| matches(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked() {
        assert!(tlv(&[]).is_err());
        assert!(tlv(&[0x30]).is_err());
        assert!(tlv(&[0x30, 0x05, 1, 2]).is_err());
        assert!(tlv(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(tlv(&[0x30, 0x80]).is_err());
        assert_eq!(
            tlv(&[0x02, 0x01, 7, 9]).unwrap(),
            (0x02, &[7u8][..], &[9u8][..])
        );
        assert!(CertSummary::from_der(&[0x30, 0x03, 0x30, 0x01, 0x00]).is_err());
    }

    /// The test peer's certificate (also a fuzz seed).
    #[test]
    fn peer_certificate() {
        let der = include_bytes!("../fuzz/seeds/certificate/peer-cert-be78661dfe98");
        let c = CertSummary::from_der(der).unwrap();
        assert_eq!(c.subject, "CN=localhost, O=psrp test peer");
        assert_eq!(c.issuer, "CN=psrp test peer CA, O=psrp test peer");
        assert_eq!(format_utc(c.not_after), "2027-01-03 02:46:09 UTC");
        assert_eq!(c.dns_names, ["localhost"]);
        assert_eq!(c.ip_addresses.len(), 2);
        assert!(!c.self_issued);
        assert!(
            c.matches_host("localhost") && c.matches_host("127.0.0.1") && c.matches_host("[::1]")
        );
        assert!(!c.matches_host("other.example") && !c.matches_host("10.0.0.1"));
        // Every truncation fails cleanly.
        for n in 0..der.len() {
            assert!(CertSummary::from_der(&der[..n]).is_err(), "{n}");
        }
    }

    #[test]
    fn times() {
        assert_eq!(time(0x17, b"700101000000Z").unwrap(), 0);
        assert_eq!(time(0x18, b"20240229120000Z").unwrap(), 1_709_208_000);
        assert_eq!(format_utc(1_709_208_000), "2024-02-29 12:00:00 UTC");
        assert!(time(0x17, b"701301000000Z").is_err());
        assert!(time(0x17, b"7001010000").is_err());
    }
}
