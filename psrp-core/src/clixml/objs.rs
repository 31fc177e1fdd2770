//! Streaming reader for `<Objs>` documents (see [`ObjsReader`]).

use std::io::{self, BufRead};
use std::sync::Arc;

use memchr::{memchr, memmem};

use super::decode::{Limits, Parser, Scope};
use super::error::{excerpt, DecodeError, DecodeErrorKind};
use super::lexer::Lexer;
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

/// Bytes asked of the source per read (more while an item larger than
/// this is incomplete).
/// Large beside a typical item (4 KB) so that few items are cut by the end
/// of the window and decoded twice.
const CHUNK: usize = 256 << 10;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    BeforeRoot,
    InRoot,
    AfterRoot,
    Done,
}

/// What a step over the window found.
enum Step {
    /// Markup consumed (prolog, root tags, whitespace); go on.
    Consumed,
    Item(ObjsItem),
    /// The end of the document.
    End,
}

/// Iterates over the top-level items of an `<Objs>` document, decoding one
/// at a time. An optional `#< CLIXML` first line and a UTF-8 byte-order mark
/// are skipped (UTF-16 input is refused with a clear error). After an error
/// the iterator ends.
///
/// The reader pulls bytes from a [`BufRead`] into a window of the document
/// and decodes each top-level item (an `<Obj>`, `<S>`, ...) in place with
/// the same decoder as [`decode`](super::decode), in one pass: an item cut
/// by the end of the window is decoded again once more bytes are in (read
/// in chunks of 256 KiB, doubling for a larger item so that the work stays
/// linear). Memory is proportional to the largest item, not to the
/// document.
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
    input: R,
    /// The document's text from offset `base` on, checked UTF-8; `pos` is
    /// the next unread byte.
    window: String,
    pos: usize,
    base: u64,
    /// Bytes read but not yet in `window` (a character cut by a read).
    raw: Vec<u8>,
    /// The source has no more bytes.
    eof: bool,
    /// Document offset of invalid UTF-8: the window ends before it.
    bad_utf8: Option<u64>,
    /// Where the last incomplete item started: if the same item is
    /// incomplete again, the next read doubles its bytes.
    incomplete_at: Option<u64>,
    scope: Scope,
    limits: Limits,
    keep_objects: bool,
    state: State,
    prefix_checked: bool,
}

impl<R: BufRead> ObjsReader<R> {
    /// A reader with the default [`Limits`].
    pub fn new(input: R) -> Self {
        Self::with_limits(input, Limits::default())
    }

    /// A reader with explicit [`Limits`] (`max_item_bytes` bounds the
    /// buffered item).
    pub fn with_limits(input: R, limits: Limits) -> Self {
        ObjsReader {
            input,
            window: String::new(),
            pos: 0,
            base: 0,
            raw: Vec::new(),
            eof: false,
            bad_utf8: None,
            incomplete_at: None,
            scope: Scope::default(),
            limits,
            keep_objects: false,
            state: State::BeforeRoot,
            prefix_checked: false,
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

    /// Document offset of `window[at]`.
    fn offset(&self, at: usize) -> u64 {
        self.base + at as u64
    }

    /// Appends up to `want` bytes from the source to `raw` (fewer if the
    /// source has fewer at hand); sets `eof` at its end.
    fn read_raw(&mut self, want: usize) -> Result<(), DecodeError> {
        loop {
            match self.input.fill_buf() {
                Ok(buf) => {
                    let n = buf.len().min(want);
                    if n == 0 {
                        self.eof = true;
                    }
                    self.raw.extend_from_slice(&buf[..n]);
                    self.input.consume(n);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let at = self.offset(self.window.len()) + self.raw.len() as u64;
                    return Err(self.fail(DecodeErrorKind::Io(Arc::new(e)), at));
                }
            }
        }
    }

    /// Moves the complete characters of `raw` to the window.
    fn take_raw(&mut self) {
        let valid = match std::str::from_utf8(&self.raw) {
            Ok(text) => {
                self.window.push_str(text);
                self.raw.len()
            }
            Err(e) => {
                let valid = e.valid_up_to();
                if let Ok(text) = std::str::from_utf8(&self.raw[..valid]) {
                    self.window.push_str(text);
                }
                if e.error_len().is_some() || self.eof {
                    self.bad_utf8 = Some(self.offset(self.window.len()));
                }
                valid
            }
        };
        self.raw.drain(..valid);
    }

    /// Appends up to `want` bytes from the source to the window, checking
    /// them as UTF-8 straight from the source's buffer (one copy); a
    /// character cut by the read waits in `raw`.
    fn read_window(&mut self, want: usize) -> Result<(), DecodeError> {
        if !self.raw.is_empty() {
            self.read_raw(want)?;
            self.take_raw();
            return Ok(());
        }
        let buf = loop {
            match self.input.fill_buf() {
                Ok(buf) => break buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let at = self.offset(self.window.len());
                    return Err(self.fail(DecodeErrorKind::Io(Arc::new(e)), at));
                }
            }
        };
        let n = buf.len().min(want);
        if n == 0 {
            self.eof = true;
            return Ok(());
        }
        let bytes = &buf[..n];
        match std::str::from_utf8(bytes) {
            Ok(text) => self.window.push_str(text),
            Err(e) => {
                let valid = e.valid_up_to();
                if let Ok(text) = std::str::from_utf8(&bytes[..valid]) {
                    self.window.push_str(text);
                }
                if e.error_len().is_some() {
                    self.bad_utf8 = Some(self.base + self.window.len() as u64);
                } else {
                    self.raw.extend_from_slice(&bytes[valid..]);
                }
            }
        }
        self.input.consume(n);
        Ok(())
    }

    /// Reads at least `min_new` more bytes into the window (fewer at the
    /// end of the source), dropping what was consumed.
    fn fill(&mut self, min_new: usize) -> Result<(), DecodeError> {
        if self.pos > 0 {
            self.window.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
        }
        let start = self.window.len();
        let want = min_new.max(CHUNK);
        while self.window.len() < start + min_new && !self.eof && self.bad_utf8.is_none() {
            let grown = self.window.len() - start;
            self.read_window(want - grown)?;
        }
        Ok(())
    }

    /// Skips an optional `#< CLIXML` line and a UTF-8 byte-order mark;
    /// refuses UTF-16.
    fn skip_prefix(&mut self) -> Result<(), DecodeError> {
        const MARK: &[u8] = b"#< CLIXML";
        while self.raw.len() < MARK.len() && !self.eof {
            self.read_raw(CHUNK)?;
        }
        if self.raw.starts_with(&[0xFF, 0xFE]) || self.raw.starts_with(&[0xFE, 0xFF]) {
            let kind =
                DecodeErrorKind::Xml("UTF-16 input: convert the document to UTF-8".to_owned());
            return Err(self.fail(kind, 0));
        }
        if self.raw.starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.raw.drain(..3);
            self.base += 3;
        } else if self.raw.starts_with(MARK) {
            // Drop the rest of the line.
            loop {
                if let Some(i) = memchr(b'\n', &self.raw) {
                    self.raw.drain(..=i);
                    self.base += i as u64 + 1;
                    break;
                }
                self.base += self.raw.len() as u64;
                self.raw.clear();
                if self.eof {
                    break;
                }
                self.read_raw(CHUNK)?;
            }
        }
        self.take_raw();
        Ok(())
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
            // The window may go on unless the source ended; invalid UTF-8
            // ends it too, and is the error if anything needs the bytes.
            let partial = !self.eof || self.bad_utf8.is_some();
            match self.step(partial) {
                Ok(Step::Consumed) => {}
                Ok(Step::Item(item)) => return Ok(Some(item)),
                Ok(Step::End) => {
                    self.state = State::Done;
                    return Ok(None);
                }
                Err(e) if partial && matches!(e.kind(), DecodeErrorKind::UnexpectedEof) => {
                    self.need_more()?;
                }
                Err(e) => {
                    self.state = State::Done;
                    return Err(e);
                }
            }
        }
    }

    /// The construct at `pos` goes on past the window: read more.
    fn need_more(&mut self) -> Result<(), DecodeError> {
        let at = self.offset(self.pos);
        if let Some(bad) = self.bad_utf8 {
            return Err(self.fail(DecodeErrorKind::Xml("invalid UTF-8".to_owned()), bad));
        }
        let pending = self.window.len() - self.pos;
        if pending > self.limits.max_item_bytes {
            let kind = DecodeErrorKind::LimitExceeded {
                what: "size of one <Objs> item in bytes",
                limit: self.limits.max_item_bytes,
            };
            return Err(self.fail(kind, at));
        }
        // Incomplete again: double its bytes so that decoding it again
        // and again stays linear in its size.
        let min_new = if self.incomplete_at == Some(at) {
            pending.max(1)
        } else {
            1
        };
        self.incomplete_at = Some(at);
        self.fill(min_new)
    }

    /// One step over the window from `pos`.
    fn step(&mut self, partial: bool) -> Result<Step, DecodeError> {
        let eof = || DecodeError::new(DecodeErrorKind::UnexpectedEof, 0);
        self.skip_misc(partial)?;
        let at = self.offset(self.pos);
        let rest = &self.window.as_bytes()[self.pos..];
        if rest.is_empty() {
            if partial {
                return Err(eof());
            }
            return match self.state {
                State::BeforeRoot => Err(DecodeError::new(DecodeErrorKind::NoRootElement, at)),
                State::InRoot => Err(DecodeError::new(DecodeErrorKind::UnexpectedEof, at)),
                _ => Ok(Step::End),
            };
        }
        let markup = rest[0] == b'<';
        match self.state {
            State::BeforeRoot if partial && rest.len() < 9 && b"<!DOCTYPE".starts_with(rest) => {
                Err(eof())
            }
            State::BeforeRoot if rest.starts_with(b"<!DOCTYPE") => self.skip_doctype(partial),
            State::BeforeRoot if markup && !matches!(rest.get(1), Some(b'/' | b'!')) => {
                self.root_start(partial)
            }
            State::InRoot if rest.starts_with(b"</") => self.root_end(partial),
            State::InRoot if markup && rest.get(1) != Some(&b'!') => self.item(partial),
            State::AfterRoot => Err(DecodeError::new(DecodeErrorKind::TrailingContent, at)),
            _ => Err(DecodeError::new(
                DecodeErrorKind::UnexpectedText { context: "<Objs>" },
                at,
            )),
        }
    }

    /// Skips whitespace, comments and processing instructions at `pos`.
    fn skip_misc(&mut self, partial: bool) -> Result<(), DecodeError> {
        loop {
            let b = &self.window.as_bytes()[self.pos..];
            let ws = b
                .iter()
                .take_while(|&&c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
                .count();
            self.pos += ws;
            let b = &b[ws..];
            let (open, close, what): (&[u8], &[u8], _) = if b.starts_with(b"<?") {
                (b"<?", b"?>", "unterminated processing instruction")
            } else if b.starts_with(b"<!--") {
                (b"<!--", b"-->", "unterminated comment")
            } else if partial && b.len() < 4 && b"<!--".starts_with(b) && !b.is_empty() {
                return Err(DecodeError::new(DecodeErrorKind::UnexpectedEof, 0));
            } else {
                return Ok(());
            };
            match memmem::find(&b[open.len()..], close) {
                Some(i) => self.pos += open.len() + i + close.len(),
                None if partial => return Err(DecodeError::new(DecodeErrorKind::UnexpectedEof, 0)),
                None => {
                    let at = self.offset(self.pos);
                    return Err(DecodeError::new(DecodeErrorKind::Xml(what.to_owned()), at));
                }
            }
        }
    }

    /// A document type declaration before the root: skipped, internal
    /// subset included (never used: entities are not expanded).
    fn skip_doctype(&mut self, partial: bool) -> Result<Step, DecodeError> {
        let b = &self.window.as_bytes()[self.pos..];
        let gt = memchr(b'>', b);
        let end = match (memchr(b'[', b), gt) {
            (Some(open), Some(gt)) if open < gt => memchr(b']', &b[open..])
                .and_then(|c| memchr(b'>', &b[open + c..]).map(|g| open + c + g)),
            (_, gt) => gt,
        };
        match end {
            Some(end) => {
                self.pos += end + 1;
                Ok(Step::Consumed)
            }
            None if partial => Err(DecodeError::new(DecodeErrorKind::UnexpectedEof, 0)),
            None => Err(DecodeError::new(
                DecodeErrorKind::Xml("unterminated document type declaration".to_owned()),
                self.offset(self.pos),
            )),
        }
    }

    /// `<Objs ...>` or `<Objs/>`.
    fn root_start(&mut self, partial: bool) -> Result<Step, DecodeError> {
        let at = self.offset(self.pos);
        let mut lex = Lexer::with_stack(&self.window[self.pos..], Vec::new());
        lex.set_partial(partial);
        let (tag, _) = lex
            .item_start_tag()
            .map_err(|e| DecodeError::new(e.0, at + e.1 as u64))?;
        if tag.name != "Objs" {
            let kind = DecodeErrorKind::UnexpectedElement {
                element: excerpt(tag.name),
                context: "the document (expected <Objs>)",
            };
            return Err(DecodeError::new(kind, at));
        }
        self.state = if tag.empty {
            State::AfterRoot
        } else {
            State::InRoot
        };
        self.pos += lex.pos();
        Ok(Step::Consumed)
    }

    /// `</Objs>`.
    fn root_end(&mut self, partial: bool) -> Result<Step, DecodeError> {
        let at = self.offset(self.pos);
        let b = &self.window[self.pos..];
        let Some(gt) = memchr(b'>', b.as_bytes()) else {
            if partial {
                return Err(DecodeError::new(DecodeErrorKind::UnexpectedEof, 0));
            }
            let kind = DecodeErrorKind::Xml("unterminated end tag".to_owned());
            return Err(DecodeError::new(kind, at));
        };
        let name = b[2..gt].trim_end_matches([' ', '\t', '\n', '\r']);
        if name != "Objs" {
            let kind = DecodeErrorKind::Xml(format!(
                "end tag </{}> does not match <Objs>",
                excerpt(name)
            ));
            return Err(DecodeError::new(kind, at));
        }
        self.pos += gt + 1;
        self.state = State::AfterRoot;
        Ok(Step::Consumed)
    }

    /// Decodes the item at `pos` in place.
    fn item(&mut self, partial: bool) -> Result<Step, DecodeError> {
        let at = self.offset(self.pos);
        if !self.keep_objects {
            self.scope.forget_objects();
        }
        // Only a window that may end inside the item can need a retry.
        self.scope.journal(partial);
        let mut parser = Parser::for_item(
            &self.window[self.pos..],
            partial,
            &mut self.scope,
            &self.limits,
        );
        let result = parser.item();
        drop(parser);
        let (stream, value, end) = match result {
            Ok(r) => r,
            Err(e) => {
                if partial && matches!(e.kind(), DecodeErrorKind::UnexpectedEof) {
                    // Decoded again once more bytes are in.
                    self.scope.roll_back();
                }
                return Err(e.shifted(at));
            }
        };
        if end > self.limits.max_item_bytes {
            // It fit in one read, but the limit is on the item.
            let kind = DecodeErrorKind::LimitExceeded {
                what: "size of one <Objs> item in bytes",
                limit: self.limits.max_item_bytes,
            };
            return Err(DecodeError::new(kind, at));
        }
        self.pos += end;
        self.incomplete_at = None;
        Ok(Step::Item(ObjsItem { stream, value }))
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

    /// A source that returns at most `n` bytes per read, as a pipe may.
    struct Trickle<'a> {
        data: &'a [u8],
        n: usize,
    }

    impl io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.n).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Reads `doc` with every read size from 1 byte up: the window then
    /// ends at every byte of the document in turn, inside every construct.
    /// Returns what each read size gave (items, or the error's kind).
    fn read_in_pieces(doc: &str) -> Vec<Result<Vec<ObjsItem>, String>> {
        (1..=doc.len() + 1)
            .map(|n| {
                let src = io::BufReader::with_capacity(
                    n,
                    Trickle {
                        data: doc.as_bytes(),
                        n,
                    },
                );
                ObjsReader::new(src)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{:?}", std::mem::discriminant(e.kind())))
            })
            .collect()
    }

    #[test]
    fn items_cut_by_reads_decode_as_whole() {
        // Type names defined in one item and named in the next, an object
        // RefId reused per item, comments, CDATA, entities, non-ASCII text
        // (a read may cut a character) and a prolog.
        let doc = "#< CLIXML\r\n<?xml version=\"1.0\"?><!-- c --><Objs Version=\"1.1.0.1\">\r\n\
            <Obj S=\"progress\" RefId=\"0\"><TN RefId=\"0\"><T>A.B</T><T>System.Object</T></TN>\
            <MS><S N=\"Na&amp;me\">caf\u{e9} \u{1F600}_x000A_</S><I64 N=\"n\">-5</I64>\
            <S N=\"c\">x<![CDATA[<y>]]>z<!-- ; --></S><Nil N=\"z\" /></MS></Obj>\r\n\
            <!-- between --><?pi x?>\r\n<Obj RefId=\"0\"><TNRef RefId=\"0\" /><ToString>t</ToString></Obj>\
            <S S=\"Error\">e_x000D__x000A_</S><I32>7</I32></Objs >\r\n<!-- end -->\r\n";
        let whole = items(doc).unwrap();
        assert_eq!(whole.len(), 4);
        assert_eq!(
            whole[1]
                .value
                .as_object()
                .unwrap()
                .type_names
                .as_ref()
                .unwrap()
                .names(),
            ["A.B", "System.Object"]
        );
        for (i, got) in read_in_pieces(doc).into_iter().enumerate() {
            assert_eq!(got.as_ref(), Ok(&whole), "reads of {} bytes", i + 1);
        }
    }

    #[test]
    fn errors_do_not_depend_on_read_sizes() {
        for doc in [
            "",
            "  ",
            "<Foo/>",
            "<Objs><I32>1</I32>",
            "<Objs></Objs><x/>",
            "<Objs>text</Objs>",
            "<Objs><I32>1</I33></Objs>",
            "<Objs><I32>x</I32></Objs>",
            "<Objs><Obj RefId=\"0\"><TNRef RefId=\"3\" /></Obj></Objs>",
            "<Objs><S>a</S><!-- x </Objs>",
            "<Objs><S>\u{e9}\u{e9}</S></Obj>",
            "<Objs><S>a</S></Objs><!-",
            "<Objs/>x",
        ] {
            let whole = items(doc).map_err(|e| format!("{:?}", std::mem::discriminant(e.kind())));
            assert!(whole.is_err(), "{doc}");
            for (i, got) in read_in_pieces(doc).into_iter().enumerate() {
                assert_eq!(got, whole, "{doc} in reads of {} bytes", i + 1);
            }
        }
        // Invalid UTF-8, also when a read ends inside the bad sequence.
        for doc in [&b"<Objs><S>a\xC3</S></Objs>"[..], b"<Objs><S>a</S>\xFF"] {
            for n in 1..=doc.len() {
                let src = io::BufReader::with_capacity(n, Trickle { data: doc, n });
                let e = ObjsReader::new(src).find_map(Result::err).unwrap();
                assert!(e.to_string().contains("UTF-8"), "{e}");
            }
        }
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
        // did not grow with the stream (about 6 MB).
        assert!(
            reader.window.capacity() < CHUNK + 4 * item.len(),
            "{}",
            reader.window.capacity()
        );
        assert!(reader.raw.capacity() < CHUNK + 4 * item.len());
    }
}
