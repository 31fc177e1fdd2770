//! CLIXML (MS-PSRP 2.2.5): the value model, a streaming decoder, an encoder
//! and the conversion of values to JSON.

mod value;

pub use value::{
    Collection, DateTime, DateTimeKind, Decimal, Property, PsObject, PsValue, SecureString,
    TimeSpan, TypeNames, Version,
};
