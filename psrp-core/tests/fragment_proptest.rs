//! Property tests of fragmenting: any set of messages, cut at any fragment
//! size, interleaved in any order and delivered in arbitrary chunks,
//! reassembles into exactly the messages; corrupting the order is caught;
//! defragmenters sharing a budget never hold more than it together.

use proptest::prelude::*;
use psrp_core::fragment::{
    DefragmentError, DefragmentLimits, Defragmenter, Fragmenter, ReassemblyBudget,
    FRAGMENT_HEADER_LEN,
};

fn messages() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 1..6)
}

proptest! {
    #[test]
    fn interleaved_fragments_reassemble(
        msgs in messages(),
        max in 22usize..200,
        order_seed in any::<u64>(),
        chunk in 1usize..300,
    ) {
        let mut f = Fragmenter::new();
        let mut per_message: Vec<std::collections::VecDeque<Vec<u8>>> = msgs
            .iter()
            .map(|m| f.fragment(m, max).unwrap().into())
            .collect();
        for frags in &per_message {
            prop_assert!(frags.iter().all(|fr| fr.len() <= max));
        }
        // Interleave: repeatedly take the next fragment of a pseudo-random
        // message (order within each message is kept).
        let mut stream = Vec::new();
        let mut seed = order_seed;
        while per_message.iter().any(|q| !q.is_empty()) {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let live: Vec<usize> = (0..per_message.len()).filter(|&i| !per_message[i].is_empty()).collect();
            let pick = live[(seed >> 33) as usize % live.len()];
            stream.extend(per_message[pick].pop_front().unwrap());
        }
        let mut d = Defragmenter::new();
        let mut got = Vec::new();
        for part in stream.chunks(chunk) {
            got.extend(d.push(part).unwrap());
        }
        prop_assert!(d.finish().is_ok());
        let mut got_sorted = got.clone();
        let mut want_sorted = msgs.clone();
        got_sorted.sort();
        want_sorted.sort();
        prop_assert_eq!(got_sorted, want_sorted);
    }

    #[test]
    fn packed_payloads_respect_the_limit_and_reassemble(msgs in messages(), max in 22usize..500) {
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        let payloads = Fragmenter::new().pack(&refs, max).unwrap();
        let mut d = Defragmenter::new();
        let mut got = Vec::new();
        for p in &payloads {
            prop_assert!(p.len() <= max);
            prop_assert!(p.len() >= FRAGMENT_HEADER_LEN);
            got.extend(d.push(p).unwrap());
        }
        prop_assert_eq!(got, msgs);
    }

    #[test]
    fn a_dropped_fragment_is_detected(msg in prop::collection::vec(any::<u8>(), 100..400), max in 22usize..60, drop in any::<prop::sample::Index>()) {
        let frags = Fragmenter::new().fragment(&msg, max).unwrap();
        prop_assume!(frags.len() >= 3);
        // Drop a fragment other than the last: the next one is out of order
        // (or, for the first, has no start).
        let i = drop.index(frags.len() - 1);
        let mut d = Defragmenter::new();
        let mut result = Ok(Vec::new());
        for (j, fr) in frags.iter().enumerate() {
            if j == i {
                continue;
            }
            result = d.push(fr);
            if result.is_err() {
                break;
            }
        }
        match result {
            Err(DefragmentError::OutOfOrder { expected, got, .. }) => {
                prop_assert_eq!(expected, i as u64);
                prop_assert_eq!(got, i as u64 + 1);
            }
            Err(DefragmentError::MissingStart { fragment_id, .. }) => prop_assert_eq!(fragment_id, 1),
            other => prop_assert!(false, "dropping fragment {} gave {:?}", i, other),
        }
    }

    /// Two streams (a pool's and a pipeline's) of interleaved messages,
    /// maybe with a tampered byte, fed in arbitrary chunks to two
    /// defragmenters sharing one small budget: the budget always equals
    /// what they hold, and after every accepted push it is within the
    /// limit; what completes is one of the messages sent.
    #[test]
    fn a_shared_budget_bounds_what_defragmenters_hold(
        msgs in messages(),
        max in 22usize..200,
        chunk in 1usize..300,
        limit in 0usize..1500,
        tamper in prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let mut f = Fragmenter::new();
        let mut streams = [Vec::new(), Vec::new()];
        for (i, m) in msgs.iter().enumerate() {
            for fr in f.fragment(m, max).unwrap() {
                streams[i % 2].extend(fr);
            }
        }
        if let Some((at, byte)) = tamper {
            if !streams[0].is_empty() {
                let i = at.index(streams[0].len());
                streams[0][i] = byte;
            }
        }
        let limits = DefragmentLimits {
            max_message_size: 1 << 20,
            max_pending_objects: 8,
            max_buffered_bytes: 1 << 20,
        };
        let mut budget = ReassemblyBudget::new(limit);
        let mut ds = [Defragmenter::with_limits(limits), Defragmenter::with_limits(limits)];
        let mut failed = [false, false];
        let mut done = Vec::new();
        let chunks: Vec<Vec<&[u8]>> = streams.iter().map(|s| s.chunks(chunk).collect()).collect();
        for round in 0..chunks[0].len().max(chunks[1].len()) {
            for k in 0..2 {
                let Some(part) = chunks[k].get(round) else { continue };
                if failed[k] {
                    continue;
                }
                match ds[k].push_into_budget(part, &mut done, &mut budget) {
                    Ok(()) => prop_assert!(budget.used() <= limit, "{} > {}", budget.used(), limit),
                    Err(_) => failed[k] = true,
                }
                prop_assert_eq!(budget.used(), ds[0].held_bytes() + ds[1].held_bytes());
            }
        }
        if tamper.is_none() {
            for m in &done {
                prop_assert!(msgs.contains(m));
            }
        }
        // Dropping both gives everything back.
        budget.release(ds[0].held_bytes());
        budget.release(ds[1].held_bytes());
        prop_assert_eq!(budget.used(), 0);
    }
}
