//! The streaming CLIXML decoder: quick-xml events (borrowed from the input,
//! no DOM) straight into [`PsValue`]s.
//!
//! Recursion follows element nesting and is bounded by
//! [`Limits::max_depth`]. Memory is linear in the input: `<Ref>` shares the
//! earlier object's [`Arc`] and `<TNRef>` the earlier type-name list, so no
//! input can make the decoder copy a value twice.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

use super::error::{excerpt, DecodeError, DecodeErrorKind};
use super::escape::{has_escape, unescape_string};
use super::text;
use super::value::{Collection, Property, PsObject, PsValue, SecureString, TypeNames};

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
    let mut scope = Scope::default();
    decode_in_scope(xml, limits, &mut scope)
}

pub(crate) fn decode_in_scope(
    xml: &str,
    limits: &Limits,
    scope: &mut Scope,
) -> Result<PsValue, DecodeError> {
    let xml = xml.strip_prefix('\u{FEFF}').unwrap_or(xml);
    // `PsValue::Ref` numbers objects from the start of each item.
    scope.next_ordinal = 0;
    let mut parser = Parser::new(xml, scope, limits);
    parser.document()
}

/// Ids scoped to one serializer run (one message, or one `<Objs>` document).
#[derive(Default)]
pub(crate) struct Scope {
    objects: IdTable<ObjSlot>,
    type_names: IdTable<TypeNames>,
    type_name_lists: usize,
    // Pre-order number of the next `<Obj>`: what `PsValue::Ref` holds.
    next_ordinal: u32,
}

impl Scope {
    /// Forgets the objects (not the type names): an `<Objs>` reader does
    /// this between items so that memory stays proportional to one item.
    pub(crate) fn forget_objects(&mut self) {
        self.objects = IdTable::default();
    }
}

#[derive(Clone)]
enum ObjSlot {
    /// Still being decoded: a `<Ref>` to it is a cycle.
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
    fn get(&self, id: u32) -> Option<&T> {
        match self.dense.get(id as usize) {
            Some(slot) => slot.as_ref(),
            None => self.sparse.get(&id),
        }
    }

    fn contains(&self, id: u32) -> bool {
        self.get(id).is_some()
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
    #[inline]
    fn of(name: &str) -> Tag {
        match name {
            "Obj" => Tag::Obj,
            "Ref" => Tag::Ref,
            "Nil" => Tag::Nil,
            "S" => Tag::S,
            "C" => Tag::C,
            "B" => Tag::B,
            "DT" => Tag::DT,
            "TS" => Tag::TS,
            "By" => Tag::By,
            "SB" => Tag::SB,
            "U16" => Tag::U16,
            "I16" => Tag::I16,
            "U32" => Tag::U32,
            "I32" => Tag::I32,
            "U64" => Tag::U64,
            "I64" => Tag::I64,
            "Sg" => Tag::Sg,
            "Db" => Tag::Db,
            "D" => Tag::D,
            "BA" => Tag::BA,
            "G" => Tag::G,
            "URI" => Tag::URI,
            "Version" => Tag::Version,
            "XD" => Tag::XD,
            "SBK" => Tag::SBK,
            "SS" => Tag::SS,
            "PR" => Tag::PR,
            "TN" => Tag::TN,
            "TNRef" => Tag::TNRef,
            "T" => Tag::T,
            "ToString" => Tag::ToString,
            "Props" => Tag::Props,
            "MS" => Tag::MS,
            "LST" => Tag::LST,
            "IE" => Tag::IE,
            "STK" => Tag::STK,
            "QUE" => Tag::QUE,
            "DCT" => Tag::DCT,
            "En" => Tag::En,
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

/// The attributes CLIXML uses, read in one pass over the raw tag.
#[derive(Default)]
pub(crate) struct Attrs<'e> {
    /// `N`: property name or dictionary part, still XML- and CLIXML-escaped.
    pub(crate) n: Option<&'e str>,
    pub(crate) ref_id: Option<&'e str>,
    /// `S`: stream name in `<Objs>` documents.
    pub(crate) s: Option<&'e str>,
}

/// Parses `name="value"` pairs; rejects anything else.
pub(crate) fn scan_attrs(raw: &str) -> Result<Attrs<'_>, DecodeErrorKind> {
    let bad = || DecodeErrorKind::Xml(format!("malformed attributes {:?}", excerpt(raw)));
    let b = raw.as_bytes();
    let mut attrs = Attrs::default();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
            *i += 1;
        }
    };
    loop {
        let before = i;
        skip_ws(&mut i);
        if i == b.len() {
            return Ok(attrs);
        }
        if i == before && i != 0 {
            return Err(bad());
        }
        let name_start = i;
        while i < b.len() && !matches!(b[i], b'=' | b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        let name = &raw[name_start..i];
        skip_ws(&mut i);
        if name.is_empty() || b.get(i) != Some(&b'=') {
            return Err(bad());
        }
        i += 1;
        skip_ws(&mut i);
        let quote = *b.get(i).ok_or_else(bad)?;
        if quote != b'"' && quote != b'\'' {
            return Err(bad());
        }
        let value_start = i + 1;
        let len = memchr::memchr(quote, &b[value_start..]).ok_or_else(bad)?;
        let value = &raw[value_start..value_start + len];
        if value.contains('<') {
            return Err(bad());
        }
        i = value_start + len + 1;
        match name {
            "N" => attrs.n = Some(value),
            "RefId" => attrs.ref_id = Some(value),
            "S" => attrs.s = Some(value),
            _ => {}
        }
    }
}

/// Resolves entities and normalizes whitespace in an attribute value
/// (XML 1.0 3.3.3), then removes the CLIXML escaping.
pub(crate) fn attr_text(raw: &str) -> Result<String, DecodeErrorKind> {
    let normalized: Cow<'_, str> = if raw.bytes().any(|b| matches!(b, b'\t' | b'\n' | b'\r')) {
        Cow::Owned(raw.replace(['\t', '\n', '\r'], " "))
    } else {
        Cow::Borrowed(raw)
    };
    let unescaped: Cow<'_, str> = if normalized.contains('&') {
        Cow::Owned(
            quick_xml::escape::unescape(&normalized)
                .map_err(|e| DecodeErrorKind::Xml(e.to_string()))?
                .into_owned(),
        )
    } else {
        normalized
    };
    Ok(ps_string(unescaped))
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

fn resolve_entity(r: &BytesRef<'_>) -> Result<char, DecodeErrorKind> {
    if let Some(c) = r
        .resolve_char_ref()
        .map_err(|e| DecodeErrorKind::Xml(e.to_string()))?
    {
        return Ok(c);
    }
    match &**r {
        "lt" => Ok('<'),
        "gt" => Ok('>'),
        "amp" => Ok('&'),
        "apos" => Ok('\''),
        "quot" => Ok('"'),
        other => Err(DecodeErrorKind::Xml(format!(
            "unknown entity &{};",
            excerpt(other)
        ))),
    }
}

/// A label for an element in error paths: `Obj[RefId="0"]`.
fn label(e: &BytesStart<'_>) -> String {
    let name = excerpt(e.name().as_ref());
    let attrs = e.attributes_raw().trim();
    if attrs.is_empty() {
        name
    } else {
        format!("{name}[{}]", excerpt(attrs))
    }
}

type Result<T, E = DecodeError> = std::result::Result<T, E>;

pub(crate) struct Parser<'a, 's> {
    reader: Reader<&'a [u8]>,
    scope: &'s mut Scope,
    limits: &'s Limits,
}

impl<'a, 's> Parser<'a, 's> {
    pub(crate) fn new(xml: &'a str, scope: &'s mut Scope, limits: &'s Limits) -> Self {
        let mut reader = Reader::from_str(xml);
        let config = reader.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        config.expand_empty_elements = false;
        Parser {
            reader,
            scope,
            limits,
        }
    }

    fn err(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(kind, self.reader.buffer_position())
    }

    #[inline]
    fn next(&mut self) -> Result<Event<'a>> {
        match self.reader.read_event() {
            Ok(e) => Ok(e),
            Err(e) => Err(DecodeError::new(
                DecodeErrorKind::Xml(e.to_string()),
                self.reader.error_position(),
            )),
        }
    }

    /// The whole input: prolog, one element, epilog.
    fn document(&mut self) -> Result<PsValue> {
        let value = loop {
            match self.next()? {
                Event::Start(e) => break self.value(&e, false, 1)?,
                Event::Empty(e) => break self.value(&e, true, 1)?,
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
                Event::Text(t) if is_xml_ws(&t) => {}
                Event::Eof => return Err(self.err(DecodeErrorKind::NoRootElement)),
                _ => {
                    return Err(self.err(DecodeErrorKind::UnexpectedText {
                        context: "the document prolog",
                    }))
                }
            }
        };
        loop {
            match self.next()? {
                Event::Eof => return Ok(value),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if is_xml_ws(&t) => {}
                _ => return Err(self.err(DecodeErrorKind::TrailingContent)),
            }
        }
    }

    /// Decodes the value element `e` whose start tag was just read.
    pub(crate) fn value(
        &mut self,
        e: &BytesStart<'a>,
        empty: bool,
        depth: usize,
    ) -> Result<PsValue> {
        self.value_inner(e, empty, depth)
            .map_err(|err| err.in_element(label(e)))
    }

    fn value_inner(&mut self, e: &BytesStart<'a>, empty: bool, depth: usize) -> Result<PsValue> {
        if depth > self.limits.max_depth {
            return Err(self.err(DecodeErrorKind::TooDeep(self.limits.max_depth)));
        }
        let tag = Tag::of(e.name().as_ref());
        match tag {
            Tag::Obj => self.object(e, empty, depth),
            Tag::Ref => self.reference(e, empty),
            Tag::PR => self.progress_record(empty, depth),
            Tag::Nil => {
                self.no_content(empty, "<Nil>")?;
                Ok(PsValue::Null)
            }
            Tag::S => Ok(PsValue::String(ps_string(self.text(empty)?))),
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
                let t = self.text(empty)?;
                self.primitive(tag, &t)
            }
            _ => Err(self.err(DecodeErrorKind::UnexpectedElement {
                element: excerpt(e.name().as_ref()),
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
                .map(|ciphertext| PsValue::SecureString(SecureString { ciphertext })),
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
    /// in the common case.
    fn text(&mut self, empty: bool) -> Result<Cow<'a, str>> {
        let mut acc: Cow<'a, str> = Cow::Borrowed("");
        if empty {
            return Ok(acc);
        }
        loop {
            match self.next()? {
                Event::Text(t) => append(&mut acc, normalize_eol(t.into_inner())),
                Event::CData(c) => append(&mut acc, normalize_eol(c.into_inner())),
                Event::GeneralRef(r) => {
                    let c = resolve_entity(&r).map_err(|k| self.err(k))?;
                    acc.to_mut().push(c);
                }
                Event::End(_) => return Ok(acc),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Start(e) | Event::Empty(e) => {
                    return Err(self.err(DecodeErrorKind::UnexpectedElement {
                        element: excerpt(e.name().as_ref()),
                        context: "text content",
                    }))
                }
                Event::Eof => return Err(self.err(DecodeErrorKind::UnexpectedEof)),
                Event::Decl(_) | Event::DocType(_) => {
                    return Err(self.err(DecodeErrorKind::Xml(
                        "declaration inside an element".to_owned(),
                    )))
                }
            }
        }
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

    /// Next child element of a container, skipping whitespace and comments.
    /// `None` at the container's end tag.
    #[inline]
    fn child(&mut self, context: &'static str) -> Result<Option<(BytesStart<'a>, bool)>> {
        loop {
            match self.next()? {
                Event::Start(e) => return Ok(Some((e, false))),
                Event::Empty(e) => return Ok(Some((e, true))),
                Event::End(_) => return Ok(None),
                Event::Text(t) if is_xml_ws(&t) => {}
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => return Err(self.err(DecodeErrorKind::UnexpectedEof)),
                _ => return Err(self.err(DecodeErrorKind::UnexpectedText { context })),
            }
        }
    }

    fn attrs<'e>(&self, e: &'e BytesStart<'a>) -> Result<Attrs<'e>> {
        scan_attrs(e.attributes_raw()).map_err(|k| self.err(k))
    }

    fn object(&mut self, e: &BytesStart<'a>, empty: bool, depth: usize) -> Result<PsValue> {
        let ref_id = match self.attrs(e)?.ref_id {
            Some(raw) => Some(parse_ref_id(Some(raw), "Obj").map_err(|k| self.err(k))?),
            None => None,
        };
        let ordinal = self.scope.next_ordinal;
        self.scope.next_ordinal = ordinal.checked_add(1).ok_or_else(|| {
            self.err(DecodeErrorKind::LimitExceeded {
                what: "number of objects",
                limit: u32::MAX as usize,
            })
        })?;
        if let Some(id) = ref_id {
            if self.scope.objects.contains(id) {
                return Err(self.err(DecodeErrorKind::DuplicateRefId(id)));
            }
            self.scope.objects.set(id, ObjSlot::Pending(ordinal));
        }
        let mut obj = PsObject::default();
        if !empty {
            while let Some((c, c_empty)) = self.child("<Obj>")? {
                self.member(&mut obj, &c, c_empty, depth + 1)?;
            }
        }
        let obj = Arc::new(obj);
        if let Some(id) = ref_id {
            self.scope.objects.set(id, ObjSlot::Done(Arc::clone(&obj)));
        }
        Ok(PsValue::Object(obj))
    }

    /// One child of `<Obj>`.
    fn member(
        &mut self,
        obj: &mut PsObject,
        c: &BytesStart<'a>,
        empty: bool,
        depth: usize,
    ) -> Result<()> {
        if depth > self.limits.max_depth {
            return Err(self.err(DecodeErrorKind::TooDeep(self.limits.max_depth)));
        }
        let tag = Tag::of(c.name().as_ref());
        let r = match tag {
            Tag::TN | Tag::TNRef => {
                if obj.type_names.is_some() {
                    return Err(self.err(DecodeErrorKind::DuplicateMember("type-name list")));
                }
                let tn = if tag == Tag::TN {
                    self.type_names(c, empty)
                } else {
                    self.type_names_ref(c, empty)
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
                obj.base = Some(self.value(c, empty, depth)?);
                return Ok(());
            }
        };
        r.map_err(|err| err.in_element(label(c)))
    }

    fn type_names(&mut self, c: &BytesStart<'a>, empty: bool) -> Result<TypeNames> {
        let id = match self.attrs(c)?.ref_id {
            Some(raw) => Some(parse_ref_id(Some(raw), "TN").map_err(|k| self.err(k))?),
            None => None,
        };
        let mut names = Vec::new();
        if !empty {
            while let Some((t, t_empty)) = self.child("<TN>")? {
                if Tag::of(t.name().as_ref()) != Tag::T {
                    return Err(self.err(DecodeErrorKind::UnexpectedElement {
                        element: excerpt(t.name().as_ref()),
                        context: "<TN> (only <T> allowed)",
                    }));
                }
                names.push(ps_string(self.text(t_empty)?));
            }
        }
        let tn = TypeNames(names.into());
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
            self.scope.type_names.set(id, tn.clone());
        }
        Ok(tn)
    }

    fn type_names_ref(&mut self, c: &BytesStart<'a>, empty: bool) -> Result<TypeNames> {
        let id = parse_ref_id(self.attrs(c)?.ref_id, "TNRef").map_err(|k| self.err(k))?;
        self.no_content(empty, "<TNRef>")?;
        match self.scope.type_names.get(id) {
            Some(tn) => Ok(tn.clone()),
            None => Err(self.err(DecodeErrorKind::UnknownTypeNamesRef(id))),
        }
    }

    fn reference(&mut self, e: &BytesStart<'a>, empty: bool) -> Result<PsValue> {
        let id = parse_ref_id(self.attrs(e)?.ref_id, "Ref").map_err(|k| self.err(k))?;
        self.no_content(empty, "<Ref>")?;
        match self.scope.objects.get(id) {
            Some(ObjSlot::Done(obj)) => Ok(PsValue::Object(Arc::clone(obj))),
            Some(ObjSlot::Pending(ordinal)) => Ok(PsValue::Ref(*ordinal)),
            None => Err(self.err(DecodeErrorKind::UnknownRef(id))),
        }
    }

    /// `<Props>` or `<MS>`: named values.
    fn properties(&mut self, out: &mut Vec<Property>, empty: bool, depth: usize) -> Result<()> {
        if empty {
            return Ok(());
        }
        while let Some((c, c_empty)) = self.child("a property list")? {
            let name = match self.attrs(&c)?.n {
                Some(raw) => attr_text(raw).map_err(|k| self.err(k))?,
                None => {
                    return Err(self
                        .err(DecodeErrorKind::MissingAttribute {
                            element: "property",
                            attribute: "N",
                        })
                        .in_element(label(&c)))
                }
            };
            let value = self.value(&c, c_empty, depth + 1)?;
            out.push(Property { name, value });
        }
        Ok(())
    }

    /// `<LST>`, `<IE>`, `<STK>`, `<QUE>`: values (their `N` is ignored).
    fn items(&mut self, empty: bool, depth: usize) -> Result<Vec<PsValue>> {
        let mut out = Vec::new();
        if !empty {
            while let Some((c, c_empty)) = self.child("a collection")? {
                out.push(self.value(&c, c_empty, depth + 1)?);
            }
        }
        Ok(out)
    }

    fn dictionary(&mut self, empty: bool, depth: usize) -> Result<Vec<(PsValue, PsValue)>> {
        let mut out = Vec::new();
        if empty {
            return Ok(out);
        }
        while let Some((en, en_empty)) = self.child("<DCT>")? {
            if Tag::of(en.name().as_ref()) != Tag::En {
                return Err(self.err(DecodeErrorKind::UnexpectedElement {
                    element: excerpt(en.name().as_ref()),
                    context: "<DCT> (only <En> allowed)",
                }));
            }
            let entry = self
                .entry(en_empty, depth + 1)
                .map_err(|err| err.in_element(label(&en)))?;
            out.push(entry);
        }
        Ok(out)
    }

    fn entry(&mut self, empty: bool, depth: usize) -> Result<(PsValue, PsValue)> {
        if depth > self.limits.max_depth {
            return Err(self.err(DecodeErrorKind::TooDeep(self.limits.max_depth)));
        }
        let mut key = None;
        let mut value = None;
        if !empty {
            while let Some((c, c_empty)) = self.child("<En>")? {
                let slot = match self.attrs(&c)?.n {
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
                *slot = Some(self.value(&c, c_empty, depth + 1)?);
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
        while let Some((c, c_empty)) = self.child("<PR>")? {
            if depth + 1 > self.limits.max_depth {
                return Err(self.err(DecodeErrorKind::TooDeep(self.limits.max_depth)));
            }
            let name = c.name();
            let t = self.text(c_empty)?;
            let int = |p: &Self, t: &str| {
                text::trim_xml(t).parse::<i32>().map_err(|_| {
                    p.err(DecodeErrorKind::InvalidProgressRecord(
                        "a field is not an Int32",
                    ))
                })
            };
            match name.as_ref() {
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
                        element: excerpt(name.as_ref()),
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
                .map(|(name, value)| Property {
                    name: name.to_owned(),
                    value,
                })
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
