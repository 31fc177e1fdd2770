//! The CLIXML encoder: writes what a Windows PowerShell serializer writes and
//! its deserializer reads (element names and text forms of MS-PSRP 2.2.5).
//!
//! Object RefIds and type-name RefIds count from 0 in writing order (as
//! Windows numbers them). An object shared through the same [`Arc`] is
//! written once and referenced with `<Ref>` afterwards; a type-name list
//! seen before is written as `<TNRef>`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;

use super::escape::push_escaped;
use super::text;
use super::value::{Collection, Property, PsObject, PsValue};

/// Encodes one value as one CLIXML element, RefIds from 0 (a PSRP message
/// body is one such element, usually an `<Obj>`).
///
/// ```
/// use psrp_core::clixml::{encode, PsObject, PsValue, Property};
/// let obj = PsObject {
///     extended: vec![Property { name: "Name".into(), value: "a<b".into() }],
///     ..PsObject::default()
/// };
/// assert_eq!(
///     encode(&PsValue::object(obj)),
///     r#"<Obj RefId="0"><MS><S N="Name">a&lt;b</S></MS></Obj>"#
/// );
/// assert_eq!(encode(&PsValue::I32(-5)), "<I32>-5</I32>");
/// ```
pub fn encode(value: &PsValue) -> String {
    let mut enc = Encoder::new();
    enc.write(value, None);
    enc.finish()
}

/// Writes several values in one RefId scope, e.g. the items of an `<Objs>`
/// document (see [`encode_objs`]) or properties written one by one.
#[derive(Default)]
pub struct Encoder {
    out: String,
    next_ref_id: u32,
    // RefIds of the objects being written, outermost first: a
    // `PsValue::Ref(k)` names the k-th from the end.
    open: Vec<u32>,
    // Objects already written, by their Arc's address. The Arc clone keeps
    // the address from being reused by another object while the encoder
    // lives.
    objects: HashMap<*const PsObject, (u32, Arc<PsObject>)>,
    type_names: HashMap<Arc<[String]>, u32>,
}

impl Encoder {
    /// An encoder with empty output and RefIds starting at 0.
    pub fn new() -> Self {
        Encoder::default()
    }

    /// Appends `value` as one element, with `N="name"` when `name` is given.
    ///
    /// A [`PsValue::Ref`]`(k)` inside `value` is written as a `<Ref>` to the
    /// k-th object enclosing it (0 = the innermost); one that names no
    /// enclosing object is written as `<Nil />`.
    pub fn write(&mut self, value: &PsValue, name: Option<&str>) {
        self.value(value, name, None);
    }

    /// Appends `value` with an `S="stream"` attribute, as `<Objs>`
    /// documents mark non-output streams (`S="error"`, `S="progress"`).
    pub fn write_with_stream(&mut self, value: &PsValue, stream: &str) {
        self.value(value, None, Some(stream));
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.out
    }

    fn open(&mut self, tag: &str, name: Option<&str>, stream: Option<&str>) {
        self.out.push('<');
        self.out.push_str(tag);
        self.attrs(name, stream);
        self.out.push('>');
    }

    fn attrs(&mut self, name: Option<&str>, stream: Option<&str>) {
        if let Some(n) = name {
            self.out.push_str(" N=\"");
            push_escaped(&mut self.out, n, true);
            self.out.push('"');
        }
        if let Some(s) = stream {
            self.out.push_str(" S=\"");
            push_escaped(&mut self.out, s, true);
            self.out.push('"');
        }
    }

    fn close(&mut self, tag: &str) {
        self.out.push_str("</");
        self.out.push_str(tag);
        self.out.push('>');
    }

    fn empty(&mut self, tag: &str, name: Option<&str>, stream: Option<&str>) {
        self.out.push('<');
        self.out.push_str(tag);
        self.attrs(name, stream);
        self.out.push_str(" />");
    }

    fn leaf(
        &mut self,
        tag: &str,
        name: Option<&str>,
        stream: Option<&str>,
        body: impl FnOnce(&mut String),
    ) {
        self.open(tag, name, stream);
        body(&mut self.out);
        self.close(tag);
    }

    fn value(&mut self, v: &PsValue, name: Option<&str>, stream: Option<&str>) {
        let b64 = &base64::engine::general_purpose::STANDARD;
        match v {
            PsValue::Null => self.empty("Nil", name, stream),
            PsValue::String(s) => self.leaf("S", name, stream, |o| push_escaped(o, s, false)),
            PsValue::Char(c) => self.leaf("C", name, stream, |o| write_num(o, c)),
            PsValue::Bool(b) => self.leaf("B", name, stream, |o| {
                o.push_str(if *b { "true" } else { "false" })
            }),
            PsValue::DateTime(d) => self.leaf("DT", name, stream, |o| text::push_datetime(o, d)),
            PsValue::TimeSpan(t) => self.leaf("TS", name, stream, |o| text::push_duration(o, t)),
            PsValue::U8(n) => self.leaf("By", name, stream, |o| write_num(o, n)),
            PsValue::I8(n) => self.leaf("SB", name, stream, |o| write_num(o, n)),
            PsValue::U16(n) => self.leaf("U16", name, stream, |o| write_num(o, n)),
            PsValue::I16(n) => self.leaf("I16", name, stream, |o| write_num(o, n)),
            PsValue::U32(n) => self.leaf("U32", name, stream, |o| write_num(o, n)),
            PsValue::I32(n) => self.leaf("I32", name, stream, |o| write_num(o, n)),
            PsValue::U64(n) => self.leaf("U64", name, stream, |o| write_num(o, n)),
            PsValue::I64(n) => self.leaf("I64", name, stream, |o| write_num(o, n)),
            PsValue::Single(f) => self.leaf("Sg", name, stream, |o| text::push_f32(o, *f)),
            PsValue::Double(f) => self.leaf("Db", name, stream, |o| text::push_f64(o, *f)),
            PsValue::Decimal(d) => self.leaf("D", name, stream, |o| {
                super::escape::push_xml_escaped(o, &d.0, false)
            }),
            PsValue::Bytes(b) => self.leaf("BA", name, stream, |o| b64.encode_string(b, o)),
            PsValue::Guid(g) => self.leaf("G", name, stream, |o| {
                o.push_str(
                    g.hyphenated()
                        .encode_lower(&mut uuid::Uuid::encode_buffer()),
                )
            }),
            PsValue::Uri(s) => self.leaf("URI", name, stream, |o| push_escaped(o, s, false)),
            PsValue::Version(ver) => {
                self.leaf("Version", name, stream, |o| text::push_version(o, ver))
            }
            PsValue::XmlDocument(s) => self.leaf("XD", name, stream, |o| push_escaped(o, s, false)),
            PsValue::ScriptBlock(s) => {
                self.leaf("SBK", name, stream, |o| push_escaped(o, s, false))
            }
            PsValue::SecureString(s) => {
                self.leaf("SS", name, stream, |o| b64.encode_string(&s.ciphertext, o))
            }
            PsValue::Ref(k) => {
                let target = (*k as usize)
                    .checked_add(1)
                    .and_then(|up| self.open.len().checked_sub(up))
                    .map(|i| self.open[i]);
                match target {
                    Some(id) => self.reference(id, name, stream),
                    None => self.empty("Nil", name, stream),
                }
            }
            PsValue::Object(obj) => self.object(obj, name, stream),
        }
    }

    fn reference(&mut self, id: u32, name: Option<&str>, stream: Option<&str>) {
        self.out.push_str("<Ref");
        self.attrs(name, stream);
        let _ = write!(self.out, " RefId=\"{id}\" />");
    }

    fn object(&mut self, obj: &Arc<PsObject>, name: Option<&str>, stream: Option<&str>) {
        let key = Arc::as_ptr(obj);
        if let Some(&(id, _)) = self.objects.get(&key) {
            self.reference(id, name, stream);
            return;
        }
        let id = self.next_ref_id;
        self.next_ref_id += 1;
        self.objects.insert(key, (id, Arc::clone(obj)));

        self.out.push_str("<Obj");
        self.attrs(name, stream);
        let _ = write!(self.out, " RefId=\"{id}\">");
        self.open.push(id);
        if let Some(tn) = &obj.type_names {
            match self.type_names.get(&tn.0) {
                Some(tn_id) => {
                    let _ = write!(self.out, "<TNRef RefId=\"{tn_id}\" />");
                }
                None => {
                    let tn_id = self.type_names.len() as u32;
                    self.type_names.insert(Arc::clone(&tn.0), tn_id);
                    let _ = write!(self.out, "<TN RefId=\"{tn_id}\">");
                    for t in tn.names() {
                        self.leaf("T", None, None, |o| push_escaped(o, t, false));
                    }
                    self.out.push_str("</TN>");
                }
            }
        }
        if let Some(s) = &obj.to_string {
            self.leaf("ToString", None, None, |o| push_escaped(o, s, false));
        }
        if let Some(base) = &obj.base {
            self.value(base, None, None);
        }
        match &obj.collection {
            None => {}
            Some(Collection::List(items)) => self.items("LST", items),
            Some(Collection::Enumerable(items)) => self.items("IE", items),
            Some(Collection::Stack(items)) => self.items("STK", items),
            Some(Collection::Queue(items)) => self.items("QUE", items),
            Some(Collection::Dictionary(entries)) => {
                self.out.push_str("<DCT>");
                for (k, v) in entries {
                    self.out.push_str("<En>");
                    self.value(k, Some("Key"), None);
                    self.value(v, Some("Value"), None);
                    self.out.push_str("</En>");
                }
                self.out.push_str("</DCT>");
            }
        }
        self.properties("Props", &obj.adapted);
        self.properties("MS", &obj.extended);
        self.out.push_str("</Obj>");
        self.open.pop();
    }

    fn items(&mut self, tag: &str, items: &[PsValue]) {
        self.open(tag, None, None);
        for item in items {
            self.value(item, None, None);
        }
        self.close(tag);
    }

    fn properties(&mut self, tag: &str, props: &[Property]) {
        if props.is_empty() {
            return;
        }
        self.open(tag, None, None);
        for p in props {
            self.value(&p.value, Some(&p.name), None);
        }
        self.close(tag);
    }
}

fn write_num(out: &mut String, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

/// Encodes values as an `<Objs>` document (the Export-Clixml format), all
/// in one RefId scope. Each item may carry a stream name (`S` attribute).
///
/// ```
/// use psrp_core::clixml::{encode_objs, PsValue};
/// let doc = encode_objs([(PsValue::from("hi"), None), (PsValue::from("oops"), Some("Error"))]);
/// assert!(doc.ends_with(r#"<S>hi</S><S S="Error">oops</S></Objs>"#));
/// ```
pub fn encode_objs<'v, I>(items: I) -> String
where
    I: IntoIterator<Item = (PsValue, Option<&'v str>)>,
{
    let mut enc = Encoder::new();
    enc.out.push_str(
        r#"<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">"#,
    );
    for (v, stream) in items {
        match stream {
            Some(s) => enc.write_with_stream(&v, s),
            None => enc.write(&v, None),
        }
        // Each item is its own object scope (type names stay shared), so
        // that a reader can forget objects between items.
        enc.objects.clear();
    }
    enc.out.push_str("</Objs>");
    enc.out
}
