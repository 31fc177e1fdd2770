//! Where the password comes from. Never a command-line flag (it would show in
//! `ps` and shell history): `PSRP_PASSWORD`, `--password-stdin`, a variable
//! named by the profile's `password_env`, or a prompt on a terminal.
//!
//! The copies psrp makes are cleared when dropped ([`Secret`], `zeroize`);
//! password variables are taken out of the process environment as soon as
//! they are read, and their text overwritten where `ps e` and
//! `/proc/<pid>/environ` show it.

use std::io::{IsTerminal, Read};
use std::os::unix::ffi::OsStringExt;

use thiserror::Error;
use wsman::Secret;
use zeroize::{Zeroize, Zeroizing};

/// The environment variable that holds the password.
pub const PASSWORD_VAR: &str = "PSRP_PASSWORD";

/// Longest password line read from stdin.
const MAX_STDIN_LINE: usize = 1024;

/// The password could not be obtained.
#[derive(Debug, Error)]
pub enum PasswordError {
    /// `--password-stdin` but stdin was empty or unreadable.
    #[error("--password-stdin: {0}")]
    Stdin(String),
    /// The profile names a variable that is not set.
    #[error("the profile's password_env names ${0}, which is not set")]
    MissingEnv(String),
    /// A password is needed and there is no way to ask for it.
    #[error("{auth} authentication needs a password: set PSRP_PASSWORD, use --password-stdin, or run on a terminal to be prompted")]
    Needed {
        /// The auth method.
        auth: &'static str,
    },
    /// The terminal prompt failed.
    #[error("cannot read the password from the terminal: {0}")]
    Prompt(String),
}

/// Where to look, in order.
pub struct Sources<'a> {
    /// `--password-stdin`.
    pub stdin: bool,
    /// `PSRP_PASSWORD`, taken out of the environment at startup.
    pub env: Option<Secret>,
    /// The profile's `password_env`, and its value taken out of the
    /// environment.
    pub profile_env: Option<(&'a str, Option<Secret>)>,
}

/// The password from the first source that has one, or `None`.
pub fn from_sources(sources: Sources<'_>) -> Result<Option<Secret>, PasswordError> {
    if sources.stdin {
        return read_stdin_line().map(Some);
    }
    if let Some(p) = sources.env {
        return Ok(Some(p));
    }
    if let Some((name, value)) = sources.profile_env {
        return match value {
            Some(p) => Ok(Some(p)),
            None => Err(PasswordError::MissingEnv(name.to_owned())),
        };
    }
    Ok(None)
}

/// The first line of stdin, read a byte at a time from the file descriptor
/// into one buffer sized up front: no copy is left in std's stdin buffer
/// or in a reallocated string, and nothing after the line is consumed.
fn read_stdin_line() -> Result<Secret, PasswordError> {
    read_stdin_secret("the password").map_err(PasswordError::Stdin)
}

/// The first line of stdin as a secret (`what` names it in errors), read
/// as [`read_stdin_line`] does.
pub fn read_stdin_secret(what: &str) -> Result<Secret, String> {
    use std::os::fd::AsFd;
    let err = |e: std::io::Error| e.to_string();
    let fd = std::io::stdin().as_fd().try_clone_to_owned().map_err(err)?;
    let mut input = std::fs::File::from(fd);
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_STDIN_LINE));
    let mut byte = Zeroizing::new([0u8; 1]);
    loop {
        match input.read(&mut *byte) {
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() == MAX_STDIN_LINE => {
                return Err(format!(
                    "the first line of stdin is longer than {MAX_STDIN_LINE} bytes"
                ))
            }
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(e)),
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if line.is_empty() {
        return Err(format!(
            "stdin is empty (expected {what} on the first line)"
        ));
    }
    match String::from_utf8(std::mem::take(&mut *line)) {
        Ok(s) => Ok(Secret::from(s)),
        Err(e) => {
            e.into_bytes().zeroize();
            Err("the first line of stdin is not UTF-8".into())
        }
    }
}

/// Takes the password in variable `name` out of the environment: returns
/// it, removes the variable and overwrites its `name=value` text, so that
/// neither `/proc/<pid>/environ` (`ps e`) nor a child process shows it.
/// Must run while the process has one thread (at startup, before the async
/// runtime): the environment is not locked.
pub fn take_env(name: &str) -> Option<Secret> {
    // Names std would refuse (and which cannot be set anyway).
    if name.is_empty() || name.contains(['=', '\0']) {
        return None;
    }
    let value = std::env::var_os(name)?.into_vec();
    let secret = match String::from_utf8(value) {
        Ok(s) => Secret::from(s),
        Err(e) => {
            let bytes = Zeroizing::new(e.into_bytes());
            Secret::new(String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    remove_and_overwrite(name);
    Some(secret)
}

/// Removes `name` from the environment and overwrites its `name=value`
/// strings with zero bytes. `remove_var` (unsetenv) alone only drops the
/// pointer to the string, and the kernel shows the process's initial
/// environment block in `/proc/<pid>/environ` whatever the pointers say.
///
/// `unsafe` code (with `doctor::canonical`'s libc lookups, the crate's
/// only): Rust offers no safe access to the environment's memory. (Programs that rewrite their process title, such
/// as PostgreSQL and nginx, write over the same block.)
#[allow(unsafe_code)]
fn remove_and_overwrite(name: &str) {
    extern "C" {
        // POSIX: the NULL-terminated array of "name=value" C strings.
        static environ: *const *mut std::ffi::c_char;
    }
    let prefix = format!("{name}=");
    let mut found: Vec<(*mut u8, usize)> = Vec::new();
    // SAFETY: `environ` is a NULL-terminated array of pointers to
    // NUL-terminated strings (POSIX), and nothing changes it meanwhile:
    // this runs while the process has a single thread (the contract of
    // `take_env`, the same as `remove_var`'s in edition 2024).
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let text = *entry;
            let bytes = std::ffi::CStr::from_ptr(text).to_bytes();
            if bytes.starts_with(prefix.as_bytes()) {
                found.push((text.cast::<u8>(), bytes.len()));
            }
            entry = entry.add(1);
        }
    }
    std::env::remove_var(name);
    // SAFETY: each pointer is to a string of `len` bytes plus its NUL that
    // the environment no longer references (unsetenv removed every
    // `name=` entry from the array and frees nothing); at startup these
    // are the writable initial environment block the kernel set up at
    // exec. Only the `len` bytes before the NUL are written.
    for (text, len) in found {
        unsafe { std::slice::from_raw_parts_mut(text, len) }.zeroize();
    }
}

/// Asks on the terminal when stdin is one; else says how to give it.
pub fn prompt(auth: &'static str, username: &str) -> Result<Secret, PasswordError> {
    if !std::io::stdin().is_terminal() {
        return Err(PasswordError::Needed { auth });
    }
    rpassword::prompt_password(format!("Password for {username}: "))
        .map(Secret::new)
        .map_err(|e| PasswordError::Prompt(e.to_string()))
}
