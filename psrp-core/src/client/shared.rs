//! State shared by a pool handle and its pipeline tasks: the WS-Man client
//! and shell, the sans-IO pool behind a lock, the send path, and the
//! clean-up that deletes the shell on every exit path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Semaphore;
use uuid::Uuid;
use wsman::{ReceiveResponse, Shell, WsmanClient};

use crate::host::HostCall;
use crate::pool::{PoolEvent, RunspacePool as CorePool, Target};

use super::cleanup::CleanupToken;
use super::error::ClientError;
use super::host::Host;
use super::secure::KeyState;

/// Upper-case text of an id, as PowerShell writes ShellId and CommandId.
pub(crate) fn id_text(id: Uuid) -> String {
    id.to_string().to_uppercase()
}

/// Deletes `shell` in a task on the current runtime, bounded by `timeout`.
/// Used where nobody can await (drops); logs when it cannot. `token`
/// keeps the shell counted by its [`super::CleanupTracker`] until the
/// delete ends.
pub(crate) fn spawn_delete(
    client: WsmanClient,
    shell: Shell,
    timeout: Duration,
    token: Option<CleanupToken>,
) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(
            shell_id = %shell.id,
            "runspace pool dropped outside a tokio runtime: its shell cannot be deleted \
             (call close().await); the server removes it after its idle timeout"
        );
        return;
    };
    handle.spawn(async move {
        let _counted = token;
        match tokio::time::timeout(timeout, client.delete_shell(&shell)).await {
            Ok(Ok(())) => tracing::debug!(shell_id = %shell.id, "shell deleted after drop"),
            Ok(Err(e)) if is_gone(&e) => {}
            // Unreachable server: nothing to do about it here.
            Ok(Err(e @ wsman::Error::Http { .. })) => {
                tracing::debug!(shell_id = %shell.id, "deleting the shell after drop: {e}")
            }
            Ok(Err(e)) => {
                tracing::warn!(shell_id = %shell.id, "deleting the shell after drop: {e}")
            }
            Err(_) => tracing::warn!(
                shell_id = %shell.id,
                "deleting the shell after drop did not finish within {timeout:?}"
            ),
        }
    });
}

/// Whether a Delete or Signal failed only because the shell or command is
/// already gone.
pub(crate) fn is_gone(e: &wsman::Error) -> bool {
    e.fault()
        .and_then(|f| f.code)
        .is_some_and(|c| c == wsman::fault::UNEXPECTED_SELECTORS_CODE)
}

/// Deletes a shell on drop unless disarmed: covers the time between
/// `Create` and the pool handle existing (a dropped `open` future). Holds
/// the shell's count in its tracker until the pool takes it over.
pub(crate) struct ShellGuard {
    pub(crate) client: WsmanClient,
    pub(crate) shell: Shell,
    pub(crate) timeout: Duration,
    pub(crate) armed: bool,
    pub(crate) token: Option<CleanupToken>,
}

impl Drop for ShellGuard {
    fn drop(&mut self) {
        if self.armed {
            spawn_delete(
                self.client.clone(),
                self.shell.clone(),
                self.timeout,
                self.token.take(),
            );
        }
    }
}

/// Time bounds and sizes the pool's tasks use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) event_buffer: usize,
    pub(crate) stop_timeout: Duration,
    pub(crate) cleanup_timeout: Duration,
    pub(crate) session_key_timeout: Duration,
}

pub(crate) struct Shared {
    pub(crate) client: WsmanClient,
    pub(crate) shell: Shell,
    pub(crate) configuration: String,
    core: Mutex<CorePool>,
    /// Held while payloads go out, so fragments of one target stay in order
    /// and a pipeline's data never goes out before its Command.
    pub(crate) send_lock: tokio::sync::Mutex<()>,
    /// WS-Man CommandId per pipeline (servers may choose their own).
    command_ids: Mutex<HashMap<Uuid, String>>,
    pub(crate) max_payload: usize,
    pub(crate) host: Arc<dyn Host>,
    pub(crate) runspaces: Arc<Semaphore>,
    closed: AtomicBool,
    pub(crate) limits: Limits,
    /// Counts the shell in its tracker until it is deleted.
    cleanup: Mutex<Option<CleanupToken>>,
    /// False while the shell is disconnected: receive tasks wait for a
    /// reconnect instead of polling.
    pub(crate) connected: tokio::sync::watch::Sender<bool>,
    /// The SecureString session key exchange (`super::secure`).
    pub(crate) keys: Mutex<KeyState>,
    /// Held by whoever runs a Receive on the pool (not on a pipeline).
    pub(crate) pool_receive: tokio::sync::Mutex<()>,
    /// A task watches the pool's messages.
    pub(crate) pool_watch: AtomicBool,
    /// Held (shared) by a command's release while its Signal is on the
    /// wire; the Delete waits for it, so no Signal follows the Delete.
    releasing: tokio::sync::RwLock<()>,
    /// Commands that ended on their own and are not released yet: released
    /// before the next Command or Disconnect; a Delete of the shell ends
    /// them (MS-WSMV 3.1.4.4.1, MS-PSRP 3.2.1.2.2), so closing drops them.
    finished: Mutex<Vec<String>>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        client: WsmanClient,
        shell: Shell,
        configuration: String,
        core: CorePool,
        max_payload: usize,
        host: Arc<dyn Host>,
        max_runspaces: usize,
        limits: Limits,
        cleanup: Option<CleanupToken>,
    ) -> Self {
        Shared {
            client,
            shell,
            configuration,
            core: Mutex::new(core),
            send_lock: tokio::sync::Mutex::new(()),
            command_ids: Mutex::new(HashMap::new()),
            max_payload,
            host,
            runspaces: Arc::new(Semaphore::new(max_runspaces.max(1))),
            closed: AtomicBool::new(false),
            limits,
            cleanup: Mutex::new(cleanup),
            connected: tokio::sync::watch::channel(true).0,
            keys: Mutex::new(KeyState::default()),
            pool_receive: tokio::sync::Mutex::new(()),
            pool_watch: AtomicBool::new(false),
            releasing: tokio::sync::RwLock::new(()),
            finished: Mutex::new(Vec::new()),
        }
    }

    /// Whether the shell is disconnected (see `RunspacePool::disconnect`).
    pub(crate) fn is_disconnected(&self) -> bool {
        !*self.connected.borrow()
    }

    /// Waits until the shell is connected (at once when it is).
    pub(crate) async fn wait_connected(&self) {
        let mut rx = self.connected.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Leaves the shell to the server: this handle will not delete it (a
    /// detached job, picked up later by Connect), and further operations
    /// fail with [`ClientError::Closed`].
    pub(crate) fn leave(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.runspaces.close();
        self.core().close();
        drop(
            self.cleanup
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
    }

    /// The sans-IO pool. Never held across an await.
    pub(crate) fn core(&self) -> MutexGuard<'_, CorePool> {
        // A panic while holding it leaves the state as it was; go on.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// A transport error, or [`ClientError::Closed`] when the pool was
    /// closed meanwhile (which is why the operation failed).
    pub(crate) fn error(&self, operation: &'static str, e: wsman::Error) -> ClientError {
        if self.is_closed() {
            ClientError::Closed
        } else {
            ClientError::wsman(operation, e)
        }
    }

    pub(crate) fn set_command_id(&self, id: Uuid, command_id: String) {
        self.command_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, command_id);
    }

    fn command_id(&self, id: Uuid) -> String {
        self.command_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id_text(id))
    }

    /// Whether a pipeline of this pool is running (or being created).
    pub(crate) fn has_pipelines(&self) -> bool {
        !self
            .command_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Forgets a pipeline (after its command was released).
    pub(crate) fn forget_pipeline(&self, id: Uuid) {
        let _ = self.core().close_pipeline(id);
        self.command_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Feeds the `stdout` streams of a Receive response to the state
    /// machine and returns the events.
    pub(crate) fn feed(
        &self,
        target: Target,
        response: &ReceiveResponse,
        operation: &'static str,
    ) -> Result<Vec<PoolEvent>, ClientError> {
        let mut core = self.core();
        // Stream by stream: no copy into one buffer first.
        for stream in response.streams.iter().filter(|s| s.name == "stdout") {
            core.receive(target, &stream.data)
                .map_err(|e| ClientError::pool(operation, e))?;
        }
        let mut events = Vec::new();
        let mut first_error = None;
        // Drain everything even after an error, so no message is left for
        // another target's caller to find.
        loop {
            match core.next_event() {
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(ClientError::pool(operation, e)),
            None => Ok(events),
        }
    }

    /// Sends everything queued. Call with `send_lock` held.
    pub(crate) async fn flush_locked(&self) -> Result<(), ClientError> {
        loop {
            let payload = self
                .core()
                .data_to_send(self.max_payload)
                .map_err(|e| ClientError::pool("sending PSRP data", e))?;
            let Some(p) = payload else {
                return Ok(());
            };
            let command_id = p.command_id().map(|id| self.command_id(id));
            self.client
                .send(
                    &self.shell,
                    command_id.as_deref(),
                    p.stream.name(),
                    &p.data,
                    false,
                )
                .await
                .map_err(|e| self.error("sending PSRP data (WS-Man Send)", e))?;
        }
    }

    /// Sends everything queued.
    pub(crate) async fn flush(&self) -> Result<(), ClientError> {
        let _sending = self.send_lock.lock().await;
        self.flush_locked().await
    }

    /// Answers a host call with the pool's host and sends the answer.
    pub(crate) async fn answer_host_call(
        &self,
        target: Target,
        call: &HostCall,
    ) -> Result<(), ClientError> {
        // The host may wait for a user at a terminal: not on the runtime.
        let host = self.host.clone();
        let asked = call.clone();
        let answered = tokio::task::spawn_blocking(move || host.respond(&asked).map_err(Box::new))
            .await
            .map_err(|e| ClientError::UnexpectedResponse {
                operation: "answering a host call",
                detail: format!("the host's answer was lost: {e}"),
            })?;
        let response = match answered {
            Ok(Some(mut value)) => {
                if value.contains_secure_string(&mut |s| !s.is_sealed()) {
                    // A secret answer: encrypted with the session key,
                    // exchanged first if needed (boxed: the exchange may
                    // answer a pool host call itself).
                    let key = Box::pin(self.session_key()).await?;
                    value
                        .visit_secure_strings_mut(&mut |s: &mut crate::clixml::SecureString| {
                            s.seal(&key)
                        })
                        .map_err(|source| ClientError::SessionKey {
                            operation: "encrypting a SecureString host answer",
                            source,
                        })?;
                }
                call.respond(Some(value))
            }
            Ok(None) => call.respond(None),
            Err(record) => call.respond_error(*record),
        };
        let _sending = self.send_lock.lock().await;
        self.core()
            .host_response(target, response)
            .map_err(|e| ClientError::pool("answering a host call", e))?;
        self.flush_locked().await
    }

    /// Leaves a command that ended on its own to be released later (see
    /// `finished`).
    pub(crate) fn defer_release(&self, command_id: String) {
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(command_id);
    }

    /// Releases the commands that ended on their own since the last time.
    pub(crate) async fn release_finished(&self) {
        let ids = std::mem::take(&mut *self.finished.lock().unwrap_or_else(|e| e.into_inner()));
        for id in ids {
            self.release_command(&id).await;
        }
    }

    /// Releases a finished (or abandoned) command: Signal terminate, bounded.
    pub(crate) async fn release_command(&self, command_id: &str) {
        let _releasing = self.releasing.read().await;
        if self.is_closed() {
            return;
        }
        let signal = self
            .client
            .signal(&self.shell, command_id, wsman::shell::signal::TERMINATE);
        match tokio::time::timeout(self.limits.cleanup_timeout, signal).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if is_gone(&e) || self.is_closed() => {}
            Ok(Err(e)) => tracing::warn!(command_id, "releasing the command: {e}"),
            Err(_) => tracing::warn!(
                command_id,
                "releasing the command did not finish within {:?}",
                self.limits.cleanup_timeout
            ),
        }
    }

    /// Deletes the shell (once), bounded; later pool operations fail with
    /// [`ClientError::Closed`].
    pub(crate) async fn shutdown(&self) -> Result<(), ClientError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.runspaces.close();
        // A release already sending its Signal goes first (bounded); later
        // ones see the pool closed.
        let _ = tokio::time::timeout(self.limits.cleanup_timeout, self.releasing.write()).await;
        // The Delete ends them.
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let delete = self.client.delete_shell(&self.shell);
        let result = tokio::time::timeout(self.limits.cleanup_timeout, delete).await;
        self.core().close();
        // Deleted, or given up on: no longer pending.
        drop(
            self.cleanup
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if is_gone(&e) => Ok(()),
            Ok(Err(e)) => Err(ClientError::wsman(
                "closing the runspace pool (WS-Man Delete)",
                e,
            )),
            Err(_) => Err(ClientError::Timeout {
                what: "closing the runspace pool (WS-Man Delete)",
                after: self.limits.cleanup_timeout,
            }),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle (pool, invocation or task) is gone without close().
        if !self.closed.swap(true, Ordering::SeqCst) {
            let token = self
                .cleanup
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            spawn_delete(
                self.client.clone(),
                self.shell.clone(),
                self.limits.cleanup_timeout,
                token,
            );
        }
    }
}
