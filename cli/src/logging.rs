//! PowerShell streams (and psrp's own messages) on stderr as log lines:
//! `[host] LEVEL: text`, the host tag only with several hosts. Multi-line
//! texts get the prefix on every line, so that `grep ERROR:` finds a whole
//! error record. Progress is a progress bar when stderr is a terminal and
//! log lines otherwise.
//!
//! Everything written to stderr passes [`terminal_safe`]: text from the
//! server (records, host calls, fault messages in errors) cannot carry
//! escape sequences to the operator's terminal.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use psrp_core::message::{
    ErrorRecord, InformationRecord, InformationalRecord, ProgressRecord, ProgressRecordType,
};

use crate::args::LogLevel;

/// The level of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Error records.
    Error,
    /// Warning records.
    Warning,
    /// Information records.
    Information,
    /// Progress records.
    Progress,
    /// Verbose records.
    Verbose,
    /// Debug records.
    Debug,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Information => "INFO",
            Level::Progress => "PROGRESS",
            Level::Verbose => "VERBOSE",
            Level::Debug => "DEBUG",
        }
    }

    fn filter(self) -> LogLevel {
        match self {
            Level::Error => LogLevel::Error,
            Level::Warning => LogLevel::Warning,
            Level::Information => LogLevel::Information,
            Level::Progress => LogLevel::Progress,
            Level::Verbose => LogLevel::Verbose,
            Level::Debug => LogLevel::Debug,
        }
    }
}

struct Bars {
    multi: MultiProgress,
    /// By host and activity id.
    bars: HashMap<(String, i32), ProgressBar>,
}

/// Writes log lines to stderr.
pub struct Logger {
    min: LogLevel,
    tag_hosts: bool,
    /// Last progress line per (host, activity), to drop repeats.
    last_progress: Mutex<HashMap<(String, i32), String>>,
    bars: Option<Mutex<Bars>>,
}

impl Logger {
    /// A logger showing `min` and more severe streams; progress bars when
    /// stderr is a terminal and progress is shown.
    pub fn new(min: LogLevel, tag_hosts: bool) -> Logger {
        let bars = (min >= LogLevel::Progress && std::io::stderr().is_terminal()).then(|| {
            Mutex::new(Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: HashMap::new(),
            })
        });
        Logger {
            min,
            tag_hosts,
            last_progress: Mutex::new(HashMap::new()),
            bars,
        }
    }

    fn prefix(&self, host: &str) -> String {
        if self.tag_hosts && !host.is_empty() {
            format!("[{host}] ")
        } else {
            String::new()
        }
    }

    /// Writes lines, keeping progress bars intact. The one place (with
    /// the progress bars) where text reaches stderr.
    fn emit(&self, text: &str) {
        let text = terminal_safe(text);
        let write = || {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(text.as_bytes());
            let _ = err.flush();
        };
        match &self.bars {
            Some(bars) => {
                let bars = bars.lock().unwrap_or_else(|e| e.into_inner());
                bars.multi.suspend(write);
            }
            None => write(),
        }
    }

    /// Whether lines of `level` are shown.
    pub fn enabled(&self, level: Level) -> bool {
        level.filter() <= self.min
    }

    /// A stream line (several for a multi-line text).
    pub fn line(&self, host: &str, level: Level, text: &str) {
        if !self.enabled(level) {
            return;
        }
        let prefix = format!("{}{}: ", self.prefix(host), level.word());
        let mut out = String::with_capacity(text.len() + prefix.len() + 1);
        let text = text.trim_end_matches(['\r', '\n']);
        for line in text.split('\n') {
            out.push_str(&prefix);
            out.push_str(line.trim_end_matches('\r'));
            out.push('\n');
        }
        self.emit(&out);
    }

    /// psrp's own message (errors, summary): always shown.
    pub fn psrp(&self, host: &str, text: &str) {
        let prefix = format!("psrp: {}", self.prefix(host));
        let mut out = String::new();
        for line in text.trim_end().split('\n') {
            out.push_str(&prefix);
            // Windows fault messages end their lines with CRLF.
            out.push_str(line.trim_end_matches('\r'));
            out.push('\n');
        }
        self.emit(&out);
    }

    /// An error record, PowerShell style with category, error id and target.
    pub fn error_record(&self, host: &str, record: &ErrorRecord) {
        if self.enabled(Level::Error) {
            self.line(host, Level::Error, &record.formatted());
        }
    }

    /// A warning, verbose or debug record.
    pub fn informational(&self, host: &str, level: Level, record: &InformationalRecord) {
        self.line(host, level, &record.message);
    }

    /// An information record (Write-Information, Write-Host).
    pub fn information(&self, host: &str, record: &InformationRecord) {
        self.line(host, Level::Information, &record.text());
    }

    /// A progress record: a bar on a terminal, else a line (repeats dropped).
    pub fn progress(&self, host: &str, record: &ProgressRecord) {
        if !self.enabled(Level::Progress) {
            return;
        }
        let key = (host.to_owned(), record.activity_id);
        let completed = record.record_type == ProgressRecordType::Completed;
        if let Some(bars) = &self.bars {
            let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
            if completed {
                if let Some(bar) = bars.bars.remove(&key) {
                    bar.finish_and_clear();
                }
                return;
            }
            let prefix = terminal_safe(&self.prefix(host)).into_owned();
            let Bars { multi, bars } = &mut *bars;
            let message = terminal_safe(&record.text(false)).into_owned();
            let position = u64::try_from(record.percent_complete.clamp(0, 100)).unwrap_or(0);
            match bars.get(&key) {
                Some(bar) => {
                    bar.set_message(message);
                    bar.set_position(position);
                }
                None => {
                    // Filled in before it is first drawn.
                    let bar = ProgressBar::hidden();
                    bar.set_style(
                        ProgressStyle::with_template("{prefix}{msg} [{bar:30}] {pos:>3}%")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    bar.set_length(100);
                    bar.set_prefix(prefix);
                    bar.set_message(message);
                    bar.set_position(position);
                    let bar = multi.add(bar);
                    // Drawn now, not at the first steady tick: a command that
                    // ends within 200 ms still shows its progress.
                    bar.tick();
                    bar.enable_steady_tick(Duration::from_millis(200));
                    bars.insert(key, bar);
                }
            }
            return;
        }
        let text = record.text(true);
        let mut last = self.last_progress.lock().unwrap_or_else(|e| e.into_inner());
        if last.get(&key) == Some(&text) {
            return;
        }
        last.insert(key, text.clone());
        drop(last);
        self.line(host, Level::Progress, &text);
    }

    /// Forgets a host that has finished: its progress bars (a command may
    /// end without completing them) and last progress lines, so a long
    /// fan-out does not keep them for every host until the end.
    pub fn host_done(&self, host: &str) {
        self.last_progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(h, _), _| h != host);
        if let Some(bars) = &self.bars {
            let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
            bars.bars.retain(|(h, _), bar| {
                if h == host {
                    bar.finish_and_clear();
                }
                h != host
            });
        }
    }

    /// Removes any progress bars (before the summary and exit).
    pub fn clear_progress(&self) {
        if let Some(bars) = &self.bars {
            let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
            for (_, bar) in bars.bars.drain() {
                bar.finish_and_clear();
            }
        }
    }
}

/// Whether `c` is a control character a terminal may act on: C0 other than
/// tab and newline, DEL, C1.
fn is_control(c: char) -> bool {
    matches!(c, '\0'..='\x08' | '\x0b'..='\x1f' | '\x7f'..='\u{9f}')
}

/// `text` with every control character but newline and tab shown as
/// `\xHH` (ESC as `\x1b`, CSI as `\x9b`): a server cannot move the
/// cursor, clear the screen, retitle the window or overwrite earlier lines
/// (such as psrp's warnings) through what it sends. A backslash is left as
/// it is (Windows paths), so `\x1b` may also be literal text.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_control(c) {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_filter_from_most_severe() {
        let l = Logger::new(LogLevel::Warning, false);
        assert!(l.enabled(Level::Error) && l.enabled(Level::Warning));
        assert!(!l.enabled(Level::Information) && !l.enabled(Level::Debug));
        let none = Logger::new(LogLevel::None, false);
        assert!(!none.enabled(Level::Error));
        assert!(Logger::new(LogLevel::Debug, true).enabled(Level::Debug));
    }

    #[test]
    fn control_characters_are_shown_not_sent() {
        assert!(matches!(
            terminal_safe("plain C:\\x text"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            terminal_safe("a\u{1b}[2Jb\u{1b}]0;title\u{7}c"),
            "a\\x1b[2Jb\\x1b]0;title\\x07c"
        );
        // Newline and tab stay; CR, NUL, DEL and C1 (CSI, OSC) do not.
        assert_eq!(
            terminal_safe("l1\n\tl2\r\0\u{7f}\u{9b}2J\u{9d}x\u{a0}é"),
            "l1\n\tl2\\x0d\\x00\\x7f\\x9b2J\\x9dx\u{a0}é"
        );
        let bad: String = (0u32..0x100).filter_map(char::from_u32).collect();
        let safe = terminal_safe(&bad);
        assert!(!safe.chars().any(is_control), "{safe:?}");
    }
}
