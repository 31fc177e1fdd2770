//! Clean-up that outlives its caller: a shell deleted after its pool (or an
//! abandoned open) was dropped runs in a task nobody awaits.
//! [`CleanupTracker`] counts the shells not yet deleted, so that a program
//! can wait for those deletes before its runtime stops (a runtime that stops
//! cancels them, and the shells stay on the server until their idle
//! timeout).

use std::sync::Arc;

use tokio::sync::watch;

/// Counts the shells of the pools opened with it that may still exist on
/// a server: from the moment the WS-Man Create goes out until the shell is
/// deleted by [`super::RunspacePool::close`], or, after a drop, by the
/// background delete (or that delete failed or ran out of time).
///
/// Give the same tracker to every pool (with
/// [`super::PoolOptions::cleanup_tracker`]) and, before the runtime stops,
/// wait for it, bounded:
///
/// ```no_run
/// use std::time::Duration;
/// use psrp_core::client::{CleanupTracker, Command, ConnectionOptions, PoolOptions, RunspacePool};
///
/// # async fn run() -> Result<(), psrp_core::client::ClientError> {
/// let cleanup = CleanupTracker::new();
/// let options = PoolOptions::new().cleanup_tracker(cleanup.clone());
/// let open = RunspacePool::open_with(ConnectionOptions::new("win01"), options);
/// // Abandoning the open (a timeout, Ctrl-C) leaves the delete to a task...
/// let _ = tokio::time::timeout(Duration::from_secs(5), open).await;
/// // ...which this waits for.
/// if tokio::time::timeout(Duration::from_secs(30), cleanup.wait()).await.is_err() {
///     eprintln!("{} shells may be left on the server", cleanup.pending());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CleanupTracker {
    pending: Arc<watch::Sender<usize>>,
}

impl Default for CleanupTracker {
    fn default() -> Self {
        CleanupTracker::new()
    }
}

impl CleanupTracker {
    /// A tracker with nothing pending.
    pub fn new() -> Self {
        CleanupTracker {
            pending: Arc::new(watch::channel(0).0),
        }
    }

    /// Shells that may still exist: pools open or being opened, and
    /// deletes still running after a drop.
    pub fn pending(&self) -> usize {
        *self.pending.borrow()
    }

    /// Waits until nothing is pending: every pool opened with this tracker
    /// was closed or dropped and its shell deleted (or the delete failed or
    /// timed out, each delete being bounded by the pool's clean-up
    /// timeout). An open pool keeps this waiting: close or drop it first.
    pub async fn wait(&self) {
        let mut rx = self.pending.subscribe();
        // The sender lives in `self`: wait_for cannot fail.
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Counts one more shell until the token is dropped.
    pub(crate) fn token(&self) -> CleanupToken {
        self.pending.send_modify(|n| *n += 1);
        CleanupToken {
            pending: self.pending.clone(),
        }
    }
}

/// One shell counted by a [`CleanupTracker`]; dropping it uncounts it.
#[derive(Debug)]
pub(crate) struct CleanupToken {
    pending: Arc<watch::Sender<usize>>,
}

impl Drop for CleanupToken {
    fn drop(&mut self) {
        self.pending.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wait_returns_when_the_last_token_is_dropped() {
        let tracker = CleanupTracker::new();
        tokio::time::timeout(Duration::from_secs(1), tracker.wait())
            .await
            .expect("nothing pending: returns at once");
        let a = tracker.token();
        let b = tracker.clone().token();
        assert_eq!(tracker.pending(), 2);
        let waiter = tokio::spawn({
            let tracker = tracker.clone();
            async move { tracker.wait().await }
        });
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "one token is still held");
        // Dropped in a task, as a background delete does.
        tokio::spawn(async move { drop(b) });
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("wait ends")
            .unwrap();
        assert_eq!(tracker.pending(), 0);
    }
}
