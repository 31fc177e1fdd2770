//! The error of message parsing.

use super::{HeaderError, MessageType};
use crate::clixml::DecodeError;

/// Why a PSRP message could not be read or understood.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MessageError {
    /// The 40-byte header is wrong.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The message data is not UTF-8.
    #[error("{message_type}: message data is not UTF-8 (at byte {valid_up_to})")]
    NotUtf8 {
        /// The message.
        message_type: MessageType,
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The CLIXML in the message is malformed.
    #[error("{message_type}: bad CLIXML: {source}")]
    Clixml {
        /// The message.
        message_type: MessageType,
        /// What the decoder found.
        source: DecodeError,
    },
    /// A message that carries no data had some, or one that needs data had none.
    #[error("{message_type}: unexpected message data length {len}")]
    UnexpectedData {
        /// The message.
        message_type: MessageType,
        /// The data length.
        len: usize,
    },
    /// A value that should be an object (`<Obj>`) is not.
    #[error("{context}: expected an object but found {found}")]
    NotAnObject {
        /// The message or type being read.
        context: &'static str,
        /// What was found.
        found: String,
    },
    /// A required property is absent (or `<Nil/>`).
    #[error("{context}: property {property} is missing")]
    MissingProperty {
        /// The message or type being read.
        context: &'static str,
        /// The property name.
        property: &'static str,
    },
    /// A property has a value of the wrong type.
    #[error("{context}: property {property} should be {expected} but is {found}")]
    WrongType {
        /// The message or type being read.
        context: &'static str,
        /// The property name.
        property: &'static str,
        /// What it should be.
        expected: &'static str,
        /// What it is.
        found: String,
    },
    /// A property has a value outside its range.
    #[error("{context}: property {property} has an invalid value {value:?}")]
    InvalidValue {
        /// The message or type being read.
        context: &'static str,
        /// The property name.
        property: &'static str,
        /// The value as text.
        value: String,
    },
}
