//! Starting the test peer (`tests/peer`) and talking to its control endpoint.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{http, venv, PeerError};

/// How long a peer may take to print its info line (realm, certificates, listeners).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What a client needs to reach one peer instance (from its info file).
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Host name to connect to: `localhost` (the Kerberos SPN is `HTTP/localhost`).
    pub host: String,
    /// WinRM over HTTP (message encryption required after Negotiate/Kerberos).
    pub http_port: u16,
    /// WinRM over HTTPS with a certificate from `ca_file`.
    pub https_port: u16,
    /// HTTPS listener whose certificate is self-signed (not from the CA), if started.
    pub untrusted_cert_port: Option<u16>,
    /// HTTPS listener whose certificate is for another host name, if started.
    pub wrong_host_cert_port: Option<u16>,
    /// Kerberos realm, `PEER.TEST`.
    pub realm: String,
    /// User name (NTLM and Basic accept the forms in `ntlm_usernames`).
    pub user: String,
    /// The user's password (generated per realm).
    pub password: String,
    /// Kerberos principal of the user, `testuser@PEER.TEST`.
    pub principal: String,
    /// User name spellings the NTLM acceptor and Basic accept.
    pub ntlm_usernames: Vec<String>,
    /// CA certificate (PEM) that signed the HTTPS certificate.
    pub ca_file: PathBuf,
    /// `krb5.conf` of the realm (for KRB5_CONFIG).
    pub krb5_config: PathBuf,
    /// Ticket cache holding a TGT for `principal` (for KRB5CCNAME=FILE:...).
    pub ccache: PathBuf,
    /// Keytab of `HTTP/localhost`.
    pub keytab: PathBuf,
    /// The KDC's loopback port.
    pub kdc_port: u16,
    /// Base URL of the control endpoint, `http://127.0.0.1:PORT`.
    pub control_url: String,
    /// Process id of the peer.
    pub pid: u32,
    /// The instance's state directory (logs; realm when it owns it).
    pub state_dir: PathBuf,
    /// The info file itself (pass to `--realm-from` to share the realm).
    pub info_file: PathBuf,
    /// The peer's log file (never contains the password).
    pub log_file: PathBuf,
    /// The whole info document.
    pub raw: Value,
}

impl PeerInfo {
    fn from_json(raw: Value) -> Result<PeerInfo, PeerError> {
        let s = |key: &str| -> Result<String, PeerError> {
            raw.get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| PeerError::Protocol(format!("peer info has no string {key:?}")))
        };
        let port = |v: Option<&Value>, key: &str| -> Result<Option<u16>, PeerError> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .map(Some)
                    .ok_or_else(|| PeerError::Protocol(format!("peer info {key:?} is not a port"))),
            }
        };
        let required_port = |key: &str| -> Result<u16, PeerError> {
            port(raw.get(key), key)?
                .ok_or_else(|| PeerError::Protocol(format!("peer info has no port {key:?}")))
        };
        let bad = raw.get("bad_cert");
        let ntlm_usernames = raw
            .pointer("/ntlm/accepted_usernames")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(PeerInfo {
            host: s("host")?,
            http_port: required_port("http_port")?,
            https_port: required_port("https_port")?,
            untrusted_cert_port: port(bad.and_then(|b| b.get("untrusted_port")), "untrusted_port")?,
            wrong_host_cert_port: port(
                bad.and_then(|b| b.get("wrong_host_port")),
                "wrong_host_port",
            )?,
            realm: s("realm")?,
            user: s("user")?,
            password: s("password")?,
            principal: s("principal")?,
            ntlm_usernames,
            ca_file: s("ca_file")?.into(),
            krb5_config: s("krb5_config")?.into(),
            ccache: s("ccache")?.into(),
            keytab: s("keytab")?.into(),
            kdc_port: required_port("kdc_port")?,
            control_url: s("control_url")?,
            pid: raw
                .get("pid")
                .and_then(Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| PeerError::Protocol("peer info has no pid".into()))?,
            state_dir: s("state_dir")?.into(),
            info_file: s("info_file")?.into(),
            log_file: s("log_file")?.into(),
            raw,
        })
    }

    /// `http://localhost:PORT/wsman`.
    pub fn http_url(&self) -> String {
        format!("http://{}:{}/wsman", self.host, self.http_port)
    }

    /// `https://localhost:PORT/wsman`.
    pub fn https_url(&self) -> String {
        format!("https://{}:{}/wsman", self.host, self.https_port)
    }

    /// Loopback socket address of the HTTP listener (IPv4).
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http_port))
    }

    /// Loopback socket address of the HTTPS listener (IPv4).
    pub fn https_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.https_port))
    }

    fn control_addr(&self) -> Result<SocketAddr, PeerError> {
        let host_port = self
            .control_url
            .strip_prefix("http://")
            .ok_or_else(|| PeerError::Protocol(format!("control URL {}", self.control_url)))?;
        host_port
            .to_socket_addrs()
            .map_err(|e| PeerError::Http {
                what: format!("resolve control address {host_port}"),
                source: e,
            })?
            .next()
            .ok_or_else(|| PeerError::Protocol(format!("control URL {}", self.control_url)))
    }
}

/// Options for a private peer instance (`python -m peer --help` has them all).
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// AllowUnencrypted=true: Basic and unencrypted bodies over HTTP.
    pub allow_unencrypted: bool,
    /// Enforce channel binding on HTTPS (CbtHardeningLevel=Strict). Default true.
    pub strict_cbt: bool,
    /// Enabled auth schemes, in WWW-Authenticate order; None = Negotiate, Kerberos, Basic, CredSSP.
    pub schemes: Option<Vec<String>>,
    /// Also start the bad-certificate HTTPS listeners.
    pub bad_cert: bool,
    /// Share the realm (KDC, user, CA) of [`Peer::shared`] so one Kerberos
    /// environment serves every instance. Default true.
    pub share_realm: bool,
    /// Offer Kerberos but accept only NTLM (`--ntlm-only`).
    pub ntlm_only: bool,
    /// The acceptor's keytab holds a stale key of the SPN (`--stale-keytab`).
    pub stale_keytab: bool,
    /// The user is in no role of `JEA.Maintenance` (`--jea-denied`).
    pub jea_denied: bool,
    /// The server's MaxEnvelopeSizekb (`--max-envelope-kb`; 0: default).
    pub max_envelope_kb: u32,
    /// Channel bindings required and checked against another certificate's
    /// hash, as behind a TLS-terminating proxy or load balancer (`--cbt
    /// proxy`): NTLM and Kerberos over HTTPS fail with 401. Wins over
    /// `strict_cbt`.
    pub cbt_proxy: bool,
    /// A fleet of simulated hosts in this instance (`--listeners`).
    pub fleet: Option<FleetOptions>,
    /// The CredSSP version the acceptor speaks (`--credssp-version`, 2-6;
    /// None: 6).
    pub credssp_version: Option<u32>,
    /// TLS 1.2 at most inside CredSSP (`--credssp-tls 1.2`).
    pub credssp_tls12: bool,
    /// The CredSSP acceptor returns a public key binding that does not
    /// match its certificate, as a man in the middle (`--credssp-bad-binding`).
    pub credssp_bad_binding: bool,
}

/// Many WinRM HTTP listeners in one peer, each a separate simulated host
/// (`tests/peer/fleet.py`): ok, slow, failing or refusing.
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    /// How many hosts (`--listeners`).
    pub listeners: u32,
    /// Of them, hosts whose every WS-Man request waits `slow_ms`.
    pub slow: u32,
    /// Hosts where every command fails with a terminating error.
    pub failing: u32,
    /// Hosts that refuse connections (bound, not listening).
    pub refusing: u32,
    /// The slow hosts' delay per request (0: the peer's default, 500 ms).
    pub slow_ms: u32,
    /// Loopback addresses the hosts are spread over (empty: 127.0.0.1).
    pub addresses: Vec<String>,
}

/// One host of a fleet (from the peer's info).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetHost {
    /// Its loopback address.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// `ok`, `slow`, `failing` or `refusing`.
    pub role: String,
}

impl FleetHost {
    /// `address:port`, as psrp's `-H` takes it and labels the host.
    pub fn label(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            allow_unencrypted: false,
            strict_cbt: true,
            schemes: None,
            bad_cert: false,
            share_realm: true,
            ntlm_only: false,
            stale_keytab: false,
            jea_denied: false,
            max_envelope_kb: 0,
            cbt_proxy: false,
            fleet: None,
            credssp_version: None,
            credssp_tls12: false,
            credssp_bad_binding: false,
        }
    }
}

/// A fault the peer injects into its next WS-Man requests (scoped to one instance).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Close the TCP connection without answering.
    DropConnection,
    /// Answer, then close the connection (`Connection: close`).
    CloseAfterResponse,
    /// Answer HTTP 500 with a WS-Man fault carrying this code.
    Http500 {
        /// The f:WSManFault Code, e.g. 2150858843.
        code: u64,
    },
    /// Wait before handling the request.
    Delay {
        /// Milliseconds to wait.
        ms: u64,
    },
}

/// Which requests a [`Fault`] applies to.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// The fault.
    pub fault: Fault,
    /// Only requests with this action (Create, Command, Send, Receive, Signal,
    /// Delete); None for any.
    pub action: Option<String>,
    /// Let this many matching requests through first.
    pub skip: u32,
    /// Then apply the fault to this many.
    pub count: u32,
}

impl FaultRule {
    /// The fault on the next matching request (`skip` 0, `count` 1).
    pub fn new(fault: Fault, action: Option<&str>) -> FaultRule {
        FaultRule {
            fault,
            action: action.map(str::to_string),
            skip: 0,
            count: 1,
        }
    }

    fn to_json(&self) -> Value {
        let mut v = serde_json::json!({
            "action": self.action,
            "skip": self.skip,
            "count": self.count,
        });
        let (kind, extra) = match &self.fault {
            Fault::DropConnection => ("drop_connection", None),
            Fault::CloseAfterResponse => ("close_after_response", None),
            Fault::Http500 { code } => ("http_500", Some(("code", *code))),
            Fault::Delay { ms } => ("delay", Some(("delay_ms", *ms))),
        };
        v["kind"] = kind.into();
        if let Some((k, n)) = extra {
            v[k] = n.into();
        }
        v
    }
}

/// An attack of the peer's hostile-server mode (`tests/peer/hostile.py`;
/// `peer.instance.FaultRule` documents each kind): what a malicious server,
/// or anyone on the path of a plain-HTTP connection, could send.
#[derive(Debug, Clone, PartialEq)]
pub enum Attack {
    /// The encrypted reply's OriginalContent `Length=` replaced by this text
    /// (e.g. `18446744073709551615`, `9223372036854775808`, `-1`), after
    /// the peer's real sealing (the MIME headers are outside the seal).
    EncryptedLength(String),
    /// The encrypted reply without `Length=`.
    EncryptedNoLength,
    /// The boundary line written over the middle of the sealed bytes.
    EncryptedBoundaryInData,
    /// The encrypted body cut in the middle of the sealed bytes
    /// (Content-Length matching the cut body).
    EncryptedTruncated,
    /// The 4-byte signature length set to 0xFFFFFFFF.
    EncryptedSignatureLength,
    /// This many one-byte parts before the real part.
    EncryptedTinyParts {
        /// Number of parts.
        parts: u32,
    },
    /// Content-Length 1 MiB more than sent, then one byte every 200 ms.
    StalledBody,
    /// A chunked body that trickles one-byte chunks and never ends.
    EndlessChunkedBody,
    /// A chunked body of 64 KiB chunks sent as fast as the client reads,
    /// up to `max_bytes`.
    FloodedBody {
        /// When the peer stops sending.
        max_bytes: u64,
    },
    /// Every Receive of a command returns `objects` new output objects and
    /// the command never reports Done (not even after a stop).
    EndlessReceive {
        /// Objects per Receive.
        objects: u32,
        /// Pause before each answer (keeps the peer's CPU down).
        delay_ms: u64,
    },
    /// Every Receive of a command returns one more fragment of each of
    /// `messages` PSRP messages (together filling the envelope) that never
    /// get their End flag.
    EndlessFragment {
        /// Interleaved messages (1 to 64).
        messages: u32,
    },
    /// A ReceiveResponse of this many bytes (valid output streams).
    OversizedEnvelope {
        /// Size of the envelope.
        bytes: u64,
    },
    /// A response with this many nested elements.
    DeepXml {
        /// Nesting depth.
        depth: u32,
    },
    /// A response with this many empty elements.
    ManyElements {
        /// Element count.
        elements: u32,
    },
    /// The pipeline writes text with terminal escapes to every stream and
    /// host Write* call, then fails with such an error record.
    AnsiStreams,
    /// The ENCRYPTED_SESSION_KEY the server writes in answer to the
    /// PUBLIC_KEY of the next pool Send has one byte of its RSA ciphertext
    /// changed (SecureString key exchange).
    TamperedSessionKey,
    /// HTTP 500 with a WS-Man fault whose text is `message` as given.
    FaultText {
        /// The f:WSManFault Code.
        code: u64,
        /// The fault text (may hold control characters).
        message: String,
    },
    /// An HTTP error page (not SOAP, not encrypted) with this status and body.
    HttpStatus {
        /// HTTP status.
        status: u16,
        /// The body text.
        body: String,
    },
}

/// Which requests of an action a [`HostileRule`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every request of the action.
    Any,
    /// Requests about the pool/shell (no CommandId).
    Pool,
    /// Requests naming a command (a CommandId).
    Command,
}

/// A hostile-server attack and the requests it applies to (scoped to one
/// peer instance, like [`FaultRule`]).
#[derive(Debug, Clone, PartialEq)]
pub struct HostileRule {
    /// The attack.
    pub attack: Attack,
    /// Only requests with this action (Create, Command, Send, Receive,
    /// Signal, Delete); None for any.
    pub action: Option<String>,
    /// Which of those requests.
    pub scope: Scope,
    /// Let this many matching requests through first.
    pub skip: u32,
    /// Then attack this many.
    pub count: u32,
}

impl HostileRule {
    /// The attack on the next matching request. By default pipeline attacks
    /// ([`Attack::AnsiStreams`], [`Attack::FaultText`],
    /// [`Attack::HttpStatus`]) hit the next Command, the others the next
    /// Receive of a command (so the pool opens first).
    pub fn new(attack: Attack) -> HostileRule {
        let (action, scope) = match attack {
            Attack::AnsiStreams | Attack::FaultText { .. } | Attack::HttpStatus { .. } => {
                ("Command", Scope::Any)
            }
            Attack::TamperedSessionKey => ("Send", Scope::Pool),
            _ => ("Receive", Scope::Command),
        };
        HostileRule {
            attack,
            action: Some(action.to_string()),
            scope,
            skip: 0,
            count: 1,
        }
    }

    /// Applies to requests with this action (None: any) and scope instead.
    pub fn on(mut self, action: Option<&str>, scope: Scope) -> HostileRule {
        self.action = action.map(str::to_string);
        self.scope = scope;
        self
    }

    /// Applies to every matching request from now on.
    pub fn forever(mut self) -> HostileRule {
        self.count = u32::MAX;
        self
    }

    fn to_json(&self) -> Value {
        let mut v = serde_json::json!({
            "action": self.action,
            "scope": match self.scope {
                Scope::Any => "any",
                Scope::Pool => "pool",
                Scope::Command => "command",
            },
            "skip": self.skip,
            "count": self.count,
        });
        let tamper = |t: &str| serde_json::json!({"kind": "tamper_encryption", "tamper": t});
        let body = |b: &str| serde_json::json!({"kind": "endless_body", "body": b});
        let spec = match &self.attack {
            Attack::EncryptedLength(length) => {
                serde_json::json!({"kind": "tamper_encryption", "tamper": "length", "length": length})
            }
            Attack::EncryptedNoLength => tamper("no_length"),
            Attack::EncryptedBoundaryInData => tamper("boundary_in_data"),
            Attack::EncryptedTruncated => tamper("truncate"),
            Attack::EncryptedSignatureLength => tamper("signature_length"),
            Attack::EncryptedTinyParts { parts } => {
                serde_json::json!({"kind": "tamper_encryption", "tamper": "tiny_parts", "parts": parts})
            }
            Attack::StalledBody => body("stall"),
            Attack::EndlessChunkedBody => body("chunked"),
            Attack::FloodedBody { max_bytes } => {
                serde_json::json!({"kind": "endless_body", "body": "flood", "max_bytes": max_bytes})
            }
            Attack::EndlessReceive { objects, delay_ms } => {
                serde_json::json!({"kind": "endless_receive", "objects": objects, "delay_ms": delay_ms})
            }
            Attack::EndlessFragment { messages } => {
                serde_json::json!({"kind": "endless_fragment", "messages": messages})
            }
            Attack::OversizedEnvelope { bytes } => {
                serde_json::json!({"kind": "oversized_envelope", "bytes": bytes})
            }
            Attack::DeepXml { depth } => serde_json::json!({"kind": "deep_xml", "depth": depth}),
            Attack::ManyElements { elements } => {
                serde_json::json!({"kind": "many_elements", "elements": elements})
            }
            Attack::AnsiStreams => serde_json::json!({"kind": "ansi_streams"}),
            Attack::TamperedSessionKey => serde_json::json!({"kind": "tamper_session_key"}),
            Attack::FaultText { code, message } => {
                serde_json::json!({"kind": "http_500", "code": code, "message": message})
            }
            Attack::HttpStatus { status, body } => {
                serde_json::json!({"kind": "http_status", "status": status, "text": body})
            }
        };
        if let (Value::Object(v), Value::Object(spec)) = (&mut v, spec) {
            v.extend(spec);
        }
        v
    }

    /// The peer's name for the kind (in its log's `injected_fault`).
    pub fn kind(&self) -> String {
        self.to_json()["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A running peer instance. Dropping it stops the process (stdin EOF, then kill).
#[derive(Debug)]
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    info: PeerInfo,
}

static SHARED: OnceLock<Result<Peer, String>> = OnceLock::new();

impl Peer {
    /// The instance shared by every test of this test binary, started on first use
    /// (with the bad-certificate listeners). Also points this process's Kerberos
    /// environment (KRB5_CONFIG, KRB5CCNAME) at its realm so GSSAPI clients work;
    /// call it before any Kerberos work starts in other threads.
    ///
    /// It is never dropped: it exits when the test process ends (its stdin closes).
    pub fn try_shared() -> Result<&'static Peer, PeerError> {
        let started = SHARED.get_or_init(|| {
            let options = PeerOptions {
                bad_cert: true,
                share_realm: false,
                ..PeerOptions::default()
            };
            let peer = Peer::spawn(&options, None).map_err(|e| e.to_string())?;
            set_kerberos_env(&peer.info);
            Ok(peer)
        });
        started
            .as_ref()
            .map_err(|e| PeerError::Start(format!("the shared test peer did not start: {e}")))
    }

    /// [`Peer::try_shared`] for tests.
    ///
    /// # Panics
    /// When the peer cannot start; the message says why (every test needing it
    /// would fail anyway).
    pub fn shared() -> &'static Peer {
        Peer::try_shared().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a private instance, e.g. for fault injection that must not disturb
    /// other tests. With `share_realm` it uses the realm of [`Peer::shared`].
    pub fn start(options: &PeerOptions) -> Result<Peer, PeerError> {
        let realm_from = if options.share_realm {
            Some(Peer::try_shared()?.info.info_file.clone())
        } else {
            None
        };
        Peer::spawn(options, realm_from.as_deref())
    }

    fn spawn(options: &PeerOptions, realm_from: Option<&Path>) -> Result<Peer, PeerError> {
        let python = venv::python()?;
        let tests_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut cmd = Command::new(&python);
        cmd.arg("-m")
            .arg("peer")
            .env("PYTHONPATH", tests_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(info_file) = realm_from {
            cmd.arg("--realm-from").arg(info_file);
        }
        if options.allow_unencrypted {
            cmd.arg("--allow-unencrypted");
        }
        if options.cbt_proxy {
            cmd.args(["--cbt", "proxy"]);
        } else if !options.strict_cbt {
            cmd.args(["--cbt", "none"]);
        }
        if let Some(schemes) = &options.schemes {
            cmd.arg("--schemes").arg(schemes.join(","));
        }
        if options.bad_cert {
            cmd.arg("--bad-cert");
        }
        if options.ntlm_only {
            cmd.arg("--ntlm-only");
        }
        if options.stale_keytab {
            cmd.arg("--stale-keytab");
        }
        if options.jea_denied {
            cmd.arg("--jea-denied");
        }
        if let Some(v) = options.credssp_version {
            cmd.arg("--credssp-version").arg(v.to_string());
        }
        if options.credssp_bad_binding {
            cmd.arg("--credssp-bad-binding");
        }
        if options.credssp_tls12 {
            cmd.args(["--credssp-tls", "1.2"]);
        }
        if options.max_envelope_kb > 0 {
            cmd.arg("--max-envelope-kb")
                .arg(options.max_envelope_kb.to_string());
        }
        if let Some(f) = &options.fleet {
            cmd.arg("--listeners").arg(f.listeners.to_string());
            cmd.arg("--slow-listeners").arg(f.slow.to_string());
            cmd.arg("--failing-listeners").arg(f.failing.to_string());
            cmd.arg("--refusing-listeners").arg(f.refusing.to_string());
            if f.slow_ms > 0 {
                cmd.arg("--slow-ms").arg(f.slow_ms.to_string());
            }
            if !f.addresses.is_empty() {
                cmd.arg("--listener-addresses").arg(f.addresses.join(","));
            }
        }
        let mut child = cmd.spawn().map_err(|e| PeerError::Spawn {
            what: format!("{} -m peer", python.display()),
            source: e,
        })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| PeerError::Protocol("the peer's stdout was not captured".to_string()))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(result);
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) if !line.trim().is_empty() => line,
            outcome => {
                let _ = child.kill();
                let status = child.wait().ok();
                return Err(PeerError::Start(format!(
                    "no info line within {START_TIMEOUT:?} (read: {outcome:?}, exit: {status:?}); \
                     see the peer's stderr above"
                )));
            }
        };
        let raw: Value = serde_json::from_str(&line)
            .map_err(|e| PeerError::Protocol(format!("peer info line is not JSON: {e}")))?;
        let info = PeerInfo::from_json(raw)?;
        Ok(Peer {
            stdin: child.stdin.take(),
            child,
            info,
        })
    }

    /// Connection details of this instance.
    pub fn info(&self) -> &PeerInfo {
        &self.info
    }

    /// GET a control path; the JSON answer.
    pub fn control_get(&self, path: &str) -> Result<Value, PeerError> {
        self.control("GET", path, None)
    }

    /// POST a JSON body to a control path; the JSON answer.
    pub fn control_post(&self, path: &str, body: &Value) -> Result<Value, PeerError> {
        self.control("POST", path, Some(body))
    }

    fn control(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, PeerError> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let resp = http::request(self.info.control_addr()?, method, path, body.as_bytes())?;
        let value: Value = serde_json::from_slice(&resp.body).map_err(|e| {
            PeerError::Protocol(format!("control {method} {path}: answer is not JSON: {e}"))
        })?;
        if resp.status != 200 {
            return Err(PeerError::Control {
                path: path.to_string(),
                status: resp.status,
                message: value
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        Ok(value)
    }

    /// The hosts of this instance's fleet (none without `fleet`).
    pub fn fleet_hosts(&self) -> Result<Vec<FleetHost>, PeerError> {
        let Some(hosts) = self.info.raw.pointer("/fleet/hosts") else {
            return Ok(Vec::new());
        };
        let bad = || PeerError::Protocol(format!("peer info: bad fleet hosts {hosts}"));
        hosts
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|h| {
                let host = || {
                    Some(FleetHost {
                        address: h.get("address")?.as_str()?.to_owned(),
                        port: u16::try_from(h.get("port")?.as_u64()?).ok()?,
                        role: h.get("role")?.as_str()?.to_owned(),
                    })
                };
                host().ok_or_else(bad)
            })
            .collect()
    }

    /// The fleet's hosts now (`GET /fleet`): each one's open shells, shells
    /// created, connections and requests, and the totals.
    pub fn fleet(&self) -> Result<Value, PeerError> {
        self.control_get("/fleet")
    }

    /// Number of open shells (runspace pools) right now.
    pub fn open_shells(&self) -> Result<u64, PeerError> {
        self.control_get("/shells")?
            .get("open")
            .and_then(Value::as_u64)
            .ok_or_else(|| PeerError::Protocol("/shells has no 'open' count".into()))
    }

    /// Ids (upper case) of the shells open right now.
    pub fn open_shell_ids(&self) -> Result<Vec<String>, PeerError> {
        Ok(self
            .shells()?
            .iter()
            .filter_map(|s| s["shell_id"].as_str().map(str::to_uppercase))
            .collect())
    }

    /// Whether the shell `shell_id` (any case) is open.
    pub fn shell_open(&self, shell_id: &str) -> Result<bool, PeerError> {
        Ok(self.shell(shell_id)?.is_some())
    }

    /// The peer's description of one open shell (its commands and their
    /// states), or `None` when it is not open.
    pub fn shell(&self, shell_id: &str) -> Result<Option<Value>, PeerError> {
        Ok(self.shells()?.into_iter().find(|s| {
            s["shell_id"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(shell_id))
        }))
    }

    fn shells(&self) -> Result<Vec<Value>, PeerError> {
        match self
            .control_get("/shells")?
            .get_mut("shells")
            .map(Value::take)
        {
            Some(Value::Array(shells)) => Ok(shells),
            _ => Err(PeerError::Protocol("/shells has no 'shells' list".into())),
        }
    }

    /// Waits until the shell `shell_id` is closed, polling at most `bound`;
    /// `Ok(false)` if it is still open then.
    pub fn wait_shell_gone(&self, shell_id: &str, bound: Duration) -> Result<bool, PeerError> {
        wait_until(bound, || Ok(!self.shell_open(shell_id)?))
    }

    /// Waits until no shell is open, polling at most `bound`; `Ok(false)` if
    /// some shell is still open then.
    pub fn wait_no_open_shells(&self, bound: Duration) -> Result<bool, PeerError> {
        wait_until(bound, || Ok(self.open_shells()? == 0))
    }

    /// Open shells per configuration name.
    pub fn open_shells_by_configuration(&self) -> Result<Value, PeerError> {
        Ok(self.control_get("/shells")?["by_configuration"].clone())
    }

    /// The operation log (WS-Man operations, auth legs, Restart-Computer calls).
    pub fn log(&self) -> Result<Vec<Value>, PeerError> {
        self.log_since(0)
    }

    /// Log entries with a sequence number above `seq`.
    pub fn log_since(&self, seq: u64) -> Result<Vec<Value>, PeerError> {
        match self.control_get(&format!("/log?since={seq}"))? {
            Value::Array(entries) => Ok(entries),
            other => Err(PeerError::Protocol(format!("/log answered {other}"))),
        }
    }

    /// The highest sequence number in the log so far (0: empty): what a test
    /// passes to [`Peer::log_since`] to see only what it causes next.
    pub fn last_seq(&self) -> Result<u64, PeerError> {
        Ok(self
            .log()?
            .iter()
            .filter_map(|e| e["seq"].as_u64())
            .max()
            .unwrap_or(0))
    }

    /// Log entries of one `kind` (`wsman`, `auth`, `tls`, ...) after `seq`.
    pub fn log_kind_since(&self, seq: u64, kind: &str) -> Result<Vec<Value>, PeerError> {
        let mut entries = self.log_since(seq)?;
        entries.retain(|e| e["kind"] == kind);
        Ok(entries)
    }

    /// Only the WS-Man operation entries of the log.
    pub fn operations(&self) -> Result<Vec<Value>, PeerError> {
        Ok(self
            .log()?
            .into_iter()
            .filter(|e| e["kind"] == "wsman")
            .collect())
    }

    /// The WS-Man operation entries of the log for one shell (any case).
    pub fn operations_of(&self, shell_id: &str) -> Result<Vec<Value>, PeerError> {
        let mut ops = self.operations()?;
        ops.retain(|e| {
            e["shell_id"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(shell_id))
        });
        Ok(ops)
    }

    /// Clears the log and the recorded Restart-Computer calls.
    pub fn reset_log(&self) -> Result<(), PeerError> {
        self.control("POST", "/log/reset", None).map(|_| ())
    }

    /// Restart-Computer calls: `force` and how -Force arrived (`force_form`:
    /// "true" for `<B>true</B>`, "nil" for `<Nil/>`).
    pub fn restarts(&self) -> Result<Value, PeerError> {
        self.control_get("/restarts")
    }

    /// Adds a fault rule.
    pub fn add_fault(&self, rule: &FaultRule) -> Result<(), PeerError> {
        self.control_post("/faults", &rule.to_json()).map(|_| ())
    }

    /// Adds a hostile-server attack.
    pub fn add_hostile(&self, rule: &HostileRule) -> Result<(), PeerError> {
        self.control_post("/faults", &rule.to_json()).map(|_| ())
    }

    /// Log entries of requests the peer injected a fault or attack of this
    /// kind into (`injected_fault`, e.g. `tamper_encryption`).
    pub fn attacked(&self, kind: &str) -> Result<Vec<Value>, PeerError> {
        let mut ops = self.operations()?;
        ops.retain(|e| e["injected_fault"] == kind);
        Ok(ops)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) -> Result<(), PeerError> {
        self.control("POST", "/faults/clear", None).map(|_| ())
    }

    /// The peer's own CPU time (`cpu_seconds`) and request counters, for benchmarks.
    pub fn stats(&self) -> Result<Value, PeerError> {
        self.control_get("/stats")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // EOF on stdin makes the peer shut down (and its KDC with it).
        drop(self.stdin.take());
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Points this process's GSSAPI at the peer's realm: the variables of
/// [`PeerInfo::kerberos_env`].
pub fn set_kerberos_env(info: &PeerInfo) {
    for (name, value) in info.kerberos_env() {
        std::env::set_var(name, value);
    }
}

impl PeerInfo {
    /// The environment that points GSSAPI (ours, pypsrp's, a `psrp` child's)
    /// at the peer's realm: KRB5_CONFIG and KRB5CCNAME=FILE:<ccache> (which
    /// holds a TGT for the test user). For `Command::envs` or
    /// [`set_kerberos_env`].
    pub fn kerberos_env(&self) -> [(&'static str, OsString); 2] {
        let mut ccache = OsString::from("FILE:");
        ccache.push(&self.ccache);
        [
            ("KRB5_CONFIG", self.krb5_config.clone().into_os_string()),
            ("KRB5CCNAME", ccache),
        ]
    }
}

/// Polls `done` every 50 ms until it holds or `bound` has passed (then
/// asks once more).
fn wait_until(
    bound: Duration,
    mut done: impl FnMut() -> Result<bool, PeerError>,
) -> Result<bool, PeerError> {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if done()? {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}
