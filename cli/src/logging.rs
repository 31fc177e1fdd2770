//! PowerShell streams (and psrp's own messages) on stderr as log lines:
//! `[host] LEVEL: text`, the host tag only with several hosts. Multi-line
//! texts get the prefix on every line, so that `grep ERROR:` finds a whole
//! error record. Progress is a progress bar when stderr is a terminal and
//! log lines otherwise.

use std::collections::HashMap;
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

    /// Writes lines, keeping progress bars intact.
    fn emit(&self, text: &str) {
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
            out.push_str(line);
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
            let prefix = self.prefix(host);
            let Bars { multi, bars } = &mut *bars;
            let message = record.text(false);
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
        let text = record.text(true);
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
}
