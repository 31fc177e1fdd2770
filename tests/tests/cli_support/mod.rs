//! Running the built `psrp` binary in the CLI tests (tests/cli_*.rs): a
//! clean environment (no PSRP_* variables or config of the developer), the
//! Kerberos environment of a test peer, and a time bound on every run.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use psrp_tests::{Fault, FaultRule, Peer, PeerOptions};
use serde_json::Value;

/// Bound on one psrp run in the tests.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The source files cargo built `bin` from (its `.d` dep-info file).
fn sources_of(bin: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string(bin.with_extension("d")) else {
        return Vec::new();
    };
    let deps = text.split_once(": ").map_or("", |(_, d)| d);
    // Paths are separated by spaces; a space inside a path is escaped.
    deps.replace("\\ ", "\0")
        .split_whitespace()
        .map(|p| PathBuf::from(p.replace('\0', " ")))
        .collect()
}

/// The `psrp` binary of this build (`target/<profile>/psrp`, beside this
/// test's `deps` directory; `PSRP_BIN` overrides). `cargo test --workspace`
/// builds it (the cli crate has integration tests); a missing binary, or
/// one older than a source it was built from, fails loudly instead of
/// testing old code.
pub fn psrp_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("PSRP_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("current test executable");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable is in target/<profile>/deps");
        let bin = profile_dir.join("psrp");
        let built = std::fs::metadata(&bin)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; build it first: cargo build -p psrp-cli (cargo test --workspace does)",
                    bin.display()
                )
            });
        // Stale: a source of the binary changed after it was built (e.g.
        // `cargo test -p psrp-tests` without building psrp-cli).
        let changed: Vec<PathBuf> = sources_of(&bin)
            .into_iter()
            .filter(|p| {
                std::fs::metadata(p)
                    .and_then(|m| m.modified())
                    .is_ok_and(|m| m > built)
            })
            .collect();
        assert!(
            changed.is_empty(),
            "{} is older than its sources {changed:?}; rebuild it: cargo build -p psrp-cli",
            bin.display()
        );
        bin
    })
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The exit code (panics when killed by a signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("psrp was killed: {self:?}"))
    }

    /// Asserts the exit code, showing both outputs when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "exit status\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// stdout as NDJSON.
    pub fn ndjson(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect()
    }

    /// stderr lines starting with `prefix`.
    pub fn stderr_lines(&self, prefix: &str) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

/// A psrp command line being built. Connection options ([`Psrp::conn`])
/// go right after the subcommand, before its own arguments (which may end
/// with `-- positional...`).
pub struct Psrp {
    cmd: Command,
    args: Vec<std::ffi::OsString>,
    conn: Vec<std::ffi::OsString>,
    stdin: Option<Vec<u8>>,
    home: tempfile::TempDir,
}

impl Psrp {
    /// `psrp` with a clean environment: PATH, a fresh empty HOME (so no
    /// config file of the user is read), LANG=C.UTF-8.
    pub fn new() -> Psrp {
        let home = tempfile::tempdir().expect("temp home");
        let mut cmd = Command::new(psrp_bin());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Psrp {
            cmd,
            args: Vec::new(),
            conn: Vec::new(),
            stdin: None,
            home,
        }
    }

    /// `psrp` with the Kerberos environment of `peer`'s realm: KRB5_CONFIG
    /// and KRB5CCNAME (a ticket cache with a TGT for the test user).
    pub fn kerberos(peer: &Peer) -> Psrp {
        let mut p = Psrp::new();
        for (name, value) in peer.info().kerberos_env() {
            p.env(name, &value);
        }
        p
    }

    /// [`Psrp::kerberos`] pointed at `peer` over HTTP: `-H localhost --port`.
    pub fn peer(peer: &Peer) -> Psrp {
        let info = peer.info();
        let mut p = Psrp::kerberos(peer);
        p.conn(["-H", &info.host, "--port", &info.http_port.to_string()]);
        p
    }

    /// The Airflow setup: Kerberos over HTTP into JEA.Maintenance.
    pub fn jea(peer: &Peer) -> Psrp {
        let mut p = Psrp::peer(peer);
        p.conn(["--auth", "kerberos", "-c", "JEA.Maintenance"]);
        p
    }

    /// The temporary HOME of this run (for config files).
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Subcommand arguments (the subcommand first).
    pub fn arg(&mut self, a: impl AsRef<std::ffi::OsStr>) -> &mut Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    /// Subcommand arguments (the subcommand first).
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Connection options (placed after the subcommand).
    pub fn conn<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.conn
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    fn build(&mut self) {
        let mut args = std::mem::take(&mut self.args).into_iter();
        if let Some(sub) = args.next() {
            self.cmd.arg(sub);
        }
        self.cmd.args(std::mem::take(&mut self.conn));
        self.cmd.args(args);
    }

    pub fn env(&mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> &mut Self {
        self.cmd.env(k, v);
        self
    }

    pub fn stdin(&mut self, data: impl Into<Vec<u8>>) -> &mut Self {
        self.stdin = Some(data.into());
        self
    }

    /// Starts the process (for signal tests), writing the stdin data given
    /// with [`Psrp::stdin`] (else stdin is closed).
    pub fn spawn(&mut self) -> Child {
        self.build();
        if self.stdin.is_some() {
            self.cmd.stdin(Stdio::piped());
        }
        let mut child = self.cmd.spawn().expect("start psrp");
        if let Some(data) = self.stdin.take() {
            let mut stdin = child.stdin.take().expect("stdin");
            std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
        }
        child
    }

    /// Runs to the end, at most [`RUN_TIMEOUT`].
    pub fn run(&mut self) -> Run {
        let child = self.spawn();
        finish(child, RUN_TIMEOUT)
    }
}

/// Collects a child's output and status, killing it after `timeout`.
pub fn finish(mut child: Child, timeout: Duration) -> Run {
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for psrp") {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("psrp did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        status,
        stdout: String::from_utf8(out_t.join().unwrap()).expect("stdout is UTF-8"),
        stderr: String::from_utf8(err_t.join().unwrap()).expect("stderr is UTF-8"),
    }
}

/// Sends a signal to a child process.
pub fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([format!("-{sig}"), child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} failed");
}

/// Waits until `check` holds, at most `timeout`.
pub fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}
