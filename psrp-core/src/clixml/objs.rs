//! Streaming reader for `<Objs>` documents (see [`ObjsReader`]).

use std::io::{self, BufRead};
use std::sync::Arc;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::decode::{attr_text, decode_in_scope, scan_attrs, Limits, Scope};
use super::error::{excerpt, DecodeError, DecodeErrorKind};
use super::value::PsValue;

/// One top-level item of an `<Objs>` document.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjsItem {
    /// The `S` attribute: the stream the item was written to (`Error`,
    /// `progress`, `Warning`, ...) or `None` for output.
    pub stream: Option<String>,
    /// The decoded value.
    pub value: PsValue,
}

/// A byte source that records what the XML reader consumes, so that the
/// bytes of one item can be decoded once the reader has found its end.
struct Recorder<R> {
    inner: R,
    /// Bytes read ahead while checking for a prefix, served first.
    pending: Vec<u8>,
    pending_pos: usize,
    record: Vec<u8>,
    /// Absolute position of `record[0]` in the stream.
    record_start: u64,
    max_record: usize,
}

impl<R: BufRead> Recorder<R> {
    fn clear(&mut self) {
        self.record_start += self.record.len() as u64;
        self.record.clear();
        // Give back memory a large item left behind.
        if self.record.capacity() > 1 << 20 {
            self.record.shrink_to(64 << 10);
        }
    }
}

impl<R: BufRead> io::Read for Recorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Recorder<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.record.len() > self.max_record {
            return Err(io::Error::other(ItemTooLarge));
        }
        if self.pending_pos < self.pending.len() {
            return Ok(&self.pending[self.pending_pos..]);
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        if self.pending_pos < self.pending.len() {
            let amt = amt.min(self.pending.len() - self.pending_pos);
            self.record
                .extend_from_slice(&self.pending[self.pending_pos..self.pending_pos + amt]);
            self.pending_pos += amt;
            return;
        }
        // The reader consumes from what `fill_buf` last returned; asking
        // again returns the same buffered bytes without reading.
        if let Ok(buf) = self.inner.fill_buf() {
            let amt = amt.min(buf.len());
            self.record.extend_from_slice(&buf[..amt]);
        }
        self.inner.consume(amt);
    }
}

/// Reads past an optional `#< CLIXML` line and UTF-8 byte-order mark.
/// Bytes read ahead that belong to the document go to `pending`. Returns how
/// many bytes were skipped.
fn skip_prefix<R: BufRead>(rec: &mut Recorder<R>) -> Result<u64, (DecodeErrorKind, u64)> {
    const MARK: &[u8] = b"#< CLIXML";
    let mut head = Vec::new();
    let mut consumed = 0u64;
    // Up to the length of the mark (the source may return short reads).
    while head.len() < MARK.len() {
        let buf = match rec.inner.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((DecodeErrorKind::Io(Arc::new(e)), consumed)),
        };
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(MARK.len() - head.len());
        head.extend_from_slice(&buf[..n]);
        rec.inner.consume(n);
        consumed += n as u64;
    }
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Err((
            DecodeErrorKind::Xml("UTF-16 input: convert the document to UTF-8".to_owned()),
            0,
        ));
    }
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        head.drain(..3);
    }
    if head == MARK {
        head.clear();
        // Drop the rest of the line.
        loop {
            let buf = match rec.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err((DecodeErrorKind::Io(Arc::new(e)), consumed)),
            };
            if buf.is_empty() {
                break;
            }
            let (n, done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            rec.inner.consume(n);
            consumed += n as u64;
            if done {
                break;
            }
        }
    }
    let skipped = consumed - head.len() as u64;
    rec.pending = head;
    rec.pending_pos = 0;
    Ok(skipped)
}

/// The `S` attribute of a top-level item.
fn stream_attr(raw_attrs: &str) -> Result<Option<String>, DecodeErrorKind> {
    scan_attrs(raw_attrs)?.s.map(attr_text).transpose()
}

/// Marks the I/O error the recorder raises when an item exceeds its limit.
#[derive(Debug)]
struct ItemTooLarge;

impl std::fmt::Display for ItemTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("item too large")
    }
}

impl std::error::Error for ItemTooLarge {}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    BeforeRoot,
    InRoot,
    Done,
}

/// Iterates over the top-level items of an `<Objs>` document, decoding one
/// at a time. An optional `#< CLIXML` first line and a UTF-8 byte-order mark
/// are skipped (UTF-16 input is refused with a clear error). After an error
/// the iterator ends.
///
/// The reader pulls bytes from a [`BufRead`], keeps only the current
/// top-level item (the bytes of one `<Obj>`, `<S>`, ...) and decodes it with
/// the same decoder as [`decode`](super::decode). Memory is proportional to
/// the largest item, not to the document.
///
/// RefId scopes: a PowerShell serializer numbers RefIds and TN RefIds across
/// the whole document. Type-name lists are small, so the reader keeps all of
/// them for the whole document (bounded by
/// [`Limits::max_type_name_lists`]): a `<TNRef>` may name a list defined in
/// an earlier item. Objects are forgotten after each item, so a `<Ref>` to
/// an object of an earlier item fails with
/// [`DecodeErrorKind::UnknownRef`]; [`ObjsReader::keep_objects`] keeps them
/// (memory then grows with the document). Cycles inside one item decode to
/// [`PsValue::Ref`] as with `decode`.
///
/// ```
/// use psrp_core::clixml::{ObjsReader, PsValue};
/// let doc = "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">\
///            <S S=\"Error\">oops_x000D__x000A_</S><I32>5</I32></Objs>";
/// let items: Vec<_> = ObjsReader::new(doc.as_bytes()).collect::<Result<_, _>>().unwrap();
/// assert_eq!(items[0].stream.as_deref(), Some("Error"));
/// assert_eq!(items[0].value, PsValue::from("oops\r\n"));
/// assert_eq!(items[1].value, PsValue::I32(5));
/// ```
pub struct ObjsReader<R: BufRead> {
    reader: Reader<Recorder<R>>,
    buf: Vec<u8>,
    scope: Scope,
    limits: Limits,
    keep_objects: bool,
    state: State,
    prefix_checked: bool,
    /// Bytes skipped before the document (prefix line, byte-order mark):
    /// added to the XML reader's offsets.
    prefix_len: u64,
}

impl<R: BufRead> ObjsReader<R> {
    /// A reader with the default [`Limits`].
    pub fn new(input: R) -> Self {
        Self::with_limits(input, Limits::default())
    }

    /// A reader with explicit [`Limits`] (`max_item_bytes` bounds the
    /// buffered item).
    pub fn with_limits(input: R, limits: Limits) -> Self {
        let recorder = Recorder {
            inner: input,
            pending: Vec::new(),
            pending_pos: 0,
            record: Vec::new(),
            record_start: 0,
            max_record: limits.max_item_bytes,
        };
        let mut reader = Reader::from_reader(recorder);
        let config = reader.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        ObjsReader {
            reader,
            buf: Vec::new(),
            scope: Scope::default(),
            limits,
            keep_objects: false,
            state: State::BeforeRoot,
            prefix_checked: false,
            prefix_len: 0,
        }
    }

    /// Keeps decoded objects for the whole document so that a `<Ref>` may
    /// name an object of an earlier item. Memory then grows with the
    /// document.
    pub fn keep_objects(mut self, keep: bool) -> Self {
        self.keep_objects = keep;
        self
    }

    fn fail(&mut self, kind: DecodeErrorKind, offset: u64) -> DecodeError {
        self.state = State::Done;
        DecodeError::new(kind, offset)
    }

    fn xml_error(&mut self, e: quick_xml::Error) -> DecodeError {
        let offset = self.prefix_len + self.reader.error_position();
        let kind = match &e {
            quick_xml::Error::Io(io) if io.get_ref().is_some_and(|i| i.is::<ItemTooLarge>()) => {
                DecodeErrorKind::LimitExceeded {
                    what: "size of one <Objs> item in bytes",
                    limit: self.limits.max_item_bytes,
                }
            }
            quick_xml::Error::Io(io) => {
                DecodeErrorKind::Io(Arc::new(io::Error::new(io.kind(), io.to_string())))
            }
            _ => DecodeErrorKind::Xml(e.to_string()),
        };
        self.fail(kind, offset)
    }

    /// Skips a `#< CLIXML` line and a byte-order mark; detects UTF-16.
    fn skip_prefix(&mut self) -> Result<(), DecodeError> {
        match skip_prefix(self.reader.get_mut()) {
            Ok(skipped) => {
                self.prefix_len = skipped;
                self.reader.get_mut().record_start = skipped;
                Ok(())
            }
            Err((kind, at)) => Err(self.fail(kind, at)),
        }
    }

    fn next_item(&mut self) -> Result<Option<ObjsItem>, DecodeError> {
        if !self.prefix_checked {
            self.prefix_checked = true;
            self.skip_prefix()?;
        }
        loop {
            if self.state == State::Done {
                return Ok(None);
            }
            self.reader.get_mut().clear();
            self.buf.clear();
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(e) => e,
                Err(e) => return Err(self.xml_error(e)),
            };
            match (self.state, event) {
                (State::BeforeRoot, Event::Start(e)) if e.name().as_ref() == "Objs" => {
                    self.state = State::InRoot;
                }
                (State::BeforeRoot, Event::Empty(e)) if e.name().as_ref() == "Objs" => {
                    self.state = State::Done;
                }
                (State::BeforeRoot, Event::Start(e) | Event::Empty(e)) => {
                    let kind = DecodeErrorKind::UnexpectedElement {
                        element: excerpt(e.name().as_ref()),
                        context: "the document (expected <Objs>)",
                    };
                    let at = self.doc_offset();
                    return Err(self.fail(kind, at));
                }
                (State::InRoot, Event::Start(e)) => {
                    let stream = stream_attr(e.attributes_raw());
                    let end = e.to_end().into_owned();
                    let stream = self.check(stream)?;
                    let mut skip = Vec::new();
                    if let Err(err) = self.reader.read_to_end_into(end.name(), &mut skip) {
                        return Err(self.xml_error(err));
                    }
                    return self.decode_recorded(stream).map(Some);
                }
                (State::InRoot, Event::Empty(e)) => {
                    let stream = stream_attr(e.attributes_raw());
                    let stream = self.check(stream)?;
                    return self.decode_recorded(stream).map(Some);
                }
                (State::InRoot, Event::End(_)) => {
                    self.state = State::Done;
                    self.expect_end()?;
                    return Ok(None);
                }
                (_, Event::Eof) => {
                    let kind = if self.state == State::BeforeRoot {
                        DecodeErrorKind::NoRootElement
                    } else {
                        DecodeErrorKind::UnexpectedEof
                    };
                    let at = self.doc_offset();
                    return Err(self.fail(kind, at));
                }
                (_, Event::Text(t))
                    if t.bytes().all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) => {}
                (_, Event::Comment(_) | Event::PI(_)) => {}
                (State::BeforeRoot, Event::Decl(_) | Event::DocType(_)) => {}
                _ => {
                    let at = self.doc_offset();
                    return Err(
                        self.fail(DecodeErrorKind::UnexpectedText { context: "<Objs>" }, at)
                    );
                }
            }
        }
    }

    fn doc_offset(&self) -> u64 {
        self.prefix_len + self.reader.buffer_position()
    }

    fn check<T>(&mut self, r: Result<T, DecodeErrorKind>) -> Result<T, DecodeError> {
        r.map_err(|k| {
            let at = self.doc_offset();
            self.fail(k, at)
        })
    }

    /// Decodes the recorded bytes of the item just read.
    fn decode_recorded(&mut self, stream: Option<String>) -> Result<ObjsItem, DecodeError> {
        if !self.keep_objects {
            self.scope.forget_objects();
        }
        let rec = self.reader.get_ref();
        let base = rec.record_start;
        // The record starts at the item's `<` (whitespace before it was
        // cleared with the previous event).
        let text = match std::str::from_utf8(&rec.record) {
            Ok(t) => t,
            Err(e) => {
                let at = base + e.valid_up_to() as u64;
                return Err(self.fail(DecodeErrorKind::Xml("invalid UTF-8".to_owned()), at));
            }
        };
        match decode_in_scope(text, &self.limits, &mut self.scope) {
            Ok(value) => Ok(ObjsItem { stream, value }),
            Err(e) => {
                self.state = State::Done;
                Err(e.shifted(base))
            }
        }
    }

    /// After `</Objs>`: only whitespace, comments and processing
    /// instructions may follow.
    fn expect_end(&mut self) -> Result<(), DecodeError> {
        loop {
            self.buf.clear();
            self.reader.get_mut().clear();
            match self.reader.read_event_into(&mut self.buf) {
                Ok(Event::Eof) => return Ok(()),
                Ok(Event::Text(t))
                    if t.bytes().all(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) => {}
                Ok(Event::Comment(_) | Event::PI(_)) => {}
                Ok(_) => {
                    let at = self.doc_offset();
                    return Err(self.fail(DecodeErrorKind::TrailingContent, at));
                }
                Err(e) => return Err(self.xml_error(e)),
            }
        }
    }
}

impl<R: BufRead> Iterator for ObjsReader<R> {
    type Item = Result<ObjsItem, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clixml::{encode_objs, Property, PsObject, TypeNames};

    fn items(doc: &str) -> Result<Vec<ObjsItem>, DecodeError> {
        ObjsReader::new(doc.as_bytes()).collect()
    }

    #[test]
    fn reads_items_with_streams_and_shared_type_names() {
        let doc = r#"#< CLIXML
<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">
  <Obj S="progress" RefId="0"><TN RefId="0"><T>A</T></TN><MS><I64 N="SourceId">1</I64></MS></Obj>
  <Obj S="progress" RefId="1"><TNRef RefId="0" /></Obj>
  <S S="Error">x_x000A_</S>
  <Nil />
</Objs>
"#;
        let got = items(doc).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].stream.as_deref(), Some("progress"));
        let t1 = got[1]
            .value
            .as_object()
            .unwrap()
            .type_names
            .clone()
            .unwrap();
        assert_eq!(t1.names(), ["A"]);
        assert_eq!(got[2].value, PsValue::from("x\n"));
        assert_eq!(got[2].stream.as_deref(), Some("Error"));
        assert_eq!(got[3].value, PsValue::Null);
    }

    #[test]
    fn object_refs_across_items_need_keep_objects() {
        let doc =
            r#"<Objs><Obj RefId="0"><MS><I32 N="a">1</I32></MS></Obj><Ref RefId="0" /></Objs>"#;
        let e = items(doc).unwrap_err();
        assert!(matches!(e.kind(), DecodeErrorKind::UnknownRef(0)), "{e}");
        let kept: Vec<_> = ObjsReader::new(doc.as_bytes())
            .keep_objects(true)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kept[0].value, kept[1].value);
    }

    #[test]
    fn errors_carry_document_offsets() {
        let doc = "<Objs><I32>1</I32>\n<I32>x</I32></Objs>";
        let mut r = ObjsReader::new(doc.as_bytes());
        assert_eq!(r.next().unwrap().unwrap().value, PsValue::I32(1));
        let e = r.next().unwrap().unwrap_err();
        assert!(matches!(e.kind(), DecodeErrorKind::InvalidValue { .. }));
        assert!(e.offset() >= 19 && e.offset() <= 32, "{}", e.offset());
        assert!(r.next().is_none(), "iteration ends after an error");
    }

    #[test]
    fn rejects_bad_documents() {
        for (doc, what) in [
            ("", "no root"),
            ("<Foo/>", "not Objs"),
            ("<Objs><I32>1</I32>", "truncated"),
            ("<Objs></Objs><x/>", "trailing"),
            ("<Objs>text</Objs>", "text"),
            ("<Objs><I32>1</I33></Objs>", "mismatched"),
        ] {
            assert!(items(doc).is_err(), "{what}");
        }
        let utf16 = b"\xFF\xFE<\0O\0";
        let e = ObjsReader::new(&utf16[..]).next().unwrap().unwrap_err();
        assert!(e.to_string().contains("UTF-16"), "{e}");
        assert!(items("<Objs/>").unwrap().is_empty());
        assert!(items("\u{FEFF}<Objs></Objs>").unwrap().is_empty());
    }

    #[test]
    fn item_size_is_bounded() {
        let doc = format!("<Objs><S>{}</S></Objs>", "a".repeat(100_000));
        let limits = Limits::default().with_max_item_bytes(10_000);
        let e = ObjsReader::with_limits(doc.as_bytes(), limits)
            .next()
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(e.kind(), DecodeErrorKind::LimitExceeded { .. }),
            "{e}"
        );
    }

    /// A source that produces an endless `<Objs>` stream, a few bytes per
    /// read, as a pipe would.
    struct Endless {
        chunk: Vec<u8>,
        pos: usize,
        started: bool,
    }

    impl io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.started {
                self.started = true;
                let head = b"<Objs>";
                buf[..head.len()].copy_from_slice(head);
                return Ok(head.len());
            }
            let n = buf.len().min(7).min(self.chunk.len() - self.pos);
            buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
            self.pos = (self.pos + n) % self.chunk.len();
            Ok(n)
        }
    }

    #[test]
    fn memory_stays_proportional_to_one_item() {
        let obj = PsValue::object(PsObject {
            type_names: Some(TypeNames::new(["T.A", "System.Object"])),
            extended: vec![Property {
                name: "Name".into(),
                value: PsValue::from("x".repeat(100)),
            }],
            ..PsObject::default()
        });
        let doc = encode_objs([(obj.clone(), None)]);
        let item = &doc[doc.find("<Obj ").unwrap()..doc.rfind("</Objs>").unwrap()];
        let source = io::BufReader::with_capacity(
            64,
            Endless {
                chunk: format!("{item}\n").into_bytes(),
                pos: 0,
                started: false,
            },
        );
        let mut reader = ObjsReader::new(source);
        for _ in 0..20_000 {
            let got = reader.next().unwrap().unwrap();
            assert_eq!(got.value, obj);
        }
        // Every item repeats RefId 0 for its object: no "duplicate RefId"
        // because objects are forgotten between items, and the buffers
        // did not grow with the stream.
        let rec = reader.reader.get_ref();
        assert!(
            rec.record.capacity() < 4 * item.len(),
            "{}",
            rec.record.capacity()
        );
        assert!(reader.buf.capacity() < 4 * item.len());
    }
}
