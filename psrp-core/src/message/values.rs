//! Reading typed fields out of decoded CLIXML objects and building the
//! objects PSRP messages are made of.

use std::sync::Arc;

use crate::clixml::{Collection, Property, PsObject, PsValue, TypeNames, Version};

use super::MessageError;

/// Reads the properties of one object, naming `context` (a message or type
/// name) in errors.
#[derive(Clone, Copy)]
pub(crate) struct Props<'a> {
    pub obj: &'a PsObject,
    pub context: &'static str,
}

impl<'a> Props<'a> {
    /// The object behind `value`, or an error naming `context`.
    pub fn of(value: &'a PsValue, context: &'static str) -> Result<Self, MessageError> {
        match value {
            PsValue::Object(obj) => Ok(Props { obj, context }),
            other => Err(MessageError::NotAnObject {
                context,
                found: kind_name(other),
            }),
        }
    }

    /// A property; `None` if absent or `<Nil/>`.
    pub fn get(&self, name: &str) -> Option<&'a PsValue> {
        match self.obj.property(name) {
            None | Some(PsValue::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub fn require(&self, name: &'static str) -> Result<&'a PsValue, MessageError> {
        self.get(name).ok_or(MessageError::MissingProperty {
            context: self.context,
            property: name,
        })
    }

    fn wrong(&self, name: &'static str, expected: &'static str, v: &PsValue) -> MessageError {
        MessageError::WrongType {
            context: self.context,
            property: name,
            expected,
            found: kind_name(v),
        }
    }

    pub fn i32(&self, name: &'static str) -> Result<i32, MessageError> {
        let v = self.require(name)?;
        v.as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| self.wrong(name, "a 32-bit integer", v))
    }

    pub fn opt_i32(&self, name: &'static str) -> Result<Option<i32>, MessageError> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.i32(name).map(Some),
        }
    }

    pub fn i64(&self, name: &'static str) -> Result<i64, MessageError> {
        let v = self.require(name)?;
        v.as_i64().ok_or_else(|| self.wrong(name, "an integer", v))
    }

    pub fn opt_i64(&self, name: &'static str) -> Result<Option<i64>, MessageError> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.i64(name).map(Some),
        }
    }

    pub fn bool(&self, name: &'static str) -> Result<bool, MessageError> {
        let v = self.require(name)?;
        v.as_bool().ok_or_else(|| self.wrong(name, "a boolean", v))
    }

    pub fn opt_bool(&self, name: &'static str) -> Result<Option<bool>, MessageError> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.bool(name).map(Some),
        }
    }

    pub fn string(&self, name: &'static str) -> Result<String, MessageError> {
        let v = self.require(name)?;
        string_of(v).ok_or_else(|| self.wrong(name, "a string", v))
    }

    pub fn opt_string(&self, name: &'static str) -> Result<Option<String>, MessageError> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.string(name).map(Some),
        }
    }

    pub fn version(&self, name: &'static str) -> Result<Version, MessageError> {
        let v = self.require(name)?;
        match v {
            PsValue::Version(ver) => Ok(*ver),
            PsValue::String(s) => Version::parse(s).ok_or_else(|| MessageError::InvalidValue {
                context: self.context,
                property: name,
                value: s.clone(),
            }),
            other => Err(self.wrong(name, "a version", other)),
        }
    }

    /// Items of a list-like property (`<LST>`, `<IE>`, …); empty if absent.
    pub fn list(&self, name: &'static str) -> Result<Vec<PsValue>, MessageError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(v) => list_items(v)
                .map(<[PsValue]>::to_vec)
                .ok_or_else(|| self.wrong(name, "a list", v)),
        }
    }
}

/// A short description of what a value is, for error messages.
pub(crate) fn kind_name(v: &PsValue) -> String {
    let s = match v {
        PsValue::Null => "null",
        PsValue::String(_) => "a string",
        PsValue::Char(_) => "a char",
        PsValue::Bool(_) => "a boolean",
        PsValue::DateTime(_) => "a DateTime",
        PsValue::TimeSpan(_) => "a TimeSpan",
        PsValue::U8(_)
        | PsValue::I8(_)
        | PsValue::U16(_)
        | PsValue::I16(_)
        | PsValue::U32(_)
        | PsValue::I32(_)
        | PsValue::U64(_)
        | PsValue::I64(_) => "an integer",
        PsValue::Single(_) | PsValue::Double(_) | PsValue::Decimal(_) => "a number",
        PsValue::Bytes(_) => "a byte array",
        PsValue::Guid(_) => "a GUID",
        PsValue::Uri(_) => "a URI",
        PsValue::Version(_) => "a version",
        PsValue::XmlDocument(_) => "an XML document",
        PsValue::ScriptBlock(_) => "a script block",
        PsValue::SecureString(_) => "a SecureString",
        PsValue::Object(o) => {
            return match o.type_names.as_ref().and_then(|t| t.names().first()) {
                Some(t) => format!("an object of type {t}"),
                None => "an object".to_owned(),
            }
        }
        PsValue::Ref(_) => "a reference",
    };
    s.to_owned()
}

/// The text of a string-like value (a string, or an object wrapping one).
pub(crate) fn string_of(v: &PsValue) -> Option<String> {
    match v {
        PsValue::String(s) | PsValue::Uri(s) | PsValue::ScriptBlock(s) => Some(s.clone()),
        PsValue::Object(o) => o.base.as_ref().and_then(string_of),
        _ => None,
    }
}

/// The items of a list-like value.
pub(crate) fn list_items(v: &PsValue) -> Option<&[PsValue]> {
    match v {
        PsValue::Object(o) => match o.collection.as_ref()? {
            Collection::List(items)
            | Collection::Enumerable(items)
            | Collection::Stack(items)
            | Collection::Queue(items) => Some(items),
            Collection::Dictionary(_) => None,
        },
        _ => None,
    }
}

/// The entries of a dictionary value.
pub(crate) fn dict_entries(v: &PsValue) -> Option<&[(PsValue, PsValue)]> {
    match v {
        PsValue::Object(o) => match o.collection.as_ref()? {
            Collection::Dictionary(entries) => Some(entries),
            _ => None,
        },
        _ => None,
    }
}

/// Builds an object with note properties (`<MS>`), as PSRP messages are.
#[derive(Default)]
pub(crate) struct ObjBuilder {
    obj: PsObject,
}

impl ObjBuilder {
    pub fn new() -> Self {
        ObjBuilder::default()
    }

    pub fn with_types(names: &[&str]) -> Self {
        ObjBuilder {
            obj: PsObject::with_type_names(TypeNames::new(names.iter().copied())),
        }
    }

    pub fn display(mut self, s: impl Into<String>) -> Self {
        self.obj.to_string = Some(s.into());
        self
    }

    pub fn note(mut self, name: &str, value: impl Into<PsValue>) -> Self {
        self.obj.extended.push(Property::new(name, value));
        self
    }

    pub fn adapted(mut self, name: &str, value: impl Into<PsValue>) -> Self {
        self.obj.adapted.push(Property::new(name, value));
        self
    }

    /// Adds the note only when there is a value.
    pub fn note_opt(self, name: &str, value: Option<impl Into<PsValue>>) -> Self {
        match value {
            Some(v) => self.note(name, v),
            None => self,
        }
    }

    /// Adds the note, `<Nil/>` when there is no value.
    pub fn note_or_nil(self, name: &str, value: Option<impl Into<PsValue>>) -> Self {
        match value {
            Some(v) => self.note(name, v),
            None => self.note(name, PsValue::Null),
        }
    }

    pub fn list(mut self, items: Vec<PsValue>) -> Self {
        self.obj.collection = Some(Collection::List(items));
        self
    }

    pub fn dict(mut self, entries: Vec<(PsValue, PsValue)>) -> Self {
        self.obj.collection = Some(Collection::Dictionary(entries));
        self
    }

    pub fn build(self) -> PsValue {
        PsValue::Object(Arc::new(self.obj))
    }
}

/// An enum value as .NET serializes it: type names ending in System.Enum,
/// the name as ToString and the integer value.
pub(crate) fn enum_value(type_name: &str, value: i32, name: impl Into<String>) -> PsValue {
    let mut obj = PsObject::with_type_names(TypeNames::new([
        type_name,
        "System.Enum",
        "System.ValueType",
        "System.Object",
    ]));
    obj.to_string = Some(name.into());
    obj.base = Some(PsValue::I32(value));
    PsValue::object(obj)
}

/// A list object with the given .NET type names.
pub(crate) fn typed_list(type_names: &[&str], items: Vec<PsValue>) -> PsValue {
    ObjBuilder::with_types(type_names).list(items).build()
}

/// `System.Collections.ArrayList`, as host call parameters use.
pub(crate) fn array_list(items: Vec<PsValue>) -> PsValue {
    typed_list(&["System.Collections.ArrayList", "System.Object"], items)
}

/// A `System.Collections.Hashtable`.
pub(crate) fn hashtable(entries: Vec<(PsValue, PsValue)>) -> PsValue {
    ObjBuilder::with_types(&["System.Collections.Hashtable", "System.Object"])
        .dict(entries)
        .build()
}

/// Names of the flags set in `value`, .NET style (`"A, B"`), from a table
/// of (value, name) pairs where composite values come first.
pub(crate) fn flags_to_string(value: i32, table: &[(i32, &str)]) -> String {
    if let Some((_, name)) = table.iter().find(|(v, _)| *v == value) {
        return (*name).to_owned();
    }
    let mut rest = value;
    let mut names = Vec::new();
    for (v, name) in table.iter().rev() {
        if *v != 0 && rest & v == *v {
            names.push(*name);
            rest &= !v;
        }
    }
    if rest != 0 || names.is_empty() {
        return value.to_string();
    }
    names.reverse();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        let v = Version::parse("2.3").unwrap();
        assert_eq!((v.major, v.minor, v.build, v.revision), (2, 3, None, None));
        let v = Version::parse("1.1.0.1").unwrap();
        assert_eq!((v.build, v.revision), (Some(0), Some(1)));
        assert!(Version::parse("2").is_none());
        assert!(Version::parse("2.x").is_none());
        assert!(Version::parse("1.2.3.4.5").is_none());
    }

    #[test]
    fn flags_render_like_dotnet() {
        let table = [(0, "None"), (1, "A"), (2, "B"), (4, "C"), (7, "All")];
        assert_eq!(flags_to_string(0, &table), "None");
        assert_eq!(flags_to_string(7, &table), "All");
        assert_eq!(flags_to_string(5, &table), "A, C");
        assert_eq!(flags_to_string(9, &table), "9");
    }

    #[test]
    fn props_report_what_is_wrong() {
        let v = ObjBuilder::new()
            .note("N", 5)
            .note("S", "x")
            .note("Nil", PsValue::Null)
            .build();
        let p = Props::of(&v, "TEST").unwrap();
        assert_eq!(p.i32("N").unwrap(), 5);
        assert_eq!(p.opt_i32("Nil").unwrap(), None);
        assert_eq!(
            p.i32("S").unwrap_err().to_string(),
            "TEST: property S should be a 32-bit integer but is a string"
        );
        assert_eq!(
            p.string("Missing").unwrap_err().to_string(),
            "TEST: property Missing is missing"
        );
        assert!(Props::of(&PsValue::I32(1), "TEST").is_err());
    }
}
