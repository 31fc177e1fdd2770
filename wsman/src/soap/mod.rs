//! SOAP envelopes for WS-Management: building requests and reading responses.

pub mod dom;
pub mod envelope;
pub mod ns;

pub use dom::{Element, XmlError};
pub use envelope::{build, parse_response, Header, WsmanOption};
