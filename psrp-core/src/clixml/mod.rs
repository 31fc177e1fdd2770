//! CLIXML (MS-PSRP 2.2.5): the value model, a streaming decoder, an encoder
//! and the conversion of values to JSON.
//!
//! - [`PsValue`] is one serialized value: every primitive element (`S`,
//!   `I32`, `DT`, `TS`, `BA`, `SS`, ...) has its own variant, so a value goes
//!   back out as the .NET type it came as; complex objects are
//!   [`PsObject`]s (type names, ToString, adapted and extended properties,
//!   a collection, a wrapped value) shared through `Arc`. See the
//!   [value model notes](PsValue#design).
//! - [`decode`] reads one element (a PSRP message body) from a `&str`;
//!   [`ObjsReader`] reads `<Objs>` documents (Export-Clixml files,
//!   `#< CLIXML` stderr) item by item from any `BufRead`. Both check
//!   well-formedness, bound nesting ([`Limits`]) and report a
//!   [`DecodeError`] with the byte offset and element path.
//! - [`encode`] writes one element as a Windows serializer does (RefIds from
//!   0, `TNRef` for repeated type-name lists, `Ref` for shared objects);
//!   [`Encoder`] and [`encode_objs`] write several in one scope.
//! - [`to_json`], [`write_json`] and [`JsonView`] turn values into the JSON a
//!   user of `psrp invoke` wants; the mapping is documented on
//!   [`JsonOptions`], summarized here:
//!
//! | CLIXML | JSON |
//! |---|---|
//! | `S`, `URI`, `XD`, `SBK`, `C` | string |
//! | integers, `Sg`, `Db` | number (NaN/±Infinity as strings) |
//! | `D` | number up to 15 significant digits, else exact string |
//! | `B`, `Nil` | `true`/`false`, `null` |
//! | `DT` | `"2024-05-01T10:20:30.5+02:00"` (ISO 8601 with offset) |
//! | `TS` | `"PT1H2M3.5S"` (ISO 8601 duration, exact to 100 ns) |
//! | `BA` | base64 string |
//! | `G`, `Version` | string |
//! | `SS` | `"System.Security.SecureString"`, never the secret |
//! | enum | its name, or its number with [`JsonOptions::enums_as_numbers`] |
//! | `LST`/`IE`/`STK`/`QUE` | array |
//! | `DCT` | object, keys as text |
//! | object | adapted then extended properties; none: its ToString |
//! | cycle (`Ref` to an enclosing object) | `null` |
//!
//! ```
//! use psrp_core::clixml::{decode, encode, to_json, PsValue};
//!
//! let xml = r#"<Obj RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>
//!   <T>System.Object</T></TN><MS><S N="Name">C:\Temp_x000A_</S><I64 N="Size">42</I64>
//!   <TS N="Age">P1DT2H</TS></MS></Obj>"#;
//! let value = decode(xml)?;
//! let obj = value.as_object().unwrap();
//! assert_eq!(obj.property("name"), Some(&PsValue::from("C:\\Temp\n")));
//! assert_eq!(
//!     to_json(&value),
//!     serde_json::json!({"Name": "C:\\Temp\n", "Size": 42, "Age": "P1DT2H"})
//! );
//! // Re-encoding gives XML that decodes to the same value.
//! assert_eq!(decode(&encode(&value))?, value);
//! # Ok::<(), psrp_core::clixml::DecodeError>(())
//! ```

mod decode;
mod encode;
mod error;
mod escape;
mod json;
mod lexer;
mod objs;
mod text;
mod value;

pub use decode::{decode, decode_with, Limits};
pub use encode::{encode, encode_objs, Encoder};
pub use error::{DecodeError, DecodeErrorKind};
pub use escape::{escape_string, unescape_string};
pub use json::{to_json, to_json_with, write_json, JsonOptions, JsonView};
pub use objs::{ObjsItem, ObjsReader};
pub use value::{
    Collection, DateTime, DateTimeKind, Decimal, Property, PropertyName, PsObject, PsValue,
    SecureString, TimeSpan, TypeNames, Version,
};

#[cfg(test)]
mod tests;
