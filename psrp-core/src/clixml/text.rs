//! Text forms of the CLIXML primitives (MS-PSRP 2.2.5.1): parsing what
//! Windows writes and writing what Windows reads (.NET `XmlConvert` forms).

use std::fmt::Write as _;

use super::value::{DateTime, DateTimeKind, Decimal, TimeSpan, Version};

/// XML whitespace (what `XmlConvert` trims around values).
pub(crate) fn trim_xml(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match trim_xml(s) {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// The special values .NET writes (`INF`, `-INF`, `NaN`) and reads (any
/// case in .NET Core; psrpcore writes `NAN`), also spelled `Infinity`.
fn special_float(t: &str) -> Option<f64> {
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let v = if body.eq_ignore_ascii_case("INF") || body.eq_ignore_ascii_case("Infinity") {
        f64::INFINITY
    } else if body.eq_ignore_ascii_case("NaN") {
        f64::NAN
    } else {
        return None;
    };
    Some(if negative { -v } else { v })
}

/// Whether `t` uses only the characters of decimal/exponent notation (Rust
/// would also accept spellings .NET does not, such as "inf").
fn is_float_text(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
}

/// Parses a floating-point value as `XmlConvert.ToDouble` does: decimal or
/// exponent notation, `INF`, `-INF`, `NaN`.
pub(crate) fn parse_f64(s: &str) -> Option<f64> {
    let t = trim_xml(s);
    if let Some(v) = special_float(t) {
        return Some(v);
    }
    if !is_float_text(t) {
        return None;
    }
    t.parse().ok()
}

pub(crate) fn parse_f32(s: &str) -> Option<f32> {
    let t = trim_xml(s);
    if let Some(v) = special_float(t) {
        return Some(v as f32);
    }
    if !is_float_text(t) {
        return None;
    }
    t.parse().ok()
}

/// Writes a float the way .NET's round-trip format does: the shortest digits
/// that read back to the same value, exponent form (`1E+16`, `1E-05`) for
/// very large or small magnitudes, `INF`/`-INF`/`NaN`.
fn push_float(out: &mut String, sci: String, is_nan: bool, is_inf: bool, negative: bool) {
    if is_nan {
        out.push_str("NaN");
        return;
    }
    if is_inf {
        out.push_str(if negative { "-INF" } else { "INF" });
        return;
    }
    // `sci` is Rust's shortest round-trip form in scientific notation,
    // e.g. "-1.25e-7" or "3e0".
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    out.push_str(sign);
    if !(-4..15).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "E{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
}

pub(crate) fn push_f64(out: &mut String, v: f64) {
    push_float(
        out,
        format!("{v:e}"),
        v.is_nan(),
        v.is_infinite(),
        v.is_sign_negative(),
    );
}

pub(crate) fn push_f32(out: &mut String, v: f32) {
    push_float(
        out,
        format!("{v:e}"),
        v.is_nan(),
        v.is_infinite(),
        v.is_sign_negative(),
    );
}

/// Whether `s` is a valid xs:decimal lexical form: optional sign, digits,
/// optional fraction, at least one digit.
pub(crate) fn is_decimal(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    (!int.is_empty() || !frac.is_empty())
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

pub(crate) fn parse_decimal(s: &str) -> Option<Decimal> {
    let t = trim_xml(s);
    is_decimal(t).then(|| Decimal(t.to_owned()))
}

pub(crate) fn parse_version(s: &str) -> Option<Version> {
    let t = trim_xml(s);
    let mut parts = t.split('.');
    let mut next = || -> Option<Option<u32>> {
        match parts.next() {
            None => Some(None),
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<i32>().ok().map(|v| Some(v as u32))
            }
            Some(_) => None,
        }
    };
    let major = next()??;
    let minor = next()??;
    let build = next()?;
    let revision = next()?;
    if build.is_none() && revision.is_some() {
        return None;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Version {
        major,
        minor,
        build,
        revision,
    })
}

pub(crate) fn push_version(out: &mut String, v: &Version) {
    let _ = write!(out, "{}.{}", v.major, v.minor);
    if let Some(b) = v.build {
        let _ = write!(out, ".{b}");
        if let Some(r) = v.revision {
            let _ = write!(out, ".{r}");
        }
    }
}

fn digits_n(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0')))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.f{1,7}][Z|±HH:MM]`.
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime> {
    let b = trim_xml(s).as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits_n(&b[0..4])? as u16;
    let month = digits_n(&b[5..7])? as u8;
    let day = digits_n(&b[8..10])? as u8;
    let hour = digits_n(&b[11..13])? as u8;
    let minute = digits_n(&b[14..16])? as u8;
    let second = digits_n(&b[17..19])? as u8;
    let mut rest = &b[19..];
    let mut ticks = 0u32;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        // .NET writes at most 7 digits; more would be below 100 ns.
        if n == 0 || n > 7 {
            return None;
        }
        ticks = digits_n(&frac[..n])? * 10u32.pow(7 - n as u32);
        rest = &frac[n..];
    }
    let kind = match rest {
        b"" => DateTimeKind::Unspecified,
        b"Z" => DateTimeKind::Utc,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = digits_n(&[*h1, *h2])? as i16;
            let m = digits_n(&[*m1, *m2])? as i16;
            if m >= 60 {
                return None;
            }
            let off = h * 60 + m;
            DateTimeKind::Local {
                offset_minutes: if *sign == b'-' { -off } else { off },
            }
        }
        _ => return None,
    };
    let dt = DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        ticks,
        kind,
    };
    dt.is_valid().then_some(dt)
}

pub(crate) fn push_datetime(out: &mut String, d: &DateTime) {
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        d.year, d.month, d.day, d.hour, d.minute, d.second
    );
    if d.ticks != 0 {
        let frac = format!("{:07}", d.ticks);
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    match d.kind {
        DateTimeKind::Unspecified => {}
        DateTimeKind::Utc => out.push('Z'),
        DateTimeKind::Local { offset_minutes } => {
            let sign = if offset_minutes < 0 { '-' } else { '+' };
            let a = offset_minutes.unsigned_abs();
            let _ = write!(out, "{sign}{:02}:{:02}", a / 60, a % 60);
        }
    }
}

const TICKS_PER_SECOND: u64 = 10_000_000;
const TICKS_PER_MINUTE: u64 = 60 * TICKS_PER_SECOND;
const TICKS_PER_HOUR: u64 = 60 * TICKS_PER_MINUTE;
const TICKS_PER_DAY: u64 = 24 * TICKS_PER_HOUR;

/// Parses an xs:duration as `XmlConvert.ToTimeSpan` does:
/// `[-]P[nY][nM][nD][T[nH][nM][n[.f]S]]`, at least one field. Years count
/// 365 days and months 30 days (as .NET does); at most 7 fraction digits
/// are significant.
pub(crate) fn parse_duration(s: &str) -> Option<TimeSpan> {
    let t = trim_xml(s).as_bytes();
    let (negative, t) = match t.strip_prefix(b"-") {
        Some(r) => (true, r),
        None => (false, t),
    };
    let mut t = t.strip_prefix(b"P")?;
    let mut total: u64 = 0;
    let mut any = false;
    let mut in_time = false;
    // Designators must come in this order; each at most once.
    let mut order = 0;
    while !t.is_empty() {
        if t[0] == b'T' {
            if in_time {
                return None;
            }
            in_time = true;
            t = &t[1..];
            if t.is_empty() {
                return None;
            }
            continue;
        }
        let n = t.iter().take_while(|c| c.is_ascii_digit()).count();
        let int = &t[..n];
        let mut rest = &t[n..];
        let mut frac: &[u8] = &[];
        if let Some(r) = rest.strip_prefix(b".") {
            let f = r.iter().take_while(|c| c.is_ascii_digit()).count();
            frac = &r[..f];
            rest = &r[f..];
            if f == 0 && n == 0 {
                return None;
            }
        } else if n == 0 {
            return None;
        }
        let (&designator, after) = rest.split_first()?;
        let (rank, unit) = match (in_time, designator) {
            (false, b'Y') => (1, 365 * TICKS_PER_DAY),
            (false, b'M') => (2, 30 * TICKS_PER_DAY),
            (false, b'D') => (3, TICKS_PER_DAY),
            (true, b'H') => (4, TICKS_PER_HOUR),
            (true, b'M') => (5, TICKS_PER_MINUTE),
            (true, b'S') => (6, TICKS_PER_SECOND),
            _ => return None,
        };
        if rank <= order || (!frac.is_empty() && designator != b'S') {
            return None;
        }
        order = rank;
        // Leading zeros are fine; too many digits overflow and are rejected.
        let int = std::str::from_utf8(int).ok()?;
        let value: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
        total = total.checked_add(value.checked_mul(unit)?)?;
        if !frac.is_empty() {
            let mut ticks = 0u64;
            for (i, d) in frac.iter().take(7).enumerate() {
                ticks += u64::from(d - b'0') * 10u64.pow(6 - i as u32);
            }
            total = total.checked_add(ticks)?;
        }
        any = true;
        t = after;
    }
    if !any {
        return None;
    }
    let ticks = if negative {
        // i64::MIN has no positive counterpart; allow it exactly.
        if total == i64::MIN.unsigned_abs() {
            i64::MIN
        } else {
            -i64::try_from(total).ok()?
        }
    } else {
        i64::try_from(total).ok()?
    };
    Some(TimeSpan { ticks })
}

/// Writes a TimeSpan as .NET `XmlConvert.ToString(TimeSpan)` does, e.g.
/// `PT9.0269026S`, `P1DT2H`, `-PT0.5S`, `PT0S`.
pub(crate) fn push_duration(out: &mut String, ts: &TimeSpan) {
    if ts.ticks < 0 {
        out.push('-');
    }
    let mut rem = ts.ticks.unsigned_abs();
    out.push('P');
    let days = rem / TICKS_PER_DAY;
    rem %= TICKS_PER_DAY;
    if days > 0 {
        let _ = write!(out, "{days}D");
    }
    if rem == 0 {
        if days == 0 {
            out.push_str("T0S");
        }
        return;
    }
    out.push('T');
    let hours = rem / TICKS_PER_HOUR;
    rem %= TICKS_PER_HOUR;
    let minutes = rem / TICKS_PER_MINUTE;
    rem %= TICKS_PER_MINUTE;
    if hours > 0 {
        let _ = write!(out, "{hours}H");
    }
    if minutes > 0 {
        let _ = write!(out, "{minutes}M");
    }
    if rem > 0 {
        let secs = rem / TICKS_PER_SECOND;
        let frac = rem % TICKS_PER_SECOND;
        let _ = write!(out, "{secs}");
        if frac > 0 {
            let f = format!("{frac:07}");
            out.push('.');
            out.push_str(f.trim_end_matches('0'));
        }
        out.push('S');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f64s(v: f64) -> String {
        let mut s = String::new();
        push_f64(&mut s, v);
        s
    }

    #[test]
    fn floats_in_dotnet_round_trip_form() {
        assert_eq!(f64s(0.0), "0");
        assert_eq!(f64s(-0.0), "-0");
        assert_eq!(f64s(1.5), "1.5");
        assert_eq!(f64s(100.0), "100");
        assert_eq!(f64s(1e15), "1E+15");
        assert_eq!(f64s(123456789012345.0), "123456789012345");
        assert_eq!(f64s(1.5e-5), "1.5E-05");
        assert_eq!(f64s(0.0001), "0.0001");
        assert_eq!(f64s(f64::MAX), "1.7976931348623157E+308");
        assert_eq!(f64s(f64::NAN), "NaN");
        assert_eq!(f64s(f64::NEG_INFINITY), "-INF");
        let mut s = String::new();
        push_f32(&mut s, 0.1);
        assert_eq!(s, "0.1");
    }

    #[test]
    fn float_parse_accepts_dotnet_spellings_only() {
        assert_eq!(parse_f64("in"), None);
        assert_eq!(parse_f64("1.5f"), None);
        assert_eq!(parse_f64("0x10"), None);
        assert_eq!(parse_f64("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(parse_f32("NAN").unwrap().is_nan());
        assert_eq!(parse_f64("INF"), Some(f64::INFINITY));
        assert_eq!(parse_f64(" 1.5E+20 "), Some(1.5e20));
        assert!(parse_f64("NaN").unwrap().is_nan());
    }

    #[test]
    fn datetime_forms() {
        let d = parse_datetime("2024-02-29T23:59:58.1234567+05:30").unwrap();
        assert_eq!(d.ticks, 1_234_567);
        assert_eq!(
            d.kind,
            DateTimeKind::Local {
                offset_minutes: 330
            }
        );
        let mut s = String::new();
        push_datetime(&mut s, &d);
        assert_eq!(s, "2024-02-29T23:59:58.1234567+05:30");
        let d = parse_datetime("2023-01-01T00:00:00.5Z").unwrap();
        assert_eq!(d.ticks, 5_000_000);
        assert_eq!(d.kind, DateTimeKind::Utc);
        assert!(parse_datetime("2023-02-29T00:00:00").is_none());
        assert!(parse_datetime("2023-01-01T00:00:00.").is_none());
        assert!(parse_datetime("2023-01-01T00:00:00.12345678").is_none());
        assert!(parse_datetime("2023-01-01 00:00:00").is_none());
    }

    #[test]
    fn duration_forms() {
        let p = |s: &str| parse_duration(s).map(|t| t.ticks);
        assert_eq!(p("PT9.0269026S"), Some(90_269_026));
        assert_eq!(p("P1DT2H"), Some((26 * 3600) * 10_000_000));
        assert_eq!(p("-PT0.5S"), Some(-5_000_000));
        assert_eq!(p("PT0S"), Some(0));
        assert_eq!(p("P1Y"), Some(365 * 86_400 * 10_000_000));
        assert_eq!(p("PT.5S"), Some(5_000_000));
        assert_eq!(p("PT1.123456789S"), Some(11_234_567));
        for bad in [
            "P", "PT", "P1H", "PT1D", "P1D1D", "PT1H1H", "P-1D", "1D", "PT1.5M",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
        assert_eq!(p("P99999999999999999999D"), None);
        let w = |t: i64| {
            let mut s = String::new();
            push_duration(&mut s, &TimeSpan { ticks: t });
            s
        };
        assert_eq!(w(0), "PT0S");
        assert_eq!(w(90_269_026), "PT9.0269026S");
        assert_eq!(w(864_000_000_000), "P1D");
        assert_eq!(w(-5_000_000), "-PT0.5S");
        assert_eq!(w(36_000_000_000 + 600_000_000), "PT1H1M");
        for t in [i64::MIN, i64::MAX, 1, -1, 864_000_000_001] {
            assert_eq!(p(&w(t)), Some(t));
        }
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("2.3"),
            Some(Version {
                major: 2,
                minor: 3,
                build: None,
                revision: None
            })
        );
        assert!(parse_version("1.2.3.4").is_some());
        for bad in ["1", "1.", "1.2.3.4.5", "a.b", "-1.2", "1.2147483648"] {
            assert!(parse_version(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn decimals() {
        for ok in ["0", "-1.50", "+.5", "5.", "79228162514264337593543950335"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in ["", ".", "-", "1e5", "1.2.3", " 1"] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }
}
