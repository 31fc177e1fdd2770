//! What a server can make this crate read, keep or compute: every response
//! is untrusted input, and each parser of network bytes is bounded here.
//!
//! | what | limit | when exceeded |
//! |---|---|---|
//! | HTTP response body | [`response_body`]: 4 x MaxEnvelopeSize, at least 16 MiB | [`crate::Error::ResponseTooLarge`] (a larger `Content-Length` is refused before reading) |
//! | whole HTTP exchange | the read timeout ([`crate::WsmanConfig::effective_read_timeout`]) | [`crate::Error::Http`] with `timed_out` |
//! | encrypted parts in one body | [`ENCRYPTED_MAX_PARTS`] | [`crate::encryption::EncryptionError::Malformed`] |
//! | XML nesting | [`XML_MAX_DEPTH`] | [`crate::soap::XmlError`] |
//! | XML elements plus attributes | [`XML_MAX_NODES`] | [`crate::soap::XmlError`] |
//! | HTTP CONNECT proxy reply head | [`PROXY_REPLY_MAX_HEAD`] | [`crate::Error::Http`] |
//!
//! HTTP response heads are bounded by hyper (about 400 KiB, 100 headers).

pub use crate::encryption::MAX_PARTS as ENCRYPTED_MAX_PARTS;
pub use crate::soap::dom::{MAX_DEPTH as XML_MAX_DEPTH, MAX_NODES as XML_MAX_NODES};
pub use crate::transport::proxy_reply::MAX_HEAD as PROXY_REPLY_MAX_HEAD;

/// Smallest response body limit, whatever MaxEnvelopeSize says.
pub const MIN_RESPONSE_BODY: usize = 16 << 20;

/// The largest response body read for a given MaxEnvelopeSize (in bytes):
/// four times MaxEnvelopeSize, and never less than 16 MiB.
///
/// A WinRM server answers within MaxEnvelopeSize; message encryption adds
/// a few hundred bytes per message. The headroom is generous on purpose: the
/// limit is there to stop a broken or hostile server from making the
/// client read without end, not to police well-behaved ones.
///
/// ```
/// assert_eq!(wsman::limits::response_body(153_600), 16 << 20);
/// assert_eq!(wsman::limits::response_body(10 << 20), 40 << 20);
/// assert_eq!(wsman::limits::response_body(usize::MAX), usize::MAX);
/// ```
pub fn response_body(max_envelope_size: usize) -> usize {
    max_envelope_size.saturating_mul(4).max(MIN_RESPONSE_BODY)
}
