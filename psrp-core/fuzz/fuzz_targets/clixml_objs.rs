//! `<Objs>` documents (Export-Clixml files, `#< CLIXML` stderr) read item
//! by item with a small item limit: never a panic, and the iteration ends.

#![no_main]

use libfuzzer_sys::fuzz_target;
use psrp_core::clixml::{Limits, ObjsReader};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default().with_max_depth(64).with_max_item_bytes(1 << 16);
    let reader = ObjsReader::with_limits(data, limits).keep_objects(data.first() == Some(&b'#'));
    // Every item either decodes or ends the iteration with an error; the
    // count is bounded by the input size.
    let mut n = 0;
    for item in reader {
        n += 1;
        assert!(n <= data.len() + 1, "more items than input bytes");
        if item.is_err() {
            break;
        }
    }
});
