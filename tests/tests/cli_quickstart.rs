//! The README's quick start, run literally: the first `sh` block of the
//! "Quick start" section, in bash with a clean environment (a normal user's
//! PATH plus the built `psrp`, a fresh HOME), must print the file object as
//! JSON; then `tests/peer/quickstart.sh --stop` removes the peer.

mod cli_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cli_support::finish;

/// The commands of the first ```sh block after `## Quick start`.
fn quick_start_block(readme: &str) -> String {
    let section = readme
        .split("\n## Quick start\n")
        .nth(1)
        .expect("README.md has a '## Quick start' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let block = section
        .split("```sh\n")
        .nth(1)
        .expect("the quick start has a ```sh block");
    block
        .split("\n```")
        .next()
        .expect("the block is closed")
        .to_owned()
}

#[test]
fn the_readme_quick_start_works_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let script = quick_start_block(&readme);
    assert!(
        script.contains("quickstart.sh") && script.contains("psrp invoke"),
        "unexpected quick start:\n{script}"
    );
    let bin_dir = cli_support::psrp_bin().parent().unwrap().to_owned();
    let home = tempfile::tempdir().unwrap();
    let state = home.path().join("quickstart-state");
    let run = |commands: &str| {
        let mut cmd = Command::new("bash");
        cmd.args(["-euo", "pipefail", "-c", commands])
            .current_dir(root)
            .env_clear()
            // A normal user's PATH (no /usr/sbin) with psrp installed.
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display()),
            )
            .env("HOME", home.path())
            .env("LANG", "C.UTF-8")
            .env("PSRP_QUICKSTART_DIR", &state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The suite's virtualenv, when it is not the default one.
        if let Some(venv) = std::env::var_os("PSRP_VENV") {
            cmd.env("PSRP_VENV", venv);
        }
        finish(cmd.spawn().unwrap(), Duration::from_secs(300))
    };
    // Stops the detached peer however this test ends.
    struct Stop<'a>(&'a dyn Fn(&str) -> cli_support::Run);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = (self.0)("tests/peer/quickstart.sh --stop");
        }
    }
    let stop = Stop(&run);
    let out = run(&script);
    drop(stop);
    out.expect_code(0);
    let json = out.json();
    let items = json.as_array().expect("a JSON array");
    assert_eq!(items.len(), 1, "{json}");
    assert_eq!(items[0]["FullName"], "C:\\Windows\\win.ini");
    assert!(
        out.stderr.contains("test peer ready"),
        "the quick start says where the peer is:\n{}",
        out.stderr
    );
    assert!(!state.exists(), "--stop removes the peer's state");
}
