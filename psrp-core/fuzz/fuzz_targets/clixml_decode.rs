//! CLIXML from a hostile server: `decode` must return a value or an error
//! without panicking, looping or growing without bound; a decoded value
//! re-encodes to XML that decodes to the same value; JSON conversion of
//! any decoded value succeeds; reading it as a GET_COMMAND_METADATA reply
//! object (count or CommandMetadata) returns a value or an error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use psrp_core::clixml::{decode_with, encode, write_json, JsonOptions, Limits, PsValue};

/// Whether a cycle reference appears anywhere (bounded by the decoder's
/// depth limit, so the recursion is bounded too).
fn has_cycle(v: &PsValue) -> bool {
    match v {
        PsValue::Ref(_) => true,
        PsValue::Object(o) => {
            o.base.as_ref().is_some_and(has_cycle)
                || o.properties().any(|p| has_cycle(&p.value))
                || match &o.collection {
                    None => false,
                    Some(psrp_core::clixml::Collection::Dictionary(e)) => {
                        e.iter().any(|(k, v)| has_cycle(k) || has_cycle(v))
                    }
                    Some(
                        psrp_core::clixml::Collection::List(i)
                        | psrp_core::clixml::Collection::Enumerable(i)
                        | psrp_core::clixml::Collection::Stack(i)
                        | psrp_core::clixml::Collection::Queue(i),
                    ) => i.iter().any(has_cycle),
                }
        }
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = Limits::default().with_max_depth(64);
    let Ok(value) = decode_with(text, &limits) else {
        return;
    };
    let xml = encode(&value);
    let again = decode_with(&xml, &Limits::default()).expect("our encoding of a decoded value decodes");
    // A cycle inside an object shared from two places may be written
    // first at the other place; everything else must be exact.
    if !has_cycle(&value) {
        assert!(again == value, "round trip changed the value:\n{text}\n{xml}");
    }
    let options = JsonOptions::default().with_max_nodes(10_000);
    write_json(std::io::sink(), &value, &options).expect("JSON of a decoded value");
    let _ = psrp_core::message::CommandMetadataReply::from_value(&value);
});
