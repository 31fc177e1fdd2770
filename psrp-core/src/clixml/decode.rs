//! The streaming CLIXML decoder: tokens borrowed from the input (no DOM,
//! see [`lexer`](super::lexer)) straight into [`PsValue`]s.
//!
//! Recursion follows element nesting and is bounded by
//! [`Limits::max_depth`]. Memory is linear in the input: `<Ref>` shares the
//! earlier object's [`Arc`] and `<TNRef>` the earlier type-name list, so no
//! input can make the decoder copy a value twice.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;

use super::error::{excerpt, DecodeError, DecodeErrorKind};
use super::escape::{has_escape, unescape_string};
use super::lexer::{Lexer, StartTag, Token};
use super::text;
use super::value::{
    Collection, Property, PropertyName, PsObject, PsValue, SecureString, TypeNames,
};

/// Bounds that keep hostile input from exhausting the stack or memory.
///
/// The defaults accept everything a Windows server sends: its serializer
/// nests objects a few levels deep (each object level is two or three
/// element levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Deepest element nesting accepted (the root element is depth 1).
    /// Decoding recurses once per level, so this bounds stack use.
    /// Default 256.
    pub max_depth: usize,
    /// Most `<TN>` type-name lists kept in one RefId scope (one message, or
    /// one whole `<Objs>` document). Default 65,536.
    pub max_type_name_lists: usize,
    /// Largest top-level item of an `<Objs>` stream, in bytes: the
    /// [`ObjsReader`](super::ObjsReader) buffers one item at a time.
    /// Default 256 MiB.
    pub max_item_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 256,
            max_type_name_lists: 65_536,
            max_item_bytes: 256 << 20,
        }
    }
}

impl Limits {
    /// The default limits with another maximum depth.
    pub fn with_max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// The default limits with another maximum number of type-name lists.
    pub fn with_max_type_name_lists(mut self, n: usize) -> Self {
        self.max_type_name_lists = n;
        self
    }

    /// The default limits with another maximum `<Objs>` item size.
    pub fn with_max_item_bytes(mut self, n: usize) -> Self {
        self.max_item_bytes = n;
        self
    }
}

/// Decodes one CLIXML element (a PSRP message body: usually one `<Obj>`)
/// with the default [`Limits`]. A leading byte-order mark, an XML
/// declaration, comments and surrounding whitespace are accepted.
///
/// ```
/// use psrp_core::clixml::{decode, PsValue};
/// let v = decode(r#"<Obj RefId="0"><MS><I32 N="RunspaceState">2</I32></MS></Obj>"#).unwrap();
/// let obj = v.as_object().unwrap();
/// assert_eq!(obj.property("RunspaceState"), Some(&PsValue::I32(2)));
/// ```
pub fn decode(xml: &str) -> Result<PsValue, DecodeError> {
    decode_with(xml, &Limits::default())
}

/// [`decode`] with explicit [`Limits`].
pub fn decode_with(xml: &str, limits: &Limits) -> Result<PsValue, DecodeError> {
    // The id tables' storage is kept per thread between messages: a fresh
    // scope per message cost a few allocations per decoded object.
    let mut scope = SCOPE
        .try_with(|s| s.borrow_mut().take())
        .ok()
        .flatten()
        .unwrap_or_default();
    let result = decode_in_scope(xml, limits, &mut scope);
    if scope.clear() {
        // `try_with`: the thread may be exiting.
        let _ = SCOPE.try_with(|s| *s.borrow_mut() = Some(scope));
    }
    result
}

thread_local! {
    static SCOPE: std::cell::RefCell<Option<Scope>> = const { std::cell::RefCell::new(None) };
}

pub(crate) fn decode_in_scope(
    xml: &str,
    limits: &Limits,
    scope: &mut Scope,
) -> Result<PsValue, DecodeError> {
    let xml = xml.strip_prefix('\u{FEFF}').unwrap_or(xml);
    scope.open_objects = 0;
    let mut parser = Parser::new(xml, scope, limits);
    parser.document()
}

/// Ids scoped to one serializer run (one message, or one `<Objs>` document).
#[derive(Default)]
pub(crate) struct Scope {
    objects: IdTable<ObjSlot>,
    type_names: IdTable<TypeNames>,
    type_name_lists: usize,
    // `<Obj>` elements open around the current position: a cycle's
    // `PsValue::Ref` counts enclosing objects.
    open_objects: u32,
    /// While an `<Objs>` item is decoded from a window that may end inside
    /// it, what the attempt changed, so that it can be undone when the
    /// item turns out to need more bytes (see `ObjsReader`).
    journal: Option<Vec<Undo>>,
}

/// One change to a `Scope`, to undo.
enum Undo {
    /// An object id was defined.
    Object(u32),
    /// A type-name list id was (re)defined; what it held before.
    TypeNames(u32, Option<TypeNames>),
}

impl Scope {
    /// Forgets the objects (not the type names): an `<Objs>` reader does
    /// this between items so that memory stays proportional to one item.
    pub(crate) fn forget_objects(&mut self) {
        // Keep the table's storage for the next item unless it grew large.
        if !self.objects.clear() {
            self.objects = IdTable::default();
        }
    }

    /// Starts recording changes afresh (`on`), or stops recording.
    pub(crate) fn journal(&mut self, on: bool) {
        match &mut self.journal {
            Some(journal) if on => journal.clear(),
            None if on => self.journal = Some(Vec::new()),
            _ => self.journal = None,
        }
    }

    /// Undoes the changes recorded since `begin_journal`.
    pub(crate) fn roll_back(&mut self) {
        let Some(mut journal) = self.journal.take() else {
            return;
        };
        while let Some(undo) = journal.pop() {
            match undo {
                Undo::Object(id) => self.objects.remove(id),
                Undo::TypeNames(id, Some(old)) => self.type_names.set(id, old),
                Undo::TypeNames(id, None) => {
                    self.type_names.remove(id);
                    self.type_name_lists -= 1;
                }
            }
        }
        self.journal = Some(journal);
    }

    /// Empties the scope for the next message, keeping the storage unless
    /// it grew large. Returns whether the scope is worth keeping.
    fn clear(&mut self) -> bool {
        self.type_name_lists = 0;
        self.open_objects = 0;
        let objects = self.objects.clear();
        let type_names = self.type_names.clear();
        objects && type_names
    }
}

#[derive(Clone)]
enum ObjSlot {
    /// Still being decoded, at this object nesting level: a `<Ref>` to it
    /// is a cycle.
    Pending(u32),
    Done(Arc<PsObject>),
}

/// Maps wire ids to entries: a vector for the usual small dense ids, a hash
/// map for anything else (hostile input may use any u32).
struct IdTable<T> {
    dense: Vec<Option<T>>,
    sparse: HashMap<u32, T>,
}

impl<T> Default for IdTable<T> {
    fn default() -> Self {
        IdTable {
            dense: Vec::new(),
            sparse: HashMap::new(),
        }
    }
}

impl<T> IdTable<T> {
    /// Empties the table; returns whether its storage is small enough to keep.
    fn clear(&mut self) -> bool {
        self.dense.clear();
        self.sparse.clear();
        self.dense.capacity() <= SCRATCH_KEEP && self.sparse.capacity() <= SCRATCH_KEEP
    }

    fn get(&self, id: u32) -> Option<&T> {
        match self.dense.get(id as usize) {
            Some(slot) => slot.as_ref(),
            None => self.sparse.get(&id),
        }
    }

    fn contains(&self, id: u32) -> bool {
        self.get(id).is_some()
    }

    fn remove(&mut self, id: u32) {
        match self.dense.get_mut(id as usize) {
            Some(slot) => *slot = None,
            None => {
                self.sparse.remove(&id);
            }
        }
    }

    fn set(&mut self, id: u32, value: T) {
        let i = id as usize;
        if i < self.dense.len() {
            self.dense[i] = Some(value);
        } else if i == self.dense.len() && !self.sparse.contains_key(&id) {
            self.dense.push(Some(value));
        } else {
            self.sparse.insert(id, value);
        }
    }
}

/// Element names, spelled as on the wire.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tag {
    Obj,
    Ref,
    Nil,
    S,
    C,
    B,
    DT,
    TS,
    By,
    SB,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    Sg,
    Db,
    D,
    BA,
    G,
    URI,
    Version,
    XD,
    SBK,
    SS,
    PR,
    TN,
    TNRef,
    T,
    ToString,
    Props,
    MS,
    LST,
    IE,
    STK,
    QUE,
    DCT,
    En,
    Other,
}

impl Tag {
    /// Byte patterns rather than string comparison: this runs for every
    /// element, and short names compare faster byte by byte.
    #[inline]
    fn of(name: &str) -> Tag {
        match name.as_bytes() {
            [b'O', b'b', b'j'] => Tag::Obj,
            [b'R', b'e', b'f'] => Tag::Ref,
            [b'N', b'i', b'l'] => Tag::Nil,
            [b'S'] => Tag::S,
            [b'C'] => Tag::C,
            [b'B'] => Tag::B,
            [b'D', b'T'] => Tag::DT,
            [b'T', b'S'] => Tag::TS,
            [b'B', b'y'] => Tag::By,
            [b'S', b'B'] => Tag::SB,
            [b'U', b'1', b'6'] => Tag::U16,
            [b'I', b'1', b'6'] => Tag::I16,
            [b'U', b'3', b'2'] => Tag::U32,
            [b'I', b'3', b'2'] => Tag::I32,
            [b'U', b'6', b'4'] => Tag::U64,
            [b'I', b'6', b'4'] => Tag::I64,
            [b'S', b'g'] => Tag::Sg,
            [b'D', b'b'] => Tag::Db,
            [b'D'] => Tag::D,
            [b'B', b'A'] => Tag::BA,
            [b'G'] => Tag::G,
            [b'U', b'R', b'I'] => Tag::URI,
            [b'V', b'e', b'r', b's', b'i', b'o', b'n'] => Tag::Version,
            [b'X', b'D'] => Tag::XD,
            [b'S', b'B', b'K'] => Tag::SBK,
            [b'S', b'S'] => Tag::SS,
            [b'P', b'R'] => Tag::PR,
            [b'T', b'N'] => Tag::TN,
            [b'T', b'N', b'R', b'e', b'f'] => Tag::TNRef,
            [b'T'] => Tag::T,
            [b'T', b'o', b'S', b't', b'r', b'i', b'n', b'g'] => Tag::ToString,
            [b'P', b'r', b'o', b'p', b's'] => Tag::Props,
            [b'M', b'S'] => Tag::MS,
            [b'L', b'S', b'T'] => Tag::LST,
            [b'I', b'E'] => Tag::IE,
            [b'S', b'T', b'K'] => Tag::STK,
            [b'Q', b'U', b'E'] => Tag::QUE,
            [b'D', b'C', b'T'] => Tag::DCT,
            [b'E', b'n'] => Tag::En,
            _ => Tag::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Tag::Obj => "Obj",
            Tag::Ref => "Ref",
            Tag::Nil => "Nil",
            Tag::S => "S",
            Tag::C => "C",
            Tag::B => "B",
            Tag::DT => "DT",
            Tag::TS => "TS",
            Tag::By => "By",
            Tag::SB => "SB",
            Tag::U16 => "U16",
            Tag::I16 => "I16",
            Tag::U32 => "U32",
            Tag::I32 => "I32",
            Tag::U64 => "U64",
            Tag::I64 => "I64",
            Tag::Sg => "Sg",
            Tag::Db => "Db",
            Tag::D => "D",
            Tag::BA => "BA",
            Tag::G => "G",
            Tag::URI => "URI",
            Tag::Version => "Version",
            Tag::XD => "XD",
            Tag::SBK => "SBK",
            Tag::SS => "SS",
            Tag::PR => "PR",
            Tag::TN => "TN",
            Tag::TNRef => "TNRef",
            Tag::T => "T",
            Tag::ToString => "ToString",
            Tag::Props => "Props",
            Tag::MS => "MS",
            Tag::LST => "LST",
            Tag::IE => "IE",
            Tag::STK => "STK",
            Tag::QUE => "QUE",
            Tag::DCT => "DCT",
            Tag::En => "En",
            Tag::Other => "?",
        }
    }
}

/// Resolves entities and normalizes whitespace in an attribute value
/// (XML 1.0 3.3.3), then removes the CLIXML escaping.
pub(crate) fn attr_text(raw: &str) -> Result<String, DecodeErrorKind> {
    Ok(match attr_needs_work(raw) {
        false => raw.to_owned(),
        true => attr_text_slow(raw)?,
    })
}

/// [`attr_text`] for a property name: no allocation in the common case of
/// a short name with nothing to resolve.
fn attr_name(raw: &str) -> Result<PropertyName, DecodeErrorKind> {
    Ok(match attr_needs_work(raw) {
        false => PropertyName::new(raw),
        true => attr_text_slow(raw)?.into(),
    })
}

/// Whether an attribute value has anything to resolve, normalize or unescape.
#[inline]
fn attr_needs_work(raw: &str) -> bool {
    raw.bytes()
        .any(|b| matches!(b, b'\t' | b'\n' | b'\r' | b'&' | b'_'))
}

fn attr_text_slow(raw: &str) -> Result<String, DecodeErrorKind> {
    let normalized: Cow<'_, str> = if raw.bytes().any(|b| matches!(b, b'\t' | b'\n' | b'\r')) {
        Cow::Owned(raw.replace(['\t', '\n', '\r'], " "))
    } else {
        Cow::Borrowed(raw)
    };
    // Entities only: attribute values cannot hold literal line ends now.
    let unescaped = char_data(&normalized)?.into_owned();
    Ok(ps_string(Cow::Owned(unescaped)))
}

fn parse_ref_id(raw: Option<&str>, element: &'static str) -> Result<u32, DecodeErrorKind> {
    let raw = raw.ok_or(DecodeErrorKind::MissingAttribute {
        element,
        attribute: "RefId",
    })?;
    text::trim_xml(raw)
        .parse()
        .map_err(|_| DecodeErrorKind::InvalidAttribute {
            attribute: "RefId",
            value: excerpt(raw),
        })
}

/// Removes the `_xHHHH_` escaping, reusing the buffer when there is none.
#[inline]
fn ps_string(t: Cow<'_, str>) -> String {
    if has_escape(&t) {
        unescape_string(&t).into_owned()
    } else {
        t.into_owned()
    }
}

/// XML 1.0 end-of-line handling: CRLF and lone CR become LF.
fn normalize_eol(t: Cow<'_, str>) -> Cow<'_, str> {
    if memchr::memchr(b'\r', t.as_bytes()).is_none() {
        return t;
    }
    Cow::Owned(t.replace("\r\n", "\n").replace('\r', "\n"))
}

fn is_xml_ws(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Character data as written → text: entity references resolved, line
/// ends normalized (XML 1.0 2.11: CRLF and lone CR become LF; a CR written
/// as `&#13;` stays). Borrowed when there is nothing to do.
fn char_data(raw: &str) -> Result<Cow<'_, str>, DecodeErrorKind> {
    let b = raw.as_bytes();
    let Some(first) = memchr::memchr2(b'&', b'\r', b) else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = String::with_capacity(raw.len());
    out.push_str(&raw[..first]);
    let mut i = first;
    while i < b.len() {
        match b[i] {
            b'\r' => {
                out.push('\n');
                i += if b.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
            }
            b'&' => {
                let semi = memchr::memchr(b';', &b[i..])
                    .filter(|&n| n <= 12)
                    .ok_or_else(|| {
                        DecodeErrorKind::Xml("'&' without an entity reference".to_owned())
                    })?;
                out.push(resolve_entity(&raw[i + 1..i + semi])?);
                i += semi + 1;
            }
            _ => {
                let next = memchr::memchr2(b'&', b'\r', &b[i..]).map_or(b.len(), |n| i + n);
                out.push_str(&raw[i..next]);
                i = next;
            }
        }
    }
    Ok(Cow::Owned(out))
}

/// `lt`, `#x41`, ... → the character.
fn resolve_entity(name: &str) -> Result<char, DecodeErrorKind> {
    let c = match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()
            } else if let Some(dec) = name.strip_prefix('#') {
                dec.parse().ok()
            } else {
                None
            };
            // XML 1.0 Char: no NUL; surrogates are not characters.
            code.filter(|&c| c != 0).and_then(char::from_u32)
        }
    };
    c.ok_or_else(|| DecodeErrorKind::Xml(format!("unknown or invalid entity &{};", excerpt(name))))
}

/// A label for an element in error paths: `Obj[RefId="0"]`,
/// `I32[N="Count"]`.
fn label(t: &StartTag<'_>) -> String {
    let name = excerpt(t.name);
    let attrs: Vec<String> = [("N", t.n), ("RefId", t.ref_id)]
        .into_iter()
        .filter_map(|(a, v)| v.map(|v| format!("{a}=\"{}\"", excerpt(v))))
        .collect();
    if attrs.is_empty() {
        name
    } else {
        format!("{name}[{}]", attrs.join(" "))
    }
}

type Result<T, E = DecodeError> = std::result::Result<T, E>;

thread_local! {
    /// Type-name lists decoded recently, by their exact `<TN>` content.
    /// Windows repeats the same lists in every message; recognizing the text
    /// saves decoding it and shares one `Arc` between messages. Only lists
    /// that decoded successfully go in, so a match is always valid content.
    static TYPE_NAME_CACHE: std::cell::RefCell<Vec<(Box<str>, TypeNames)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

const TYPE_NAME_CACHE_ENTRIES: usize = 64;
const TYPE_NAME_CACHE_TEXT: usize = 2048;

/// Scratch stacks: each container pushes its children above where it
/// started and moves them out in one exactly sized allocation. Kept per
/// thread between inputs so that decoding a message allocates only what
/// the value itself holds.
#[derive(Default)]
struct Scratch {
    props: Vec<Property>,
    items: Vec<PsValue>,
    entries: Vec<(PsValue, PsValue)>,
    open: Vec<(usize, usize)>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Option<Scratch>> = const { std::cell::RefCell::new(None) };
}

/// Larger scratch stacks are dropped rather than kept.
const SCRATCH_KEEP: usize = 4096;

pub(crate) struct Parser<'a, 's> {
    lex: Lexer<'a>,
    scope: &'s mut Scope,
    limits: &'s Limits,
    props: Vec<Property>,
    items: Vec<PsValue>,
    entries: Vec<(PsValue, PsValue)>,
}

impl Drop for Parser<'_, '_> {
    fn drop(&mut self) {
        // After an error the stacks may still hold values: clear them.
        let mut scratch = Scratch {
            props: std::mem::take(&mut self.props),
            items: std::mem::take(&mut self.items),
            entries: std::mem::take(&mut self.entries),
            open: self.lex.take_stack(),
        };
        scratch.props.clear();
        scratch.items.clear();
        scratch.entries.clear();
        if scratch.props.capacity() <= SCRATCH_KEEP
            && scratch.items.capacity() <= SCRATCH_KEEP
            && scratch.entries.capacity() <= SCRATCH_KEEP
            && scratch.open.capacity() <= SCRATCH_KEEP
        {
            // `try_with`: the thread may be exiting.
            let _ = SCRATCH.try_with(|s| *s.borrow_mut() = Some(scratch));
        }
    }
}

impl<'a, 's> Parser<'a, 's> {
    pub(crate) fn new(xml: &'a str, scope: &'s mut Scope, limits: &'s Limits) -> Self {
        let scratch = SCRATCH
            .try_with(|s| s.borrow_mut().take())
            .ok()
            .flatten()
            .unwrap_or_default();
        Parser {
            lex: Lexer::with_stack(xml, scratch.open),
            scope,
            limits,
            props: scratch.props,
            items: scratch.items,
            entries: scratch.entries,
        }
    }

    /// A parser for one `<Objs>` item at the start of `xml`, a window on
    /// the document that may end inside the item when `partial` (running
    /// out of bytes is then `UnexpectedEof`).
    pub(crate) fn for_item(
        xml: &'a str,
        partial: bool,
        scope: &'s mut Scope,
        limits: &'s Limits,
    ) -> Self {
        scope.open_objects = 0;
        let mut parser = Parser::new(xml, scope, limits);
        parser.lex.set_partial(partial);
        parser
    }

    /// Decodes the item (one element) at the start of the input: its `S`
    /// attribute, its value, and the offset just after it.
    pub(crate) fn item(&mut self) -> Result<(Option<String>, PsValue, usize)> {
        let (t, s) = self
            .lex
            .item_start_tag()
            .map_err(|e| DecodeError::new(e.0, e.1 as u64))?;
        let stream = s.map(attr_text).transpose().map_err(|k| self.err(k))?;
        let value = self.value(&t, 1)?;
        Ok((stream, value, self.lex.pos()))
    }

    fn err(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(kind, self.lex.pos() as u64)
    }

    #[inline]
    fn next(&mut self) -> Result<Token<'a>> {
        self.lex
            .next()
            .map_err(|e| DecodeError::new(e.0, e.1 as u64))
    }

    /// The whole input: prolog, one element, epilog.
    fn document(&mut self) -> Result<PsValue> {
        let value = loop {
            match self.next()? {
                Token::Start(t) => break self.value(&t, 1)?,
                Token::Text(t) if is_xml_ws(t) => {}
                Token::Eof => return Err(self.err(DecodeErrorKind::NoRootElement)),
                _ => {
                    return Err(self.err(DecodeErrorKind::UnexpectedText {
                        context: "the document prolog",
                    }))
                }
            }
        };
        loop {
            match self.next()? {
                Token::Eof => return Ok(value),
                Token::Text(t) if is_xml_ws(t) => {}
                _ => return Err(self.err(DecodeErrorKind::TrailingContent)),
            }
        }
    }

    /// Decodes the value element whose start tag `t` was just read.
    pub(crate) fn value(&mut self, t: &StartTag<'a>, depth: usize) -> Result<PsValue> {
        self.value_inner(t, depth)
            .map_err(|err| err.in_element(label(t)))
    }

    fn value_inner(&mut self, t: &StartTag<'a>, depth: usize) -> Result<PsValue> {
        if depth > self.limits.max_depth {
            return Err(self.err(DecodeErrorKind::TooDeep(self.limits.max_depth)));
        }
        let tag = Tag::of(t.name);
        let empty = t.empty;
        match tag {
            Tag::Obj => self.object(t, depth),
            Tag::Ref => self.reference(t),
            Tag::PR => self.progress_record(empty, depth),
            Tag::Nil => {
                self.no_content(empty, "<Nil>")?;
                Ok(PsValue::Null)
            }
            Tag::S => Ok(PsValue::String(self.string(empty)?)),
            Tag::URI => Ok(PsValue::Uri(ps_string(self.text(empty)?))),
            Tag::XD => Ok(PsValue::XmlDocument(ps_string(self.text(empty)?))),
            Tag::SBK => Ok(PsValue::ScriptBlock(ps_string(self.text(empty)?))),
            Tag::C
            | Tag::B
            | Tag::DT
            | Tag::TS
            | Tag::By
            | Tag::SB
            | Tag::U16
            | Tag::I16
            | Tag::U32
            | Tag::I32
            | Tag::U64
            | Tag::I64
            | Tag::Sg
            | Tag::Db
            | Tag::D
            | Tag::BA
            | Tag::G
            | Tag::Version
            | Tag::SS => {
                let text = self.text(empty)?;
                self.primitive(tag, &text)
            }
            _ => Err(self.err(DecodeErrorKind::UnexpectedElement {
                element: excerpt(t.name),
                context: "a value position",
            })),
        }
    }

    fn primitive(&self, tag: Tag, t: &str) -> Result<PsValue> {
        let trimmed = text::trim_xml(t);
        let v = match tag {
            Tag::C => trimmed.parse().ok().map(PsValue::Char),
            Tag::B => text::parse_bool(t).map(PsValue::Bool),
            Tag::DT => text::parse_datetime(t).map(PsValue::DateTime),
            Tag::TS => text::parse_duration(t).map(PsValue::TimeSpan),
            Tag::By => trimmed.parse().ok().map(PsValue::U8),
            Tag::SB => trimmed.parse().ok().map(PsValue::I8),
            Tag::U16 => trimmed.parse().ok().map(PsValue::U16),
            Tag::I16 => trimmed.parse().ok().map(PsValue::I16),
            Tag::U32 => trimmed.parse().ok().map(PsValue::U32),
            Tag::I32 => trimmed.parse().ok().map(PsValue::I32),
            Tag::U64 => trimmed.parse().ok().map(PsValue::U64),
            Tag::I64 => trimmed.parse().ok().map(PsValue::I64),
            Tag::Sg => text::parse_f32(t).map(PsValue::Single),
            Tag::Db => text::parse_f64(t).map(PsValue::Double),
            Tag::D => text::parse_decimal(t).map(PsValue::Decimal),
            Tag::BA => decode_base64(t).map(PsValue::Bytes),
            Tag::G => uuid::Uuid::try_parse(trimmed).ok().map(PsValue::Guid),
            Tag::Version => text::parse_version(t).map(PsValue::Version),
            Tag::SS => decode_base64(t)
                .map(|ciphertext| PsValue::SecureString(SecureString::from_ciphertext(ciphertext))),
            _ => None,
        };
        v.ok_or_else(|| {
            let expected = match tag {
                Tag::C => "a UTF-16 code unit in decimal",
                Tag::B => "true or false",
                Tag::DT => "an ISO 8601 date and time (YYYY-MM-DDTHH:MM:SS[.fffffff][Z|+HH:MM])",
                Tag::TS => "an xs:duration such as PT1H2M3.5S",
                Tag::By => "an integer 0..=255",
                Tag::SB => "an integer -128..=127",
                Tag::U16 => "an integer 0..=65535",
                Tag::I16 => "an integer -32768..=32767",
                Tag::U32 => "a 32-bit unsigned integer",
                Tag::I32 => "a 32-bit signed integer",
                Tag::U64 => "a 64-bit unsigned integer",
                Tag::I64 => "a 64-bit signed integer",
                Tag::Sg | Tag::Db => "a decimal or exponent number, INF, -INF or NaN",
                Tag::D => "a decimal number without exponent",
                Tag::BA | Tag::SS => "base64",
                Tag::G => "a GUID",
                Tag::Version => "major.minor[.build[.revision]]",
                _ => "a value",
            };
            let value = if tag == Tag::SS {
                "<hidden>".to_owned()
            } else {
                excerpt(t)
            };
            self.err(DecodeErrorKind::InvalidValue {
                element: tag.name(),
                value,
                expected,
            })
        })
    }

    /// The character data of a leaf element up to its end tag, with
    /// entities resolved and line ends normalized. Borrowed from the input
    /// in the common case (one run of text, then the end tag).
    fn text(&mut self, empty: bool) -> Result<Cow<'a, str>> {
        if empty {
            return Ok(Cow::Borrowed(""));
        }
        if let Some(raw) = self.lex.simple_leaf() {
            return char_data(raw).map_err(|k| self.err(k));
        }
        let first = match self.next()? {
            Token::End => return Ok(Cow::Borrowed("")),
            Token::Text(raw) => {
                let seg = char_data(raw).map_err(|k| self.err(k))?;
                if let Token::End = self.peek_end()? {
                    return Ok(seg);
                }
                seg
            }
            other => return self.text_rest(Cow::Borrowed(""), other),
        };
        let next = self.next()?;
        self.text_rest(first, next)
    }

    /// Consumes the end tag if it comes next (the fast path of `text`);
    /// otherwise reads nothing and returns `Eof` as "not the end".
    #[inline]
    fn peek_end(&mut self) -> Result<Token<'a>> {
        if self.lex.at_end_tag() {
            self.next()
        } else {
            Ok(Token::Eof)
        }
    }

    /// The slow path of `text`: several pieces (entities split by
    /// comments, CDATA sections).
    fn text_rest(&mut self, mut acc: Cow<'a, str>, mut token: Token<'a>) -> Result<Cow<'a, str>> {
        loop {
            match token {
                Token::Text(raw) => {
                    let seg = char_data(raw).map_err(|k| self.err(k))?;
                    append(&mut acc, seg);
                }
                Token::CData(raw) => append(&mut acc, normalize_eol(Cow::Borrowed(raw))),
                Token::End => return Ok(acc),
                Token::Start(t) => {
                    return Err(self.err(DecodeErrorKind::UnexpectedElement {
                        element: excerpt(t.name),
                        context: "text content",
                    }))
                }
                Token::Eof => return Err(self.err(DecodeErrorKind::UnexpectedEof)),
            }
            token = self.next()?;
        }
    }

    /// A leaf element's text as a string: one scan in the common case of
    /// text with nothing to resolve or unescape.
    #[inline]
    fn string(&mut self, empty: bool) -> Result<String> {
        if !empty {
            if let Some(raw) = self.lex.simple_leaf() {
                if memchr::memchr3(b'&', b'\r', b'_', raw.as_bytes()).is_none() {
                    return Ok(raw.to_owned());
                }
                return Ok(ps_string(char_data(raw).map_err(|k| self.err(k))?));
            }
        }
        Ok(ps_string(self.text(empty)?))
    }

    /// An element that must have no content but whitespace.
    fn no_content(&mut self, empty: bool, context: &'static str) -> Result<()> {
        let t = self.text(empty)?;
        if is_xml_ws(&t) {
            Ok(())
        } else {
            Err(self.err(DecodeErrorKind::UnexpectedText { context }))
        }
    }

    /// Next child element of a container, skipping whitespace (comments
    /// are skipped by the lexer). `None` at the container's end tag.
    #[inline]
    fn child(&mut self, context: &'static str) -> Result<Option<StartTag<'a>>> {
        loop {
            match self.next()? {
                Token::Start(t) => return Ok(Some(t)),
                Token::End => return Ok(None),
                Token::Text(t) if is_xml_ws(t) => {}
                Token::Eof => return Err(self.err(DecodeErrorKind::UnexpectedEof)),
                _ => return Err(self.err(DecodeErrorKind::UnexpectedText { context })),
            }
        }
    }

    fn object(&mut self, t: &StartTag<'a>, depth: usize) -> Result<PsValue> {
        let ref_id = match t.ref_id {
            Some(raw) => Some(parse_ref_id(Some(raw), "Obj").map_err(|k| self.err(k))?),
            None => None,
        };
        // Bounded by the depth limit, so it cannot overflow.
        let level = self.scope.open_objects;
        if let Some(id) = ref_id {
            if self.scope.objects.contains(id) {
                return Err(self.err(DecodeErrorKind::DuplicateRefId(id)));
            }
            self.scope.objects.set(id, ObjSlot::Pending(level));
            if let Some(journal) = &mut self.scope.journal {
                journal.push(Undo::Object(id));
            }
        }
        let mut obj = PsObject::default();
        if !t.empty {
            self.scope.open_objects = level + 1;
            while let Some(c) = self.child("<Obj>")? {
                self.member(&mut obj, &c, depth + 1)?;
            }
            self.scope.open_objects = level;
        }
        let obj = Arc::new(obj);
        if let Some(id) = ref_id {
            self.scope.objects.set(id, ObjSlot::Done(Arc::clone(&obj)));
        }
        Ok(PsValue::Object(obj))
    }

    /// One child of `<Obj>`.
    fn member(&mut self, obj: &mut PsObject, c: &StartTag<'a>, depth: usize) -> Result<()> {
        if depth > self.limits.max_depth {
            return Err(self.err(DecodeErrorKind::TooDeep(self.limits.max_depth)));
        }
        let tag = Tag::of(c.name);
        let empty = c.empty;
        let r = match tag {
            Tag::TN | Tag::TNRef => {
                if obj.type_names.is_some() {
                    return Err(self.err(DecodeErrorKind::DuplicateMember("type-name list")));
                }
                let tn = if tag == Tag::TN {
                    self.type_names(c)
                } else {
                    self.type_names_ref(c)
                };
                tn.map(|tn| obj.type_names = Some(tn))
            }
            Tag::ToString => {
                if obj.to_string.is_some() {
                    return Err(self.err(DecodeErrorKind::DuplicateMember("<ToString>")));
                }
                self.text(empty).map(|t| obj.to_string = Some(ps_string(t)))
            }
            Tag::Props => self.properties(&mut obj.adapted, empty, depth),
            Tag::MS => self.properties(&mut obj.extended, empty, depth),
            Tag::LST | Tag::IE | Tag::STK | Tag::QUE | Tag::DCT => {
                if obj.collection.is_some() {
                    return Err(self.err(DecodeErrorKind::DuplicateMember("collection")));
                }
                let col = match tag {
                    Tag::LST => self.items(empty, depth).map(Collection::List),
                    Tag::IE => self.items(empty, depth).map(Collection::Enumerable),
                    Tag::STK => self.items(empty, depth).map(Collection::Stack),
                    Tag::QUE => self.items(empty, depth).map(Collection::Queue),
                    _ => self.dictionary(empty, depth).map(Collection::Dictionary),
                };
                col.map(|col| obj.collection = Some(col))
            }
            // A wrapped value: an enum's number, a primitive with notes, or
            // (as Windows writes a PSObject whose base is a PSObject) an
            // object.
            _ => {
                if obj.base.is_some() {
                    return Err(self.err(DecodeErrorKind::DuplicateMember("wrapped value")));
                }
                // `value` labels its own errors.
                obj.base = Some(self.value(c, depth)?);
                return Ok(());
            }
        };
        r.map_err(|err| err.in_element(label(c)))
    }

    fn type_names(&mut self, c: &StartTag<'a>) -> Result<TypeNames> {
        let id = match c.ref_id {
            Some(raw) => Some(parse_ref_id(Some(raw), "TN").map_err(|k| self.err(k))?),
            None => None,
        };
        let tn = if c.empty {
            TypeNames(Arc::from([]))
        } else {
            let lex = &mut self.lex;
            let cached = TYPE_NAME_CACHE.with(|cache| {
                cache
                    .borrow()
                    .iter()
                    .find(|(content, _)| lex.skip_if_content_is(content, "TN"))
                    .map(|(_, tn)| tn.clone())
            });
            match cached {
                Some(tn) => tn,
                None => self.parse_type_names()?,
            }
        };
        if let Some(id) = id {
            if !self.scope.type_names.contains(id) {
                self.scope.type_name_lists += 1;
                if self.scope.type_name_lists > self.limits.max_type_name_lists {
                    return Err(self.err(DecodeErrorKind::LimitExceeded {
                        what: "number of type-name lists",
                        limit: self.limits.max_type_name_lists,
                    }));
                }
            }
            if let Some(journal) = &mut self.scope.journal {
                journal.push(Undo::TypeNames(id, self.scope.type_names.get(id).cloned()));
            }
            self.scope.type_names.set(id, tn.clone());
        }
        Ok(tn)
    }

    /// The `<T>` children of a `<TN>` whose start tag was just read.
    fn parse_type_names(&mut self) -> Result<TypeNames> {
        let start = self.lex.pos();
        let mut end = start;
        let mut names = Vec::new();
        while let Some(t) = self.child("<TN>")? {
            if Tag::of(t.name) != Tag::T {
                return Err(self.err(DecodeErrorKind::UnexpectedElement {
                    element: excerpt(t.name),
                    context: "<TN> (only <T> allowed)",
                }));
            }
            names.push(ps_string(self.text(t.empty)?));
            end = self.lex.pos();
        }
        let tn = TypeNames(names.into());
        // Remember the exact text of the children (up to the last `</T>`),
        // when `</TN>` follows right after it.
        let content = self.lex.slice(start, end);
        let closed_right_after = self.lex.slice(end, self.lex.pos()) == "</TN>";
        if closed_right_after && content.len() <= TYPE_NAME_CACHE_TEXT && !content.is_empty() {
            TYPE_NAME_CACHE.with(|cache| {
                let mut cache = cache.borrow_mut();
                if cache.len() >= TYPE_NAME_CACHE_ENTRIES {
                    cache.clear();
                }
                cache.push((content.into(), tn.clone()));
            });
        }
        Ok(tn)
    }

    fn type_names_ref(&mut self, c: &StartTag<'a>) -> Result<TypeNames> {
        let id = parse_ref_id(c.ref_id, "TNRef").map_err(|k| self.err(k))?;
        self.no_content(c.empty, "<TNRef>")?;
        match self.scope.type_names.get(id) {
            Some(tn) => Ok(tn.clone()),
            None => Err(self.err(DecodeErrorKind::UnknownTypeNamesRef(id))),
        }
    }

    fn reference(&mut self, t: &StartTag<'a>) -> Result<PsValue> {
        let id = parse_ref_id(t.ref_id, "Ref").map_err(|k| self.err(k))?;
        self.no_content(t.empty, "<Ref>")?;
        match self.scope.objects.get(id) {
            Some(ObjSlot::Done(obj)) => Ok(PsValue::Object(Arc::clone(obj))),
            // Counted outward from the innermost open object (0).
            Some(ObjSlot::Pending(level)) => Ok(PsValue::Ref(self.scope.open_objects - 1 - level)),
            None => Err(self.err(DecodeErrorKind::UnknownRef(id))),
        }
    }

    /// `<Props>` or `<MS>`: named values.
    fn properties(&mut self, out: &mut Vec<Property>, empty: bool, depth: usize) -> Result<()> {
        if empty {
            return Ok(());
        }
        let start = self.props.len();
        while let Some(c) = self.child("a property list")? {
            let name = match c.n {
                Some(raw) => attr_name(raw).map_err(|k| self.err(k))?,
                None => {
                    return Err(self
                        .err(DecodeErrorKind::MissingAttribute {
                            element: "property",
                            attribute: "N",
                        })
                        .in_element(label(&c)))
                }
            };
            let value = self.value(&c, depth + 1)?;
            self.props.push(Property { name, value });
        }
        out.extend(self.props.drain(start..));
        Ok(())
    }

    /// `<LST>`, `<IE>`, `<STK>`, `<QUE>`: values (their `N` is ignored).
    fn items(&mut self, empty: bool, depth: usize) -> Result<Vec<PsValue>> {
        if empty {
            return Ok(Vec::new());
        }
        let start = self.items.len();
        while let Some(c) = self.child("a collection")? {
            let v = self.value(&c, depth + 1)?;
            self.items.push(v);
        }
        Ok(self.items.drain(start..).collect())
    }

    fn dictionary(&mut self, empty: bool, depth: usize) -> Result<Vec<(PsValue, PsValue)>> {
        if empty {
            return Ok(Vec::new());
        }
        let start = self.entries.len();
        while let Some(en) = self.child("<DCT>")? {
            if Tag::of(en.name) != Tag::En {
                return Err(self.err(DecodeErrorKind::UnexpectedElement {
                    element: excerpt(en.name),
                    context: "<DCT> (only <En> allowed)",
                }));
            }
            let entry = self
                .entry(en.empty, depth + 1)
                .map_err(|err| err.in_element(label(&en)))?;
            self.entries.push(entry);
        }
        Ok(self.entries.drain(start..).collect())
    }

    fn entry(&mut self, empty: bool, depth: usize) -> Result<(PsValue, PsValue)> {
        if depth > self.limits.max_depth {
            return Err(self.err(DecodeErrorKind::TooDeep(self.limits.max_depth)));
        }
        let mut key = None;
        let mut value = None;
        if !empty {
            while let Some(c) = self.child("<En>")? {
                let slot = match c.n {
                    Some("Key") => &mut key,
                    Some("Value") => &mut value,
                    _ => {
                        return Err(self.err(DecodeErrorKind::UnexpectedElement {
                            element: label(&c),
                            context: "<En> (only N=\"Key\" and N=\"Value\" allowed)",
                        }))
                    }
                };
                if slot.is_some() {
                    return Err(self.err(DecodeErrorKind::UnexpectedElement {
                        element: label(&c),
                        context: "<En> (Key or Value repeated)",
                    }));
                }
                *slot = Some(self.value(&c, depth + 1)?);
            }
        }
        match (key, value) {
            (Some(k), Some(v)) => Ok((k, v)),
            (None, _) => Err(self.err(DecodeErrorKind::IncompleteEntry("Key"))),
            (_, None) => Err(self.err(DecodeErrorKind::IncompleteEntry("Value"))),
        }
    }

    /// `<PR>`: the compact ProgressRecord form PowerShell writes in
    /// `<Objs>` streams. Decoded as the object it stands for: type
    /// `System.Management.Automation.ProgressRecord` with its eight
    /// properties as adapted properties, in .NET declaration order.
    fn progress_record(&mut self, empty: bool, depth: usize) -> Result<PsValue> {
        if empty {
            return Err(self.err(DecodeErrorKind::InvalidProgressRecord("empty <PR>")));
        }
        let mut activity = None;
        let mut activity_id = None;
        let mut current_operation = None;
        let mut parent_id = None;
        let mut percent = None;
        let mut record_type = None;
        let mut seconds = None;
        let mut status = None;
        while let Some(c) = self.child("<PR>")? {
            if depth + 1 > self.limits.max_depth {
                return Err(self.err(DecodeErrorKind::TooDeep(self.limits.max_depth)));
            }
            let name = c.name;
            let t = self.text(c.empty)?;
            let int = |p: &Self, t: &str| {
                text::trim_xml(t).parse::<i32>().map_err(|_| {
                    p.err(DecodeErrorKind::InvalidProgressRecord(
                        "a field is not an Int32",
                    ))
                })
            };
            match name {
                "AV" => activity = Some(ps_string(t)),
                "AI" => activity_id = Some(int(self, &t)?),
                "Nil" => current_operation = Some(PsValue::Null),
                "S" => current_operation = Some(PsValue::String(ps_string(t))),
                "PI" => parent_id = Some(int(self, &t)?),
                "PC" => percent = Some(int(self, &t)?),
                "T" => {
                    record_type = Some(match text::trim_xml(&t) {
                        "Processing" => ("Processing", 0),
                        "Completed" => ("Completed", 1),
                        _ => {
                            return Err(self.err(DecodeErrorKind::InvalidProgressRecord(
                                "record type is neither Processing nor Completed",
                            )))
                        }
                    })
                }
                "SR" => seconds = Some(int(self, &t)?),
                "SD" => status = Some(ps_string(t)),
                _ => {
                    return Err(self.err(DecodeErrorKind::UnexpectedElement {
                        element: excerpt(name),
                        context: "<PR>",
                    }))
                }
            }
        }
        let missing = |what| self.err(DecodeErrorKind::InvalidProgressRecord(what));
        let (rt_name, rt_value) = record_type.ok_or_else(|| missing("no <T>"))?;
        let props = [
            (
                "ActivityId",
                PsValue::I32(activity_id.ok_or_else(|| missing("no <AI>"))?),
            ),
            (
                "ParentActivityId",
                PsValue::I32(parent_id.ok_or_else(|| missing("no <PI>"))?),
            ),
            (
                "Activity",
                PsValue::String(activity.ok_or_else(|| missing("no <AV>"))?),
            ),
            (
                "StatusDescription",
                PsValue::String(status.ok_or_else(|| missing("no <SD>"))?),
            ),
            (
                "CurrentOperation",
                current_operation.unwrap_or(PsValue::Null),
            ),
            (
                "PercentComplete",
                PsValue::I32(percent.ok_or_else(|| missing("no <PC>"))?),
            ),
            (
                "SecondsRemaining",
                PsValue::I32(seconds.ok_or_else(|| missing("no <SR>"))?),
            ),
            (
                "RecordType",
                PsValue::object(PsObject {
                    type_names: Some(progress_type_names().1.clone()),
                    to_string: Some(rt_name.to_owned()),
                    base: Some(PsValue::I32(rt_value)),
                    ..PsObject::default()
                }),
            ),
        ];
        Ok(PsValue::object(PsObject {
            type_names: Some(progress_type_names().0.clone()),
            adapted: props
                .into_iter()
                .map(|(name, value)| Property::new(name, value))
                .collect(),
            ..PsObject::default()
        }))
    }
}

fn append<'a>(acc: &mut Cow<'a, str>, seg: Cow<'a, str>) {
    if acc.is_empty() {
        *acc = seg;
    } else {
        acc.to_mut().push_str(&seg);
    }
}

fn decode_base64(t: &str) -> Option<Vec<u8>> {
    let engine = &base64::engine::general_purpose::STANDARD;
    if t.bytes().any(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
        // .NET's Convert.FromBase64String ignores whitespace.
        let compact: String = t
            .chars()
            .filter(|c| !matches!(c, ' ' | '\t' | '\n' | '\r'))
            .collect();
        engine.decode(compact).ok()
    } else {
        engine.decode(t).ok()
    }
}

/// Type names of ProgressRecord and ProgressRecordType, shared by all
/// decoded `<PR>` elements.
fn progress_type_names() -> &'static (TypeNames, TypeNames) {
    static NAMES: OnceLock<(TypeNames, TypeNames)> = OnceLock::new();
    NAMES.get_or_init(|| {
        (
            TypeNames::new([
                "System.Management.Automation.ProgressRecord",
                "System.Object",
            ]),
            TypeNames::new([
                "System.Management.Automation.ProgressRecordType",
                "System.Enum",
                "System.ValueType",
                "System.Object",
            ]),
        )
    })
}
