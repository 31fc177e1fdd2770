//! A minimal HTTP/1.1 client over `TcpStream` for loopback tests.
//!
//! Enough to talk to the peer's control endpoint and to probe the WinRM listener
//! byte for byte (status, headers, keep-alive), without pulling in an HTTP stack.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::PeerError;

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code, e.g. 401.
    pub status: u16,
    /// Header (name, value) pairs in the order received; names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (read by Content-Length, or to EOF without one).
    pub body: Vec<u8>,
}

impl Response {
    /// All values of a header, case-insensitive name match.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of a header, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }
}

/// A keep-alive HTTP/1.1 connection: several requests on one TCP connection.
#[derive(Debug)]
pub struct Connection {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects to `addr` with read/write timeouts of `timeout`.
    pub fn open(addr: SocketAddr, timeout: Duration) -> Result<Connection, PeerError> {
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| PeerError::Http {
            what: format!("connect to {addr}"),
            source: e,
        })?;
        let io = |e| PeerError::Http {
            what: format!("configure socket to {addr}"),
            source: e,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        Ok(Connection {
            addr,
            reader: BufReader::new(stream),
        })
    }

    /// Sends one request and reads its response. `headers` are extra header lines;
    /// Host and Content-Length are always sent.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, PeerError> {
        let addr = self.addr;
        let io = |what: &str| {
            let what = format!("{what} {method} {path} on {addr}");
            move |e| PeerError::Http { what, source: e }
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).map_err(io("send"))?;
        stream.write_all(body).map_err(io("send body of"))?;
        stream.flush().map_err(io("send"))?;

        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(io("read status of"))?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| PeerError::Protocol(format!("bad status line {line:?} from {addr}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader
                .read_line(&mut line)
                .map_err(io("read headers of"))?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        match response.header("Content-Length") {
            Some(len) => {
                let len: usize = len.parse().map_err(|_| {
                    PeerError::Protocol(format!("bad Content-Length {len:?} from {addr}"))
                })?;
                response.body.resize(len, 0);
                self.reader
                    .read_exact(&mut response.body)
                    .map_err(io("read body of"))?;
            }
            None => {
                self.reader
                    .read_to_end(&mut response.body)
                    .map_err(io("read body of"))?;
            }
        }
        Ok(response)
    }
}

/// One request on a fresh connection (`Connection: close`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Response, PeerError> {
    let mut conn = Connection::open(addr, Duration::from_secs(30))?;
    let mut headers = vec![("Connection", "close")];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    conn.request(method, path, &headers, body)
}
