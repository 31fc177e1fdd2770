//! Conversion of decoded values to JSON (the mapping is documented on
//! [`JsonOptions`]).

use std::cell::Cell;
use std::io;

use base64::Engine as _;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

use super::text;
use super::value::{Collection, PsObject, PsValue};

/// Conversion of decoded values to JSON, for people who want the output of
/// a remote command as data (what `ConvertTo-Json` would print on the
/// server, with a few deliberate differences).
///
/// # Mapping
///
/// | CLIXML value | JSON |
/// |---|---|
/// | `Nil` | `null` |
/// | `S`, `URI`, `XD`, `SBK` | string (`XD` as its XML text, `SBK` as the script text) |
/// | `C` | one-character string |
/// | `B` | `true` / `false` |
/// | `By` `SB` `U16` `I16` `U32` `I32` `U64` `I64` | number (exact) |
/// | `Sg`, `Db` | number; NaN and infinities as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` |
/// | `D` (Decimal) | number when it has at most 15 significant digits, otherwise a string with every digit |
/// | `DT` | ISO 8601 string with its offset: `"2024-05-01T10:20:30.5+02:00"`, `Z` for UTC; a DateTime of unspecified kind has no offset to show |
/// | `TS` | ISO 8601 duration string: `"PT1H2M3.5S"`, `"P1DT2H"`, `"-PT0.25S"`, `"PT0S"` (exact to 100 ns, unlike a float of seconds) |
/// | `BA` | base64 string |
/// | `G` | `"792e5b37-4505-47ef-b7d2-8711bb7affa8"` |
/// | `Version` | `"10.0.17763.1"` |
/// | `SS` (SecureString) | the string `"System.Security.SecureString"`: the secret is never printed |
/// | enum (`Obj` with `System.Enum` type) | its name (`"Directory, Archive"` for flags); the number with [`JsonOptions::enums_as_numbers`] |
/// | `Obj` wrapping a primitive | that primitive (note properties such as `PSPath` on strings from `Get-Content` are dropped) |
/// | `Obj` wrapping an `Obj` | the inner object's properties, then the outer's |
/// | `LST`, `IE`, `STK`, `QUE` | array (stack top first, queue head first) |
/// | `DCT` | object; keys that are not strings are written as their text (`1`, `True`, the object's ToString) |
/// | other `Obj` | object of its adapted then extended properties in wire order (an extended property hides an adapted one of the same name) |
/// | `Obj` with no properties | its `ToString` as a string, or `{}` |
/// | `Ref` back to an enclosing object (a cycle) | `null` |
///
/// Objects nested deeper than [`JsonOptions::max_depth`] levels below the
/// top value are replaced by their ToString (or their first type name
/// without `Deserialized.`), as `ConvertTo-Json -Depth` does. Because
/// `<Ref>`s share objects, a small message can describe a huge tree; once
/// [`JsonOptions::max_nodes`] values have been written, remaining objects
/// are cut the same way, so output size stays bounded.
///
/// Differences from `ConvertTo-Json` on the deserialized objects:
/// DateTime is an ISO string (PowerShell 5.1 writes `"\/Date(ms)\/"`), TimeSpan
/// and Version are strings (PowerShell writes objects of their fields), enums
/// are names by default (PowerShell writes numbers unless `-EnumsAsStrings`),
/// the default depth is 8 rather than 2, and cycles become `null`.
///
/// ```
/// use psrp_core::clixml::{decode, to_json};
/// let xml = r#"<Obj RefId="0"><TN RefId="0"><T>Deserialized.System.IO.FileInfo</T></TN>
///   <ToString>C:\a.txt</ToString>
///   <Props><S N="Name">a.txt</S><I64 N="Length">12</I64>
///     <DT N="LastWriteTime">2024-05-01T10:20:30.5+02:00</DT>
///     <Obj N="Attributes" RefId="1"><TN RefId="1"><T>System.IO.FileAttributes</T><T>System.Enum</T></TN>
///       <ToString>ReadOnly, Archive</ToString><I32>33</I32></Obj>
///     <SS N="Secret">AAAA</SS></Props></Obj>"#;
/// let json = to_json(&decode(xml).unwrap());
/// assert_eq!(json, serde_json::json!({
///     "Name": "a.txt",
///     "Length": 12,
///     "LastWriteTime": "2024-05-01T10:20:30.5+02:00",
///     "Attributes": "ReadOnly, Archive",
///     "Secret": "System.Security.SecureString",
/// }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JsonOptions {
    /// Objects nested more than this many levels below the top value are
    /// replaced by their ToString. Default 8.
    pub max_depth: usize,
    /// Write enums as their number instead of their name. Default false.
    pub enums_as_numbers: bool,
    /// After this many JSON values have been written, remaining objects are
    /// replaced by their ToString. Default 1,000,000.
    pub max_nodes: usize,
}

impl Default for JsonOptions {
    fn default() -> Self {
        JsonOptions {
            max_depth: 8,
            enums_as_numbers: false,
            max_nodes: 1_000_000,
        }
    }
}

impl JsonOptions {
    /// These options with another depth limit.
    pub fn with_max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// These options with enums as numbers (`true`) or names (`false`).
    pub fn with_enums_as_numbers(mut self, yes: bool) -> Self {
        self.enums_as_numbers = yes;
        self
    }

    /// These options with another node budget.
    pub fn with_max_nodes(mut self, max_nodes: usize) -> Self {
        self.max_nodes = max_nodes;
        self
    }
}

/// Converts a value to JSON with the default [`JsonOptions`].
pub fn to_json(value: &PsValue) -> serde_json::Value {
    to_json_with(value, &JsonOptions::default())
}

/// Converts a value to JSON with explicit options.
pub fn to_json_with(value: &PsValue, options: &JsonOptions) -> serde_json::Value {
    // Serializing our view cannot fail: every map key is a string and no
    // float reaches serde_json as NaN or infinity.
    serde_json::to_value(JsonView::new(value, options)).unwrap_or(serde_json::Value::Null)
}

/// Writes a value as compact JSON text, without building a
/// [`serde_json::Value`] first (the fast path for large outputs).
pub fn write_json<W: io::Write>(
    writer: W,
    value: &PsValue,
    options: &JsonOptions,
) -> io::Result<()> {
    serde_json::to_writer(writer, &JsonView::new(value, options)).map_err(io::Error::other)
}

/// A value seen as JSON: implements [`Serialize`] so that it can be embedded
/// in any serde output.
///
/// ```
/// use psrp_core::clixml::{JsonOptions, JsonView, PsValue};
/// let v = PsValue::I64(7);
/// let text = serde_json::to_string(&JsonView::new(&v, &JsonOptions::default())).unwrap();
/// assert_eq!(text, "7");
/// ```
pub struct JsonView<'a> {
    value: &'a PsValue,
    options: &'a JsonOptions,
    nodes: Cell<usize>,
}

impl<'a> JsonView<'a> {
    /// Views `value` with `options`.
    pub fn new(value: &'a PsValue, options: &'a JsonOptions) -> Self {
        JsonView {
            value,
            options,
            nodes: Cell::new(0),
        }
    }
}

impl Serialize for JsonView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.nodes.set(0);
        Node {
            value: self.value,
            level: 0,
            ctx: self,
        }
        .serialize(s)
    }
}

struct Node<'v, 'c> {
    value: &'v PsValue,
    /// Object nesting level (the top value is 0).
    level: usize,
    ctx: &'c JsonView<'c>,
}

impl<'v, 'c> Node<'v, 'c> {
    fn child(&self, value: &'v PsValue) -> Node<'v, 'c> {
        Node {
            value,
            level: self.level + 1,
            ctx: self.ctx,
        }
    }
}

fn float<S: Serializer>(s: S, v: f64) -> Result<S::Ok, S::Error> {
    if v.is_nan() {
        s.serialize_str("NaN")
    } else if v.is_infinite() {
        s.serialize_str(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        s.serialize_f64(v)
    }
}

/// What PowerShell shows for an object that is not expanded: its ToString,
/// else its most derived type name.
fn cut_text(obj: &PsObject) -> String {
    if let Some(t) = &obj.to_string {
        return t.clone();
    }
    if let Some(base) = &obj.base {
        return key_text(base);
    }
    obj.type_names
        .as_ref()
        .and_then(|t| t.names().first())
        .map(|n| n.strip_prefix("Deserialized.").unwrap_or(n).to_owned())
        .unwrap_or_default()
}

/// A dictionary key as text (.NET `ToString` forms where they differ from
/// JSON's).
fn key_text(v: &PsValue) -> String {
    match v {
        PsValue::Null | PsValue::Ref(_) => String::new(),
        PsValue::String(s)
        | PsValue::Uri(s)
        | PsValue::XmlDocument(s)
        | PsValue::ScriptBlock(s) => s.clone(),
        PsValue::Char(c) => char::from_u32(u32::from(*c))
            .unwrap_or('\u{FFFD}')
            .to_string(),
        PsValue::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
        PsValue::DateTime(d) => d.to_string(),
        PsValue::TimeSpan(t) => t.to_string(),
        PsValue::U8(n) => n.to_string(),
        PsValue::I8(n) => n.to_string(),
        PsValue::U16(n) => n.to_string(),
        PsValue::I16(n) => n.to_string(),
        PsValue::U32(n) => n.to_string(),
        PsValue::I32(n) => n.to_string(),
        PsValue::U64(n) => n.to_string(),
        PsValue::I64(n) => n.to_string(),
        PsValue::Single(f) => {
            let mut s = String::new();
            text::push_f32(&mut s, *f);
            s
        }
        PsValue::Double(f) => {
            let mut s = String::new();
            text::push_f64(&mut s, *f);
            s
        }
        PsValue::Decimal(d) => d.0.clone(),
        PsValue::Bytes(_) => "System.Byte[]".to_owned(),
        PsValue::Guid(g) => g.hyphenated().to_string(),
        PsValue::Version(v) => v.to_string(),
        PsValue::SecureString(_) => SECURE_STRING.to_owned(),
        PsValue::Object(o) => cut_text(o),
    }
}

const SECURE_STRING: &str = "System.Security.SecureString";

/// Significant digits of a decimal text.
fn significant_digits(d: &str) -> usize {
    let digits = d.trim_start_matches(['+', '-']);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    if int.is_empty() {
        frac.trim_start_matches('0').trim_end_matches('0').len()
    } else {
        int.len() + frac.trim_end_matches('0').len()
    }
}

impl Serialize for Node<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ctx = self.ctx;
        ctx.nodes.set(ctx.nodes.get().saturating_add(1));
        match self.value {
            PsValue::Null | PsValue::Ref(_) => s.serialize_unit(),
            PsValue::String(v)
            | PsValue::Uri(v)
            | PsValue::XmlDocument(v)
            | PsValue::ScriptBlock(v) => s.serialize_str(v),
            PsValue::Char(c) => {
                s.serialize_char(char::from_u32(u32::from(*c)).unwrap_or('\u{FFFD}'))
            }
            PsValue::Bool(b) => s.serialize_bool(*b),
            PsValue::DateTime(d) => s.collect_str(d),
            PsValue::TimeSpan(t) => s.collect_str(t),
            PsValue::U8(n) => s.serialize_u8(*n),
            PsValue::I8(n) => s.serialize_i8(*n),
            PsValue::U16(n) => s.serialize_u16(*n),
            PsValue::I16(n) => s.serialize_i16(*n),
            PsValue::U32(n) => s.serialize_u32(*n),
            PsValue::I32(n) => s.serialize_i32(*n),
            PsValue::U64(n) => s.serialize_u64(*n),
            PsValue::I64(n) => s.serialize_i64(*n),
            // Via the shortest decimal form, so that 0.1f32 is 0.1, not
            // 0.10000000149011612.
            PsValue::Single(f) if f.is_finite() => {
                s.serialize_f64(f.to_string().parse().unwrap_or(f64::from(*f)))
            }
            PsValue::Single(f) => float(s, f64::from(*f)),
            PsValue::Double(f) => float(s, *f),
            PsValue::Decimal(d) => match d.0.parse::<f64>() {
                Ok(f) if significant_digits(&d.0) <= 15 => s.serialize_f64(f),
                _ => s.serialize_str(&d.0),
            },
            PsValue::Bytes(b) => {
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
            }
            PsValue::Guid(g) => s.serialize_str(
                g.hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            ),
            PsValue::Version(v) => s.collect_str(v),
            PsValue::SecureString(_) => s.serialize_str(SECURE_STRING),
            PsValue::Object(obj) => self.object(obj, s),
        }
    }
}

impl Node<'_, '_> {
    fn object<S: Serializer>(&self, obj: &PsObject, s: S) -> Result<S::Ok, S::Error> {
        let ctx = self.ctx;
        let opts = ctx.options;
        if self.level > opts.max_depth || ctx.nodes.get() > opts.max_nodes {
            return s.serialize_str(&cut_text(obj));
        }
        if obj.is_enum() {
            if let (Some(name), false) = (&obj.to_string, opts.enums_as_numbers) {
                return s.serialize_str(name);
            }
            if let Some(base) = &obj.base {
                return Node {
                    value: base,
                    ..*self
                }
                .serialize(s);
            }
        }
        match &obj.collection {
            Some(
                Collection::List(items)
                | Collection::Enumerable(items)
                | Collection::Stack(items)
                | Collection::Queue(items),
            ) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&self.child(item))?;
                }
                return seq.end();
            }
            Some(Collection::Dictionary(entries)) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    match k {
                        PsValue::String(key) => map.serialize_entry(key, &self.child(v))?,
                        _ => map.serialize_entry(&key_text(k), &self.child(v))?,
                    }
                }
                return map.end();
            }
            None => {}
        }
        let has_props = !(obj.adapted.is_empty() && obj.extended.is_empty());
        match &obj.base {
            Some(PsValue::Object(_)) if has_props => return self.merged(obj, s),
            Some(base) => {
                return Node {
                    value: base,
                    ..*self
                }
                .serialize(s)
            }
            None => {}
        }
        if !has_props {
            if let Some(t) = &obj.to_string {
                return s.serialize_str(t);
            }
        }
        let mut map = s.serialize_map(None)?;
        for p in &obj.adapted {
            let hidden = obj
                .extended
                .iter()
                .any(|e| e.name.eq_ignore_ascii_case(&p.name));
            if !hidden {
                map.serialize_entry(&p.name, &self.child(&p.value))?;
            }
        }
        for p in &obj.extended {
            map.serialize_entry(&p.name, &self.child(&p.value))?;
        }
        map.end()
    }
}

/// The properties of an object that wraps another object: the inner
/// object's first, then the outer's; a later property replaces an earlier
/// one of the same name in place.
fn effective_props<'o>(obj: &'o PsObject, out: &mut Vec<(&'o str, &'o PsValue)>) {
    if let Some(PsValue::Object(inner)) = &obj.base {
        effective_props(inner, out);
    }
    for p in obj.properties() {
        match out
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(&p.name))
        {
            Some(slot) => *slot = (&p.name, &p.value),
            None => out.push((&p.name, &p.value)),
        }
    }
}

impl Node<'_, '_> {
    fn merged<S: Serializer>(&self, obj: &PsObject, s: S) -> Result<S::Ok, S::Error> {
        let mut props = Vec::new();
        effective_props(obj, &mut props);
        let mut map = s.serialize_map(Some(props.len()))?;
        for (name, value) in props {
            map.serialize_entry(name, &self.child(value))?;
        }
        map.end()
    }
}

impl PsValue {
    /// This value as JSON with the default [`JsonOptions`] (see
    /// [`to_json`](super::to_json)).
    pub fn to_json(&self) -> serde_json::Value {
        to_json(self)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::clixml::{decode, Decimal, Property, TimeSpan, TypeNames};

    fn prop(name: &str, value: PsValue) -> Property {
        Property::new(name, value)
    }

    #[test]
    fn primitives() {
        let cases = [
            (PsValue::Null, json!(null)),
            (PsValue::Char(97), json!("a")),
            (PsValue::Char(0xD800), json!("\u{FFFD}")),
            (PsValue::U64(u64::MAX), json!(u64::MAX)),
            (PsValue::I64(i64::MIN), json!(i64::MIN)),
            (PsValue::Double(f64::NAN), json!("NaN")),
            (PsValue::Single(f32::NEG_INFINITY), json!("-Infinity")),
            (PsValue::Single(0.1), json!(0.1)),
            (PsValue::Decimal(Decimal("-12.3400".into())), json!(-12.34)),
            (
                PsValue::Decimal(Decimal("79228162514264337593543950335".into())),
                json!("79228162514264337593543950335"),
            ),
            (PsValue::Bytes(vec![0, 255]), json!("AP8=")),
            (
                PsValue::TimeSpan(TimeSpan { ticks: -2_500_000 }),
                json!("-PT0.25S"),
            ),
        ];
        for (v, expected) in cases {
            assert_eq!(to_json(&v), expected, "{v:?}");
        }
    }

    #[test]
    fn enums_wrapped_primitives_and_to_string() {
        let e = decode(r#"<Obj RefId="0"><TN RefId="0"><T>System.IO.FileAttributes</T><T>System.Enum</T></TN><ToString>Directory</ToString><I32>16</I32></Obj>"#).unwrap();
        assert_eq!(to_json(&e), json!("Directory"));
        let o = JsonOptions::default().with_enums_as_numbers(true);
        assert_eq!(to_json_with(&e, &o), json!(16));
        let s =
            decode(r#"<Obj RefId="0"><S>line</S><MS><S N="PSPath">C:\x</S></MS></Obj>"#).unwrap();
        assert_eq!(to_json(&s), json!("line"));
        let t =
            decode(r#"<Obj RefId="0"><TN RefId="0"><T>X</T></TN><ToString>shown</ToString></Obj>"#)
                .unwrap();
        assert_eq!(to_json(&t), json!("shown"));
        let empty = decode(r#"<Obj RefId="0"><TN RefId="0"><T>X</T></TN></Obj>"#).unwrap();
        assert_eq!(to_json(&empty), json!({}));
    }

    #[test]
    fn collections_and_dictionary_keys() {
        let xml = r#"<Obj RefId="0"><DCT>
            <En><S N="Key">s</S><Obj N="Value" RefId="2"><LST /></Obj></En>
            <En><I32 N="Key">1</I32><Obj N="Value" RefId="1"><LST><I32>1</I32><B>true</B></LST></Obj></En>
            <En><B N="Key">true</B><Nil N="Value" /></En>
            </DCT></Obj>"#;
        let v = decode(xml).unwrap();
        assert_eq!(to_json(&v), json!({"s": [], "1": [1, true], "True": null}));
    }

    #[test]
    fn property_order_and_hiding() {
        let v = PsValue::object(PsObject {
            adapted: vec![prop("b", 1.into()), prop("a", 2.into())],
            extended: vec![prop("B", 3.into()), prop("c", 4.into())],
            ..PsObject::default()
        });
        let text = serde_json::to_string(&to_json(&v)).unwrap();
        assert_eq!(text, r#"{"a":2,"B":3,"c":4}"#);
    }

    #[test]
    fn depth_limit_uses_to_string() {
        let leaf = PsValue::object(PsObject {
            type_names: Some(TypeNames::new([
                "Deserialized.System.Collections.Hashtable",
            ])),
            extended: vec![prop("x", 1.into())],
            ..PsObject::default()
        });
        let mid = PsValue::object(PsObject {
            extended: vec![prop("leaf", leaf)],
            ..PsObject::default()
        });
        let top = PsValue::object(PsObject {
            extended: vec![prop("mid", mid)],
            ..PsObject::default()
        });
        let o = JsonOptions::default().with_max_depth(1);
        assert_eq!(
            to_json_with(&top, &o),
            json!({"mid": {"leaf": "System.Collections.Hashtable"}})
        );
        assert_eq!(to_json(&top), json!({"mid": {"leaf": {"x": 1}}}));
    }

    #[test]
    fn shared_objects_cannot_explode_output() {
        // Each level refers twice to the level below: 2^40 leaves if expanded.
        let mut v = PsValue::object(PsObject {
            extended: vec![prop("x", 1.into())],
            ..PsObject::default()
        });
        for _ in 0..40 {
            let shared = match &v {
                PsValue::Object(o) => Arc::clone(o),
                _ => unreachable!(),
            };
            v = PsValue::object(PsObject {
                extended: vec![
                    prop("a", PsValue::Object(Arc::clone(&shared))),
                    prop("b", PsValue::Object(shared)),
                ],
                ..PsObject::default()
            });
        }
        let o = JsonOptions::default()
            .with_max_depth(100)
            .with_max_nodes(10_000);
        let mut out = Vec::new();
        write_json(&mut out, &v, &o).unwrap();
        assert!(out.len() < 200_000, "{}", out.len());
    }

    #[test]
    fn wrapped_objects_merge_properties() {
        let xml = r#"<Obj RefId="0"><TN RefId="0"><T>W</T></TN><ToString>w</ToString>
            <Obj RefId="1"><TNRef RefId="0" /><Props><S N="Name">n</S><I32 N="Size">1</I32></Props></Obj>
            <MS><S N="PSPath">p</S><I32 N="size">2</I32></MS></Obj>"#;
        let v = decode(xml).unwrap();
        assert_eq!(to_json(&v), json!({"Name": "n", "size": 2, "PSPath": "p"}));
        assert_eq!(
            v.as_object().unwrap().property("name"),
            Some(&PsValue::from("n"))
        );
    }

    #[test]
    fn cycles_are_cut() {
        let v = decode(r#"<Obj RefId="0"><DCT><En><S N="Key">me</S><Ref N="Value" RefId="0" /></En></DCT></Obj>"#).unwrap();
        assert_eq!(to_json(&v), json!({"me": null}));
    }
}
