//! Test fixtures: the Python venv, a pyspnego acceptor process and a
//! throwaway MIT KDC on loopback. Nothing here skips: a missing tool fails
//! the test with a message saying how to get it.

#![allow(dead_code)]

use base64::Engine as _;
use psrp_tests::JsonLines;
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The venv python (the one `psrp_tests` finds or creates with tests/venv.sh).
pub fn python() -> PathBuf {
    psrp_tests::venv_python().unwrap_or_else(|e| panic!("{e}"))
}

pub fn support_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

/// A pyspnego acceptor in a child process.
pub struct Acceptor(JsonLines);

impl Acceptor {
    /// `protocol`: ntlm | kerberos | negotiate; `env`: NTLM_USER_FILE, KRB5_* ...
    pub fn start(
        protocol: &str,
        channel_bindings: Option<&[u8]>,
        env: &[(String, String)],
    ) -> Self {
        let mut cmd = Command::new(python());
        cmd.arg(support_file("acceptor.py")).arg(protocol);
        if let Some(cb) = channel_bindings {
            cmd.arg(cb.iter().map(|b| format!("{b:02x}")).collect::<String>());
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        Acceptor(JsonLines::spawn(cmd, "the pyspnego acceptor").unwrap_or_else(|e| panic!("{e}")))
    }

    fn call(&mut self, req: Value) -> Value {
        self.0.call(&req).unwrap_or_else(|e| panic!("{e}"))
    }

    fn bytes(v: &Value, key: &str) -> Option<Vec<u8>> {
        v.get(key)?.as_str().map(|s| B64.decode(s).unwrap())
    }

    /// One accept step: Ok((token, complete)) or the acceptor's error text.
    pub fn step(&mut self, token: &[u8]) -> Result<(Option<Vec<u8>>, bool), String> {
        let r = self.call(json!({"op": "step", "token": B64.encode(token)}));
        if let Some(e) = r.get("error") {
            return Err(e.as_str().unwrap().to_string());
        }
        Ok((Self::bytes(&r, "token"), r["complete"].as_bool().unwrap()))
    }

    /// wrap_winrm: (header, data, padding).
    pub fn wrap(&mut self, data: &[u8]) -> (Vec<u8>, Vec<u8>, usize) {
        let r = self.call(json!({"op": "wrap", "data": B64.encode(data)}));
        assert!(r.get("error").is_none(), "{r}");
        (
            Self::bytes(&r, "header").unwrap(),
            Self::bytes(&r, "data").unwrap(),
            r["padding"].as_u64().unwrap() as usize,
        )
    }

    /// A WinRM-layout wrap that is signed but not encrypted: (header, data,
    /// whether pyspnego says it encrypted).
    pub fn wrap_integrity_only(&mut self, data: &[u8]) -> (Vec<u8>, Vec<u8>, bool) {
        let r = self.call(json!({"op": "wrap_integrity", "data": B64.encode(data)}));
        assert!(r.get("error").is_none(), "{r}");
        (
            Self::bytes(&r, "header").unwrap(),
            Self::bytes(&r, "data").unwrap(),
            r["encrypted"].as_bool().unwrap(),
        )
    }

    /// unwrap_winrm.
    pub fn unwrap(&mut self, header: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
        let r = self
            .call(json!({"op": "unwrap", "header": B64.encode(header), "data": B64.encode(data)}));
        match r.get("error") {
            Some(e) => Err(e.as_str().unwrap().to_string()),
            None => Ok(Self::bytes(&r, "data").unwrap()),
        }
    }

    /// (client principal, negotiated protocol).
    pub fn info(&mut self) -> (String, String) {
        let r = self.call(json!({"op": "info"}));
        (
            r["principal"].as_str().unwrap_or_default().to_string(),
            r["protocol"].as_str().unwrap_or_default().to_string(),
        )
    }
}

/// A free loopback TCP port (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway MIT KDC for realm PEER.TEST on 127.0.0.1, with principals
/// testuser@PEER.TEST (password Password01) and HTTP/localhost (keytab).
pub struct Kdc {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

pub const REALM: &str = "PEER.TEST";
pub const USER: &str = "testuser@PEER.TEST";
pub const PASSWORD: &str = "Password01";

fn sbin(tool: &str) -> PathBuf {
    for d in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(d).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{tool} not found: install krb5-kdc, krb5-admin-server and krb5-user (tests/run.sh does)"
    );
}

impl Kdc {
    pub fn start() -> Kdc {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        std::fs::create_dir_all(d.join("db")).unwrap();
        std::fs::write(
            d.join("krb5.conf"),
            format!(
                "[libdefaults]\n default_realm = {REALM}\n dns_lookup_realm = false\n dns_lookup_kdc = false\n rdns = false\n dns_canonicalize_hostname = false\n udp_preference_limit = 1\n forwardable = true\n default_ccache_name = FILE:{ccache}\n[realms]\n {REALM} = {{\n  kdc = 127.0.0.1:{port}\n }}\n[domain_realm]\n localhost = {REALM}\n",
                ccache = d.join("ccache").display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("kdc.conf"),
            format!(
                "[kdcdefaults]\n kdc_ports = {port}\n kdc_tcp_ports = {port}\n kdc_listen = 127.0.0.1:{port}\n kdc_tcp_listen = 127.0.0.1:{port}\n[realms]\n {REALM} = {{\n  database_name = {db}/principal\n  key_stash_file = {db}/stash\n  acl_file = {db}/kadm5.acl\n  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n }}\n[logging]\n kdc = FILE:{log}\n",
                db = d.join("db").display(),
                log = d.join("kdc.log").display()
            ),
        )
        .unwrap();
        let env = |c: &mut Command| {
            c.env("KRB5_CONFIG", d.join("krb5.conf"))
                .env("KRB5_KDC_PROFILE", d.join("kdc.conf"));
        };
        let run = |tool: &str, args: &[&str]| {
            let mut c = Command::new(sbin(tool));
            c.args(args);
            env(&mut c);
            let out = c.output().unwrap();
            assert!(
                out.status.success(),
                "{tool} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(
            "kdb5_util",
            &["create", "-s", "-r", REALM, "-P", "masterpw"],
        );
        run(
            "kadmin.local",
            &["-q", &format!("addprinc -pw {PASSWORD} {USER}")],
        );
        run(
            "kadmin.local",
            &["-q", &format!("addprinc -randkey HTTP/localhost@{REALM}")],
        );
        let kt = d.join("http.keytab");
        run(
            "kadmin.local",
            &[
                "-q",
                &format!("ktadd -k {} HTTP/localhost@{REALM}", kt.display()),
            ],
        );
        let mut c = Command::new(sbin("krb5kdc"));
        c.arg("-n").stdout(Stdio::null()).stderr(Stdio::null());
        env(&mut c);
        let child = c.spawn().expect("start krb5kdc");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "krb5kdc did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Kdc { dir, port, child }
    }

    pub fn krb5_conf(&self) -> PathBuf {
        self.dir.path().join("krb5.conf")
    }

    pub fn keytab(&self) -> PathBuf {
        self.dir.path().join("http.keytab")
    }

    /// Environment for an acceptor process.
    pub fn acceptor_env(&self) -> Vec<(String, String)> {
        vec![
            ("KRB5_CONFIG".into(), self.krb5_conf().display().to_string()),
            (
                "KRB5_KTNAME".into(),
                format!("FILE:{}", self.keytab().display()),
            ),
            ("KRB5CCNAME".into(), "MEMORY:acceptor".into()),
        ]
    }

    /// `kinit` the test user into `ccache` (a FILE: path).
    pub fn kinit(&self, ccache: &Path) {
        let mut c = Command::new(sbin("kinit"));
        c.arg(USER)
            .env("KRB5_CONFIG", self.krb5_conf())
            .env("KRB5CCNAME", format!("FILE:{}", ccache.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kinit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
