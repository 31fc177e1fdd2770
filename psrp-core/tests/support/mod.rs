//! Helpers shared by the integration tests: where the real Windows captures
//! and the Python virtualenv are.

#![allow(dead_code)]

use std::path::PathBuf;

/// One capture from `shared/real-windows/psrp`.
pub struct Capture {
    pub name: String,
    pub meta: serde_json::Value,
    pub msg: Vec<u8>,
    pub frags: Vec<u8>,
}

/// Every `psrp/*.meta.json` capture with its message and fragment stream.
pub fn psrp_captures() -> Vec<Capture> {
    let dir = psrp_tests::real_windows_dir().join("psrp");
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

/// The Python interpreter of the test virtualenv (`$PSRP_VENV`, else the
/// one tests/venv.sh creates), which has psrpcore. Panics when missing.
pub fn venv_python() -> PathBuf {
    psrp_tests::venv_python().unwrap_or_else(|e| panic!("{e}"))
}

pub mod peer;
