//! psrp on a terminal (a pseudo-terminal from util-linux `script`): the
//! password prompt, and progress as a progress bar instead of log lines.

mod cli_support;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cli_support::{psrp_bin, Peer};

/// `script -qec <command>`: the command runs on a new pseudo-terminal whose
/// input is our stdin and whose output is our stdout.
fn on_terminal(peer: &Peer, args: &str) -> std::process::Child {
    let info = peer.info();
    let command = format!(
        "'{}' {args} -H localhost --port {}",
        psrp_bin().display(),
        info.http_port
    );
    Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", std::env::temp_dir())
        .env("TERM", "xterm")
        .envs(info.kerberos_env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("util-linux `script` runs (Debian package bsdutils)")
}

/// Reads the child's output in a thread, chunk by chunk.
fn output_of(child: &mut std::process::Child) -> mpsc::Receiver<Vec<u8>> {
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Collects output until `needle` appears (or the child ends / time runs out).
fn read_until(rx: &mpsc::Receiver<Vec<u8>>, seen: &mut Vec<u8>, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if String::from_utf8_lossy(seen).contains(needle) {
            return true;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(chunk) => seen.extend_from_slice(&chunk),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    String::from_utf8_lossy(seen).contains(needle)
}

/// The pseudo-terminal `script` runs its command on: the stdin of its
/// child process.
fn terminal_of(script: &std::process::Child) -> PathBuf {
    let parent = script.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if ppid == Some(parent.as_str()) {
                if let Ok(tty) = std::fs::read_link(entry.path().join("fd/0")) {
                    return tty;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no child of script {parent} with a terminal");
}

/// Whether `tty` echoes input, by `stty -F`.
fn echoes(tty: &std::path::Path) -> bool {
    let out = Command::new("stty")
        .arg("-F")
        .arg(tty)
        .arg("-a")
        .output()
        .expect("run stty");
    assert!(out.status.success(), "stty -F {}", tty.display());
    !String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .any(|flag| flag == "-echo")
}

fn wait(child: &mut std::process::Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("psrp on the terminal did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_password_is_asked_on_the_terminal_without_echo() {
    let peer = Peer::shared();
    let user = &peer.info().user;
    let mut child = on_terminal(
        peer,
        &format!("invoke Write-Output -p InputObject=prompted -a ntlm -u {user}"),
    );
    let rx = output_of(&mut child);
    let mut seen = Vec::new();
    assert!(
        read_until(&rx, &mut seen, &format!("Password for {user}: ")),
        "no prompt: {}",
        String::from_utf8_lossy(&seen)
    );
    // The prompt is written just before echo is turned off: type only once
    // it is, as a person would.
    let tty = terminal_of(&child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while echoes(&tty) {
        assert!(
            Instant::now() < deadline,
            "echo still on at the password prompt"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let password = peer.info().password.clone();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    let code = wait(&mut child);
    drop(stdin);
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(2)) {
        seen.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&seen);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("\"prompted\""), "{text}");
    assert!(!text.contains(&password), "the password was echoed: {text}");
}

#[test]
fn progress_is_a_bar_on_a_terminal() {
    let peer = Peer::shared();
    let mut child = on_terminal(
        peer,
        "invoke Write-Progress -p Activity=Copying -p Status=half --param-json PercentComplete=50 \
         -a kerberos -c JEA.Maintenance",
    );
    drop(child.stdin.take());
    let rx = output_of(&mut child);
    let code = wait(&mut child);
    let mut seen = Vec::new();
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(2)) {
        seen.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&seen);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("Copying: half [") && text.contains(" 50%"),
        "no progress bar: {text:?}"
    );
    assert!(
        !text.contains("PROGRESS:"),
        "log lines instead of a bar: {text:?}"
    );
}

#[test]
fn escape_sequences_in_progress_are_shown_not_sent_to_the_terminal() {
    // Clear the screen, retitle the window (OSC ... BEL), CSI as one C1
    // character, DEL.
    const HOSTILE: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\u{7f}";
    let peer = Peer::shared();
    let mut child = on_terminal(
        peer,
        &format!(
            "invoke Write-Progress -p 'Activity=act{HOSTILE}' -p 'Status=st' \
             --param-json PercentComplete=50 -a kerberos -c JEA.Maintenance"
        ),
    );
    drop(child.stdin.take());
    let rx = output_of(&mut child);
    let code = wait(&mut child);
    let mut seen = Vec::new();
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(2)) {
        seen.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&seen);
    assert_eq!(code, 0, "{text:?}");
    // The bar draws with its own escape sequences (erase line, cursor up),
    // never with the server's.
    assert!(
        text.contains("act\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\x7f: st ["),
        "no bar with the escaped activity: {text:?}"
    );
    for raw in ["\u{1b}[2J", "\u{1b}]0;pwned", "\u{7}", "\u{9b}", "\u{7f}"] {
        assert!(
            !text.contains(raw),
            "{raw:?} reached the terminal: {text:?}"
        );
    }
}

/// Waits until `tty` has echo off (the prompt writes its text first).
fn wait_echo_off(tty: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while echoes(tty) {
        assert!(
            Instant::now() < deadline,
            "echo still on at the secret prompt"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_commands_prompts_are_asked_on_the_terminal_secrets_without_echo() {
    use sha2::{Digest, Sha256};
    let peer = Peer::shared();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("credential.ps1");
    std::fs::write(&script, "Get-Credential | Get-SecretHash\n").unwrap();
    let mut child = on_terminal(
        peer,
        &format!("script '{}' -a kerberos -o ndjson", script.display()),
    );
    let rx = output_of(&mut child);
    let mut seen = Vec::new();
    let mut stdin = child.stdin.take().unwrap();
    assert!(
        read_until(&rx, &mut seen, "Enter your credentials.\r\nUser: "),
        "no user prompt: {}",
        String::from_utf8_lossy(&seen)
    );
    stdin.write_all(b"PEER\\carol\n").unwrap();
    assert!(
        read_until(&rx, &mut seen, "Password for user PEER\\carol: "),
        "no password prompt: {}",
        String::from_utf8_lossy(&seen)
    );
    wait_echo_off(&terminal_of(&child));
    let secret = "tty-Pässw0rd";
    stdin.write_all(format!("{secret}\n").as_bytes()).unwrap();
    let code = wait(&mut child);
    drop(stdin);
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(2)) {
        seen.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&seen);
    assert_eq!(code, 0, "{text}");
    let digest: String = Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(text.contains(&digest), "{text}");
    assert!(text.contains(r#""UserName":"PEER\\carol""#), "{text}");
    assert!(!text.contains(secret), "the secret was echoed: {text}");
}

#[test]
fn ctrl_c_at_a_secret_prompt_stops_the_pipeline() {
    let peer = Peer::shared();
    let mut child = on_terminal(peer, "invoke Read-Host -s AsSecureString -a kerberos");
    let rx = output_of(&mut child);
    let mut seen = Vec::new();
    assert!(
        read_until(&rx, &mut seen, "Secret: "),
        "no prompt: {}",
        String::from_utf8_lossy(&seen)
    );
    wait_echo_off(&terminal_of(&child));
    let mut stdin = child.stdin.take().unwrap();
    // The terminal's interrupt character: SIGINT to psrp.
    stdin.write_all(b"\x03").unwrap();
    let code = wait(&mut child);
    drop(stdin);
    while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(2)) {
        seen.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&seen);
    assert_eq!(code, 130, "{text}");
    assert!(
        text.contains("interrupted (SIGINT); the pipeline was stopped"),
        "{text}"
    );
    assert!(
        !text.contains("did not end after the stop request"),
        "{text}"
    );
}
