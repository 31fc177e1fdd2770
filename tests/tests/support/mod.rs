//! Support for the wsman integration tests: helpers around the test peer
//! fixture and a psrpcore PSRP engine (Python) that produces and consumes
//! real PSRP payloads, so these tests exercise the wsman crate without
//! psrp-core.

#![allow(dead_code)]

use base64::Engine as _;
#[allow(unused_imports)]
pub use psrp_tests::{Fault, FaultRule, Peer, PeerOptions};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The venv python, as the peer fixture finds it.
pub fn python() -> PathBuf {
    psrp_tests::venv_python().unwrap_or_else(|e| panic!("{e}"))
}

/// Ids (upper case) of the shells open on `peer`.
pub fn open_shell_ids(peer: &Peer) -> Vec<String> {
    peer.control_get("/shells").unwrap()["shells"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["shell_id"].as_str().map(str::to_uppercase))
                .collect()
        })
        .unwrap_or_default()
}

/// A string from the peer's info JSON (for keys PeerInfo has no field for).
pub fn info_str(peer: &Peer, key: &str) -> String {
    peer.info().raw[key]
        .as_str()
        .unwrap_or_else(|| panic!("peer info has no {key}"))
        .to_string()
}

/// A psrpcore client runspace pool in a Python process.
pub struct Psrp {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Psrp {
    pub fn start() -> Psrp {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/psrp_driver.py");
        let mut child = Command::new(python())
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the psrpcore driver");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Psrp {
            child,
            stdin,
            stdout,
        }
    }

    fn call(&mut self, req: Value) -> Value {
        writeln!(self.stdin, "{req}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
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

impl Drop for Psrp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
