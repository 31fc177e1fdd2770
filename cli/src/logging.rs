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
use psrp_core::clixml::PsValue;
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
            self.line(host, Level::Error, &format_error_record(record));
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
            let message = terminal_safe(&progress_text(record, false)).into_owned();
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
                    bar.enable_steady_tick(Duration::from_millis(200));
                    bars.insert(key, bar);
                }
            }
            return;
        }
        let text = progress_text(record, true);
        let mut last = self.last_progress.lock().unwrap_or_else(|e| e.into_inner());
        if last.get(&key) == Some(&text) {
            return;
        }
        last.insert(key, text.clone());
        drop(last);
        self.line(host, Level::Progress, &text);
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

/// `Activity: Status (45%) current operation, 10s left`.
fn progress_text(record: &ProgressRecord, with_percent: bool) -> String {
    let mut s = record.activity.trim().to_owned();
    let status = record.status_description.trim();
    if !status.is_empty() {
        s.push_str(": ");
        s.push_str(status);
    }
    if record.record_type == ProgressRecordType::Completed {
        s.push_str(" (completed)");
        return s;
    }
    if with_percent && record.percent_complete >= 0 {
        s.push_str(&format!(" ({}%)", record.percent_complete));
    }
    if let Some(op) = record.current_operation.as_deref().map(str::trim) {
        if !op.is_empty() {
            s.push_str(", ");
            s.push_str(op);
        }
    }
    if record.seconds_remaining >= 0 {
        s.push_str(&format!(", {}s left", record.seconds_remaining));
    }
    s
}

/// A short text for a target object: strings and numbers as themselves,
/// objects as their ToString.
fn target_text(v: &PsValue) -> Option<String> {
    match v {
        PsValue::Null => None,
        PsValue::Object(o) => o
            .to_string
            .clone()
            .or_else(|| Some(psrp_core::clixml::to_json(v).to_string())),
        other => match psrp_core::clixml::to_json(other) {
            serde_json::Value::String(s) => Some(s),
            j => Some(j.to_string()),
        },
    }
}

/// The text PowerShell prints for an error record:
///
/// ```text
/// Get-Item : Cannot find path 'C:\x' because it does not exist.
///     + CategoryInfo          : ObjectNotFound: (C:\x:String) [Get-Item], ItemNotFoundException
///     + FullyQualifiedErrorId : PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand
///     + TargetObject          : C:\x
/// ```
pub fn format_error_record(record: &ErrorRecord) -> String {
    let mut s = String::new();
    let command = record
        .invocation_info
        .as_ref()
        .and_then(|i| i.my_command.as_deref().or(i.invocation_name.as_deref()))
        .filter(|c| !c.is_empty() && !c.contains('\n'))
        .or(record
            .category
            .activity
            .as_deref()
            .filter(|a| !a.is_empty()));
    if let Some(c) = command {
        s.push_str(c);
        s.push_str(" : ");
    }
    let message = if record.message.is_empty() {
        record.exception_message()
    } else {
        &record.message
    };
    s.push_str(message.trim_end());
    if let Some(pos) = record
        .invocation_info
        .as_ref()
        .and_then(|i| i.position_message.as_deref())
        .filter(|p| !p.trim().is_empty())
    {
        s.push('\n');
        s.push_str(pos.trim_end());
    }
    s.push_str("\n    + CategoryInfo          : ");
    s.push_str(&record.category.display_line());
    if let Some(id) = &record.fully_qualified_error_id {
        s.push_str("\n    + FullyQualifiedErrorId : ");
        s.push_str(id);
    }
    if let Some(t) = record.target_object.as_ref().and_then(target_text) {
        s.push_str("\n    + TargetObject          : ");
        s.push_str(&t);
    }
    if let Some(a) = record
        .recommended_action
        .as_deref()
        .filter(|a| !a.is_empty())
    {
        s.push_str("\n    + RecommendedAction     : ");
        s.push_str(a);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use psrp_core::message::ErrorCategory;

    #[test]
    fn error_record_text_has_category_id_and_target() {
        let mut r = ErrorRecord::new(
            "Cannot find path 'C:\\x' because it does not exist.",
            "System.Management.Automation.ItemNotFoundException",
            "PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand",
            ErrorCategory::ObjectNotFound,
        );
        r.target_object = Some(PsValue::from("C:\\x"));
        r.category.activity = Some("Get-Item".into());
        let text = format_error_record(&r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Get-Item : Cannot find path 'C:\\x' because it does not exist."
        );
        assert!(lines[1].contains("ObjectNotFound") && lines[1].contains("ItemNotFoundException"));
        assert!(lines[2].ends_with(": PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand"));
        assert!(lines[3].ends_with(": C:\\x"));
    }

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

    #[test]
    fn progress_lines_read_well() {
        let r = ProgressRecord {
            activity: "Copying".into(),
            activity_id: 1,
            status_description: "file 3 of 4".into(),
            current_operation: Some("C:\\a".into()),
            parent_activity_id: -1,
            percent_complete: 75,
            record_type: ProgressRecordType::Processing,
            seconds_remaining: -1,
        };
        assert_eq!(progress_text(&r, true), "Copying: file 3 of 4 (75%), C:\\a");
    }
}
