//! Locating the Python virtualenv of the test peer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::PeerError;

static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The venv's python: `$PSRP_VENV/bin/python` when it exists, else the venv that
/// `tests/venv.sh` creates (or finds) and prints.
pub fn python() -> Result<PathBuf, PeerError> {
    PYTHON
        .get_or_init(|| find().map_err(|e| e.to_string()))
        .clone()
        .map_err(PeerError::Venv)
}

fn find() -> Result<PathBuf, PeerError> {
    if let Some(venv) = std::env::var_os("PSRP_VENV") {
        let python = Path::new(&venv).join("bin").join("python");
        if python.is_file() {
            return Ok(python);
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("venv.sh");
    let out = Command::new(&script)
        .output()
        .map_err(|e| PeerError::Spawn {
            what: script.display().to_string(),
            source: e,
        })?;
    if !out.status.success() {
        return Err(PeerError::Venv(format!(
            "{} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let venv = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let python = Path::new(&venv).join("bin").join("python");
    if python.is_file() {
        Ok(python)
    } else {
        Err(PeerError::Venv(format!(
            "{} printed {venv:?}, which has no bin/python",
            script.display()
        )))
    }
}
