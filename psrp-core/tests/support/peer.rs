//! A real psrpcore ServerRunspacePool in a Python child process
//! (tests/psrpcore_peer.py), driven frame by frame from a test: the other
//! side of the state machines, with no mock of our own in between.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use uuid::Uuid;

/// Longest wait for one answer: a stuck peer fails the test instead of
/// hanging it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Peer {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<Result<Value, String>>,
}

/// One payload the server wants to send.
pub struct ServerPayload {
    pub pipeline: Option<Uuid>,
    pub stream: String,
    pub data: Vec<u8>,
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

impl Peer {
    pub fn start() -> Peer {
        let python = super::venv_python();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("psrpcore_peer.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} {}: {e}", python.display(), script.display()));
        let stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || loop {
            let mut head = [0u8; 4];
            if let Err(e) = stdout.read_exact(&mut head) {
                let _ = tx.send(Err(format!("peer closed its output: {e}")));
                return;
            }
            let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
            if let Err(e) = stdout.read_exact(&mut body) {
                let _ = tx.send(Err(format!("peer output cut short: {e}")));
                return;
            }
            let parsed =
                serde_json::from_slice(&body).map_err(|e| format!("peer sent bad JSON: {e}"));
            if tx.send(parsed).is_err() {
                return;
            }
        });
        Peer {
            child,
            stdin,
            answers,
        }
    }

    fn request(&mut self, req: Value) -> Value {
        let body = serde_json::to_vec(&req).unwrap();
        self.stdin
            .write_all(&(body.len() as u32).to_be_bytes())
            .and_then(|_| self.stdin.write_all(&body))
            .and_then(|_| self.stdin.flush())
            .expect("writing to the psrpcore peer");
        let answer = self
            .answers
            .recv_timeout(ANSWER_TIMEOUT)
            .unwrap_or_else(|e| panic!("no answer from the psrpcore peer to {}: {e}", req["op"]))
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(err) = answer.get("error") {
            panic!(
                "psrpcore peer failed on {}: {}",
                req["op"],
                err.as_str().unwrap_or("")
            );
        }
        answer
    }

    /// Feeds client bytes (creationXml, Command Arguments, Send) and returns
    /// the server events they produced.
    pub fn feed(&mut self, pipeline: Option<Uuid>, data: &[u8]) -> Vec<Value> {
        let answer = self.request(json!({
            "op": "feed",
            "pipeline": pipeline.map(|p| p.to_string()),
            "data": b64(data),
        }));
        answer["events"].as_array().cloned().unwrap_or_default()
    }

    /// Everything the server has to send, in payloads of at most `amount` bytes.
    pub fn drain(&mut self, amount: usize) -> Vec<ServerPayload> {
        let answer = self.request(json!({"op": "drain", "amount": amount}));
        answer["payloads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| ServerPayload {
                pipeline: p["pipeline"].as_str().map(|s| s.parse().unwrap()),
                stream: p["stream"].as_str().unwrap().to_owned(),
                data: base64::engine::general_purpose::STANDARD
                    .decode(p["data"].as_str().unwrap())
                    .unwrap(),
            })
            .collect()
    }

    /// Server-side actions on a pipeline (or the pool with `None`).
    pub fn act(&mut self, pipeline: Option<Uuid>, actions: Value) -> Vec<Value> {
        let answer = self.request(json!({
            "op": "act",
            "pipeline": pipeline.map(|p| p.to_string()),
            "actions": actions,
        }));
        answer["results"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
