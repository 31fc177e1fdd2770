//! Answers to the remote command's prompts: `Read-Host` (also
//! `-AsSecureString`), `Get-Credential` and choices (`-Confirm`,
//! `PromptForChoice`). In order: the `--answer` values, then the lines of
//! `--answers-file`; when they run out, `--accept-defaults` takes a
//! choice's default; else the terminal when stdin and stderr are one
//! (secrets without echo); else the prompt is refused and the pipeline
//! stopped, naming what was asked and the options that answer it.
//!
//! Answers are secrets as far as psrp knows: never logged, kept in
//! zeroizing buffers, secrets sent as SecureStrings.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clap::Args;
use psrp_core::client::{
    ChoiceDescription, Host, HostAnswer, HostInfo, HostPrompt, PsValue, SecureString,
};
use psrp_core::message::{ErrorCategory, ErrorRecord};
use psrp_core::prompt::credential_value;
use zeroize::Zeroizing;

use crate::logging::{terminal_safe, Logger};

/// `--answer`, `--answers-file`, `--accept-defaults`.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Prompts (Read-Host, Get-Credential, confirmations)")]
pub struct AnswerArgs {
    /// An answer to a prompt of the remote command, used in order
    /// (repeatable): one per Read-Host line or field, the user name then the
    /// password for Get-Credential (only the password when the command gives
    /// the user name), a choice's label, hot key or index (empty: its
    /// default). Other users can see the command line: give secrets with
    /// --answers-file.
    #[arg(long = "answer", value_name = "TEXT")]
    pub answer: Vec<String>,
    /// A file of answers, one per line (used after the --answer values; an
    /// empty line is an empty answer). Keep it readable by you only when it
    /// holds secrets.
    #[arg(long = "answers-file", value_name = "FILE")]
    pub answers_file: Option<PathBuf>,
    /// When the answers run out, answer a choice with its default choice
    /// instead of asking (other prompts are still asked on a terminal, or
    /// refused).
    #[arg(long = "accept-defaults")]
    pub accept_defaults: bool,
}

/// One answer, and whether it came from the command line.
struct Answer {
    text: Zeroizing<String>,
    from_argv: bool,
}

/// The answers given for the run (each host consumes its own copy).
pub struct Answers {
    given: Vec<(Zeroizing<String>, bool)>,
    accept_defaults: bool,
    terminal: bool,
}

impl Answers {
    /// The answers of the options; the file is read now.
    pub fn load(args: &AnswerArgs) -> Result<Answers, String> {
        let mut given: Vec<(Zeroizing<String>, bool)> = args
            .answer
            .iter()
            .map(|a| (Zeroizing::new(a.clone()), true))
            .collect();
        if let Some(path) = &args.answers_file {
            let text =
                Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    format!("--answers-file {}: cannot read it: {e}", path.display())
                })?);
            for line in text.lines() {
                given.push((Zeroizing::new(line.to_owned()), false));
            }
        }
        Ok(Answers {
            given,
            accept_defaults: args.accept_defaults,
            terminal: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        })
    }

    /// The host answering one connection's prompts (`label`: its host
    /// name, shown before terminal prompts when `tag` says hosts are
    /// tagged).
    pub fn host(&self, label: &str, tag: bool, log: Arc<Logger>) -> Arc<Prompter> {
        Arc::new(Prompter {
            queue: Mutex::new(
                self.given
                    .iter()
                    .map(|(t, argv)| Answer {
                        text: t.clone(),
                        from_argv: *argv,
                    })
                    .collect(),
            ),
            accept_defaults: self.accept_defaults,
            terminal: self.terminal,
            label: label.to_owned(),
            tag,
            log,
            unanswered: Mutex::new(None),
        })
    }
}

/// One terminal prompt at a time, whichever host asks.
static TERMINAL: Mutex<()> = Mutex::new(());

/// The CLI's [`Host`]: answers from the options, then the terminal.
pub struct Prompter {
    queue: Mutex<VecDeque<Answer>>,
    accept_defaults: bool,
    terminal: bool,
    label: String,
    tag: bool,
    log: Arc<Logger>,
    /// Why the last prompt could not be answered (the run stops on it).
    unanswered: Mutex<Option<String>>,
}

/// Why a prompt got no answer: said to the user and to the server.
struct Unanswered(String);

const HOW: &str = "give answers with --answer TEXT (repeatable) or --answers-file FILE, \
                   or run psrp with stdin and stderr on a terminal";

impl Prompter {
    /// What the last refused prompt asked, once.
    pub fn take_unanswered(&self) -> Option<String> {
        self.unanswered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn next_given(&self) -> Option<Answer> {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    fn host_prefix(&self) -> String {
        if !self.tag || self.label.is_empty() {
            String::new()
        } else {
            format!("[{}] ", self.label)
        }
    }

    /// A warning that a secret came from the command line (visible to
    /// other users in the process list).
    fn warn_argv_secret(&self, what: &str) {
        self.log.psrp(
            &self.label,
            &format!(
                "WARNING: {what} was answered from --answer, which other users can see in the \
                 process list; use --answers-file for secrets"
            ),
        );
    }

    /// One text: the next given answer, else the terminal (hidden when
    /// `secret`), else none. `asked` names it in messages.
    fn text(
        &self,
        label: &str,
        secret: bool,
        asked: &str,
    ) -> Result<Zeroizing<String>, Unanswered> {
        if let Some(a) = self.next_given() {
            if secret && a.from_argv {
                self.warn_argv_secret(asked);
            }
            return Ok(a.text);
        }
        if !self.terminal {
            return Err(Unanswered(format!(
                "the command asked for {asked} and no answer was left: {HOW}"
            )));
        }
        let _one = TERMINAL.lock().unwrap_or_else(|e| e.into_inner());
        let prompt = format!("{}{label}: ", self.host_prefix());
        read_terminal(&prompt, secret)
            .map_err(|e| Unanswered(format!("reading {asked} from the terminal failed: {e}")))
    }

    fn show_heading(&self, caption: &str, message: &str) {
        if !self.terminal {
            return;
        }
        let mut out = String::new();
        for text in [caption, message] {
            if !text.is_empty() {
                out.push_str(&self.host_prefix());
                out.push_str(&terminal_safe(text));
                out.push('\n');
            }
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }

    fn choice(
        &self,
        caption: &str,
        message: &str,
        choices: &[ChoiceDescription],
        default: Option<usize>,
    ) -> Result<usize, Unanswered> {
        let names = choice_names(choices);
        if let Some(a) = self.next_given() {
            return HostPrompt::choice_by_text(choices, default, &a.text).ok_or_else(|| {
                // Not the answer's text: it may be a secret meant for
                // another prompt.
                Unanswered(format!(
                    "the next answer names none of the choices of \"{}\" ({names}; an empty \
                     answer takes the default)",
                    caption_or(caption, message)
                ))
            });
        }
        if let (true, Some(d)) = (self.accept_defaults, default) {
            return Ok(d);
        }
        if !self.terminal {
            return Err(Unanswered(format!(
                "the command asked for a choice (\"{}\": {names}) and no answer was left: {HOW}, \
                 or --accept-defaults for the default choice",
                caption_or(caption, message)
            )));
        }
        let _one = TERMINAL.lock().unwrap_or_else(|e| e.into_inner());
        self.show_heading(caption, message);
        let default_text = default
            .and_then(|d| choices.get(d))
            .map(|c| {
                format!(
                    " (default is \"{}\")",
                    c.hot_key().map(String::from).unwrap_or_else(|| c.text())
                )
            })
            .unwrap_or_default();
        let prompt = format!("{}{names}{default_text}: ", self.host_prefix());
        for _ in 0..5 {
            let text = read_terminal(&prompt, false).map_err(|e| {
                Unanswered(format!("reading a choice from the terminal failed: {e}"))
            })?;
            if let Some(i) = HostPrompt::choice_by_text(choices, default, &text) {
                return Ok(i);
            }
        }
        Err(Unanswered("no valid choice was typed".to_owned()))
    }

    fn answer(&self, prompt: &HostPrompt) -> Result<HostAnswer, Unanswered> {
        match prompt {
            HostPrompt::ReadLine => Ok(HostAnswer::Line(
                self.text("Input", false, "a line (Read-Host)")?.to_string(),
            )),
            HostPrompt::ReadLineAsSecureString => {
                let text =
                    self.text("Secret", true, "a secret line (Read-Host -AsSecureString)")?;
                Ok(HostAnswer::Secure(SecureString::new(text.as_str())))
            }
            HostPrompt::Fields {
                caption,
                message,
                fields,
            } => {
                if self.queue.lock().map(|q| q.is_empty()).unwrap_or(true) {
                    self.show_heading(caption, message);
                }
                let mut values = Vec::with_capacity(fields.len());
                for f in fields {
                    let asked = format!("the field \"{}\" (Read-Host -Prompt)", f.display());
                    let value = if f.is_credential() {
                        let user =
                            self.text(&format!("{} user name", f.display()), false, &asked)?;
                        let password =
                            self.text(&format!("{} password", f.display()), true, &asked)?;
                        credential_value(&user, SecureString::new(password.as_str()))
                    } else if f.is_secure() {
                        let text = self.text(f.display(), true, &asked)?;
                        PsValue::from(SecureString::new(text.as_str()))
                    } else {
                        PsValue::from(self.text(f.display(), false, &asked)?.to_string())
                    };
                    values.push((f.name.clone(), value));
                }
                Ok(HostAnswer::Fields(values))
            }
            HostPrompt::Credential {
                caption,
                message,
                user_name,
                ..
            } => {
                if self.queue.lock().map(|q| q.is_empty()).unwrap_or(true) {
                    self.show_heading(caption, message);
                }
                let asked = "a credential (Get-Credential)";
                let user = if user_name.is_empty() {
                    self.text("User", false, &format!("{asked}: its user name"))?
                        .to_string()
                } else {
                    user_name.clone()
                };
                let password = self.text(
                    &format!("Password for user {user}"),
                    true,
                    &format!("{asked}: the password of \"{user}\""),
                )?;
                Ok(HostAnswer::Credential {
                    user_name: user,
                    password: SecureString::new(password.as_str()),
                })
            }
            HostPrompt::Choice {
                caption,
                message,
                choices,
                default,
            } => Ok(HostAnswer::Choice(
                self.choice(caption, message, choices, *default)?,
            )),
            HostPrompt::MultipleChoice {
                caption,
                message,
                choices,
                defaults,
            } => {
                let names = choice_names(choices);
                let text = match self.next_given() {
                    Some(a) => a.text,
                    None if self.accept_defaults => {
                        return Ok(HostAnswer::Choices(defaults.clone()))
                    }
                    None => {
                        self.show_heading(caption, message);
                        self.text(
                            &format!("{names} (several: comma separated)"),
                            false,
                            "choices (multiple selection)",
                        )?
                    }
                };
                if text.trim().is_empty() {
                    return Ok(HostAnswer::Choices(defaults.clone()));
                }
                text.split(',')
                    .map(|t| {
                        HostPrompt::choice_by_text(choices, None, t).ok_or_else(|| {
                            Unanswered(format!("an answer names none of the choices ({names})"))
                        })
                    })
                    .collect::<Result<_, _>>()
                    .map(HostAnswer::Choices)
            }
        }
    }
}

fn caption_or<'a>(caption: &'a str, message: &'a str) -> &'a str {
    if caption.is_empty() {
        message
    } else {
        caption
    }
}

/// `[Y] Yes  [A] Yes to All  [N] No`, as the console host lists them.
fn choice_names(choices: &[ChoiceDescription]) -> String {
    choices
        .iter()
        .enumerate()
        .map(|(i, c)| match c.hot_key() {
            Some(k) => format!("[{}] {}", k.to_uppercase(), c.text()),
            None => format!("[{i}] {}", c.text()),
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// Set on Ctrl-C/SIGTERM: a prompt waiting on the terminal gives up, so
/// that the pipeline can be stopped and the shell deleted.
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Makes terminal prompts (waiting or to come) give up.
pub fn cancel_terminal_prompts() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// Echo off on the terminal until dropped (then the saved modes again),
/// keeping the newline echoed so the next line starts on its own.
struct EchoOff {
    saved: rustix::termios::Termios,
}

impl EchoOff {
    fn new() -> Result<EchoOff, String> {
        use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).map_err(|e| e.to_string())?;
        let mut hidden = saved.clone();
        hidden.local_modes.remove(LocalModes::ECHO);
        hidden.local_modes.insert(LocalModes::ECHONL);
        tcsetattr(&stdin, OptionalActions::Flush, &hidden).map_err(|e| e.to_string())?;
        Ok(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// Longest line read from the terminal.
const MAX_LINE: usize = 64 * 1024;

/// Reads one line from the terminal (stdin) after writing `prompt` to
/// stderr; without echo when `secret`. Polls, so that Ctrl-C (which psrp
/// handles itself) ends the wait; the terminal's modes are restored on
/// every way out.
fn read_terminal(prompt: &str, secret: bool) -> Result<Zeroizing<String>, String> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let _echo_off = if secret { Some(EchoOff::new()?) } else { None };
    let mut err = std::io::stderr().lock();
    // Labels and choices come from the server: no raw control characters.
    let _ = err.write_all(terminal_safe(prompt).as_bytes());
    let _ = err.flush();
    drop(err);
    let stdin = std::io::stdin();
    let mut line = Zeroizing::new(Vec::<u8>::new());
    let mut byte = [0u8; 1];
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: 200_000_000,
    };
    loop {
        if CANCELLED.load(Ordering::SeqCst) {
            return Err("cancelled".to_owned());
        }
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        match poll(&mut fds, Some(&tick)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.to_string()),
        }
        match rustix::io::read(&stdin, &mut byte) {
            Ok(0) => return Err("end of input".to_owned()),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() >= MAX_LINE => return Err("the line is too long".to_owned()),
            Ok(_) => line.push(byte[0]),
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
            Err(e) => return Err(e.to_string()),
        }
        byte[0] = 0;
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    match String::from_utf8(std::mem::take(&mut *line)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err("the line is not UTF-8".to_owned())
        }
    }
}

impl Host for Prompter {
    fn host_info(&self) -> HostInfo {
        // A UI, so that the server sends its prompts instead of failing
        // them itself; no RawUI.
        HostInfo::with_ui(None)
    }

    fn prompt(&self, prompt: &HostPrompt) -> Result<HostAnswer, ErrorRecord> {
        self.answer(prompt).map_err(|Unanswered(why)| {
            let record = ErrorRecord::new(
                format!("psrp could not answer the prompt: {why}."),
                "System.Management.Automation.Host.HostException",
                "HostNotInteractive",
                ErrorCategory::NotImplemented,
            );
            *self.unanswered.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
            record
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices() -> Vec<ChoiceDescription> {
        ["&Yes", "Yes to &All", "&No"]
            .iter()
            .map(|l| ChoiceDescription {
                label: (*l).to_owned(),
                help_message: String::new(),
            })
            .collect()
    }

    #[test]
    fn choices_are_listed_as_the_console_does() {
        assert_eq!(choice_names(&choices()), "[Y] Yes  [A] Yes to All  [N] No");
    }
}
