//! Pipeline-side types of the sans-IO state machine: what a pipeline reports
//! (its events) and what the pool remembers about it. Pipelines are created
//! and driven through [`crate::pool::RunspacePool`], which owns the ObjectId
//! counter and the send queue they share.

use crate::clixml::PsValue;
use crate::host::HostCall;
use crate::message::{
    ErrorRecord, InformationRecord, InformationalRecord, PipelineState, ProgressRecord,
};

/// Something a pipeline reported.
#[derive(Clone, Debug, PartialEq)]
pub enum PipelineEvent {
    /// An output object.
    Output(PsValue),
    /// A non-terminating error record.
    Error(ErrorRecord),
    /// A warning record.
    Warning(InformationalRecord),
    /// A verbose record.
    Verbose(InformationalRecord),
    /// A debug record.
    Debug(InformationalRecord),
    /// An information record (protocol 2.3).
    Information(InformationRecord),
    /// A progress record.
    Progress(ProgressRecord),
    /// A host method call. When [`HostCall::needs_response`] is true the
    /// server waits for an answer: build it with [`HostCall::respond`],
    /// [`HostCall::respond_error`] or [`HostCall::respond_not_implemented`]
    /// and queue it with [`crate::pool::RunspacePool::host_response`].
    HostCall(HostCall),
    /// The pipeline changed state. `error` is the terminating error of a
    /// Failed pipeline (or the reason a Stopped one stopped).
    StateChanged {
        /// The new state.
        state: PipelineState,
        /// The error that came with it.
        error: Option<ErrorRecord>,
    },
}

impl PipelineEvent {
    /// Whether this event ends the pipeline (a terminal state change).
    pub fn is_terminal(&self) -> bool {
        matches!(self, PipelineEvent::StateChanged { state, .. } if state.is_terminal())
    }
}

/// What the pool tracks for one pipeline.
#[derive(Debug)]
pub(crate) struct PipelineEntry {
    pub state: PipelineState,
    pub no_input: bool,
    pub input_ended: bool,
    pub defragmenter: crate::fragment::Defragmenter,
}
