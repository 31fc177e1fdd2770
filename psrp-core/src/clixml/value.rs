//! The value model for CLIXML (MS-PSRP 2.2.5): what a serialized PowerShell
//! object is once decoded, independent of how it was written.
//!
//! Design notes: see [`PsValue`].

use std::fmt;
use std::sync::Arc;

/// One CLIXML value: a primitive, `null`, or a complex object.
///
/// # Design
///
/// - One enum variant per CLIXML primitive element, so that a value written
///   back goes out as the same .NET type (an `<I64>` stays an `<I64>`).
/// - Complex objects are shared through [`Arc`] so that a `<Ref>` to an
///   earlier object costs a pointer copy, not a deep clone: hostile input
///   with many references to one large object cannot blow up memory, and the
///   encoder writes a shared `Arc` once and `<Ref>`s it afterwards.
/// - Type-name lists are shared the same way (`<TNRef>` reuse).
/// - A `<Ref>` to an object that is still being decoded (a cycle, e.g. a
///   hashtable that contains itself) cannot be an `Arc` to a finished value;
///   it stays a [`PsValue::Ref`] counting the enclosing objects out to the
///   target (0 = the innermost), so it survives re-encoding with new RefIds
///   and any order of object members.
/// - Property order is preserved (vectors, not maps): PowerShell shows
///   properties in serialization order and objects have few properties.
/// - Values without an exact Rust counterpart keep their wire form:
///   [`Decimal`] its text (no precision lost), [`SecureString`] its
///   ciphertext, [`PsValue::XmlDocument`] its XML text.
/// - Equality is structural, except that NaN equals NaN (a decoded value
///   compares equal to the value that was encoded).
#[derive(Clone)]
pub enum PsValue {
    /// `<Nil/>`
    Null,
    /// `<S>` System.String
    String(String),
    /// `<C>` System.Char, one UTF-16 code unit.
    Char(u16),
    /// `<B>` System.Boolean
    Bool(bool),
    /// `<DT>` System.DateTime
    DateTime(DateTime),
    /// `<TS>` System.TimeSpan
    TimeSpan(TimeSpan),
    /// `<By>` System.Byte
    U8(u8),
    /// `<SB>` System.SByte
    I8(i8),
    /// `<U16>` System.UInt16
    U16(u16),
    /// `<I16>` System.Int16
    I16(i16),
    /// `<U32>` System.UInt32
    U32(u32),
    /// `<I32>` System.Int32
    I32(i32),
    /// `<U64>` System.UInt64
    U64(u64),
    /// `<I64>` System.Int64
    I64(i64),
    /// `<Sg>` System.Single
    Single(f32),
    /// `<Db>` System.Double
    Double(f64),
    /// `<D>` System.Decimal
    Decimal(Decimal),
    /// `<BA>` System.Byte[]
    Bytes(Vec<u8>),
    /// `<G>` System.Guid
    Guid(uuid::Uuid),
    /// `<URI>` System.Uri
    Uri(String),
    /// `<Version>` System.Version
    Version(Version),
    /// `<XD>` System.Xml.XmlDocument, as its outer XML text.
    XmlDocument(String),
    /// `<SBK>` System.Management.Automation.ScriptBlock, as its text.
    ScriptBlock(String),
    /// `<SS>` System.Security.SecureString, still encrypted with the session key.
    SecureString(SecureString),
    /// `<Obj>`: a complex object (or a primitive with extra type names or members).
    Object(Arc<PsObject>),
    /// `<Ref RefId=".."/>` to an enclosing object that was not finished when
    /// the reference was read (a cycle). Holds which enclosing object, counted
    /// outward: 0 is the innermost `<Obj>` around the reference, 1 the one
    /// around that, and so on. References to finished objects decode to
    /// [`PsValue::Object`] sharing the same `Arc`.
    Ref(u32),
}

/// A complex object (`<Obj>`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PsObject {
    /// `<TN>` type names, most derived first (as on the wire, without the
    /// `Deserialized.` prefix PowerShell adds when it rehydrates).
    pub type_names: Option<TypeNames>,
    /// `<ToString>`
    pub to_string: Option<String>,
    /// The value this object wraps, if any: the value of an enum, a
    /// primitive that carries extra type names or members, or (as Windows
    /// writes a PSObject whose base object is a PSObject) another object.
    pub base: Option<PsValue>,
    /// `<LST>`, `<IE>`, `<STK>`, `<QUE>` or `<DCT>` content.
    pub collection: Option<Collection>,
    /// `<Props>`: adapted properties, in wire order.
    pub adapted: Vec<Property>,
    /// `<MS>`: extended (note) properties, in wire order.
    pub extended: Vec<Property>,
}

/// A shared, immutable list of type names (`<TN>`; reused by `<TNRef>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TypeNames(pub Arc<[String]>);

/// Collection content of an object.
#[derive(Clone, Debug, PartialEq)]
pub enum Collection {
    /// `<LST>`: an IList (arrays, ArrayList, `List<T>`).
    List(Vec<PsValue>),
    /// `<IE>`: any other IEnumerable.
    Enumerable(Vec<PsValue>),
    /// `<STK>`: a Stack, top first.
    Stack(Vec<PsValue>),
    /// `<QUE>`: a Queue, head first.
    Queue(Vec<PsValue>),
    /// `<DCT>`: an IDictionary, entries in wire order.
    Dictionary(Vec<(PsValue, PsValue)>),
}

/// A named property (`N="..."` attribute) and its value.
///
/// ```
/// use psrp_core::clixml::{Property, PsValue};
/// let p = Property::new("Length", 42i64);
/// assert_eq!(p.name, "Length");
/// assert_eq!(p.value, PsValue::I64(42));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    /// The property name, unescaped.
    pub name: PropertyName,
    /// Its value.
    pub value: PsValue,
}

impl Property {
    /// A property from anything that converts to a name and a value.
    pub fn new(name: impl Into<PropertyName>, value: impl Into<PsValue>) -> Self {
        Property {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A property name: immutable text that reads as a `&str`.
///
/// Names of up to 24 bytes (nearly all .NET member names) are stored inline,
/// so decoding a property allocates nothing for its name: objects carry
/// dozens of properties and names were the largest share of the decoder's
/// allocations.
///
/// ```
/// use psrp_core::clixml::PropertyName;
/// let n = PropertyName::from("LastWriteTime");
/// assert_eq!(n, "LastWriteTime");
/// assert_eq!(n.as_str().len(), 13);
/// assert!(n.eq_ignore_ascii_case("lastwritetime")); // any `str` method
/// assert_eq!(PropertyName::from(String::from("Name")).to_string(), "Name");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PropertyName(compact_str::CompactString);

impl PropertyName {
    /// A name from text.
    pub fn new(name: &str) -> Self {
        PropertyName(compact_str::CompactString::new(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::ops::Deref for PropertyName {
    type Target = str;
    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl AsRef<str> for PropertyName {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

impl std::borrow::Borrow<str> for PropertyName {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for PropertyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl fmt::Display for PropertyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl serde::Serialize for PropertyName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl From<&str> for PropertyName {
    fn from(s: &str) -> Self {
        PropertyName::new(s)
    }
}

impl From<&String> for PropertyName {
    fn from(s: &String) -> Self {
        PropertyName::new(s)
    }
}

impl From<String> for PropertyName {
    fn from(s: String) -> Self {
        PropertyName(s.into())
    }
}

impl From<PropertyName> for String {
    fn from(n: PropertyName) -> Self {
        n.0.into_string()
    }
}

impl PartialEq<str> for PropertyName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for PropertyName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for PropertyName {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<PropertyName> for str {
    fn eq(&self, other: &PropertyName) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<PropertyName> for &str {
    fn eq(&self, other: &PropertyName) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<PropertyName> for String {
    fn eq(&self, other: &PropertyName) -> bool {
        self == other.as_str()
    }
}

/// System.DateTime: a calendar date and time of day with 100 ns precision and
/// the .NET `DateTimeKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateTime {
    /// Year, 1..=9999.
    pub year: u16,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of month, 1..=31 (valid for the month).
    pub day: u8,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59.
    pub second: u8,
    /// Fraction of a second in 100 ns ticks, 0..=9_999_999.
    pub ticks: u32,
    /// How the time relates to UTC.
    pub kind: DateTimeKind,
}

/// .NET `DateTimeKind`, with the UTC offset a local time was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DateTimeKind {
    /// No zone information (no suffix on the wire).
    Unspecified,
    /// UTC (`Z` suffix).
    Utc,
    /// Local time at the given offset from UTC in minutes (`±HH:MM` suffix).
    Local {
        /// Offset east of UTC, in minutes.
        offset_minutes: i16,
    },
}

/// System.TimeSpan: a signed duration in 100 ns ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimeSpan {
    /// Duration in 100 ns ticks.
    pub ticks: i64,
}

/// System.Decimal, kept as its invariant decimal text so no precision is lost
/// (e.g. `"-12.3400"`). The decoder only produces valid text; build one with
/// [`Decimal::new`] to have yours checked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decimal(pub String);

impl Decimal {
    /// Checks `text` is a plain decimal number (optional sign, digits,
    /// optional fraction; no exponent) as .NET writes a Decimal.
    ///
    /// ```
    /// use psrp_core::clixml::Decimal;
    /// assert!(Decimal::new("-12.50").is_some());
    /// assert!(Decimal::new("1e5").is_none());
    /// ```
    pub fn new(text: &str) -> Option<Decimal> {
        super::text::is_decimal(text).then(|| Decimal(text.to_owned()))
    }

    /// The decimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// System.Version: `major.minor[.build[.revision]]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// Major component.
    pub major: u32,
    /// Minor component.
    pub minor: u32,
    /// Build component, if present.
    pub build: Option<u32>,
    /// Revision component, if present (only with a build component).
    pub revision: Option<u32>,
}

impl Version {
    /// Parses `major.minor[.build[.revision]]` as .NET's `Version.Parse`
    /// does (components 0..=2147483647, surrounding XML whitespace allowed).
    ///
    /// ```
    /// use psrp_core::clixml::Version;
    /// let v = Version::parse("2.3").unwrap();
    /// assert_eq!((v.major, v.minor, v.build), (2, 3, None));
    /// assert!(Version::parse("1.2.3.4.5").is_none());
    /// ```
    pub fn parse(text: &str) -> Option<Version> {
        super::text::parse_version(text)
    }
}

/// A SecureString: AES-256-CBC ciphertext under the runspace pool's session
/// key, as carried on the wire, or (made with [`SecureString::new`]) a
/// secret still to be encrypted when it is sent. Its Debug output never
/// shows either; the plaintext is cleared from memory when dropped.
///
/// The async client encrypts ("seals") parameters made with
/// [`SecureString::new`] before it sends a pipeline, exchanging the session
/// key first if needed; with the sans-IO pool, call [`SecureString::seal`]
/// (the pool refuses to send an unsealed one). Received values are
/// decrypted only on request ([`SecureString::decrypt`], or the client's
/// `RunspacePool::decrypt`).
///
/// ```
/// use psrp_core::clixml::{PsValue, SecureString};
///
/// let secret = SecureString::new("P@ssw0rd");
/// assert!(!secret.is_sealed());
/// assert_eq!(format!("{secret:?}"), "SecureString(<not yet encrypted>)");
/// let value = PsValue::from(secret); // a parameter value
/// # let _ = value;
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SecureString {
    /// The ciphertext (empty until sealed, for one made from plaintext).
    pub ciphertext: Vec<u8>,
    plaintext: Option<zeroize::Zeroizing<String>>,
}

impl SecureString {
    /// A SecureString as received: its ciphertext.
    pub fn from_ciphertext(ciphertext: Vec<u8>) -> SecureString {
        SecureString {
            ciphertext,
            plaintext: None,
        }
    }

    /// A secret to send as a SecureString; it is encrypted with the
    /// session key when sent.
    pub fn new(plaintext: impl Into<String>) -> SecureString {
        SecureString {
            ciphertext: Vec::new(),
            plaintext: Some(zeroize::Zeroizing::new(plaintext.into())),
        }
    }

    /// Whether it holds ciphertext (received, or sealed), not plaintext.
    pub fn is_sealed(&self) -> bool {
        self.plaintext.is_none()
    }

    /// Encrypts the plaintext of one made with [`SecureString::new`] with
    /// the session key and clears it; does nothing when already sealed.
    #[cfg(feature = "secure-string")]
    pub fn seal(
        &mut self,
        key: &crate::session_key::SessionKey,
    ) -> Result<(), crate::session_key::SessionKeyError> {
        if let Some(plaintext) = &self.plaintext {
            self.ciphertext = key.encrypt(plaintext)?;
            self.plaintext = None;
        }
        Ok(())
    }

    /// Decrypts the ciphertext with the session key. The text is cleared
    /// from memory when the returned value is dropped.
    #[cfg(feature = "secure-string")]
    pub fn decrypt(
        &self,
        key: &crate::session_key::SessionKey,
    ) -> Result<zeroize::Zeroizing<String>, crate::session_key::SessionKeyError> {
        if !self.is_sealed() {
            return Err(crate::session_key::SessionKeyError::NotEncrypted);
        }
        key.decrypt(&self.ciphertext)
    }
}

impl From<SecureString> for PsValue {
    fn from(value: SecureString) -> Self {
        PsValue::SecureString(value)
    }
}

impl fmt::Debug for SecureString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_sealed() {
            write!(
                f,
                "SecureString(<{} encrypted bytes>)",
                self.ciphertext.len()
            )
        } else {
            f.write_str("SecureString(<not yet encrypted>)")
        }
    }
}

impl PsValue {
    /// Calls `f` on every SecureString in this value: itself, list and
    /// dictionary items, properties and base values of objects (objects
    /// shared with other values are copied first).
    pub fn visit_secure_strings_mut<E>(
        &mut self,
        f: &mut impl FnMut(&mut SecureString) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            PsValue::SecureString(s) => f(s),
            PsValue::Object(o) if o.contains_secure_string(&mut |_| true) => {
                let o = Arc::make_mut(o);
                if let Some(b) = &mut o.base {
                    b.visit_secure_strings_mut(f)?;
                }
                match &mut o.collection {
                    Some(
                        Collection::List(v)
                        | Collection::Enumerable(v)
                        | Collection::Stack(v)
                        | Collection::Queue(v),
                    ) => {
                        for item in v {
                            item.visit_secure_strings_mut(f)?;
                        }
                    }
                    Some(Collection::Dictionary(entries)) => {
                        for (k, v) in entries {
                            k.visit_secure_strings_mut(f)?;
                            v.visit_secure_strings_mut(f)?;
                        }
                    }
                    None => {}
                }
                for p in o.adapted.iter_mut().chain(o.extended.iter_mut()) {
                    p.value.visit_secure_strings_mut(f)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether this value holds a SecureString for which `pred` is true.
    pub fn contains_secure_string(&self, pred: &mut impl FnMut(&SecureString) -> bool) -> bool {
        match self {
            PsValue::SecureString(s) => pred(s),
            PsValue::Object(o) => o.contains_secure_string(pred),
            _ => false,
        }
    }
}

impl PsObject {
    /// Whether a value of this object (base, items, properties) holds a
    /// SecureString for which `pred` is true.
    pub fn contains_secure_string(&self, pred: &mut impl FnMut(&SecureString) -> bool) -> bool {
        if self
            .base
            .as_ref()
            .is_some_and(|b| b.contains_secure_string(pred))
        {
            return true;
        }
        let in_collection = match &self.collection {
            Some(
                Collection::List(v)
                | Collection::Enumerable(v)
                | Collection::Stack(v)
                | Collection::Queue(v),
            ) => v.iter().any(|i| i.contains_secure_string(pred)),
            Some(Collection::Dictionary(entries)) => entries
                .iter()
                .any(|(k, v)| k.contains_secure_string(pred) || v.contains_secure_string(pred)),
            None => false,
        };
        in_collection
            || self
                .adapted
                .iter()
                .chain(&self.extended)
                .any(|p| p.value.contains_secure_string(pred))
    }
}

impl PartialEq for PsValue {
    fn eq(&self, other: &Self) -> bool {
        use PsValue as V;
        match (self, other) {
            (V::Null, V::Null) => true,
            (V::String(a), V::String(b))
            | (V::Uri(a), V::Uri(b))
            | (V::XmlDocument(a), V::XmlDocument(b))
            | (V::ScriptBlock(a), V::ScriptBlock(b)) => a == b,
            (V::Char(a), V::Char(b)) | (V::U16(a), V::U16(b)) => a == b,
            (V::Bool(a), V::Bool(b)) => a == b,
            (V::DateTime(a), V::DateTime(b)) => a == b,
            (V::TimeSpan(a), V::TimeSpan(b)) => a == b,
            (V::U8(a), V::U8(b)) => a == b,
            (V::I8(a), V::I8(b)) => a == b,
            (V::I16(a), V::I16(b)) => a == b,
            (V::U32(a), V::U32(b)) | (V::Ref(a), V::Ref(b)) => a == b,
            (V::I32(a), V::I32(b)) => a == b,
            (V::U64(a), V::U64(b)) => a == b,
            (V::I64(a), V::I64(b)) => a == b,
            (V::Single(a), V::Single(b)) => a == b || (a.is_nan() && b.is_nan()),
            (V::Double(a), V::Double(b)) => a == b || (a.is_nan() && b.is_nan()),
            (V::Decimal(a), V::Decimal(b)) => a == b,
            (V::Bytes(a), V::Bytes(b)) => a == b,
            (V::Guid(a), V::Guid(b)) => a == b,
            (V::Version(a), V::Version(b)) => a == b,
            (V::SecureString(a), V::SecureString(b)) => a == b,
            // Shared objects (TNRef/Ref) compare by pointer first: cheap, and
            // it keeps comparisons of heavily shared values linear.
            (V::Object(a), V::Object(b)) => Arc::ptr_eq(a, b) || a == b,
            _ => false,
        }
    }
}

impl fmt::Debug for PsValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PsValue::Null => f.write_str("Null"),
            PsValue::String(s) => write!(f, "String({s:?})"),
            PsValue::Char(c) => write!(f, "Char({c})"),
            PsValue::Bool(b) => write!(f, "Bool({b})"),
            PsValue::DateTime(d) => write!(f, "{d:?}"),
            PsValue::TimeSpan(t) => write!(f, "{t:?}"),
            PsValue::U8(v) => write!(f, "U8({v})"),
            PsValue::I8(v) => write!(f, "I8({v})"),
            PsValue::U16(v) => write!(f, "U16({v})"),
            PsValue::I16(v) => write!(f, "I16({v})"),
            PsValue::U32(v) => write!(f, "U32({v})"),
            PsValue::I32(v) => write!(f, "I32({v})"),
            PsValue::U64(v) => write!(f, "U64({v})"),
            PsValue::I64(v) => write!(f, "I64({v})"),
            PsValue::Single(v) => write!(f, "Single({v:?})"),
            PsValue::Double(v) => write!(f, "Double({v:?})"),
            PsValue::Decimal(v) => write!(f, "{v:?}"),
            PsValue::Bytes(v) => write!(f, "Bytes({v:?})"),
            PsValue::Guid(v) => write!(f, "Guid({v})"),
            PsValue::Uri(v) => write!(f, "Uri({v:?})"),
            PsValue::Version(v) => write!(f, "{v:?}"),
            PsValue::XmlDocument(v) => write!(f, "XmlDocument({v:?})"),
            PsValue::ScriptBlock(v) => write!(f, "ScriptBlock({v:?})"),
            PsValue::SecureString(v) => write!(f, "{v:?}"),
            PsValue::Object(o) => write!(f, "{o:?}"),
            PsValue::Ref(id) => write!(f, "Ref({id})"),
        }
    }
}

impl DateTime {
    /// Whether the fields form a real .NET DateTime (year 1..=9999, a real
    /// calendar day, ticks below one second, offset within ±23:59).
    pub fn is_valid(&self) -> bool {
        let leap = (self.year % 4 == 0 && self.year % 100 != 0) || self.year % 400 == 0;
        let days_in_month = match self.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => 0,
        };
        (1..=9999).contains(&self.year)
            && self.day >= 1
            && self.day <= days_in_month
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
            && self.ticks < 10_000_000
            && match self.kind {
                DateTimeKind::Local { offset_minutes } => offset_minutes.abs() < 24 * 60,
                _ => true,
            }
    }
}

/// ISO 8601 as on the wire: `2024-01-02T03:04:05.5+01:00` (fraction only
/// when non-zero, `Z` for UTC, no suffix for an unspecified kind).
impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(33);
        super::text::push_datetime(&mut s, self);
        f.write_str(&s)
    }
}

impl TimeSpan {
    /// The duration in seconds (lossy beyond 2^53 ticks).
    pub fn as_secs_f64(&self) -> f64 {
        self.ticks as f64 / 10_000_000.0
    }
}

/// xs:duration / ISO 8601 as on the wire: `PT1H2M3.5S`, `-P1DT2H`, `PT0S`.
impl fmt::Display for TimeSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(24);
        super::text::push_duration(&mut s, self);
        f.write_str(&s)
    }
}

/// `major.minor[.build[.revision]]`
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(16);
        super::text::push_version(&mut s, self);
        f.write_str(&s)
    }
}

impl TypeNames {
    /// Builds a type-name list from most derived to least derived.
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        TypeNames(names.into_iter().map(Into::into).collect())
    }

    /// The names, most derived first.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether `name` is one of the type names (ignoring a `Deserialized.` prefix).
    pub fn contains(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|n| n == name || n.strip_prefix("Deserialized.") == Some(name))
    }
}

impl PsObject {
    /// An empty object with the given type names.
    pub fn with_type_names(type_names: TypeNames) -> Self {
        PsObject {
            type_names: Some(type_names),
            ..PsObject::default()
        }
    }

    /// Looks a property up by name, extended members first (they win in
    /// PowerShell), then adapted ones, then those of a wrapped object.
    /// Names compare case-insensitively, as PowerShell member names do.
    pub fn property(&self, name: &str) -> Option<&PsValue> {
        let own = self
            .extended
            .iter()
            .chain(self.adapted.iter())
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| &p.value);
        match (own, &self.base) {
            (Some(v), _) => Some(v),
            (None, Some(PsValue::Object(inner))) => inner.property(name),
            _ => None,
        }
    }

    /// All properties, adapted (`<Props>`) then extended (`<MS>`).
    pub fn properties(&self) -> impl Iterator<Item = &Property> {
        self.adapted.iter().chain(self.extended.iter())
    }

    /// Whether this object is an enum value (type names include `System.Enum`).
    pub fn is_enum(&self) -> bool {
        self.type_names
            .as_ref()
            .is_some_and(|t| t.contains("System.Enum"))
    }
}

impl PsValue {
    /// Wraps an object.
    pub fn object(obj: PsObject) -> Self {
        PsValue::Object(Arc::new(obj))
    }

    /// The object behind this value, if it is one.
    pub fn as_object(&self) -> Option<&PsObject> {
        match self {
            PsValue::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The string, if this is a `<S>` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            PsValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an i64 if it is any integer type that fits, looking
    /// through enums and wrapped primitives.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            PsValue::U8(v) => Some(i64::from(*v)),
            PsValue::I8(v) => Some(i64::from(*v)),
            PsValue::U16(v) => Some(i64::from(*v)),
            PsValue::I16(v) => Some(i64::from(*v)),
            PsValue::U32(v) => Some(i64::from(*v)),
            PsValue::I32(v) => Some(i64::from(*v)),
            PsValue::I64(v) => Some(*v),
            PsValue::U64(v) => i64::try_from(*v).ok(),
            PsValue::Object(o) => o.base.as_ref().and_then(PsValue::as_i64),
            _ => None,
        }
    }

    /// The boolean, if this is a `<B>` value (or an object wrapping one).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            PsValue::Bool(b) => Some(*b),
            PsValue::Object(o) => o.base.as_ref().and_then(PsValue::as_bool),
            _ => None,
        }
    }
}

impl From<&str> for PsValue {
    fn from(s: &str) -> Self {
        PsValue::String(s.to_owned())
    }
}

impl From<String> for PsValue {
    fn from(s: String) -> Self {
        PsValue::String(s)
    }
}

impl From<bool> for PsValue {
    fn from(b: bool) -> Self {
        PsValue::Bool(b)
    }
}

impl From<i32> for PsValue {
    fn from(v: i32) -> Self {
        PsValue::I32(v)
    }
}

impl From<i64> for PsValue {
    fn from(v: i64) -> Self {
        PsValue::I64(v)
    }
}

impl From<f64> for PsValue {
    fn from(v: f64) -> Self {
        PsValue::Double(v)
    }
}

impl From<PsObject> for PsValue {
    fn from(o: PsObject) -> Self {
        PsValue::object(o)
    }
}
