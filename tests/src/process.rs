//! Helper processes of the tests: Python drivers that answer JSON lines
//! (a psrpcore engine, a pyspnego acceptor) and the pypsrp comparison run.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{json, Value};

use crate::{venv, Peer, PeerError};

/// A child process that answers each JSON request line with one JSON line.
/// Killed when dropped.
pub struct JsonLines {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    what: String,
}

impl JsonLines {
    /// Starts `cmd` with stdin and stdout piped (stderr shows in the test
    /// output); `what` names it in errors.
    pub fn spawn(mut cmd: Command, what: &str) -> Result<JsonLines, PeerError> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| PeerError::Spawn {
                what: what.to_owned(),
                source,
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            unreachable!("stdin and stdout are piped")
        };
        Ok(JsonLines {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            what: what.to_owned(),
        })
    }

    /// Sends one request and reads its answer.
    pub fn call(&mut self, request: &Value) -> Result<Value, PeerError> {
        let fail = |message: String| PeerError::Helper {
            what: self.what.clone(),
            message,
        };
        writeln!(self.stdin, "{request}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| fail(format!("writing a request: {e}")))?;
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(0) => Err(fail("exited".to_owned())),
            Ok(_) => serde_json::from_str(&line)
                .map_err(|e| fail(format!("answered {:?}: {e}", line.trim_end()))),
            Err(e) => Err(fail(format!("reading an answer: {e}"))),
        }
    }
}

impl Drop for JsonLines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `python <script>` with the venv's Python.
pub fn python_command(script: impl AsRef<Path>) -> Result<Command, PeerError> {
    let mut cmd = Command::new(venv::python()?);
    cmd.arg(script.as_ref());
    Ok(cmd)
}

/// Runs `tests/compare/pypsrp_run.py`: the real pypsrp client plays
/// `scenarios` against `peer` (HTTP, Kerberos from the peer's ticket
/// cache). Returns its `results`, one per scenario.
pub fn run_pypsrp(peer: &Peer, scenarios: &Value) -> Result<Vec<Value>, PeerError> {
    const WHAT: &str = "tests/compare/pypsrp_run.py";
    let info = peer.info();
    let request = json!({
        "connection": {"host": info.host, "port": info.http_port, "auth": "kerberos"},
        "scenarios": scenarios,
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("compare/pypsrp_run.py");
    let mut child = python_command(script)?
        .envs(info.kerberos_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| PeerError::Spawn {
            what: WHAT.to_owned(),
            source,
        })?;
    let fail = |message: String| PeerError::Helper {
        what: WHAT.to_owned(),
        message,
    };
    // Dropping stdin after the write is the end of the request.
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(request.to_string().as_bytes())
            .map_err(|e| fail(format!("writing the request: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("reading its output: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!("failed ({})", out.status)));
    }
    let reply: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format!("did not print JSON: {e}")))?;
    match reply.get("results") {
        Some(Value::Array(results)) => Ok(results.clone()),
        _ => Err(fail(format!("printed no results: {reply}"))),
    }
}
