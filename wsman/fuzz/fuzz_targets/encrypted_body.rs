//! WinRM `multipart/encrypted` bodies from a hostile server (or anyone on
//! the path: the MIME headers are outside the seal). Input: an optional
//! Content-Type line, then the body. Splitting must end with parts or an
//! error, never panic, loop or grow without bound; the parts it returns
//! must satisfy what in-place decryption relies on. Second, any parts the
//! fuzzer makes up must survive an encode/decode round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsman::encryption::{decode, encode, Protocol, MAX_PARTS};
use wsman::fuzzing::encrypted_part_ranges;

const CT: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";

fn split(data: &[u8]) -> (String, &[u8]) {
    // "<Content-Type>\n<body>" when the first line looks like one (the seed
    // corpus is written that way), else the whole input is the body.
    match data.iter().position(|&b| b == b'\n') {
        Some(n) if n <= 256 && data.starts_with(b"multipart/") => (
            String::from_utf8_lossy(&data[..n]).into_owned(),
            &data[n + 1..],
        ),
        _ => (CT.to_string(), data),
    }
}

fn check_framing(content_type: &str, body: &[u8]) {
    let ranges = encrypted_part_ranges(content_type, body);
    let parts = decode(content_type, body);
    assert_eq!(ranges.is_ok(), parts.is_ok());
    let (Ok(ranges), Ok(parts)) = (ranges, parts) else {
        return;
    };
    assert!(!ranges.is_empty() && ranges.len() <= MAX_PARTS);
    assert_eq!(ranges.len(), parts.len());
    let mut prev_end = 0;
    for ((declared, header, data), part) in ranges.iter().zip(&parts) {
        // In-place decryption splits body[header.start..data.end] at the
        // header's length and copies plaintext to the front: the signature
        // is directly followed by the data, parts are in order and inside
        // the body.
        assert!(header.start >= prev_end);
        assert_eq!(header.end, data.start);
        assert!(data.start <= data.end && data.end <= body.len());
        assert!(*declared <= body.len() - data.start);
        assert_eq!(part.original_length, *declared);
        assert_eq!(part.header, &body[header.clone()]);
        assert_eq!(part.data, &body[data.clone()]);
        prev_end = data.end;
    }
}

fn check_round_trip(data: &[u8]) {
    // Cut the input into up to 8 (signature, sealed data) pairs.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(n % 8) + 1;
    let chunk = rest.len() / count + 1;
    let mut body = Vec::new();
    let mut want = Vec::new();
    for piece in rest.chunks(chunk).take(count) {
        let cut = piece
            .first()
            .map_or(0, |&b| usize::from(b) % (piece.len() + 1));
        let (header, sealed) = piece.split_at(cut);
        let mut one = encode(Protocol::Kerberos, sealed.len(), header, sealed);
        one.truncate(one.len() - b"--Encrypted Boundary--\r\n".len());
        body.extend_from_slice(&one);
        want.push((header, sealed));
    }
    if want.is_empty() {
        return;
    }
    body.extend_from_slice(b"--Encrypted Boundary--\r\n");
    let parts = decode(&Protocol::Kerberos.content_type(), &body).expect("own encoding decodes");
    assert_eq!(parts.len(), want.len());
    for (p, (header, sealed)) in parts.iter().zip(want) {
        assert_eq!(
            (p.header, p.data, p.original_length),
            (header, sealed, sealed.len())
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = split(data);
    check_framing(&content_type, body);
    check_round_trip(data);
});
