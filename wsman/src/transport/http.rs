//! One HTTP/1.1 connection that this crate owns end to end: TCP (directly or
//! through an HTTP proxy), optional TLS, and hyper's connection-level client.
//! Every request on it goes over the same TCP connection, or fails.

use super::proxy::Proxy;
use super::proxy_reply;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;
use zeroize::Zeroizing;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What a connection needs to know.
pub(crate) struct Target {
    pub(crate) endpoint: Url,
    pub(crate) proxy: Option<Proxy>,
    pub(crate) tls: Option<Arc<ClientConfig>>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    /// Largest response body accepted (a server bounded by MaxEnvelopeSize
    /// never comes near it; this only stops a hostile one exhausting memory).
    pub(crate) max_response: usize,
}

/// A response with its body read fully.
pub(crate) struct RawReply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// Why an HTTP exchange failed.
#[derive(Debug)]
pub(crate) struct HttpFailure {
    pub(crate) reason: String,
    pub(crate) timed_out: bool,
    /// The request surely never reached the server's application (the
    /// connection was already closed): safe to resend on a new connection.
    pub(crate) retryable: bool,
    /// The TLS handshake failed (certificate not trusted, wrong host name,
    /// protocol mismatch).
    pub(crate) tls: bool,
    /// The response body exceeded this limit.
    pub(crate) too_large: Option<usize>,
}

impl HttpFailure {
    fn new(reason: impl Into<String>) -> Self {
        HttpFailure {
            reason: reason.into(),
            timed_out: false,
            retryable: false,
            tls: false,
            too_large: None,
        }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// What a TLS handshake settled, for diagnostics.
#[derive(Debug, Clone)]
pub(crate) struct TlsSession {
    /// e.g. `TLSv1_3`.
    pub(crate) protocol: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub(crate) cipher_suite: String,
    /// The server's certificates as sent, leaf first (DER).
    pub(crate) certificates: Vec<Vec<u8>>,
}

/// An open connection.
pub(crate) struct HttpConn {
    sender: SendRequest<Full<Bytes>>,
    /// Drives the connection; ends with why it failed, if it did.
    driver: tokio::task::JoinHandle<Option<String>>,
    /// What the driver ended with, once taken (see [`HttpConn::driver_failure`]).
    driver_ended: Option<Option<String>>,
    /// DER of the server's leaf certificate (HTTPS only).
    pub(crate) peer_cert: Option<Vec<u8>>,
    /// What the TLS handshake settled (HTTPS only).
    pub(crate) tls_session: Option<TlsSession>,
    /// Headers added to every request (diagnostics: `WSMANIDENTIFY`).
    pub(crate) extra_headers: Vec<(hyper::header::HeaderName, HeaderValue)>,
    pub(crate) local_addr: Option<SocketAddr>,
    host_header: HeaderValue,
    request_uri: hyper::Uri,
    proxy_authorization: Option<HeaderValue>,
    request_timeout: Duration,
    max_response: usize,
    used: bool,
}

impl Drop for HttpConn {
    fn drop(&mut self) {
        // Closes the TCP connection with the driver task.
        self.driver.abort();
    }
}

async fn proxy_connect(
    stream: &mut TcpStream,
    authority: &str,
    auth: Option<&str>,
) -> Result<(), HttpFailure> {
    // Holds the proxy credentials: sized once (no reallocation leaves a
    // copy behind) and cleared when dropped.
    let head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    let mut req = Zeroizing::new(String::with_capacity(
        head.len() + auth.map_or(0, |a| a.len() + 23) + 2,
    ));
    req.push_str(&head);
    if let Some(a) = auth {
        req.push_str("Proxy-Authorization: ");
        req.push_str(a);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| HttpFailure::new(format!("proxy CONNECT: {e}")))?;
    // Read the proxy's answer up to the blank line (bounded), one byte at a
    // time: what follows belongs to the tunnel.
    let mut buf = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !proxy_reply::head_complete(&buf) {
        if buf.len() >= proxy_reply::MAX_HEAD {
            return Err(HttpFailure::new(format!(
                "proxy CONNECT answer longer than {} bytes",
                proxy_reply::MAX_HEAD
            )));
        }
        let n = stream
            .read(&mut byte)
            .await
            .map_err(|e| HttpFailure::new(format!("proxy CONNECT: {e}")))?;
        if n == 0 {
            return Err(HttpFailure::new(
                "proxy closed the connection during CONNECT",
            ));
        }
        buf.push(byte[0]);
    }
    proxy_reply::parse(&buf)
        .map(drop)
        .map_err(|e| HttpFailure::new(format!("proxy refused CONNECT to {authority}: {e}")))
}

impl HttpConn {
    /// Connects (and, for HTTPS, completes the TLS handshake).
    pub(crate) async fn connect(t: &Target) -> Result<HttpConn, HttpFailure> {
        let host = t
            .endpoint
            .host_str()
            .ok_or_else(|| HttpFailure::new("endpoint has no host"))?
            .to_string();
        let port = t
            .endpoint
            .port_or_known_default()
            .ok_or_else(|| HttpFailure::new("endpoint has no port"))?;
        let authority = format!("{host}:{port}");
        let (dial_host, dial_port) = match &t.proxy {
            Some(p) => (p.host.clone(), p.port),
            None => (
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port,
            ),
        };
        let work = async {
            let mut tcp = TcpStream::connect((dial_host.as_str(), dial_port))
                .await
                .map_err(|e| {
                    HttpFailure::new(format!("connect to {dial_host}:{dial_port}: {e}"))
                })?;
            let _ = tcp.set_nodelay(true);
            let local_addr = tcp.local_addr().ok();
            let (io, peer_cert, tls_session): (Box<dyn Io>, Option<Vec<u8>>, Option<TlsSession>) =
                match &t.tls {
                    Some(cfg) => {
                        if let Some(p) = &t.proxy {
                            let auth = p.authorization.as_deref().map(String::as_str);
                            proxy_connect(&mut tcp, &authority, auth).await?;
                        }
                        let name = ServerName::try_from(
                            host.trim_start_matches('[')
                                .trim_end_matches(']')
                                .to_string(),
                        )
                        .map_err(|e| HttpFailure::new(format!("TLS server name {host:?}: {e}")))?;
                        let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                            .connect(name, tcp)
                            .await
                            .map_err(|e| HttpFailure {
                                tls: true,
                                ..HttpFailure::new(format!(
                                    "TLS handshake with {authority}: {}",
                                    chain(&e)
                                ))
                            })?;
                        let session = tls.get_ref().1;
                        let certificates: Vec<Vec<u8>> = session
                            .peer_certificates()
                            .unwrap_or_default()
                            .iter()
                            .map(|c| c.as_ref().to_vec())
                            .collect();
                        let info = TlsSession {
                            protocol: session
                                .protocol_version()
                                .map(|v| format!("{v:?}"))
                                .unwrap_or_default(),
                            cipher_suite: session
                                .negotiated_cipher_suite()
                                .map(|c| format!("{:?}", c.suite()))
                                .unwrap_or_default(),
                            certificates,
                        };
                        let cert = info.certificates.first().cloned();
                        (Box::new(tls), cert, Some(info))
                    }
                    None => (Box::new(tcp), None, None),
                };
            Ok::<_, HttpFailure>((io, peer_cert, tls_session, local_addr))
        };
        let (io, peer_cert, tls_session, local_addr) =
            tokio::time::timeout(t.connect_timeout, work)
                .await
                .map_err(|_| HttpFailure {
                    timed_out: true,
                    ..HttpFailure::new(format!(
                        "connecting to {authority} timed out after {:?}",
                        t.connect_timeout
                    ))
                })??;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| HttpFailure::new(format!("HTTP handshake: {}", chain(&e))))?;
        let driver = tokio::spawn(async move {
            let e = conn.await.err()?;
            tracing::debug!(error = %e, "HTTP connection ended");
            Some(chain(&e))
        });
        // Plain HTTP through a proxy uses the absolute URI; otherwise the path.
        let request_uri: hyper::Uri = if t.proxy.is_some() && t.tls.is_none() {
            t.endpoint.as_str().parse()
        } else {
            let mut p = t.endpoint.path().to_string();
            if let Some(q) = t.endpoint.query() {
                p.push('?');
                p.push_str(q);
            }
            p.parse()
        }
        .map_err(|e| HttpFailure::new(format!("request URI: {e}")))?;
        let default_port = t.endpoint.port().is_none();
        let host_header = HeaderValue::from_str(&if default_port {
            host.clone()
        } else {
            authority.clone()
        })
        .map_err(|e| HttpFailure::new(format!("Host header: {e}")))?;
        let proxy_authorization = match (&t.proxy, &t.tls) {
            (Some(p), None) => p
                .authorization
                .as_deref()
                .map(|a| {
                    HeaderValue::from_str(a).map(|mut v| {
                        // Kept out of hyper's debug output, like Authorization.
                        v.set_sensitive(true);
                        v
                    })
                })
                .transpose()
                .map_err(|e| HttpFailure::new(format!("proxy credentials: {e}")))?,
            _ => None,
        };
        Ok(HttpConn {
            sender,
            driver,
            driver_ended: None,
            peer_cert,
            tls_session,
            extra_headers: Vec::new(),
            local_addr,
            host_header,
            request_uri,
            proxy_authorization,
            request_timeout: t.request_timeout,
            max_response: t.max_response,
            used: false,
        })
    }

    /// Whether the connection can still carry a request.
    pub(crate) fn is_open(&self) -> bool {
        !self.sender.is_closed() && !self.driver.is_finished()
    }

    /// Why the connection's driver ended, when it has or does within a
    /// moment: hyper's sender only says the connection closed, the reason
    /// (e.g. a TLS alert read before the request went out) is the driver's.
    async fn driver_failure(&mut self) -> Option<String> {
        if self.driver_ended.is_none() {
            let ended = tokio::time::timeout(Duration::from_secs(1), &mut self.driver).await;
            self.driver_ended = Some(ended.ok()?.ok().flatten());
        }
        self.driver_ended.clone().flatten()
    }

    /// POSTs `body` and reads the whole response.
    pub(crate) async fn post(
        &mut self,
        body: Vec<u8>,
        content_type: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<RawReply, HttpFailure> {
        let reused = self.used;
        self.used = true;
        let mut req = hyper::Request::post(self.request_uri.clone())
            .header(HOST, self.host_header.clone())
            .header(USER_AGENT, concat!("wsman-rs/", env!("CARGO_PKG_VERSION")))
            .header(CONTENT_LENGTH, body.len());
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        if let Some(a) = authorization {
            let mut v = HeaderValue::from_str(a).map_err(|_| {
                HttpFailure::new("credentials contain characters not allowed in an HTTP header")
            })?;
            v.set_sensitive(true);
            req = req.header(hyper::header::AUTHORIZATION, v);
        }
        if let Some(p) = &self.proxy_authorization {
            req = req.header(hyper::header::PROXY_AUTHORIZATION, p.clone());
        }
        for (name, value) in &self.extra_headers {
            req = req.header(name, value.clone());
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HttpFailure::new(format!("building the request: {e}")))?;
        let timeout = self.request_timeout;
        let limit = self.max_response;
        let sender = &mut self.sender;
        let work = async move {
            // Either failure may only say "closed": flagged so that the
            // driver's reason is added below.
            sender.ready().await.map_err(|e| {
                let f = HttpFailure {
                    retryable: reused,
                    ..HttpFailure::new(format!("connection closed: {}", chain(&e)))
                };
                (f, true)
            })?;
            let resp = sender.send_request(req).await.map_err(|e| {
                let f = HttpFailure {
                    // Canceled = never written (the connection was found
                    // closed first). A connection closed after the request
                    // was written ("incomplete message") is not retried: the
                    // server may have acted on it (output dequeued, input
                    // consumed).
                    retryable: reused && e.is_canceled(),
                    ..HttpFailure::new(chain(&e))
                };
                (f, true)
            })?;
            let status = resp.status().as_u16();
            let (parts, mut body) = resp.into_parts();
            let too_large = || HttpFailure {
                too_large: Some(limit),
                ..HttpFailure::new(format!("response body longer than {limit} bytes"))
            };
            // Straight into one buffer sized from Content-Length (responses
            // are up to MaxEnvelopeSize): no intermediate copies. A declared
            // length over the limit is refused before reading any of it.
            let declared = parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            if declared > limit as u64 {
                return Err((too_large(), false));
            }
            let mut buf = Vec::with_capacity(declared as usize);
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| {
                    let f = HttpFailure::new(format!("reading the response body: {}", chain(&e)));
                    (f, false)
                })?;
                if let Ok(data) = frame.into_data() {
                    if data.len() > limit - buf.len() {
                        return Err((too_large(), false));
                    }
                    buf.extend_from_slice(&data);
                }
            }
            let body = buf;
            Ok(RawReply {
                status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, work).await {
            Err(_) => Err(HttpFailure {
                timed_out: true,
                ..HttpFailure::new(format!("no complete response within {timeout:?}"))
            }),
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err((f, false))) => Err(f),
            Ok(Err((mut f, true))) => {
                if let Some(why) = self.driver_failure().await {
                    if !f.reason.contains(&why) {
                        f.reason = format!("{}: {why}", f.reason);
                    }
                }
                Err(f)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Reads one request head (the tests send empty bodies).
    async fn read_head(s: &mut TcpStream) {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b).await.unwrap() == 0 {
                return;
            }
            head.push(b[0]);
        }
    }

    /// A response body over the limit is refused with `too_large`, whether
    /// its Content-Length says so up front or a chunked body never ends.
    #[tokio::test]
    async fn response_bodies_are_bounded() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            // A declared length of a terabyte, then no body at all.
            let (mut s, _) = listener.accept().await.unwrap();
            read_head(&mut s).await;
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000\r\n\r\n")
                .await
                .unwrap();
            // A chunked body that never ends (until the client hangs up).
            let (mut s, _) = listener.accept().await.unwrap();
            read_head(&mut s).await;
            s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            let chunk = [b"10000\r\n".as_slice(), &[b'x'; 0x10000], b"\r\n"].concat();
            let mut sent = 0usize;
            while s.write_all(&chunk).await.is_ok() {
                sent += 0x10000;
                assert!(sent < 64 << 20, "the client kept reading");
            }
        });
        let limit = 1 << 20;
        let target = Target {
            endpoint: Url::parse(&format!("http://127.0.0.1:{port}/wsman")).unwrap(),
            proxy: None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            max_response: limit,
        };
        for _ in 0..2 {
            let mut conn = HttpConn::connect(&target).await.unwrap();
            let err = conn.post(Vec::new(), None, None).await.err().unwrap();
            assert_eq!(err.too_large, Some(limit), "{}", err.reason);
            assert!(!err.timed_out);
        }
        drop(target);
        tokio::time::timeout(Duration::from_secs(20), server)
            .await
            .unwrap()
            .unwrap();
    }

    /// A connection that failed before the request went out (the server's
    /// bytes made the driver give up, as a TLS alert does) reports why, not
    /// only hyper's "channel closed".
    #[tokio::test]
    async fn a_connection_closed_before_the_request_says_why() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            // An answer nobody asked for: the client's driver fails on it.
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        });
        let target = Target {
            endpoint: Url::parse(&format!("http://127.0.0.1:{port}/wsman")).unwrap(),
            proxy: None,
            tls: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            max_response: 1 << 20,
        };
        let mut conn = HttpConn::connect(&target).await.unwrap();
        // Let the driver read the unsolicited answer and end first.
        for _ in 0..200 {
            if conn.driver.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(conn.driver.is_finished(), "the driver did not end");
        let err = conn.post(Vec::new(), None, None).await.err().unwrap();
        assert!(
            err.reason.starts_with("connection closed: ") && err.reason.contains("unexpected"),
            "{}",
            err.reason
        );
        drop(conn);
        tokio::time::timeout(Duration::from_secs(20), server)
            .await
            .unwrap()
            .unwrap();
    }
}
