//! The async WS-Man client: a small pool of authenticated connections and the
//! shell operations on top.

use crate::config::{NtlmFallback, WsmanConfig};
use crate::enumerate::{self, ShellInfo};
use crate::error::Error;
use crate::fault::WsmanFault;
use crate::shell::{
    self, CommandRequest, CreateShell, DisconnectShell, ReceiveOutcome, ReceiveResponse, Request,
    Shell,
};
use crate::soap::envelope::{self, new_message_id, Header, ResponseBody, ResponseError};
use crate::soap::Element;
use crate::transport::retry::{self, ReconnectEvent};
use crate::transport::{Connection, Shared};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// How a 200 response was read: by an operation's one-pass reader (for
/// Receive, [`shell::read_receive_response`], which skips the tree of a
/// large response), or, when that declines it, as a tree by
/// [`envelope::parse_response`].
enum Read<T> {
    Fast(T),
    Element(Element),
}

impl Read<std::convert::Infallible> {
    fn into_element(self) -> Element {
        match self {
            Read::Element(e) => e,
            Read::Fast(never) => match never {},
        }
    }
}

/// No one-pass reader: every response is read as a tree.
fn no_fast_read(_: &str, _: &str) -> Option<std::convert::Infallible> {
    None
}

/// Most shells [`WsmanClient::enumerate_shells`] reads (WinRM's
/// MaxShellsPerUser defaults to 30; a server listing more is not believed).
pub const MAX_ENUMERATED_SHELLS: usize = 10_000;

/// A WS-Management client for one endpoint.
///
/// Cheap to clone (an `Arc` inside) and `Send + Sync`. Operations may run
/// concurrently: each takes an idle authenticated connection, or opens and
/// authenticates a new one, up to [`WsmanConfig::max_connections`]; beyond
/// that they wait. A connection carries one request at a time, so a Receive
/// blocked for OperationTimeout never holds up a Send or Signal.
#[derive(Clone)]
pub struct WsmanClient {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Shared,
    session_id: String,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
    /// The server echoed a Receive's `SequenceId` at least once (so a
    /// command's first Receive is known to be safe to resend too).
    robust_receive: AtomicBool,
    /// A request of this client may have reached the server (see
    /// [`WsmanClient::may_have_reached_server`]).
    reached_server: AtomicBool,
}

impl std::fmt::Debug for WsmanClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsmanClient")
            .field("endpoint", &self.inner.shared.endpoint)
            .field("auth", &self.inner.shared.config.auth.kind())
            .finish_non_exhaustive()
    }
}

/// A connection checked out of the pool. Dropping it without
/// [`Lease::release`] (error, or a cancelled future) discards it, so a
/// connection whose sealing state may be out of step is never reused.
struct Lease<'a> {
    inner: &'a Inner,
    conn: Option<Connection>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Lease<'_> {
    fn release(mut self) {
        if let (Some(c), Ok(mut idle)) = (self.conn.take(), self.inner.idle.lock()) {
            idle.push(c);
        }
    }
}

/// When a request may be sent again after a broken connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Receiving it twice does no harm (or the server recognises it).
    Always,
    /// A Receive the server may not recognise as resent: allowed, and the
    /// retry event says that output may be lost.
    AlwaysMayLoseOutput,
    /// Only if it surely did not reach the server.
    IfNotDelivered,
}

/// The robust-Receive state of one shell or command:
/// [`WsmanClient::receive_sequenced`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiveSequence {
    next: u64,
    server_acknowledges: bool,
}

impl ReceiveSequence {
    /// A new sequence (the first Receive carries `SequenceId` 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// The `SequenceId` of the next Receive.
    pub fn next_id(&self) -> u64 {
        self.next
    }

    /// Whether the server echoed the `SequenceId` on its last
    /// ReceiveResponse (it keeps that response for a resent Receive).
    pub fn server_acknowledges(&self) -> bool {
        self.server_acknowledges
    }
}

fn action_name(action: &str) -> String {
    action.rsplit('/').next().unwrap_or(action).to_string()
}

impl WsmanClient {
    /// Validates the configuration and prepares the client. No network
    /// traffic happens until the first operation.
    pub fn new(config: WsmanConfig) -> Result<Self, Error> {
        config.validate()?;
        let permits = Semaphore::new(config.max_connections);
        // Builds the TLS configuration and proxy choice: bad options fail here.
        let shared = Shared::new(config)?;
        Ok(WsmanClient {
            inner: Arc::new(Inner {
                shared,
                session_id: new_message_id(),
                idle: Mutex::new(Vec::new()),
                permits,
                robust_receive: AtomicBool::new(false),
                reached_server: AtomicBool::new(false),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &WsmanConfig {
        &self.inner.shared.config
    }

    /// Why Negotiate used NTLM instead of Kerberos, if it did on any
    /// connection of this client so far (the first time; see
    /// [`WsmanConfig::on_ntlm_fallback`] to be told as it happens).
    pub fn ntlm_fallback(&self) -> Option<NtlmFallback> {
        self.inner.shared.ntlm_fallback.get().cloned()
    }

    /// Whether any request of this client may have reached the server
    /// (false: none was ever written, e.g. every connection was refused, so
    /// the server cannot have acted on any: a Create made no shell).
    pub fn may_have_reached_server(&self) -> bool {
        self.inner.reached_server.load(Ordering::Relaxed)
    }

    async fn lease(&self) -> Result<Lease<'_>, Error> {
        let permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Config("client closed".into()))?;
        let idle = self.inner.idle.lock().ok().and_then(|mut v| v.pop());
        let conn = match idle {
            Some(c) => c,
            None => Connection::new(&self.inner.shared),
        };
        Ok(Lease {
            inner: &self.inner,
            conn: Some(conn),
            _permit: permit,
        })
    }

    fn envelope(&self, req: &Request, message_id: &str) -> String {
        let c = &self.inner.shared.config;
        envelope::build(
            &Header {
                action: req.action,
                to: &self.inner.shared.endpoint,
                resource_uri: &req.resource_uri,
                message_id,
                session_id: &self.inner.session_id,
                max_envelope_size: c.max_envelope_size,
                operation_timeout: c.operation_timeout,
                locale: &c.locale,
                data_locale: c.data_locale.as_deref().unwrap_or(&c.locale),
                options: &req.options,
                selectors: &req.selectors,
            },
            &req.body,
        )
    }

    /// Sends one request (no retry); returns the response body or the fault.
    async fn call(&self, req: &Request) -> Result<Result<Element, WsmanFault>, Error> {
        match self.call_attempt(req, no_fast_read).await {
            Ok(r) => Ok(r.map(Read::into_element)),
            Err((e, _)) => Err(e),
        }
    }

    /// Sends `req`, and again on a new connection after a transient failure
    /// ([`retry::is_transient`]), as [`WsmanConfig::reconnect`] allows.
    /// `resend` says when: [`Resend::Always`] for requests the server may
    /// see twice, [`Resend::IfNotDelivered`] for those it must not.
    async fn call_retrying(
        &self,
        req: &Request,
        resend: Resend,
    ) -> Result<Result<Element, WsmanFault>, Error> {
        let r = self.call_retrying_with(req, resend, no_fast_read).await?;
        Ok(r.map(Read::into_element))
    }

    /// [`Self::call_retrying`], reading a 200 response with `fast` first
    /// (see [`Read`]).
    async fn call_retrying_with<T>(
        &self,
        req: &Request,
        resend: Resend,
        fast: fn(&str, &str) -> Option<T>,
    ) -> Result<Result<Read<T>, WsmanFault>, Error> {
        let shared = &self.inner.shared;
        let policy = shared.config.reconnect;
        let action = action_name(req.action);
        let mut retries = 0;
        loop {
            let (error, maybe_sent) = match self.call_attempt(req, fast).await {
                Ok(r) => return Ok(r),
                Err(e) => e,
            };
            if !retry::is_transient(&error) {
                return Err(error);
            }
            if retries >= policy.retries {
                return Err(if retries == 0 {
                    error
                } else {
                    Error::ReconnectFailed {
                        endpoint: shared.endpoint.clone(),
                        action,
                        retries,
                        source: Box::new(error),
                    }
                });
            }
            if maybe_sent && resend == Resend::IfNotDelivered {
                return Err(Error::SendInterrupted {
                    endpoint: shared.endpoint.clone(),
                    source: Box::new(error),
                });
            }
            retries += 1;
            let event = ReconnectEvent {
                endpoint: shared.endpoint.clone(),
                action: action.clone(),
                attempt: retries,
                retries: policy.retries,
                delay: policy.delay(retries),
                error: error.to_string(),
                output_may_be_lost: resend == Resend::AlwaysMayLoseOutput,
            };
            tracing::info!(%event, "reconnecting");
            if let Some(hook) = &shared.config.on_reconnect {
                hook.call(&event);
            }
            tokio::time::sleep(event.delay).await;
        }
    }

    /// One attempt; an error comes with whether the request may have
    /// reached the server.
    async fn call_attempt<T>(
        &self,
        req: &Request,
        fast: fn(&str, &str) -> Option<T>,
    ) -> Result<Result<Read<T>, WsmanFault>, (Error, bool)> {
        let shared = &self.inner.shared;
        let message_id = new_message_id();
        let xml = self.envelope(req, &message_id);
        tracing::trace!(action = req.action, len = xml.len(), "WS-Man request");
        let mut lease = self.lease().await.map_err(|e| (e, false))?;
        let conn = lease
            .conn
            .as_mut()
            .ok_or_else(|| (Error::Config("no connection".into()), false))?;
        let exchanged = conn.exchange(shared, xml.as_bytes()).await;
        if conn.request_maybe_sent() {
            self.inner.reached_server.store(true, Ordering::Relaxed);
        }
        let reply = match exchanged {
            Ok(r) => r,
            Err(e) => return Err((e, conn.request_maybe_sent())),
        };
        lease.release();

        let action = action_name(req.action);
        let bad = |source: ResponseError| {
            (
                Error::Response {
                    endpoint: shared.endpoint.clone(),
                    action: action.clone(),
                    source,
                },
                true,
            )
        };
        // The one UTF-8 check of the body (SIMD: a Receive body is large).
        let text = simdutf8::basic::from_utf8(&reply.body);
        match reply.status {
            200 => {
                let text =
                    text.map_err(|_| bad(ResponseError::Shape("body is not UTF-8".into())))?;
                if let Some(r) = fast(text, &message_id) {
                    return Ok(Ok(Read::Fast(r)));
                }
                match envelope::parse_response(text, &message_id).map_err(bad)? {
                    ResponseBody::Body(b) => Ok(Ok(Read::Element(b))),
                    ResponseBody::Fault(f) => Ok(Err(f)),
                }
            }
            status => {
                // WinRM reports faults with HTTP 500 (sometimes 400); anything
                // that parses as a SOAP fault is one.
                if let Ok(t) = text {
                    if let Ok(ResponseBody::Fault(f)) = envelope::parse_response(t, &message_id) {
                        return Ok(Err(f));
                    }
                }
                let excerpt: String = String::from_utf8_lossy(&reply.body)
                    .chars()
                    .take(400)
                    .collect();
                Err((
                    Error::HttpStatus {
                        endpoint: shared.endpoint.clone(),
                        status,
                        body: excerpt,
                    },
                    true,
                ))
            }
        }
    }

    async fn call_ok(&self, req: &Request) -> Result<Element, Error> {
        Self::fault_to_error(req, self.call(req).await?)
    }

    fn fault_to_error(req: &Request, r: Result<Element, WsmanFault>) -> Result<Element, Error> {
        r.map_err(|fault| Error::Fault {
            action: action_name(req.action),
            fault: Box::new(fault),
        })
    }

    fn shape_error(&self, action: &str, source: ResponseError) -> Error {
        Error::Response {
            endpoint: self.inner.shared.endpoint.clone(),
            action: action.into(),
            source,
        }
    }

    /// Creates a shell (for PSRP: opens the runspace pool with creationXml).
    pub async fn create_shell(&self, req: CreateShell) -> Result<Shell, Error> {
        let body = self.call_ok(&shell::create(&req)).await?;
        shell::parse_create(&body, &req).map_err(|e| self.shape_error("Create", e))
    }

    /// Starts a command; returns the CommandId the server assigned (use it,
    /// not the proposed one).
    pub async fn command(&self, shell: &Shell, req: CommandRequest) -> Result<String, Error> {
        let body = self.call_ok(&shell::command(shell, &req)).await?;
        shell::parse_command(&body).map_err(|e| self.shape_error("Command", e))
    }

    /// Sends bytes to a stream (`stdin`, or `pr` for host responses) of the
    /// shell (`command_id` None) or of a command.
    ///
    /// After a broken connection ([`WsmanConfig::reconnect`]) the Send is
    /// sent again on a new connection only when it surely did not reach the
    /// server (the connection failed before it was written). When it may
    /// have (the connection broke after it was written, before the answer),
    /// WS-Man has no way to ask whether the server took it, and sending it
    /// again could make the command read the input twice: that is
    /// [`Error::SendInterrupted`].
    pub async fn send(
        &self,
        shell: &Shell,
        command_id: Option<&str>,
        stream: &str,
        data: &[u8],
        end: bool,
    ) -> Result<(), Error> {
        let req = shell::send(shell, command_id, stream, data, end);
        Self::fault_to_error(
            &req,
            self.call_retrying(&req, Resend::IfNotDelivered).await?,
        )
        .map(drop)
    }

    /// Receives output of the shell (`command_id` None) or a command. The
    /// OperationTimeout fault becomes [`ReceiveOutcome::TimedOut`].
    pub async fn receive(
        &self,
        shell: &Shell,
        command_id: Option<&str>,
    ) -> Result<ReceiveOutcome, Error> {
        self.receive_streams(shell, command_id, "stdout").await
    }

    /// [`Self::receive`] on other streams, space-separated (WinRS: `stdout stderr`).
    pub async fn receive_streams(
        &self,
        shell: &Shell,
        command_id: Option<&str>,
        streams: &str,
    ) -> Result<ReceiveOutcome, Error> {
        let req = shell::receive_streams(shell, command_id, streams);
        let reply = self
            .call_retrying_with(
                &req,
                Resend::AlwaysMayLoseOutput,
                shell::read_receive_response,
            )
            .await?;
        self.receive_outcome(reply)
    }

    /// Receive with robust sequencing: `sequence` (one per shell or command,
    /// kept by the caller across calls) numbers the Receives with
    /// `SequenceId`, so that after a broken connection the Receive sent
    /// again on a new connection carries the same number and a server that
    /// keeps its last response sends that response again: no output is lost
    /// and none is duplicated. The next Receive acknowledges it.
    ///
    /// A server that does not echo the `SequenceId` on its ReceiveResponse
    /// (see [`ReceiveSequence::server_acknowledges`]) treats a resent
    /// Receive as a new one: the output it had put in the response that was
    /// cut is lost. [`crate::ReconnectEvent::output_may_be_lost`] says so
    /// on every such retry, and also on a retry before the server has
    /// echoed any `SequenceId` to this client (before that it is unknown).
    pub async fn receive_sequenced(
        &self,
        shell: &Shell,
        command_id: Option<&str>,
        streams: &str,
        sequence: &mut ReceiveSequence,
    ) -> Result<ReceiveOutcome, Error> {
        let sent = sequence.next;
        let req = shell::receive_sequenced(shell, command_id, streams, sent);
        let robust =
            sequence.server_acknowledges || self.inner.robust_receive.load(Ordering::Relaxed);
        let resend = if robust {
            Resend::Always
        } else {
            Resend::AlwaysMayLoseOutput
        };
        let reply = self
            .call_retrying_with(&req, resend, shell::read_receive_response)
            .await?;
        let outcome = self.receive_outcome(reply)?;
        if let ReceiveOutcome::Data(r) = &outcome {
            // The next Receive acknowledges this response.
            sequence.next = sent.saturating_add(1);
            sequence.server_acknowledges = r.sequence_id == Some(sent);
            if sequence.server_acknowledges {
                self.inner.robust_receive.store(true, Ordering::Relaxed);
            }
        }
        Ok(outcome)
    }

    fn receive_outcome(
        &self,
        reply: Result<Read<ReceiveResponse>, WsmanFault>,
    ) -> Result<ReceiveOutcome, Error> {
        match reply {
            Ok(Read::Fast(r)) => Ok(ReceiveOutcome::Data(r)),
            Ok(Read::Element(body)) => shell::parse_receive(&body)
                .map(ReceiveOutcome::Data)
                .map_err(|e| self.shape_error("Receive", e)),
            Err(f) if f.is_operation_timeout() => Ok(ReceiveOutcome::TimedOut),
            Err(f) => Err(Error::Fault {
                action: "Receive".into(),
                fault: Box::new(f),
            }),
        }
    }

    /// Sends a signal (e.g. [`shell::signal::PS_CTRL_C`] to stop a pipeline,
    /// [`shell::signal::TERMINATE`] to release a command).
    ///
    /// Sent again after a broken connection: a stop or terminate signal
    /// received twice has the effect of one.
    pub async fn signal(&self, shell: &Shell, command_id: &str, code: &str) -> Result<(), Error> {
        let req = shell::signal(shell, command_id, code);
        Self::fault_to_error(&req, self.call_retrying(&req, Resend::Always).await?).map(drop)
    }

    /// Deletes the shell (closes the runspace pool). Sent again after a
    /// broken connection (a second Delete finds the shell gone).
    pub async fn delete_shell(&self, shell: &Shell) -> Result<(), Error> {
        let req = shell::delete(shell);
        Self::fault_to_error(&req, self.call_retrying(&req, Resend::Always).await?).map(drop)
    }

    /// Disconnects the shell: its commands go on on the server and their
    /// output is buffered there (see [`DisconnectShell`]) until this
    /// client reconnects ([`Self::reconnect_shell`]) or another connects
    /// ([`Self::connect_shell`]). A Receive still pending is answered by
    /// the server (WinRM: with an error that the shell is disconnected).
    pub async fn disconnect_shell(
        &self,
        shell: &Shell,
        req: &DisconnectShell,
    ) -> Result<(), Error> {
        let body = self.call_ok(&shell::disconnect(shell, req)).await?;
        shell::parse_ack(&body, "DisconnectResponse").map_err(|e| self.shape_error("Disconnect", e))
    }

    /// Reconnects to a shell this client disconnected (WinRM checks the
    /// WS-Man SessionId, which is this client's); Receives then go on.
    pub async fn reconnect_shell(&self, shell: &Shell) -> Result<(), Error> {
        let body = self.call_ok(&shell::reconnect(shell)).await?;
        shell::parse_ack(&body, "ReconnectResponse").map_err(|e| self.shape_error("Reconnect", e))
    }

    /// Connects this client to a disconnected shell (created by any
    /// client of the same user): sends `connect_xml` (PSRP) with the
    /// `protocolversion` option and returns the bytes of the server's
    /// `connectResponseXml`.
    pub async fn connect_shell(
        &self,
        shell: &Shell,
        connect_xml: &[u8],
        protocol_version: &str,
    ) -> Result<Vec<u8>, Error> {
        let body = self
            .call_ok(&shell::connect(shell, connect_xml, protocol_version))
            .await?;
        shell::parse_connect(&body).map_err(|e| self.shape_error("Connect", e))
    }

    /// Connects to a command of a shell connected with
    /// [`Self::connect_shell`]; its buffered output then comes by Receive.
    pub async fn connect_command(&self, shell: &Shell, command_id: &str) -> Result<(), Error> {
        let body = self
            .call_ok(&shell::connect_command(shell, command_id))
            .await?;
        shell::parse_connect_command(&body).map_err(|e| self.shape_error("Connect", e))
    }

    /// The user's shells on the server (WS-Enumeration Enumerate, then
    /// Pull while the server has more), all kinds: filter with
    /// [`ShellInfo::configuration_name`] and [`ShellInfo::is_disconnected`].
    /// At most [`MAX_ENUMERATED_SHELLS`] are read; an enumeration that
    /// neither ends nor gives shells is an error.
    pub async fn enumerate_shells(&self) -> Result<Vec<ShellInfo>, Error> {
        let body = self.call_ok(&enumerate::enumerate_shells()).await?;
        let mut page =
            enumerate::parse_enumerate(&body).map_err(|e| self.shape_error("Enumerate", e))?;
        let mut shells = Vec::new();
        loop {
            shells.append(&mut page.shells);
            if shells.len() > MAX_ENUMERATED_SHELLS {
                return Err(self.shape_error(
                    "Pull",
                    ResponseError::Shape(format!(
                        "the server listed more than {MAX_ENUMERATED_SHELLS} shells"
                    )),
                ));
            }
            let context = match (page.end, page.context.take()) {
                (true, _) | (false, None) => return Ok(shells),
                (false, Some(c)) => c,
            };
            let body = self.call_ok(&enumerate::pull(&context)).await?;
            page = enumerate::parse_pull(&body).map_err(|e| self.shape_error("Pull", e))?;
            // A Pull that returns nothing and does not end makes no
            // progress: stop rather than loop on the server's word.
            if page.shells.is_empty() && !page.end {
                return Err(self.shape_error(
                    "Pull",
                    ResponseError::Shape("an enumeration page without shells did not end".into()),
                ));
            }
        }
    }

    /// Raw payload bytes that fit in one Send, one Command's Arguments or one
    /// creationXml without exceeding MaxEnvelopeSize: the envelope
    /// skeleton is subtracted, 256 bytes are kept spare, and base64's 4/3
    /// growth is accounted for. Assumes a ResourceURI of at most 200 bytes.
    pub fn max_payload_size(&self) -> usize {
        let uri = format!(
            "{}{}",
            shell::POWERSHELL_RESOURCE_PREFIX,
            "x".repeat(200 - shell::POWERSHELL_RESOURCE_PREFIX.len())
        );
        let id = "00000000-0000-0000-0000-000000000000";
        let sh = Shell::new(id, uri.clone());
        let mut create = CreateShell::powershell("x")
            .with_shell_id(id)
            .with_creation_xml(Vec::new());
        create.resource_uri = uri;
        let skeletons = [
            shell::create(&create),
            shell::command(&sh, &CommandRequest::psrp(id, &[])),
            shell::send(&sh, Some(id), "stdin", &[], true),
        ];
        let overhead = skeletons
            .iter()
            .map(|r| self.envelope(r, &format!("uuid:{id}")).len())
            .max()
            .unwrap_or(0);
        let room = self
            .inner
            .shared
            .config
            .max_envelope_size
            .saturating_sub(overhead + 256);
        // base64 turns every 3 bytes into 4.
        room / 4 * 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Auth;
    use crate::secret::Secret;

    fn client(max: usize) -> WsmanClient {
        let mut c = WsmanConfig::new(
            "http://localhost:5985/wsman",
            Auth::Ntlm {
                username: "u".into(),
                password: Secret::new("p"),
            },
        )
        .unwrap();
        c.max_envelope_size = max;
        WsmanClient::new(c).unwrap()
    }

    #[test]
    fn payload_size_keeps_envelopes_under_the_limit() {
        for max in [8192, 153_600, 512_000] {
            let c = client(max);
            let n = c.max_payload_size();
            assert!(n > max / 2, "{n} of {max}");
            let sh = Shell::new(
                "00000000-0000-0000-0000-000000000000",
                "http://schemas.microsoft.com/powershell/JEA.Maintenance",
            );
            let data = vec![0xA5u8; n];
            let send = c.envelope(
                &shell::send(
                    &sh,
                    Some("00000000-0000-0000-0000-000000000000"),
                    "stdin",
                    &data,
                    true,
                ),
                &new_message_id(),
            );
            assert!(send.len() <= max, "Send envelope {} > {max}", send.len());
            let create = c.envelope(
                &shell::create(
                    &CreateShell::powershell("JEA.Maintenance")
                        .with_shell_id("00000000-0000-0000-0000-000000000000")
                        .with_creation_xml(data),
                ),
                &new_message_id(),
            );
            assert!(
                create.len() <= max,
                "Create envelope {} > {max}",
                create.len()
            );
        }
    }

    /// A Create whose connection was refused never reached the server; one
    /// written to a server that hung up without answering may have.
    #[tokio::test]
    async fn knows_whether_a_request_may_have_reached_the_server() {
        use tokio::io::AsyncReadExt;
        let basic = |port: u16| {
            let mut c = WsmanConfig::new(
                &format!("http://127.0.0.1:{port}/wsman"),
                Auth::Basic {
                    username: "u".into(),
                    password: Secret::new("p"),
                },
            )
            .unwrap();
            c.encryption = crate::config::EncryptionPolicy::DangerousAllowUnencryptedHttp;
            WsmanClient::new(c).unwrap()
        };
        let create = || CreateShell::powershell("Microsoft.PowerShell");

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let refused = basic(port);
        assert!(refused.create_shell(create()).await.is_err());
        assert!(!refused.may_have_reached_server());

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            // The head and some of the body, then a hang-up without an answer.
            let _ = s.read(&mut buf).await;
        });
        let cut = basic(port);
        assert!(cut.create_shell(create()).await.is_err());
        assert!(cut.may_have_reached_server());
        server.await.unwrap();
    }

    #[test]
    fn client_is_send_sync_clone_and_debug_hides_secrets() {
        fn assert_traits<T: Send + Sync + Clone>() {}
        assert_traits::<WsmanClient>();
        let c = client(153_600);
        let shown = format!("{c:?}");
        assert!(
            shown.contains("localhost") && !shown.contains("\"p\""),
            "{shown}"
        );
    }
}
