//! Support for the wsman integration tests: helpers around the test peer
//! fixture and a psrpcore PSRP engine (Python) that produces and consumes
//! real PSRP payloads, so these tests exercise the wsman crate without
//! psrp-core.

#![allow(dead_code)]

use base64::Engine as _;
use psrp_tests::JsonLines;
#[allow(unused_imports)]
pub use psrp_tests::{Fault, FaultRule, Peer, PeerOptions};
use serde_json::{json, Value};
use std::path::Path;
use wsman::{CreateShell, ReceiveOutcome, Shell, WsmanClient};

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A string from the peer's info JSON (for keys PeerInfo has no field for).
pub fn info_str(peer: &Peer, key: &str) -> String {
    peer.info().raw[key]
        .as_str()
        .unwrap_or_else(|| panic!("peer info has no {key}"))
        .to_string()
}

/// A psrpcore client runspace pool in a Python process.
pub struct Psrp(JsonLines);

impl Psrp {
    pub fn start() -> Psrp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/psrp_driver.py");
        let cmd = psrp_tests::python_command(script).unwrap_or_else(|e| panic!("{e}"));
        Psrp(JsonLines::spawn(cmd, "the psrpcore driver").unwrap_or_else(|e| panic!("{e}")))
    }

    fn call(&mut self, req: Value) -> Value {
        let v = self.0.call(&req).unwrap_or_else(|e| panic!("{e}"));
        assert!(v.get("error").is_none(), "psrpcore: {v}");
        v
    }

    /// (runspace pool id, creationXml bytes).
    pub fn open(&mut self) -> (String, Vec<u8>) {
        let r = self.call(json!({"op": "open"}));
        (
            r["pool_id"].as_str().unwrap().to_string(),
            B64.decode(r["data"].as_str().unwrap()).unwrap(),
        )
    }

    /// Feeds received stdout bytes; returns the reply (events, states).
    pub fn feed(&mut self, data: &[u8], pipeline_id: Option<&str>) -> Value {
        self.call(json!({"op": "feed", "data": B64.encode(data), "pipeline_id": pipeline_id}))
    }

    /// A CREATE_PIPELINE for `command` with `params`: (pipeline id, fragments).
    pub fn pipeline(
        &mut self,
        command: &str,
        params: Value,
        fragment_size: Option<usize>,
    ) -> (String, Vec<Vec<u8>>) {
        let r = self.call(json!({"op": "pipeline", "command": command, "params": params, "fragment_size": fragment_size}));
        let frags = r["fragments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| B64.decode(f.as_str().unwrap()).unwrap())
            .collect();
        (r["pipeline_id"].as_str().unwrap().to_string(), frags)
    }
}

/// Most Receives `pump` makes before it gives up.
pub const POLL_LIMIT: usize = 40;

/// Receives on the pool or a pipeline and feeds psrpcore until `done` says so.
pub async fn pump(
    client: &WsmanClient,
    shell: &Shell,
    psrp: &mut Psrp,
    command: Option<(&str, &str)>,
    mut done: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let mut events = Vec::new();
    let mut timeouts = 0;
    for _ in 0..POLL_LIMIT {
        match client.receive(shell, command.map(|c| c.0)).await.unwrap() {
            ReceiveOutcome::TimedOut => timeouts += 1,
            ReceiveOutcome::Data(r) => {
                let v = psrp.feed(&r.stream_bytes("stdout"), command.map(|c| c.1));
                events.extend(v["events"].as_array().cloned().unwrap_or_default());
                if done(&v) {
                    return events;
                }
            }
        }
    }
    panic!("not done after {POLL_LIMIT} receives ({timeouts} timed out); events {events:?}");
}

/// Creates a PowerShell shell on `peer` with a real creationXml and waits
/// for the pool to open.
pub async fn open_pool(
    peer: &Peer,
    client: &WsmanClient,
    psrp: &mut Psrp,
    configuration: &str,
) -> Shell {
    let (pool_id, creation_xml) = psrp.open();
    let shell = client
        .create_shell(
            CreateShell::powershell(configuration)
                .with_shell_id(pool_id.clone())
                .with_creation_xml(creation_xml),
        )
        .await
        .unwrap();
    assert_eq!(shell.id.to_uppercase(), pool_id);
    assert!(
        peer.open_shell_ids().unwrap().contains(&pool_id),
        "shell not open on the peer"
    );
    pump(client, &shell, psrp, None, |v| v["pool_state"] == "Opened").await;
    shell
}
