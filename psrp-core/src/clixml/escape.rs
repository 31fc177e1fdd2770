//! The `_xHHHH_` string escaping of CLIXML (MS-PSRP 2.2.5.1.1) and the XML
//! escaping of text and attribute values.
//!
//! PowerShell encodes characters that XML 1.0 cannot carry (C0/C1 controls,
//! U+FFFE/U+FFFF) and characters outside the BMP as `_xHHHH_`, one escape per
//! UTF-16 code unit, so a non-BMP character becomes a surrogate pair of
//! escapes. A literal `_` followed by `x` or `X` is written `_x005F_` so that
//! it is not mistaken for an escape. Decoding follows .NET
//! `XmlConvert.DecodeName`: `x` may be either case and an escape may also
//! carry 8 hex digits (a whole code point).

use std::borrow::Cow;

/// Whether `c` must be written as `_xHHHH_` escapes.
#[inline]
fn needs_escape(c: char) -> bool {
    let u = c as u32;
    u < 0x20 || (0x7F..=0x9F).contains(&u) || u == 0xFFFE || u == 0xFFFF || u > 0xFFFF
}

/// Appends the CLIXML escape of `s` (without XML entity escaping).
fn push_ps_escaped(out: &mut String, s: &str) {
    let mut chars = s.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '_' {
            if matches!(chars.peek(), Some((_, 'x' | 'X'))) {
                out.push_str("_x005F_");
            } else {
                out.push('_');
            }
        } else if needs_escape(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                push_unit_escape(out, *unit);
            }
        } else {
            out.push(c);
        }
    }
}

fn push_unit_escape(out: &mut String, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push_str("_x");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xF)] as char);
    }
    out.push('_');
}

/// Appends `s` escaped for CLIXML and then for XML character data
/// (`&`, `<`, `>`; and `"` when `in_attribute`).
pub(crate) fn push_escaped(out: &mut String, s: &str, in_attribute: bool) {
    // Fast path: nothing to escape (the common case for names and text).
    let clean = s.bytes().all(|b| {
        b >= 0x20 && b != b'&' && b != b'<' && b != b'>' && b != b'_' && b != b'"' && b < 0x7F
    });
    if clean {
        out.push_str(s);
        return;
    }
    let mut tmp = String::with_capacity(s.len() + 8);
    push_ps_escaped(&mut tmp, s);
    push_xml_escaped(out, &tmp, in_attribute);
}

/// Appends `s` with the XML special characters replaced by entities.
pub(crate) fn push_xml_escaped(out: &mut String, s: &str, in_attribute: bool) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' if in_attribute => "&quot;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

/// Escapes a string the way CLIXML stores it, without XML entity escaping:
/// `"a\nb"` becomes `"a_x000A_b"`.
///
/// ```
/// use psrp_core::clixml::escape_string;
/// assert_eq!(escape_string("tab\there"), "tab_x0009_here");
/// assert_eq!(escape_string("_x"), "_x005F_x");
/// assert_eq!(escape_string("😀"), "_xD83D__xDE00_");
/// ```
pub fn escape_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_ps_escaped(&mut out, s);
    out
}

#[inline]
fn hex_val(b: u8) -> Option<u32> {
    match b {
        b'0'..=b'9' => Some(u32::from(b - b'0')),
        b'a'..=b'f' => Some(u32::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u32::from(b - b'A' + 10)),
        _ => None,
    }
}

fn hex_run(bytes: &[u8]) -> Option<u32> {
    bytes
        .iter()
        .try_fold(0u32, |acc, &b| Some((acc << 4) | hex_val(b)?))
}

/// Recognizes an escape at the start of `bytes` (which begins with `_`).
/// Returns the decoded value (a UTF-16 unit or a code point) and its length.
#[inline]
fn escape_at(bytes: &[u8]) -> Option<(u32, usize)> {
    if bytes.len() < 7 || !matches!(bytes[1], b'x' | b'X') {
        return None;
    }
    if bytes[6] == b'_' {
        if let Some(v) = hex_run(&bytes[2..6]) {
            return Some((v, 7));
        }
    }
    if bytes.len() >= 11 && bytes[10] == b'_' {
        if let Some(v) = hex_run(&bytes[2..10]) {
            if v <= 0x10FFFF {
                return Some((v, 11));
            }
        }
    }
    None
}

/// Reverses [`escape_string`]: replaces every `_xHHHH_` (or `_xHHHHHHHH_`)
/// escape by the character it stands for. Escaped UTF-16 surrogates pair up;
/// a surrogate without its partner (valid in .NET, impossible in Rust)
/// becomes U+FFFD.
///
/// ```
/// use psrp_core::clixml::unescape_string;
/// assert_eq!(unescape_string("a_x000A_b"), "a\nb");
/// assert_eq!(unescape_string("_xD83D__xDE00_"), "😀");
/// assert_eq!(unescape_string("_x005F_x"), "_x");
/// ```
pub fn unescape_string(s: &str) -> Cow<'_, str> {
    let bytes = s.as_bytes();
    let Some(first) = memchr_underscore_escape(bytes, 0) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len());
    let mut copied = 0;
    let mut pos = first;
    // A high surrogate waiting for its low half.
    let mut pending_high: Option<u32> = None;
    loop {
        let Some((value, len)) = escape_at(&bytes[pos..]) else {
            pos += 1;
            match memchr_underscore_escape(bytes, pos) {
                Some(next) => {
                    pos = next;
                    continue;
                }
                None => break,
            }
        };
        if pos > copied {
            flush_high(&mut out, &mut pending_high);
            out.push_str(&s[copied..pos]);
        }
        match value {
            0xD800..=0xDBFF => {
                flush_high(&mut out, &mut pending_high);
                pending_high = Some(value);
            }
            0xDC00..=0xDFFF => match pending_high.take() {
                Some(high) => {
                    let c = 0x10000 + ((high - 0xD800) << 10) + (value - 0xDC00);
                    out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                }
                None => out.push('\u{FFFD}'),
            },
            _ => {
                flush_high(&mut out, &mut pending_high);
                out.push(char::from_u32(value).unwrap_or('\u{FFFD}'));
            }
        }
        pos += len;
        copied = pos;
        match memchr_underscore_escape(bytes, pos) {
            Some(next) => pos = next,
            None => break,
        }
    }
    flush_high(&mut out, &mut pending_high);
    out.push_str(&s[copied..]);
    Cow::Owned(out)
}

#[inline]
fn flush_high(out: &mut String, pending_high: &mut Option<u32>) {
    if pending_high.take().is_some() {
        out.push('\u{FFFD}');
    }
}

/// Whether `s` may hold an escape (a `_` followed by `x` or `X`).
#[inline]
pub(crate) fn has_escape(s: &str) -> bool {
    memchr_underscore_escape(s.as_bytes(), 0).is_some()
}

/// Position of the next `_` at or after `from` that is followed by `x`/`X`.
#[inline]
fn memchr_underscore_escape(bytes: &[u8], from: usize) -> Option<usize> {
    let mut from = from;
    while from < bytes.len() {
        let i = from + memchr::memchr(b'_', &bytes[from..])?;
        if matches!(bytes.get(i + 1), Some(b'x' | b'X')) {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_surrogates_and_underscore_x() {
        assert_eq!(escape_string("a\r\nb"), "a_x000D__x000A_b");
        assert_eq!(escape_string("\u{7f}\u{9f}\u{a0}"), "_x007F__x009F_\u{a0}");
        assert_eq!(escape_string("\u{10437}"), "_xD801__xDC37_");
        assert_eq!(escape_string("_X_y_"), "_x005F_X_y_");
        assert_eq!(escape_string("\u{FFFE}"), "_xFFFE_");
        assert_eq!(escape_string("plain"), "plain");
    }

    #[test]
    fn unescapes_both_cases_and_eight_digit_form() {
        assert_eq!(unescape_string("_X0041_"), "A");
        assert_eq!(unescape_string("_x0001F600_"), "😀");
        assert_eq!(unescape_string("_xd83d__xde00_"), "😀");
    }

    #[test]
    fn leaves_non_escapes_alone() {
        for s in [
            "_x",
            "_x12",
            "_x12G4_",
            "__x",
            "_x0041",
            "x_",
            "_x00110000_",
        ] {
            assert_eq!(unescape_string(s), s);
        }
        assert_eq!(unescape_string("_x_x0041_"), "_xA");
        assert_eq!(unescape_string("a_x0041_b_x0042_"), "aAbB");
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        assert_eq!(unescape_string("_xD800_a"), "\u{FFFD}a");
        assert_eq!(unescape_string("_xDC00_"), "\u{FFFD}");
        assert_eq!(
            unescape_string("_xD800__xD800__xDC00_"),
            "\u{FFFD}\u{10000}"
        );
    }

    #[test]
    fn round_trips() {
        for s in [
            "",
            "x",
            "_",
            "_x",
            "_x0041_",
            "\u{0}\u{1f}\u{7f}",
            "mixed _X and 😀 and \t",
        ] {
            assert_eq!(unescape_string(&escape_string(s)), s);
        }
    }

    #[test]
    fn xml_escaping() {
        let mut out = String::new();
        push_escaped(&mut out, "a<b>&\"c\"", true);
        assert_eq!(out, "a&lt;b&gt;&amp;&quot;c&quot;");
        let mut out = String::new();
        push_escaped(&mut out, "\"q\"\n", false);
        assert_eq!(out, "\"q\"_x000A_");
    }
}
