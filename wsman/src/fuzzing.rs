//! Entry points for the cargo-fuzz targets in `wsman/fuzz`: the parsers of
//! network bytes that are not public API otherwise. Not part of the
//! supported API; no stability promise.

use std::ops::Range;

/// The HTTP CONNECT proxy reply check: `Ok(status)` for a complete 2xx
/// reply head, the error text otherwise.
pub fn proxy_connect_reply(head: &[u8]) -> Result<u16, String> {
    crate::transport::proxy_reply::parse(head).map_err(|e| e.to_string())
}

/// Whether the bytes read so far end the proxy's reply head.
pub fn proxy_connect_reply_complete(buf: &[u8]) -> bool {
    crate::transport::proxy_reply::head_complete(buf)
}

/// One encrypted part as positions in the body: (declared length,
/// signature range, sealed data range).
pub type PartPositions = (usize, Range<usize>, Range<usize>);

/// The positions in-place decryption works on
/// (`multipart/encrypted` framing).
pub fn encrypted_part_ranges(
    content_type: &str,
    body: &[u8],
) -> Result<Vec<PartPositions>, crate::encryption::EncryptionError> {
    Ok(crate::encryption::decode_ranges(content_type, body)?
        .into_iter()
        .map(|p| (p.original_length, p.header, p.data))
        .collect())
}

/// The WWW-Authenticate parsing of a 401 reply: one header value per line
/// of `values`; returns the offered schemes and, per scheme word offered,
/// the decoded token or the error text.
#[allow(clippy::type_complexity)]
pub fn www_authenticate(values: &[u8]) -> (Vec<String>, Vec<Result<Option<Vec<u8>>, String>>) {
    let mut headers = hyper::header::HeaderMap::new();
    for line in values.split(|&b| b == b'\n') {
        if let Ok(v) = hyper::header::HeaderValue::from_bytes(line) {
            headers.append(hyper::header::WWW_AUTHENTICATE, v);
        }
    }
    let reply = crate::transport::Reply {
        status: 401,
        headers,
        body: Vec::new(),
    };
    let offered = reply.offered_schemes();
    let tokens = offered.iter().map(|s| reply.server_token(s)).collect();
    (offered, tokens)
}
