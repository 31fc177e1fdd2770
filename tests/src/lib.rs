//! Test support for psrp: the local WinRM + PSRP peer (`tests/peer`).
//!
//! The peer is a real WinRM endpoint made of independent components (MIT KDC,
//! pyspnego acceptor and message encryption, psrpcore server runspace pool), see
//! README.md "Test peer". This crate starts it, reads its info file, sets the
//! Kerberos environment for GSSAPI clients, and queries its control endpoint.
//!
//! ```no_run
//! use psrp_tests::{Attack, Fault, FaultRule, HostileRule, Peer, PeerOptions};
//!
//! // One instance per test binary; also sets KRB5_CONFIG and KRB5CCNAME.
//! let peer = Peer::shared();
//! let url = peer.info().http_url(); // http://localhost:PORT/wsman
//! assert_eq!(peer.open_shells()?, 0);
//!
//! // A private instance for fault injection (same realm, same user and CA).
//! let private = Peer::start(&PeerOptions::default())?;
//! private.add_fault(&FaultRule::new(Fault::Http500 { code: 2150858843 }, Some("Receive")))?;
//!
//! // A hostile server: the next Receive of a command has its encrypted
//! // framing tampered with (an overflowing OriginalContent Length).
//! private.add_hostile(&HostileRule::new(Attack::EncryptedLength(u64::MAX.to_string())))?;
//! # let _ = url;
//! # Ok::<(), psrp_tests::PeerError>(())
//! ```

#![forbid(unsafe_code)]

pub mod http;
mod peer;
mod process;
mod shared;
mod venv;

pub use peer::{
    set_kerberos_env, Attack, Fault, FaultRule, FleetHost, FleetOptions, HostileRule, Peer,
    PeerInfo, PeerOptions, Scope,
};
pub use process::{python_command, run_pypsrp, JsonLines};
pub use shared::{real_windows_dir, xml_case_names};
pub use venv::python as venv_python;

/// Why the peer could not be started or queried.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The Python virtualenv could not be found or created.
    #[error("test peer virtualenv: {0}")]
    Venv(String),
    /// A process could not be started.
    #[error("cannot run {what}: {source}")]
    Spawn {
        /// The command line.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The peer did not come up.
    #[error("test peer did not start: {0}")]
    Start(String),
    /// Network I/O with the peer failed.
    #[error("{what}: {source}")]
    Http {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A helper process (a Python driver, the pypsrp comparison) failed.
    #[error("{what}: {message}")]
    Helper {
        /// Which helper.
        what: String,
        /// What went wrong.
        message: String,
    },
    /// The peer answered something unexpected.
    #[error("unexpected answer from the test peer: {0}")]
    Protocol(String),
    /// The control endpoint refused a request.
    #[error("control endpoint {path} answered {status}: {message}")]
    Control {
        /// The control path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The peer's error text.
        message: String,
    },
}
