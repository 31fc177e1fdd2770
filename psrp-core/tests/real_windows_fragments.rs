//! Real Windows fragment streams (shared/real-windows/psrp): every recorded
//! stream reassembles into exactly its message, the header fields match the
//! recording's metadata, and our fragmenter cuts each message into the same
//! bytes the sender did.

mod support;

use psrp_core::fragment::{Defragmenter, FragmentHeader, OutgoingMessage, FRAGMENT_HEADER_LEN};
use psrp_core::message::{guid_to_dotnet_bytes, Destination, MessageType, RawMessage};

fn fragments_of(stream: &[u8]) -> Vec<(FragmentHeader, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        let h = FragmentHeader::parse(&stream[pos..]).expect("whole header");
        let start = pos + FRAGMENT_HEADER_LEN;
        let end = start + h.blob_len as usize;
        out.push((h, &stream[start..end]));
        pos = end;
    }
    out
}

#[test]
fn every_stream_reassembles_into_its_message() {
    let captures = support::psrp_captures();
    for c in &captures {
        let mut d = Defragmenter::new();
        let messages = d
            .push(&c.frags)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        d.finish().unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(messages.len(), 1, "{}: one message", c.name);
        assert_eq!(messages[0], c.msg, "{}: reassembled bytes", c.name);

        let frags = fragments_of(&c.frags);
        assert_eq!(
            frags.len() as u64,
            c.meta["nfrags"].as_u64().unwrap(),
            "{}",
            c.name
        );
        for (i, (h, _)) in frags.iter().enumerate() {
            assert_eq!(
                h.object_id,
                c.meta["object_id"].as_u64().unwrap(),
                "{}",
                c.name
            );
            assert_eq!(h.fragment_id, i as u64, "{}", c.name);
        }
    }
}

#[test]
fn headers_match_the_recorded_metadata() {
    for c in support::psrp_captures() {
        let msg = RawMessage::decode(&c.msg).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let meta = &c.meta;
        assert_eq!(
            msg.message_type.spec_name(),
            meta["type"].as_str().unwrap(),
            "{}",
            c.name
        );
        assert_eq!(
            format!("0x{:08X}", msg.message_type.code()),
            meta["type_code"].as_str().unwrap(),
            "{}",
            c.name
        );
        let want_dest = match meta["destination"].as_str().unwrap() {
            "Client" => Destination::Client,
            "Server" => Destination::Server,
            other => panic!("{}: destination {other}", c.name),
        };
        assert_eq!(msg.destination, want_dest, "{}", c.name);
        // The metadata prints the ids as .NET reads them (`new Guid(bytes)`).
        assert_eq!(
            msg.runspace_pool_id.to_string(),
            meta["rpid"].as_str().unwrap(),
            "{}",
            c.name
        );
        assert_eq!(
            msg.pipeline_id.unwrap_or_default().to_string(),
            meta["pid"].as_str().unwrap(),
            "{}",
            c.name
        );
        assert_eq!(
            msg.data.len() as u64,
            meta["data_len"].as_u64().unwrap(),
            "{}",
            c.name
        );
        // Servers write a BOM before the CLIXML; pypsrp's requests do not.
        assert_eq!(
            msg.has_bom(),
            meta["direction"] == "response" && !msg.data.is_empty(),
            "{}",
            c.name
        );
        assert_eq!(RawMessage::decode_owned(c.msg.clone()).unwrap(), msg);
        assert_eq!(
            msg.encode(),
            c.msg,
            "{}: header re-encodes byte for byte",
            c.name
        );
    }
}

/// In these recordings the client chose the WS-Man CommandId and wrote the
/// same GUID as the PSRP pipeline id: the .NET byte order must turn the
/// header bytes back into the CommandId. (Older recordings in the set came
/// from a client that wrote GUIDs in RFC byte order, so their ids differ.)
#[test]
fn pipeline_ids_in_dotnet_byte_order_match_the_wsman_command_id() {
    let names = [
        "long_string_output",
        "multi_fragment_output_11frags",
        "pipeline_state_failed_missing_file",
    ];
    let captures = support::psrp_captures();
    for name in names {
        let c = captures.iter().find(|c| c.name == name).expect(name);
        let msg = RawMessage::decode(&c.msg).unwrap();
        let pid = msg.pipeline_id.expect("pipeline message");
        assert_eq!(
            pid.to_string().to_uppercase(),
            c.meta["command_id"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(&c.msg[24..40], &guid_to_dotnet_bytes(pid));
    }
}

#[test]
fn our_fragmenter_reproduces_the_recorded_fragments() {
    for c in support::psrp_captures() {
        let frags = fragments_of(&c.frags);
        // The sender's fragment size: the first fragment of a multi-fragment
        // message is full.
        let max = if frags.len() > 1 {
            FRAGMENT_HEADER_LEN + frags[0].1.len()
        } else {
            FRAGMENT_HEADER_LEN + c.msg.len()
        };
        let mut out = OutgoingMessage::new(c.meta["object_id"].as_u64().unwrap(), c.msg.clone());
        let mut ours = Vec::new();
        while !out.is_done() {
            assert!(out.write_fragment(&mut ours, max) > 0);
        }
        assert_eq!(ours, c.frags, "{}: fragment bytes", c.name);
    }
}

#[test]
fn multi_fragment_captures_complete_only_on_their_last_fragment() {
    let captures = support::psrp_captures();
    let names = [
        "multi_fragment_output_11frags",
        "client_create_pipeline_2frags",
    ];
    for name in names {
        let c = captures.iter().find(|c| c.name == name).expect(name);
        let frags = fragments_of(&c.frags);
        let mut d = Defragmenter::new();
        let mut pos = 0;
        for (i, (h, data)) in frags.iter().enumerate() {
            // Feed fragment by fragment, as separate Receive / Send payloads.
            let len = FRAGMENT_HEADER_LEN + data.len();
            let got = d.push(&c.frags[pos..pos + len]).unwrap();
            pos += len;
            if i + 1 < frags.len() {
                assert!(got.is_empty(), "{name}: complete after fragment {i}");
                assert!(!h.end);
            } else {
                assert_eq!(got, vec![c.msg.clone()], "{name}");
            }
        }
        let msg = RawMessage::decode(&c.msg).unwrap();
        let want = if name.starts_with("multi") {
            MessageType::PipelineOutput
        } else {
            MessageType::CreatePipeline
        };
        assert_eq!(msg.message_type, want);
    }
    let eleven = captures
        .iter()
        .find(|c| c.name == "multi_fragment_output_11frags")
        .unwrap();
    assert_eq!(fragments_of(&eleven.frags).len(), 11);
}
