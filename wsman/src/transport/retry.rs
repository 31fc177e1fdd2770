//! Reconnection after a broken connection: the policy (how many retries,
//! how long between them), which failures are transient, and the event a
//! caller is told about on every retry.
//!
//! A retry always goes out on a new TCP connection with a new
//! authentication (and, over HTTP, new encryption keys and sequence
//! numbers): [`super::Connection`] never reuses a connection whose exchange
//! failed. What may be resent safely depends on the operation; see
//! [`crate::WsmanClient::receive_sequenced`] and [`crate::WsmanClient::send`].

use crate::error::Error;
use std::sync::Arc;
use std::time::Duration;

/// How [`crate::WsmanClient`] retries Receive, Send and Signal after the
/// connection broke (reset, closed, timed out, cut in the middle of a
/// response, or an HTTP 5xx answer without a WS-Man fault, as a proxy or
/// load balancer sends).
///
/// Retry `n` (1-based) waits `backoff * 2^(n-1)`, at most `max_backoff`.
/// The defaults, 5 retries from 1 s (1, 2, 4, 8, 16 s: about 31 s of
/// waiting at most), ride out a restarted proxy or a re-routed network
/// without hiding a server that is gone.
///
/// ```
/// use std::time::Duration;
/// use wsman::ReconnectPolicy;
///
/// let p = ReconnectPolicy::default();
/// assert_eq!(p.retries, 5);
/// assert_eq!(p.delay(1), Duration::from_secs(1));
/// assert_eq!(p.delay(5), Duration::from_secs(16));
/// assert_eq!(ReconnectPolicy::never().retries, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// Retries after the first attempt (0: fail at the first broken connection).
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            retries: 5,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl ReconnectPolicy {
    /// `retries` retries starting at `backoff` (longest wait 30 s).
    pub fn new(retries: u32, backoff: Duration) -> Self {
        ReconnectPolicy {
            retries,
            backoff,
            ..Self::default()
        }
    }

    /// No retries.
    pub fn never() -> Self {
        Self::new(0, Duration::ZERO)
    }

    /// The wait before retry `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// One retry about to happen, for [`ReconnectHook`] (the `psrp` CLI prints
/// it as one line on stderr). Holds no secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectEvent {
    /// The endpoint.
    pub endpoint: String,
    /// The operation being retried: `Receive`, `Send` or `Signal`.
    pub action: String,
    /// This retry's number, from 1.
    pub attempt: u32,
    /// The most retries allowed.
    pub retries: u32,
    /// The wait before the retry.
    pub delay: Duration,
    /// What broke.
    pub error: String,
    /// A Receive resent to a server that has not shown it keeps the last
    /// response for a resent Receive (no `SequenceId` echoed): output the
    /// server sent in the response that was cut is lost.
    pub output_may_be_lost: bool,
}

impl std::fmt::Display for ReconnectEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connection to {} lost during {} ({}); reconnecting in {:.1}s (retry {} of {})",
            self.endpoint,
            self.action,
            self.error,
            self.delay.as_secs_f64(),
            self.attempt,
            self.retries
        )?;
        if self.output_may_be_lost {
            f.write_str("; the server does not acknowledge Receive sequence ids, so output in the lost response may be missing")?;
        }
        Ok(())
    }
}

/// A function told about every retry: [`crate::WsmanConfig::on_reconnect`].
/// It runs on the task that retries, so it should be quick (log, count).
#[derive(Clone)]
pub struct ReconnectHook(Arc<dyn Fn(&ReconnectEvent) + Send + Sync>);

impl ReconnectHook {
    /// Wraps a function.
    pub fn new(f: impl Fn(&ReconnectEvent) + Send + Sync + 'static) -> Self {
        ReconnectHook(Arc::new(f))
    }

    /// Calls the function.
    pub fn call(&self, event: &ReconnectEvent) {
        (self.0)(event)
    }
}

impl std::fmt::Debug for ReconnectHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReconnectHook(..)")
    }
}

/// Whether `e` is a broken connection that a new one may cure: the
/// connection failed, was reset or closed, timed out, or the response was
/// cut; or an HTTP 5xx without a WS-Man fault (a proxy or load balancer).
/// Not: authentication, TLS, faults, bad or oversized responses, broken
/// encryption (a server or path that answers wrongly answers wrongly again).
pub(crate) fn is_transient(e: &Error) -> bool {
    match e {
        Error::Http { .. } => true,
        Error::HttpStatus { status, .. } => (500..600).contains(status),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = ReconnectPolicy::new(10, Duration::from_millis(500));
        let d: Vec<_> = (1..=8).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(d, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(p.delay(200), Duration::from_secs(30));
        assert_eq!(ReconnectPolicy::never().delay(1), Duration::ZERO);
    }

    #[test]
    fn transient_errors() {
        let http = Error::Http {
            endpoint: "e".into(),
            reason: "connection reset".into(),
            timed_out: false,
        };
        assert!(is_transient(&http));
        let status = |status| Error::HttpStatus {
            endpoint: "e".into(),
            status,
            body: String::new(),
        };
        assert!(is_transient(&status(502)));
        assert!(is_transient(&status(503)));
        assert!(!is_transient(&status(404)));
        assert!(!is_transient(&Error::Auth {
            endpoint: "e".into(),
            reason: "no".into()
        }));
    }

    #[test]
    fn event_text() {
        let e = ReconnectEvent {
            endpoint: "http://h:5985/wsman".into(),
            action: "Receive".into(),
            attempt: 2,
            retries: 5,
            delay: Duration::from_millis(1500),
            error: "connection reset".into(),
            output_may_be_lost: false,
        };
        assert_eq!(
            e.to_string(),
            "connection to http://h:5985/wsman lost during Receive (connection reset); reconnecting in 1.5s (retry 2 of 5)"
        );
    }
}
