//! `psrp clixml`: CLIXML to the same JSON as remote output, without
//! PowerShell. Reads an `<Objs>` document (Export-Clixml files, the
//! `#< CLIXML` text PowerShell writes to stderr; UTF-8 or UTF-16 as Windows
//! PowerShell writes it), one CLIXML element (a PSRP message payload), or a
//! whole binary PSRP message (40-byte header + payload).
//!
//! Items of an `<Objs>` document marked with a stream (`S="Error"`,
//! `S="progress"`, ...) go to stderr as log lines, like the streams of a
//! remote pipeline; the rest goes to stdout. Documents are read item by
//! item, so memory stays flat.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use psrp_core::clixml::{self, ObjsReader, PsValue};
use psrp_core::message::{
    ErrorRecord, InformationRecord, ProgressRecord, ProgressRecordType, RawMessage,
};

use crate::exit::Status;
use crate::logging::{Level, Logger};
use crate::output::{Formatter, OutputSender};

/// Formatted output gathered before it goes to the writer thread.
const BATCH_BYTES: usize = 64 << 10;

/// What the input turned out to be.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Objs,
    Element,
    Binary,
}

/// The input to convert: a name for messages and the bytes.
pub struct Input {
    name: String,
    reader: Box<dyn Read>,
}

/// Opens `path` (`-` for stdin).
pub fn open(path: &Path) -> Result<Input, String> {
    if path == Path::new("-") {
        return Ok(Input {
            name: "stdin".to_owned(),
            reader: Box::new(io::stdin().lock()),
        });
    }
    let name = path.display().to_string();
    match std::fs::File::open(path) {
        Ok(f) => Ok(Input {
            name,
            reader: Box::new(f),
        }),
        Err(e) => Err(format!("cannot read {name}: {e}")),
    }
}

/// Converts the input. Returns the exit status.
pub fn run(input: Input, formatter: &Formatter, out: &OutputSender, log: &Logger) -> Status {
    let name = input.name;
    match convert(input.reader, formatter, out, log) {
        Ok(()) => Status::Success,
        Err(Failure::Closed) => Status::Failed,
        Err(Failure::Io(e)) => {
            log.psrp("", &format!("cannot read {name}: {e}"));
            Status::Usage
        }
        Err(Failure::Data(e)) => {
            log.psrp("", &format!("{name} is not valid CLIXML: {e}"));
            Status::DataError
        }
    }
}

enum Failure {
    Io(io::Error),
    Data(String),
    Closed,
}

fn convert(
    input: Box<dyn Read>,
    formatter: &Formatter,
    out: &OutputSender,
    log: &Logger,
) -> Result<(), Failure> {
    let mut input = input;
    // Enough of the start to tell the kinds apart (pipes give short reads).
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while head.len() < 512 {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Io(e)),
        };
        head.extend_from_slice(&chunk[..n]);
    }
    let rest = io::Cursor::new(head.clone()).chain(input);
    let reader: Box<dyn BufRead> = match utf16_order(&head) {
        Some(big_endian) => Box::new(BufReader::new(Utf16ToUtf8::new(rest, big_endian))),
        None => Box::new(BufReader::with_capacity(64 << 10, rest)),
    };
    let text_head = if utf16_order(&head).is_some() {
        let mut t = Vec::new();
        let _ = Utf16ToUtf8::new(io::Cursor::new(&head), head.starts_with(&[0xFE, 0xFF]))
            .read_to_end(&mut t);
        t
    } else {
        head
    };
    let send_bytes = |bytes: Vec<u8>| out.blocking_send(bytes).map_err(|_| Failure::Closed);
    let send = |v: &PsValue| send_bytes(formatter.item("", v));
    match kind_of(&text_head) {
        Kind::Objs => {
            // Output items go to the writer in batches (documents hold many
            // objects); what was read before an error is still written.
            let mut batch = Vec::new();
            let read = (|| {
                for item in ObjsReader::new(reader) {
                    let item = item.map_err(|e| Failure::Data(e.to_string()))?;
                    match item.stream.as_deref() {
                        None => {
                            formatter.append(&mut batch, "", &item.value);
                            if batch.len() >= BATCH_BYTES {
                                send_bytes(std::mem::take(&mut batch))?;
                            }
                        }
                        Some(stream) => log_stream_item(log, stream, &item.value),
                    }
                }
                Ok(())
            })();
            let rest = if batch.is_empty() {
                Ok(())
            } else {
                send_bytes(batch)
            };
            read.and(rest)
        }
        Kind::Element => {
            let mut text = String::new();
            let mut reader = reader;
            reader.read_to_string(&mut text).map_err(|e| {
                if e.kind() == io::ErrorKind::InvalidData {
                    Failure::Data("the input is not UTF-8 text".into())
                } else {
                    Failure::Io(e)
                }
            })?;
            let text = text.trim_start_matches('\u{feff}');
            let value = clixml::decode(text).map_err(|e| Failure::Data(e.to_string()))?;
            send(&value)
        }
        Kind::Binary => {
            let mut bytes = Vec::new();
            let mut reader = reader;
            reader.read_to_end(&mut bytes).map_err(Failure::Io)?;
            let raw = RawMessage::decode_owned(bytes)
                .map_err(|e| Failure::Data(format!("PSRP message: {e}")))?;
            let text = raw
                .clixml()
                .map_err(|e| Failure::Data(format!("PSRP message payload: {e}")))?;
            if text.trim().is_empty() {
                return send(&PsValue::Null);
            }
            let value = clixml::decode(text).map_err(|e| {
                Failure::Data(format!("{} payload: {e}", raw.message_type.spec_name()))
            })?;
            send(&value)
        }
    }
}

/// `Some(big_endian)` when the input starts with a UTF-16 byte-order mark.
fn utf16_order(head: &[u8]) -> Option<bool> {
    if head.starts_with(&[0xFF, 0xFE]) {
        Some(false)
    } else if head.starts_with(&[0xFE, 0xFF]) {
        Some(true)
    } else {
        None
    }
}

fn kind_of(head: &[u8]) -> Kind {
    // A PSRP message starts with its destination, 1 or 2, little-endian.
    if head.len() >= 40 && matches!(head[..4], [1, 0, 0, 0] | [2, 0, 0, 0]) {
        return Kind::Binary;
    }
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let mut text = &text[start..];
    // An XML declaration may precede the root.
    if text.starts_with(b"<?xml") {
        if let Some(end) = text.windows(2).position(|w| w == b"?>") {
            text = &text[end + 2..];
            let ws = text
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(text.len());
            text = &text[ws..];
        }
    }
    if text.starts_with(b"#< CLIXML") || text.starts_with(b"<Objs") {
        Kind::Objs
    } else {
        Kind::Element
    }
}

/// A stream item of an `<Objs>` document as a log line.
fn log_stream_item(log: &Logger, stream: &str, value: &PsValue) {
    let level = match stream.to_ascii_lowercase().as_str() {
        "error" => Level::Error,
        "warning" => Level::Warning,
        "verbose" => Level::Verbose,
        "debug" => Level::Debug,
        "progress" => {
            match progress_of(value) {
                Some(p) => log.progress("", &p),
                None => log.line("", Level::Progress, &plain_text(value)),
            }
            return;
        }
        _ => Level::Information,
    };
    if value.as_str().is_none() {
        if level == Level::Error {
            if let Ok(record) = ErrorRecord::from_value(value) {
                log.error_record("", &record);
                return;
            }
        }
        if level == Level::Information {
            if let Ok(record) = InformationRecord::from_value(value) {
                log.information("", &record);
                return;
            }
        }
    }
    let text = plain_text(value);
    // stderr CLIXML ends records with a line holding only a space.
    if !text.trim().is_empty() {
        log.line("", level, &text);
    }
}

fn plain_text(value: &PsValue) -> String {
    match value {
        PsValue::Object(o) => o
            .property("Message")
            .and_then(PsValue::as_str)
            .map(str::to_owned)
            .or_else(|| o.to_string.clone())
            .unwrap_or_else(|| clixml::to_json(value).to_string()),
        other => match clixml::to_json(other) {
            serde_json::Value::String(s) => s,
            j => j.to_string(),
        },
    }
}

/// The ProgressRecord of a `S="progress"` item: PowerShell writes a
/// PSCustomObject with `SourceId` and `Record` (a ProgressRecord whose
/// adapted properties are `Activity`, `RecordType`, ...).
fn progress_of(value: &PsValue) -> Option<ProgressRecord> {
    let obj = value.as_object()?;
    let record = obj
        .property("Record")
        .and_then(PsValue::as_object)
        .unwrap_or(obj);
    let text = |name: &str| {
        record
            .property(name)
            .and_then(PsValue::as_str)
            .map(str::to_owned)
    };
    let int = |name: &str, default: i32| {
        record
            .property(name)
            .and_then(PsValue::as_i64)
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(default)
    };
    let completed = match record.property("RecordType").or(record.property("Type")) {
        Some(PsValue::Object(t)) => {
            t.to_string.as_deref() == Some("Completed")
                || t.base.as_ref().and_then(PsValue::as_i64) == Some(1)
        }
        Some(v) => v.as_i64() == Some(1) || v.as_str() == Some("Completed"),
        None => false,
    };
    Some(ProgressRecord {
        activity: text("Activity")?,
        activity_id: int("ActivityId", 0),
        status_description: text("StatusDescription").unwrap_or_default(),
        current_operation: text("CurrentOperation"),
        parent_activity_id: int("ParentActivityId", -1),
        percent_complete: int("PercentComplete", -1),
        record_type: if completed {
            ProgressRecordType::Completed
        } else {
            ProgressRecordType::Processing
        },
        seconds_remaining: int("SecondsRemaining", -1),
    })
}

/// Reads UTF-16 (after its byte-order mark) and yields UTF-8; invalid
/// sequences become U+FFFD.
struct Utf16ToUtf8<R> {
    inner: R,
    big_endian: bool,
    /// A byte of an incomplete code unit.
    odd: Option<u8>,
    /// A high surrogate waiting for its pair.
    high: Option<u16>,
    out: Vec<u8>,
    pos: usize,
    bom_checked: bool,
    eof: bool,
}

impl<R: Read> Utf16ToUtf8<R> {
    fn new(inner: R, big_endian: bool) -> Self {
        Utf16ToUtf8 {
            inner,
            big_endian,
            odd: None,
            high: None,
            out: Vec::new(),
            pos: 0,
            bom_checked: false,
            eof: false,
        }
    }

    fn push_unit(&mut self, unit: u16) {
        if !self.bom_checked {
            self.bom_checked = true;
            if unit == 0xFEFF {
                return;
            }
        }
        let mut buf = [0u8; 4];
        let c = match (self.high.take(), unit) {
            (Some(h), 0xDC00..=0xDFFF) => {
                let code = 0x10000 + ((u32::from(h) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                char::from_u32(code).unwrap_or('\u{FFFD}')
            }
            (pending, 0xD800..=0xDBFF) => {
                if pending.is_some() {
                    self.out
                        .extend_from_slice('\u{FFFD}'.encode_utf8(&mut buf).as_bytes());
                }
                self.high = Some(unit);
                return;
            }
            (pending, u) => {
                if pending.is_some() {
                    self.out
                        .extend_from_slice('\u{FFFD}'.encode_utf8(&mut buf).as_bytes());
                }
                char::from_u32(u32::from(u)).unwrap_or('\u{FFFD}')
            }
        };
        self.out
            .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }

    fn refill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        let mut raw = [0u8; 16 << 10];
        while self.out.is_empty() && !self.eof {
            let n = match self.inner.read(&mut raw) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                self.eof = true;
                if self.odd.take().is_some() || self.high.take().is_some() {
                    self.out.extend_from_slice("\u{FFFD}".as_bytes());
                }
                break;
            }
            let mut bytes = &raw[..n];
            if let Some(first) = self.odd.take() {
                let pair = [first, bytes[0]];
                self.push_unit(self.unit(pair));
                bytes = &bytes[1..];
            }
            let mut chunks = bytes.chunks_exact(2);
            for pair in chunks.by_ref() {
                self.push_unit(self.unit([pair[0], pair[1]]));
            }
            if let [last] = chunks.remainder() {
                self.odd = Some(*last);
            }
        }
        Ok(())
    }

    fn unit(&self, pair: [u8; 2]) -> u16 {
        if self.big_endian {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        }
    }
}

impl<R: Read> Read for Utf16ToUtf8<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.out.len() {
            self.refill()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        let mut out = if big_endian {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for u in text.encode_utf16() {
            out.extend_from_slice(&if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            });
        }
        out
    }

    /// A reader that hands out one byte at a time.
    struct Trickle(Vec<u8>, usize);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.1 >= self.0.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[self.1];
            self.1 += 1;
            Ok(1)
        }
    }

    #[test]
    fn utf16_transcodes_across_short_reads() {
        let text = "<Objs>é😀x</Objs>";
        for be in [false, true] {
            let mut out = String::new();
            Utf16ToUtf8::new(Trickle(utf16(text, be), 0), be)
                .read_to_string(&mut out)
                .unwrap();
            assert_eq!(out, text);
        }
        let mut broken = utf16("a", false);
        broken.extend_from_slice(&0xD800u16.to_le_bytes());
        broken.extend_from_slice(&u16::from(b'b').to_le_bytes());
        let mut out = String::new();
        Utf16ToUtf8::new(&broken[..], false)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "a\u{FFFD}b");
    }

    #[test]
    fn kinds_are_told_apart() {
        assert_eq!(kind_of(b"#< CLIXML\r\n<Objs>"), Kind::Objs);
        assert_eq!(kind_of(b"\xEF\xBB\xBF  <Objs Version"), Kind::Objs);
        assert_eq!(
            kind_of(b"<?xml version=\"1.0\"?>\n<Objs Version"),
            Kind::Objs
        );
        assert_eq!(kind_of(b"<Obj RefId=\"0\">"), Kind::Element);
        let mut msg = vec![2, 0, 0, 0];
        msg.resize(60, 0);
        assert_eq!(kind_of(&msg), Kind::Binary);
    }
}
