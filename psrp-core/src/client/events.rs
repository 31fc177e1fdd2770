//! What a pipeline produces: events as they arrive, and all of them
//! collected in an [`InvocationResult`].

use crate::clixml::{to_json_with, JsonOptions, PsValue};
use crate::host::HostCall;
use crate::message::{
    ErrorRecord, InformationRecord, InformationalRecord, PipelineState, ProgressRecord,
};
use crate::pipeline::PipelineEvent;

use super::error::ClientError;

/// One output object or stream record, in the order the server sent them.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// An output object (see [`crate::clixml::to_json`] for JSON).
    Output(PsValue),
    /// A non-terminating error record (boxed: records are large and
    /// rare, output objects small and many).
    Error(Box<ErrorRecord>),
    /// A warning.
    Warning(InformationalRecord),
    /// A verbose message.
    Verbose(InformationalRecord),
    /// A debug message (also what `Set-PSDebug -Trace` writes).
    Debug(InformationalRecord),
    /// An information record (`Write-Information`, and `Write-Host` on
    /// PowerShell 5 and later).
    Information(InformationRecord),
    /// A progress record.
    Progress(ProgressRecord),
    /// A host call; calls that needed an answer were already answered by
    /// the pool's [`Host`](super::Host).
    HostCall(HostCall),
}

impl Event {
    /// The stream's name: `output`, `error`, `warning`, `verbose`, `debug`,
    /// `information`, `progress` or `host`.
    pub fn stream(&self) -> &'static str {
        match self {
            Event::Output(_) => "output",
            Event::Error(_) => "error",
            Event::Warning(_) => "warning",
            Event::Verbose(_) => "verbose",
            Event::Debug(_) => "debug",
            Event::Information(_) => "information",
            Event::Progress(_) => "progress",
            Event::HostCall(_) => "host",
        }
    }

    /// The event for a non-terminal pipeline event (None for state changes).
    pub(crate) fn from_pipeline(e: PipelineEvent) -> Option<Event> {
        Some(match e {
            PipelineEvent::Output(v) => Event::Output(v),
            PipelineEvent::Error(r) => Event::Error(Box::new(r)),
            PipelineEvent::Warning(r) => Event::Warning(r),
            PipelineEvent::Verbose(r) => Event::Verbose(r),
            PipelineEvent::Debug(r) => Event::Debug(r),
            PipelineEvent::Information(r) => Event::Information(r),
            PipelineEvent::Progress(r) => Event::Progress(r),
            PipelineEvent::HostCall(c) => Event::HostCall(c),
            PipelineEvent::StateChanged { .. } => return None,
        })
    }
}

/// How a pipeline ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// Completed, Failed or Stopped.
    pub state: PipelineState,
    /// The terminating error (Failed), or why it stopped (Stopped).
    pub error: Option<ErrorRecord>,
}

/// Everything a pipeline produced, by stream, and how it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct InvocationResult {
    /// What was run, as text (for messages).
    pub command: String,
    /// Output objects.
    pub output: Vec<PsValue>,
    /// Non-terminating error records.
    pub errors: Vec<ErrorRecord>,
    /// Warnings.
    pub warnings: Vec<InformationalRecord>,
    /// Verbose messages.
    pub verbose: Vec<InformationalRecord>,
    /// Debug messages.
    pub debug: Vec<InformationalRecord>,
    /// Information records.
    pub information: Vec<InformationRecord>,
    /// Progress records.
    pub progress: Vec<ProgressRecord>,
    /// Host calls, in order.
    pub host_calls: Vec<HostCall>,
    /// The final state: Completed, Failed or Stopped.
    pub state: PipelineState,
    /// The terminating error of a Failed pipeline (or a Stopped one's reason).
    pub terminating_error: Option<ErrorRecord>,
}

impl InvocationResult {
    /// An empty result (state NotStarted), to fill with
    /// [`InvocationResult::push`] from a stream of events.
    pub fn new(command: impl Into<String>) -> Self {
        InvocationResult {
            command: command.into(),
            output: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            verbose: Vec::new(),
            debug: Vec::new(),
            information: Vec::new(),
            progress: Vec::new(),
            host_calls: Vec::new(),
            state: PipelineState::NotStarted,
            terminating_error: None,
        }
    }

    /// Files an event under its stream.
    pub fn push(&mut self, event: Event) {
        match event {
            Event::Output(v) => self.output.push(v),
            Event::Error(r) => self.errors.push(*r),
            Event::Warning(r) => self.warnings.push(r),
            Event::Verbose(r) => self.verbose.push(r),
            Event::Debug(r) => self.debug.push(r),
            Event::Information(r) => self.information.push(r),
            Event::Progress(r) => self.progress.push(r),
            Event::HostCall(c) => self.host_calls.push(c),
        }
    }

    /// Whether the pipeline completed (it may still have written errors).
    pub fn succeeded(&self) -> bool {
        self.state == PipelineState::Completed
    }

    /// PowerShell's `HadErrors`: error records were written, or the
    /// pipeline did not complete.
    pub fn had_errors(&self) -> bool {
        !self.errors.is_empty() || !self.succeeded()
    }

    /// The output objects as JSON (default [`JsonOptions`]).
    pub fn output_json(&self) -> Vec<serde_json::Value> {
        self.output_json_with(&JsonOptions::default())
    }

    /// The output objects as JSON with explicit options.
    pub fn output_json_with(&self, options: &JsonOptions) -> Vec<serde_json::Value> {
        self.output
            .iter()
            .map(|v| to_json_with(v, options))
            .collect()
    }

    /// `Ok(self)` when the pipeline completed, else
    /// [`ClientError::PipelineFailed`] with its terminating error.
    pub fn into_result(self) -> Result<Self, ClientError> {
        if self.succeeded() {
            Ok(self)
        } else {
            Err(ClientError::PipelineFailed {
                command: self.command,
                state: self.state,
                error: self.terminating_error.map(Box::new),
            })
        }
    }

    /// Records how the pipeline ended.
    pub fn finish(&mut self, completion: Completion) {
        self.state = completion.state;
        self.terminating_error = completion.error;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ErrorCategory;

    #[test]
    fn events_are_filed_by_stream_and_errors_count() {
        let mut r = InvocationResult::new("Get-Thing");
        r.push(Event::Output(PsValue::I32(1)));
        r.push(Event::Output(PsValue::from("two")));
        r.finish(Completion {
            state: PipelineState::Completed,
            error: None,
        });
        assert!(r.succeeded() && !r.had_errors());
        assert_eq!(
            r.output_json(),
            [serde_json::json!(1), serde_json::json!("two")]
        );
        r.push(Event::Error(Box::new(ErrorRecord::new(
            "nope",
            "System.Exception",
            "Nope",
            ErrorCategory::NotSpecified,
        ))));
        assert!(r.had_errors());
        assert!(r.clone().into_result().is_ok());
        r.finish(Completion {
            state: PipelineState::Failed,
            error: None,
        });
        let err = r.into_result().unwrap_err();
        assert_eq!(err.kind(), super::super::ErrorKind::PipelineFailed);
    }
}
