//! CLIXML (MS-PSRP 2.2.5): the value model, a streaming decoder, an encoder
//! and the conversion of values to JSON.

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
    Collection, DateTime, DateTimeKind, Decimal, Property, PsObject, PsValue, SecureString,
    TimeSpan, TypeNames, Version,
};

#[cfg(test)]
mod tests;
