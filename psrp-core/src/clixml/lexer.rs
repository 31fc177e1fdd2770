//! A pull tokenizer for the XML that CLIXML uses: elements with attributes,
//! character data with entity references, CDATA sections, comments and
//! processing instructions (skipped). Document type declarations are
//! rejected (CLIXML has none, and refusing them rules out entity expansion).
//!
//! Why not quick-xml's event reader here: CLIXML needs a fraction of XML,
//! and a tokenizer that knows it does less work per element (no UTF-8
//! re-validation of a `&str`, attributes parsed once in the same pass that
//! finds the end of the tag). It runs faster than quick-xml's event loop
//! alone, which the benchmark (benches/clixml) measures beside it.
//! Well-formedness is still checked: names, attribute syntax, quotes, end
//! tags matching their start tags, unterminated constructs.

use memchr::{memchr, memmem};

use super::error::{excerpt, DecodeErrorKind};

/// The attributes CLIXML uses, raw (still XML- and CLIXML-escaped).
#[derive(Default, Clone, Copy)]
pub(crate) struct Attrs<'a> {
    /// `N`: property name or dictionary part.
    pub(crate) n: Option<&'a str>,
    pub(crate) ref_id: Option<&'a str>,
    /// `S`: stream name in `<Objs>` documents.
    pub(crate) s: Option<&'a str>,
}

/// A start tag (or an empty-element tag when `empty`). Kept small: one is
/// returned for every element. Only the attributes values use are kept
/// (`S` matters only on `<Objs>` items: `Lexer::item_start_tag`).
#[derive(Clone, Copy)]
pub(crate) struct StartTag<'a> {
    pub(crate) name: &'a str,
    /// `N`: property name or dictionary part.
    pub(crate) n: Option<&'a str>,
    pub(crate) ref_id: Option<&'a str>,
    pub(crate) empty: bool,
}

pub(crate) enum Token<'a> {
    Start(StartTag<'a>),
    /// The end tag of the innermost open element (already matched).
    End,
    /// Character data as written: entity references unresolved, line ends
    /// not normalized.
    Text(&'a str),
    /// The content of a CDATA section.
    CData(&'a str),
    Eof,
}

/// What went wrong and at which byte (boxed: errors are rare, tokens
/// frequent).
pub(crate) type LexError = Box<(DecodeErrorKind, usize)>;

fn lex_error(kind: DecodeErrorKind, at: usize) -> LexError {
    Box::new((kind, at))
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    /// Names of the open elements, as byte ranges of `src` (so that the
    /// vector can be reused for the next input).
    open: Vec<(usize, usize)>,
    /// `src` is a window on a longer input (the `<Objs>` reader's buffer):
    /// running out of bytes anywhere is `UnexpectedEof` (read more and try
    /// again), never another error the missing bytes might have avoided.
    partial: bool,
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Bytes that cannot appear in a name (a looser rule than XML's Name
/// production, but it keeps markup characters out), as a table: names are
/// scanned byte by byte for every tag.
static ENDS_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let stops = b" \t\n\r/>=<\"'&!?";
    let mut i = 0;
    while i < stops.len() {
        t[stops[i] as usize] = true;
        i += 1;
    }
    t
};

#[inline]
fn ends_name(b: u8) -> bool {
    ENDS_NAME[b as usize]
}

/// Index of the first byte at or after `from` that is not whitespace.
#[inline]
fn skip_ws(b: &[u8], from: usize) -> usize {
    from + b[from..].iter().take_while(|&&c| is_ws(c)).count()
}

/// Index of the first byte at or after `from` that ends a name.
#[inline]
fn name_end(b: &[u8], from: usize) -> usize {
    from + b[from..].iter().take_while(|&&c| !ends_name(c)).count()
}

/// Equality of short byte strings (element names) without a call to
/// `memcmp`.
#[inline]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn valid_name(name: &str) -> bool {
    match name.as_bytes().first() {
        None => false,
        Some(b) => !(b.is_ascii_digit() || matches!(b, b'-' | b'.')),
    }
}

impl<'a> Lexer<'a> {
    #[cfg(test)]
    pub(crate) fn new(src: &'a str) -> Self {
        Self::with_stack(src, Vec::new())
    }

    /// A lexer reusing `open` (emptied) for its element stack.
    pub(crate) fn with_stack(src: &'a str, mut open: Vec<(usize, usize)>) -> Self {
        open.clear();
        Lexer {
            src,
            pos: 0,
            open,
            partial: false,
        }
    }

    /// Marks the input as a window that may continue (see `partial`).
    pub(crate) fn set_partial(&mut self, partial: bool) {
        self.partial = partial;
    }

    /// The error for a construct cut by the end of a partial window.
    fn more(&self) -> LexError {
        lex_error(DecodeErrorKind::UnexpectedEof, self.src.len())
    }

    /// In a partial window, an error raised where the scan reached the end
    /// of the bytes becomes `UnexpectedEof`.
    #[inline]
    fn or_more(&self, at_end: bool, err: LexError) -> LexError {
        if self.partial && at_end {
            self.more()
        } else {
            err
        }
    }

    /// Gives the element stack back for reuse.
    pub(crate) fn take_stack(&mut self) -> Vec<(usize, usize)> {
        std::mem::take(&mut self.open)
    }

    /// Byte offset of the next unread byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Elements open around the current position.
    #[cfg(test)]
    pub(crate) fn open_elements(&self) -> usize {
        self.open.len()
    }

    fn malformed(&self, what: &str) -> LexError {
        lex_error(DecodeErrorKind::Xml(what.to_owned()), self.pos)
    }

    pub(crate) fn next(&mut self) -> Result<Token<'a>, LexError> {
        loop {
            let b = self.src.as_bytes();
            let pos = self.pos;
            if pos >= b.len() {
                if self.open.is_empty() && !self.partial {
                    return Ok(Token::Eof);
                }
                return Err(lex_error(DecodeErrorKind::UnexpectedEof, pos));
            }
            if b[pos] != b'<' {
                let end = match memchr(b'<', &b[pos..]) {
                    Some(i) => pos + i,
                    // The text may go on in the next bytes.
                    None if self.partial => return Err(self.more()),
                    None => b.len(),
                };
                self.pos = end;
                return Ok(Token::Text(&self.src[pos..end]));
            }
            match b.get(pos + 1) {
                None if self.partial => return Err(self.more()),
                Some(b'/') => return self.end_tag(),
                Some(b'?') => {
                    let end = memmem::find(&b[pos + 2..], b"?>").ok_or_else(|| {
                        self.or_more(true, self.malformed("unterminated processing instruction"))
                    })?;
                    self.pos = pos + 2 + end + 2;
                }
                Some(b'!') => {
                    let rest = &b[pos..];
                    if self.partial
                        && rest.len() < 9
                        && (b"<!--".starts_with(rest) || b"<![CDATA[".starts_with(rest))
                    {
                        return Err(self.more());
                    }
                    if rest.starts_with(b"<!--") {
                        let end = memmem::find(&rest[4..], b"-->").ok_or_else(|| {
                            self.or_more(true, self.malformed("unterminated comment"))
                        })?;
                        self.pos = pos + 4 + end + 3;
                    } else if rest.starts_with(b"<![CDATA[") {
                        if self.open.is_empty() {
                            return Err(self.malformed("CDATA section outside an element"));
                        }
                        let start = pos + 9;
                        let end = memmem::find(&b[start..], b"]]>").ok_or_else(|| {
                            self.or_more(true, self.malformed("unterminated CDATA section"))
                        })?;
                        self.pos = start + end + 3;
                        return Ok(Token::CData(&self.src[start..start + end]));
                    } else {
                        return Err(self.malformed("document type declarations are not accepted"));
                    }
                }
                _ => return self.start_tag(),
            }
        }
    }

    /// The fast path for a leaf element's content: when the rest of the
    /// element is plain character data followed by its own end tag, consumes
    /// both and returns the data as written; otherwise consumes nothing.
    #[inline]
    pub(crate) fn simple_leaf(&mut self) -> Option<&'a str> {
        let b = self.src.as_bytes();
        let start = self.pos;
        let end = start + memchr(b'<', b.get(start..)?)?;
        let &(s, e) = self.open.last()?;
        let close = end + 2 + (e - s);
        if b.get(end + 1) == Some(&b'/')
            && b.get(close) == Some(&b'>')
            && short_eq(&b[end + 2..close], &b[s..e])
        {
            self.open.pop();
            self.pos = close + 1;
            return Some(&self.src[start..end]);
        }
        None
    }

    /// Whether the next bytes are an end tag.
    #[inline]
    pub(crate) fn at_end_tag(&self) -> bool {
        self.src.as_bytes().get(self.pos..self.pos + 2) == Some(b"</")
    }

    fn end_tag(&mut self) -> Result<Token<'a>, LexError> {
        let b = self.src.as_bytes();
        let start = self.pos + 2;
        // Fast path: `</name>` exactly, for the open element.
        if let Some(&(s, e)) = self.open.last() {
            let end = start + (e - s);
            if b.get(end) == Some(&b'>') && short_eq(&b[start..end], &b[s..e]) {
                self.open.pop();
                self.pos = end + 1;
                return Ok(Token::End);
            }
        }
        let gt = memchr(b'>', &b[start..])
            .map(|i| start + i)
            .ok_or_else(|| self.or_more(true, self.malformed("unterminated end tag")))?;
        let name = self.src[start..gt].trim_end_matches([' ', '\t', '\n', '\r']);
        match self.open.pop().map(|(s, e)| &self.src[s..e]) {
            Some(open) if open == name => {
                self.pos = gt + 1;
                Ok(Token::End)
            }
            Some(open) => Err(lex_error(
                DecodeErrorKind::Xml(format!(
                    "end tag </{}> does not match <{}>",
                    excerpt(name),
                    excerpt(open)
                )),
                self.pos,
            )),
            None => Err(lex_error(
                DecodeErrorKind::Xml(format!("end tag </{}> without a start tag", excerpt(name))),
                self.pos,
            )),
        }
    }

    fn start_tag(&mut self) -> Result<Token<'a>, LexError> {
        self.start_tag_with_stream().map(|(t, _)| Token::Start(t))
    }

    /// Reads a start tag (the next bytes must be one) and also returns its
    /// `S` attribute, raw: the `<Objs>` reader's item tags carry the stream.
    pub(crate) fn item_start_tag(&mut self) -> Result<(StartTag<'a>, Option<&'a str>), LexError> {
        self.start_tag_with_stream()
    }

    // Always inlined: `next` runs it for every element, and a call there
    // cost about 4% of decoding.
    #[inline(always)]
    fn start_tag_with_stream(&mut self) -> Result<(StartTag<'a>, Option<&'a str>), LexError> {
        let src = self.src;
        let b = src.as_bytes();
        let name_start = self.pos + 1;
        let mut i = name_end(b, name_start);
        let name = &src[name_start..i];
        if !valid_name(name) {
            return Err(self.or_more(i >= b.len(), self.malformed("invalid element name")));
        }
        let mut attrs = Attrs::default();
        loop {
            let before = i;
            i = skip_ws(b, i);
            match b.get(i) {
                None => return Err(lex_error(DecodeErrorKind::UnexpectedEof, b.len())),
                Some(b'>') => {
                    self.pos = i + 1;
                    self.open.push((name_start, name_start + name.len()));
                    let tag = StartTag {
                        name,
                        n: attrs.n,
                        ref_id: attrs.ref_id,
                        empty: false,
                    };
                    return Ok((tag, attrs.s));
                }
                Some(b'/') => {
                    if b.get(i + 1) != Some(&b'>') {
                        let err = self.malformed("'/' not followed by '>' in a tag");
                        return Err(self.or_more(i + 1 >= b.len(), err));
                    }
                    self.pos = i + 2;
                    let tag = StartTag {
                        name,
                        n: attrs.n,
                        ref_id: attrs.ref_id,
                        empty: true,
                    };
                    return Ok((tag, attrs.s));
                }
                Some(_) if i == before => {
                    return Err(self.malformed("attributes must be separated by whitespace"));
                }
                Some(_) => {}
            }
            // name = "value"
            let attr_start = i;
            i = name_end(b, i);
            let attr = &src[attr_start..i];
            i = skip_ws(b, i);
            if !valid_name(attr) || b.get(i) != Some(&b'=') {
                return Err(self.or_more(i >= b.len(), self.malformed("malformed attribute")));
            }
            i = skip_ws(b, i + 1);
            let quote = match b.get(i) {
                Some(q @ (b'"' | b'\'')) => *q,
                _ => {
                    let err = self.malformed("attribute value without quotes");
                    return Err(self.or_more(i >= b.len(), err));
                }
            };
            let value_start = i + 1;
            // Values are short: a plain scan beats a vectorized search here.
            let end = value_start
                + b[value_start..]
                    .iter()
                    .take_while(|&&c| c != quote && c != b'<')
                    .count();
            if b.get(end) != Some(&quote) {
                let err = self.malformed("unterminated attribute value");
                return Err(self.or_more(end >= b.len(), err));
            }
            let value = &src[value_start..end];
            i = end + 1;
            let slot = match attr.as_bytes() {
                [b'N'] => &mut attrs.n,
                [b'R', b'e', b'f', b'I', b'd'] => &mut attrs.ref_id,
                [b'S'] => &mut attrs.s,
                _ => continue,
            };
            if slot.is_some() {
                return Err(self.malformed("repeated attribute"));
            }
            *slot = Some(value);
        }
    }

    /// Skips the rest of the current element if its content is exactly
    /// `content` followed by its end tag `</name>`; used to reuse work done
    /// on identical content before. Returns whether it skipped.
    pub(crate) fn skip_if_content_is(&mut self, content: &str, name: &str) -> bool {
        let rest = &self.src[self.pos..];
        let Some(after) = rest.strip_prefix(content) else {
            return false;
        };
        let after = after.as_bytes();
        if after.len() < name.len() + 3
            || &after[..2] != b"</"
            || &after[2..2 + name.len()] != name.as_bytes()
            || after[2 + name.len()] != b'>'
        {
            return false;
        }
        self.pos += content.len() + name.len() + 3;
        self.open.pop();
        true
    }

    /// The source text from `start` to the current position.
    pub(crate) fn slice(&self, start: usize, end: usize) -> &'a str {
        &self.src[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(src: &str) -> Result<Vec<String>, String> {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            match lx.next() {
                Ok(Token::Eof) => return Ok(out),
                Ok(Token::Start(t)) => out.push(format!(
                    "<{}{}{}{}>",
                    t.name,
                    t.n.map(|n| format!(" N={n}")).unwrap_or_default(),
                    t.ref_id.map(|n| format!(" RefId={n}")).unwrap_or_default(),
                    if t.empty { "/" } else { "" }
                )),
                Ok(Token::End) => out.push("</>".into()),
                Ok(Token::Text(t)) => out.push(format!("T{t:?}")),
                Ok(Token::CData(t)) => out.push(format!("C{t:?}")),
                Err(e) => return Err(format!("{} at {}", e.0, e.1)),
            }
        }
    }

    #[test]
    fn tokenizes_clixml() {
        assert_eq!(
            tokens(r#"<?xml version="1.0"?><Obj RefId='0' x="a>b"><!-- c --><S N="a&amp;b">x<![CDATA[<y>]]></S ><Nil /></Obj>"#).unwrap(),
            [
                "<Obj RefId=0>",
                "<S N=a&amp;b>",
                "T\"x\"",
                "C\"<y>\"",
                "</>",
                "<Nil/>",
                "</>"
            ]
        );
    }

    #[test]
    fn rejects_malformed_markup() {
        for bad in [
            "<a></b>",
            "<a>",
            "</a>",
            "<a b></a>",
            "<a b=c></a>",
            "<a b=\"c></a>",
            "<a b=\"<\"></a>",
            "<a b=\"1\"c=\"2\"></a>",
            "<a N=\"1\" N=\"2\"></a>",
            "<1a/>",
            "< a/>",
            "<a/ >",
            "<!DOCTYPE a><a/>",
            "<a><!-- x </a>",
            "<a><![CDATA[ x </a>",
            "<?xml ",
            "<![CDATA[x]]>",
        ] {
            assert!(tokens(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn skips_known_content() {
        let mut lx = Lexer::new("<TN><T>A</T></TN><x/>");
        assert!(matches!(lx.next(), Ok(Token::Start(_))));
        assert!(!lx.skip_if_content_is("<T>B</T>", "TN"));
        assert!(!lx.skip_if_content_is("<T>A</T>", "T"));
        assert!(lx.skip_if_content_is("<T>A</T>", "TN"));
        assert_eq!(lx.open_elements(), 0);
        assert!(matches!(lx.next(), Ok(Token::Start(t)) if t.name == "x"));
    }
}
