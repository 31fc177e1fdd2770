//! The decoder's error: what went wrong and where (byte offset and element
//! path).

use std::fmt;
use std::sync::Arc;

/// Why CLIXML could not be decoded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input is not well-formed XML.
    #[error("malformed XML: {0}")]
    Xml(String),
    /// The input ended inside an element.
    #[error("unexpected end of input")]
    UnexpectedEof,
    /// The document holds no element.
    #[error("no root element")]
    NoRootElement,
    /// Something other than whitespace or comments follows the root element.
    #[error("unexpected content after the root element")]
    TrailingContent,
    /// An element that is not allowed at this place.
    #[error("unexpected element <{element}> in {context}")]
    UnexpectedElement {
        /// The element found.
        element: String,
        /// Where it was found.
        context: &'static str,
    },
    /// Character data where only elements are allowed.
    #[error("unexpected text in {context}")]
    UnexpectedText {
        /// Where it was found.
        context: &'static str,
    },
    /// An element's text is not a valid value of its type.
    #[error("invalid <{element}> value {value:?}: expected {expected}")]
    InvalidValue {
        /// The element (`I32`, `DT`, ...).
        element: &'static str,
        /// The offending text (shortened; hidden for SecureStrings).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A required attribute is missing.
    #[error("<{element}> has no {attribute} attribute")]
    MissingAttribute {
        /// The element.
        element: &'static str,
        /// The attribute (`RefId`, `N`).
        attribute: &'static str,
    },
    /// An attribute value is not valid.
    #[error("invalid {attribute} attribute value {value:?}")]
    InvalidAttribute {
        /// The attribute.
        attribute: &'static str,
        /// Its value (shortened).
        value: String,
    },
    /// A `<Ref>` to an object that was not defined before it.
    #[error("<Ref RefId=\"{0}\"> names no earlier object")]
    UnknownRef(u32),
    /// A `<TNRef>` to a type-name list that was not defined before it.
    #[error("<TNRef RefId=\"{0}\"> names no earlier type-name list")]
    UnknownTypeNamesRef(u32),
    /// Two objects with the same RefId.
    #[error("RefId {0} is defined twice")]
    DuplicateRefId(u32),
    /// An element that may appear once in an `<Obj>` appears again.
    #[error("<Obj> has more than one {0}")]
    DuplicateMember(&'static str),
    /// A dictionary entry without its key or value.
    #[error("<En> has no {0}")]
    IncompleteEntry(&'static str),
    /// A `<PR>` progress record lacks a field or has an invalid one.
    #[error("invalid progress record: {0}")]
    InvalidProgressRecord(&'static str),
    /// Elements nest deeper than [`Limits::max_depth`](super::Limits::max_depth).
    #[error("elements nest deeper than the limit of {0}")]
    TooDeep(usize),
    /// A configurable size limit was exceeded.
    #[error("{what} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What grew too large.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The `<Objs>` stream could not be read.
    #[error("I/O error: {0}")]
    Io(Arc<std::io::Error>),
}

/// A CLIXML decoding error: its [kind](DecodeErrorKind), the byte offset in
/// the input near which it was found, and the path of elements leading to
/// it (e.g. `/Obj[RefId=0]/MS/I32[N=Count]`).
#[derive(Debug, Clone)]
pub struct DecodeError {
    // Boxed: results pass through every level of the decoder, and a small
    // error type keeps them cheap to move.
    inner: Box<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    kind: DecodeErrorKind,
    offset: u64,
    // Innermost first: frames add themselves as the error unwinds.
    path: Vec<String>,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, offset: u64) -> Self {
        DecodeError {
            inner: Box::new(Inner {
                kind,
                offset,
                path: Vec::new(),
            }),
        }
    }

    pub(crate) fn in_element(mut self, label: String) -> Self {
        self.inner.path.push(label);
        self
    }

    /// The same error with its offset moved by `base` bytes (for an item
    /// decoded out of a larger document).
    pub(crate) fn shifted(mut self, base: u64) -> Self {
        self.inner.offset += base;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.inner.kind
    }

    /// Byte offset in the input near which the error was found.
    pub fn offset(&self) -> u64 {
        self.inner.offset
    }

    /// The elements enclosing the error, outermost first, each as
    /// `Name[attributes]`.
    pub fn path(&self) -> impl Iterator<Item = &str> {
        self.inner.path.iter().rev().map(String::as_str)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CLIXML: {} at byte {}",
            self.inner.kind, self.inner.offset
        )?;
        if !self.inner.path.is_empty() {
            f.write_str(" in ")?;
            for p in self.path() {
                write!(f, "/{p}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.inner.kind {
            DecodeErrorKind::Io(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// Shortens text quoted in an error so that errors stay readable.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
