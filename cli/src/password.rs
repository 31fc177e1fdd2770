//! Where the password comes from. Never a command-line flag (it would show in
//! `ps` and shell history): `PSRP_PASSWORD`, `--password-stdin`, a variable
//! named by the profile's `password_env`, or a prompt on a terminal.

use std::io::{BufRead, IsTerminal};

use thiserror::Error;
use wsman::Secret;

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
    /// The profile's `password_env`.
    pub profile_env: Option<&'a str>,
}

/// The password from the first source that has one, or `None`.
pub fn from_sources(sources: &Sources<'_>) -> Result<Option<Secret>, PasswordError> {
    if sources.stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| PasswordError::Stdin(e.to_string()))?;
        let password = line.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            return Err(PasswordError::Stdin(
                "stdin is empty (expected the password on the first line)".into(),
            ));
        }
        return Ok(Some(Secret::new(password)));
    }
    if let Some(p) = std::env::var_os("PSRP_PASSWORD") {
        return Ok(Some(Secret::new(p.to_string_lossy().into_owned())));
    }
    if let Some(name) = sources.profile_env {
        return match std::env::var_os(name) {
            Some(p) => Ok(Some(Secret::new(p.to_string_lossy().into_owned()))),
            None => Err(PasswordError::MissingEnv(name.to_owned())),
        };
    }
    Ok(None)
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
