//! Fragment streams from a hostile server: the defragmenter, then the
//! message header and the typed message parser on whatever it reassembles.
//! Nothing may panic, loop or grow without bound.

#![no_main]

use libfuzzer_sys::fuzz_target;
use psrp_core::fragment::{DefragmentLimits, Defragmenter};
use psrp_core::message::{Message, RawMessage};

fuzz_target!(|data: &[u8]| {
    let limits = DefragmentLimits {
        max_message_size: 1 << 20,
        max_pending_objects: 64,
        max_buffered_bytes: 1 << 20,
    };
    let mut d = Defragmenter::with_limits(limits);
    // The last byte picks where to cut the stream in two pushes, so that
    // fragments split across Receive payloads are exercised too (the input
    // itself stays a plain fragment stream, like the seed captures).
    let cut = data.last().map_or(0, |b| (*b as usize * data.len()) / 255);
    for chunk in [&data[..cut], &data[cut..]] {
        let Ok(messages) = d.push(chunk) else {
            return;
        };
        for m in messages {
            if let Ok(raw) = RawMessage::decode_owned(m) {
                let _ = Message::decode(&raw);
            }
        }
    }
    let _ = d.finish();
});
