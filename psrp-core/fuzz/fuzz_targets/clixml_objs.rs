//! `<Objs>` documents (Export-Clixml files, `#< CLIXML` stderr) read item
//! by item with a small item limit: never a panic, and the iteration ends.
//! The same input read a few bytes at a time (as a pipe may deliver it;
//! the reader's window then ends inside items and constructs) must give
//! the same items and the same kind of error as read at once.

#![no_main]

use std::io::{self, BufReader, Read};

use libfuzzer_sys::fuzz_target;
use psrp_core::clixml::{Limits, ObjsItem, ObjsReader};

/// Returns at most `n` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    n: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.n).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The items up to the first error, and the error's kind.
fn read_all<R: io::BufRead>(
    reader: ObjsReader<R>,
    limit: usize,
) -> (Vec<ObjsItem>, Option<String>) {
    let mut items = Vec::new();
    for item in reader {
        // The count is bounded by the input size.
        assert!(items.len() <= limit, "more items than input bytes");
        match item {
            Ok(item) => items.push(item),
            Err(e) => {
                return (
                    items,
                    Some(format!("{:?}", std::mem::discriminant(e.kind()))),
                )
            }
        }
    }
    (items, None)
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default()
        .with_max_depth(64)
        .with_max_item_bytes(1 << 16);
    let keep = data.first() == Some(&b'#');
    let whole = read_all(
        ObjsReader::with_limits(data, limits).keep_objects(keep),
        data.len() + 1,
    );
    let n = 1 + data.last().map_or(0, |&b| b as usize % 16);
    let source = BufReader::with_capacity(n, Trickle { data, n });
    let pieces = read_all(
        ObjsReader::with_limits(source, limits).keep_objects(keep),
        data.len() + 1,
    );
    assert_eq!(whole, pieces, "read at once, then {n} bytes at a time");
});
