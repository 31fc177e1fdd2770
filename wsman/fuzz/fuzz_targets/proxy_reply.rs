//! HTTP proxy replies to CONNECT from a hostile proxy: read as the client
//! does (byte by byte up to the blank line, bounded), then judged. Nothing
//! may panic; only a well-formed 2xx status line opens the tunnel.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wsman::fuzzing::{proxy_connect_reply, proxy_connect_reply_complete};
use wsman::limits::PROXY_REPLY_MAX_HEAD;

fuzz_target!(|data: &[u8]| {
    let mut head = Vec::new();
    for &b in data {
        if proxy_connect_reply_complete(&head) || head.len() >= PROXY_REPLY_MAX_HEAD {
            break;
        }
        head.push(b);
    }
    if let Ok(status) = proxy_connect_reply(&head) {
        assert!((200..300).contains(&status));
        assert!(head.starts_with(b"HTTP/1.1 2") || head.starts_with(b"HTTP/1.0 2"));
        assert!(head.ends_with(b"\r\n\r\n"));
    }
    // The parser on its own, on any bytes.
    if let Ok(status) = proxy_connect_reply(data) {
        assert!((200..300).contains(&status));
    }
});
