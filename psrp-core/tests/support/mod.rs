//! Helpers shared by the integration tests: where the real Windows captures
//! and the Python virtualenv are.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `shared/` (the real Windows captures live in `shared/real-windows`):
/// `$PSRP_SHARED_DIR` if set, else the first `shared` folder found walking up
/// from this crate. Panics with a clear message when absent: these tests must
/// not pass silently without their data.
pub fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PSRP_SHARED_DIR") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("real-windows").is_dir(),
            "PSRP_SHARED_DIR={} has no real-windows folder",
            dir.display()
        );
        return dir;
    }
    let start = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in start.ancestors() {
        let candidate = dir.join("shared");
        if candidate.join("real-windows").is_dir() {
            return candidate;
        }
    }
    panic!(
        "no shared/real-windows folder above {} and PSRP_SHARED_DIR is not set: \
         the real Windows captures are required for these tests",
        start.display()
    );
}

/// One capture from `shared/real-windows/psrp`.
pub struct Capture {
    pub name: String,
    pub meta: serde_json::Value,
    pub msg: Vec<u8>,
    pub frags: Vec<u8>,
}

/// Every `psrp/*.meta.json` capture with its message and fragment stream.
pub fn psrp_captures() -> Vec<Capture> {
    let dir = shared_dir().join("real-windows").join("psrp");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".meta.json").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= 50,
        "expected the 53 PSRP captures in {}",
        dir.display()
    );
    names
        .into_iter()
        .map(|name| {
            let read = |ext: &str| {
                let p = dir.join(format!("{name}.{ext}"));
                std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
            };
            let meta = serde_json::from_slice(&read("meta.json")).expect("meta.json is JSON");
            Capture {
                msg: read("msg.bin"),
                frags: read("frags.bin"),
                meta,
                name,
            }
        })
        .collect()
}

/// The Python interpreter of the test virtualenv (`$PSRP_VENV`, default
/// `<workspace>/target/venv`), which has psrpcore. Panics when missing.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("PSRP_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("crate has a parent folder")
                .join("target")
                .join("venv")
        });
    let python = venv.join("bin").join("python");
    assert!(
        python.is_file(),
        "no Python virtualenv at {}: run tests/venv.sh (tests/run.sh does) or set PSRP_VENV",
        venv.display()
    );
    python
}

pub mod peer;
