//! A running pipeline: a task receives its output and passes events
//! through a bounded channel (so a slow consumer stops the Receives), and a
//! handle reads them, collects them, or stops the pipeline.

use std::sync::Arc;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use uuid::Uuid;
use wsman::{ReceiveOutcome, ReceiveResponse};

use crate::pipeline::PipelineEvent;
use crate::pool::{PoolEvent, Target};

use super::error::ClientError;
use super::events::{Completion, Event, InvocationResult};
use super::shared::Shared;

/// What the receive task passes to the handle.
enum Item {
    Event(Event),
    Done(Box<Completion>),
    Failed(ClientError),
}

/// A running pipeline. Read its events with [`Invocation::next`] (or all
/// at once with [`Invocation::collect`]); stop it with
/// [`Invocation::stop`], or with a [`StopHandle`] from another task (a
/// Ctrl-C handler).
///
/// Events wait in a bounded buffer ([`super::PoolOptions::event_buffer`]);
/// when it is full, no further output is requested from the server until
/// the consumer catches up. Dropping the handle releases the command on
/// the server (the pipeline is stopped if still running).
#[derive(Debug)]
pub struct Invocation {
    id: Uuid,
    command: String,
    rx: mpsc::Receiver<Item>,
    completion: Option<Completion>,
    ended: bool,
    stop: StopHandle,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Event(e) => f.debug_tuple("Event").field(&e.stream()).finish(),
            Item::Done(c) => f.debug_tuple("Done").field(&c.state).finish(),
            Item::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl Invocation {
    /// The pipeline id (also its WS-Man CommandId).
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// What runs, as text.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The next event; `Ok(None)` once the pipeline has ended (then
    /// [`Invocation::completion`] says how). An error ends the invocation.
    pub async fn next(&mut self) -> Result<Option<Event>, ClientError> {
        if self.ended {
            return Ok(None);
        }
        match self.rx.recv().await {
            Some(Item::Event(e)) => Ok(Some(e)),
            Some(Item::Done(c)) => {
                self.completion = Some(*c);
                self.ended = true;
                Ok(None)
            }
            Some(Item::Failed(e)) => {
                self.ended = true;
                Err(e)
            }
            None => {
                self.ended = true;
                Err(ClientError::UnexpectedResponse {
                    operation: "receiving pipeline output",
                    detail: "the receive task ended without a result (was the runtime shut down?)"
                        .to_owned(),
                })
            }
        }
    }

    /// How the pipeline ended, once [`Invocation::next`] returned `Ok(None)`.
    pub fn completion(&self) -> Option<&Completion> {
        self.completion.as_ref()
    }

    /// Reads every remaining event and files it by stream.
    pub async fn collect(mut self) -> Result<InvocationResult, ClientError> {
        let mut result = InvocationResult::new(self.command.clone());
        while let Some(event) = self.next().await? {
            result.push(event);
        }
        if let Some(c) = self.completion.take() {
            result.finish(c);
        }
        Ok(result)
    }

    /// A handle that can stop this pipeline from another task.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Asks the server to stop the pipeline ([`StopHandle::request_stop`])
    /// and returns; keep reading events: the pipeline then ends Stopped.
    /// (To wait for the end from another task, use [`StopHandle::stop`].)
    pub async fn stop(&self) -> Result<(), ClientError> {
        self.stop.request_stop().await
    }
}

/// Stops a running pipeline; cheap to clone and usable from any task (a
/// Ctrl-C handler, a timeout).
#[derive(Clone)]
pub struct StopHandle {
    shared: Arc<Shared>,
    id: Uuid,
    command_id: String,
    done: watch::Receiver<bool>,
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle")
            .field("pipeline", &self.id)
            .field("done", &*self.done.borrow())
            .finish()
    }
}

impl StopHandle {
    /// Whether the pipeline has ended and its command was released (or,
    /// when it completed or failed on its own, left to be released by the
    /// pool's next Command, Disconnect or Delete).
    pub fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// Asks the server to stop the pipeline (WS-Man Signal
    /// `powershell/signal/crtl_c`) and returns once the server took the
    /// request; the pipeline then ends Stopped (its output so far is still
    /// delivered). Does nothing for an ended pipeline.
    pub async fn request_stop(&self) -> Result<(), ClientError> {
        if self.is_done() {
            return Ok(());
        }
        if self.shared.is_closed() {
            return Err(ClientError::Closed);
        }
        let _ = self.shared.core().begin_stop(self.id);
        let signal = self.shared.client.signal(
            &self.shared.shell,
            &self.command_id,
            wsman::shell::signal::PS_CTRL_C,
        );
        match signal.await {
            Ok(()) => Ok(()),
            // It ended meanwhile (its command may already be released:
            // the server no longer knows it).
            Err(e) if self.is_done() || super::shared::is_gone(&e) => Ok(()),
            Err(e) => Err(self
                .shared
                .error("stopping the pipeline (WS-Man Signal)", e)),
        }
    }

    /// [`StopHandle::request_stop`], then waits until the pipeline has
    /// ended and its command was released, at most
    /// [`super::PoolOptions::stop_timeout`]; meanwhile the invocation's
    /// consumer must keep reading events. Past the bound the command is
    /// released by force (Signal terminate) and the result is
    /// [`ClientError::Timeout`].
    pub async fn stop(&self) -> Result<(), ClientError> {
        self.request_stop().await?;
        let bound = self.shared.limits.stop_timeout;
        let mut done = self.done.clone();
        // An Err from wait_for means the task is gone: ended as well.
        let ended = tokio::time::timeout(bound, done.wait_for(|d| *d))
            .await
            .is_ok();
        if ended {
            return Ok(());
        }
        self.shared.release_command(&self.command_id).await;
        Err(ClientError::Timeout {
            what: "stopping the pipeline",
            after: bound,
        })
    }
}

/// How long a pipeline's last Receive, issued before its final state was
/// decoded, may take to come back before it is abandoned.
const SPECULATIVE_RECEIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Starts the receive task of a pipeline whose Command went through.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    id: Uuid,
    command_id: String,
    command: String,
    permit: OwnedSemaphorePermit,
) -> Invocation {
    let (tx, rx) = mpsc::channel(shared.limits.event_buffer.max(1));
    let (done_tx, done_rx) = watch::channel(false);
    let stop = StopHandle {
        shared: shared.clone(),
        id,
        command_id: command_id.clone(),
        done: done_rx,
    };
    tokio::spawn(drive(shared, id, command_id, tx, done_tx, permit));
    Invocation {
        id,
        command,
        rx,
        completion: None,
        ended: false,
        stop,
    }
}

async fn drive(
    shared: Arc<Shared>,
    id: Uuid,
    command_id: String,
    tx: mpsc::Sender<Item>,
    done: watch::Sender<bool>,
    permit: OwnedSemaphorePermit,
) {
    // Receives run in their own task, one response ahead of the decoding:
    // the next Receive (and its decryption) overlaps with decoding this
    // one. The channel between them holds one response, so a consumer that
    // does not read stops both.
    let (raw_tx, mut raw_rx) = mpsc::channel(1);
    let mut receiver = tokio::spawn(receive_responses(
        shared.clone(),
        command_id.clone(),
        raw_tx,
    ));
    let outcome = decode_loop(&shared, id, &mut raw_rx, &tx).await;
    // A Receive issued before the final state was decoded returns at once
    // (the command is done): let it finish, so its connection is reused.
    // One that does not is abandoned (its connection is then discarded).
    let normal_end = matches!(outcome, Ok(Some(_)));
    let receives_ended = normal_end
        && tokio::time::timeout(SPECULATIVE_RECEIVE_WAIT, &mut receiver)
            .await
            .is_ok();
    if !receives_ended {
        receiver.abort();
    }
    drop(raw_rx);
    // A pipeline that completed or failed on its own, with the server's
    // command Done and no Receive outstanding, has nothing running: its
    // release (Signal terminate) waits for the pool's next Command or
    // Disconnect, and a Delete of the shell makes it unneeded (one round
    // trip less for a pool that runs one pipeline). Anything else (stopped,
    // abandoned, failed on our side) is released before the end is
    // reported, so that nothing of it is left on the server.
    let ended_on_its_own = receives_ended
        && matches!(&outcome, Ok(Some(c)) if c.state != crate::message::PipelineState::Stopped);
    if ended_on_its_own {
        shared.defer_release(command_id);
    } else {
        shared.release_command(&command_id).await;
    }
    shared.forget_pipeline(id);
    let _ = done.send(true);
    drop(permit);
    match outcome {
        Ok(Some(completion)) => {
            let _ = tx.send(Item::Done(Box::new(completion))).await;
        }
        Ok(None) => tracing::debug!(pipeline = %id, "consumer gone; command released"),
        Err(e) => {
            let _ = tx.send(Item::Failed(e)).await;
        }
    }
}

/// Issues Receives for a command one after another and passes the
/// responses on, until the server reports the command done, an error, or
/// the decoding side is gone.
async fn receive_responses(
    shared: Arc<Shared>,
    command_id: String,
    out: mpsc::Sender<Result<ReceiveResponse, ClientError>>,
) {
    // Robust Receive: a Receive resent after a broken connection gets the
    // same response again from a server that keeps it.
    let mut sequence = wsman::ReceiveSequence::new();
    loop {
        // While the shell is disconnected, nothing is asked for: the server
        // buffers the output until `reconnect`.
        tokio::select! {
            _ = shared.wait_connected() => {}
            _ = out.closed() => return,
        }
        let received = tokio::select! {
            r = shared.client.receive_sequenced(&shared.shell, Some(&command_id), "stdout", &mut sequence) => r,
            _ = out.closed() => return,
        };
        match received {
            Ok(ReceiveOutcome::TimedOut) => {
                // The server was quiet for a whole operation timeout: it
                // may be waiting on a pool message (PUBLIC_KEY_REQUEST).
                shared.watch_pool();
                continue;
            }
            // The Receive pending when the shell was disconnected ends with
            // the disconnected fault (WinRM) or the connection: wait.
            Err(_) if shared.is_disconnected() => continue,
            Ok(ReceiveOutcome::Data(d)) => {
                let last = d.is_done();
                if out.send(Ok(d)).await.is_err() || last {
                    return;
                }
            }
            Err(e) => {
                let e = shared.error("receiving pipeline output (WS-Man Receive)", e);
                let _ = out.send(Err(e)).await;
                return;
            }
        }
    }
}

/// Decodes responses until the pipeline's final state. `Ok(None)`: the
/// consumer dropped its handle.
async fn decode_loop(
    shared: &Shared,
    id: Uuid,
    responses: &mut mpsc::Receiver<Result<ReceiveResponse, ClientError>>,
    tx: &mpsc::Sender<Item>,
) -> Result<Option<Completion>, ClientError> {
    loop {
        let received = tokio::select! {
            r = responses.recv() => r,
            _ = tx.closed() => return Ok(None),
        };
        let data = match received {
            Some(r) => r?,
            None => {
                return Err(ClientError::UnexpectedResponse {
                    operation: "receiving pipeline output",
                    detail: "the server reported the command done without a final pipeline state"
                        .to_owned(),
                })
            }
        };
        let events = shared.feed(Target::Pipeline(id), &data, "reading pipeline output")?;
        let mut completion = None;
        for event in events {
            let PoolEvent::Pipeline(pid, event) = event else {
                tracing::debug!(pipeline = %id, ?event, "pool event on a pipeline Receive ignored");
                continue;
            };
            if pid != id {
                continue;
            }
            let event = match event {
                PipelineEvent::StateChanged { state, error } => {
                    if state.is_terminal() {
                        completion = Some(Completion { state, error });
                    }
                    continue;
                }
                PipelineEvent::HostCall(call) => {
                    tracing::debug!(pipeline = %id, method = call.method.name(), "host call");
                    if call.needs_response() {
                        shared.answer_host_call(Target::Pipeline(id), &call).await?;
                    }
                    Event::HostCall(call)
                }
                PipelineEvent::Output(v)
                    if shared.exchange_pending() && v.contains_secure_string(&mut |_| true) =>
                {
                    // A SecureString that came before our ENCRYPTED_SESSION_KEY
                    // (the server asked for the key, then wrote it): the key
                    // first, so that RunspacePool::decrypt works on it.
                    shared.session_key().await?;
                    Event::Output(v)
                }
                other => match Event::from_pipeline(other) {
                    Some(e) => e,
                    None => continue,
                },
            };
            if tx.send(Item::Event(event)).await.is_err() {
                return Ok(None);
            }
        }
        if completion.is_some() {
            return Ok(completion);
        }
    }
}
