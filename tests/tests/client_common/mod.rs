//! Helpers for the client integration tests (tests/client_*.rs): connection
//! options for each way into the test peer, and checks on its control
//! endpoint.

#![allow(dead_code)]

use std::time::Duration;

use psrp_core::client::{AuthMethod, ConnectionOptions, RunspacePool, Scheme};
#[allow(unused_imports)]
pub use psrp_tests::{Fault, FaultRule, Peer, PeerOptions};
use serde_json::Value;

/// The peer shared by this test binary; also sets the Kerberos environment
/// (KRB5_CONFIG, KRB5CCNAME with a TGT for the test user).
pub fn peer() -> &'static Peer {
    Peer::shared()
}

/// Short operation timeout: idle Receives come back quickly and are polled again.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(3);

fn base(p: &Peer, scheme: Scheme) -> ConnectionOptions {
    let port = match scheme {
        Scheme::Http => p.info().http_port,
        Scheme::Https => p.info().https_port,
    };
    ConnectionOptions::new(p.info().host.clone())
        .scheme(scheme)
        .port(port)
        .ca_file(p.info().ca_file.clone())
        .operation_timeout(OPERATION_TIMEOUT)
}

/// Kerberos over HTTP from the ticket cache (messages encrypted).
pub fn kerberos(p: &Peer) -> ConnectionOptions {
    base(p, Scheme::Http).auth(AuthMethod::Kerberos)
}

/// Kerberos over HTTP into JEA.Maintenance.
pub fn kerberos_jea(p: &Peer) -> ConnectionOptions {
    kerberos(p).configuration_name("JEA.Maintenance")
}

/// NTLM over HTTP with the test user's password.
pub fn ntlm(p: &Peer) -> ConnectionOptions {
    base(p, Scheme::Http).auth(AuthMethod::Ntlm).credentials(
        format!("PEER\\{}", p.info().user),
        p.info().password.clone(),
    )
}

/// Negotiate over HTTP with user name and password.
pub fn negotiate(p: &Peer) -> ConnectionOptions {
    base(p, Scheme::Http)
        .auth(AuthMethod::Negotiate)
        .credentials(p.info().principal.clone(), p.info().password.clone())
}

/// Basic over HTTPS, certificate checked against the peer's CA.
pub fn basic_https(p: &Peer) -> ConnectionOptions {
    base(p, Scheme::Https)
        .auth(AuthMethod::Basic)
        .credentials(p.info().user.clone(), p.info().password.clone())
}

/// Whether the shell is open on `p`.
pub fn shell_open(p: &Peer, shell_id: &str) -> bool {
    p.shell_open(shell_id).unwrap()
}

/// Waits (bounded) until the shell is gone from `p`; false if it stays.
/// Blocks this runtime thread meanwhile (the tests run multi-threaded, so
/// the client's tasks go on).
pub fn wait_shell_gone(p: &Peer, shell_id: &str, bound: Duration) -> bool {
    tokio::task::block_in_place(|| p.wait_shell_gone(shell_id, bound).unwrap())
}

/// WS-Man operations the peer logged for one shell.
pub fn operations_of(p: &Peer, shell_id: &str) -> Vec<Value> {
    p.operations_of(shell_id).unwrap()
}

/// Opens a pool and checks the peer has its shell.
pub async fn open(p: &Peer, options: ConnectionOptions) -> RunspacePool {
    let pool = RunspacePool::open(options).await.expect("open the pool");
    assert!(shell_open(p, pool.shell_id()), "shell not on the peer");
    pool
}

/// Closes a pool and checks its shell is gone from the peer.
pub async fn close(p: &Peer, pool: RunspacePool) {
    let id = pool.shell_id().to_owned();
    pool.close().await.expect("close the pool");
    assert!(!shell_open(p, &id), "shell {id} still open after close");
}
