//! Support for the wsman integration tests: the test peer and a psrpcore
//! PSRP engine (Python) that produces and consumes real PSRP payloads, so
//! these tests exercise the wsman crate without psrp-core.

#![allow(dead_code)]

use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv python (tests/venv.sh creates it; tests/run.sh exports PSRP_VENV).
pub fn python() -> PathBuf {
    let venv = std::env::var_os("PSRP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/venv"));
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "Python venv missing at {}: run tests/venv.sh (tests/run.sh does) or set PSRP_VENV",
        venv.display()
    );
    py
}

/// A running test peer (tests/peer), stopped when dropped (it also exits
/// when our end of its stdin closes, i.e. when the test process ends).
pub struct Peer {
    child: Child,
    pub info: Value,
}

impl Peer {
    pub fn start(args: &[&str]) -> Peer {
        let start = std::env::var_os("PSRP_PEER_START")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("tests/peer/start.sh"));
        let mut child = Command::new("bash")
            .arg(&start)
            .args(args)
            .env("PSRP_VENV", python().parent().unwrap().parent().unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start the peer ({}): {e}", start.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("peer did not print its info JSON ({e}): {line:?}"));
        Peer { child, info }
    }

    pub fn s(&self, key: &str) -> String {
        self.info[key]
            .as_str()
            .unwrap_or_else(|| panic!("peer info has no {key}"))
            .to_string()
    }

    /// GET on the control endpoint, as JSON.
    pub fn control(&self, path: &str) -> Value {
        let url = self.s("control_url");
        let addr = url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        serde_json::from_str(body).unwrap_or_else(|e| panic!("control {path}: {e}: {resp}"))
    }

    /// POST of a JSON body on the control endpoint.
    pub fn control_post(&self, path: &str, body: &Value) -> Value {
        let url = self.s("control_url");
        let addr = url.trim_start_matches("http://");
        let body = body.to_string();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(
            resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200"),
            "control {path}: {resp}"
        );
        let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        serde_json::from_str(body).unwrap_or(Value::Null)
    }

    /// Ids of the shells open on the peer.
    pub fn open_shell_ids(&self) -> Vec<String> {
        self.control("/shells")["shells"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| {
                        s.get("shell_id")
                            .or_else(|| s.get("id"))
                            .and_then(Value::as_str)
                            .map(str::to_uppercase)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
