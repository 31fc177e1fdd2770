//! Receive payloads from a hostile server fed to an open runspace pool that
//! runs a pipeline: defragmenting, message parsing and the state
//! transitions, on the pool's stream and the pipeline's; host calls are read
//! as prompts and answered as a client's host does. Errors are fine; panics
//! are not.

#![no_main]

use libfuzzer_sys::fuzz_target;
use psrp_core::clixml::{PsValue, SecureString};
use psrp_core::command::{Command, CreatePipeline, PowerShell};
use psrp_core::fragment::{FragmentHeader, OutgoingMessage, FRAGMENT_HEADER_LEN};
use psrp_core::host::HostCall;
use psrp_core::message::{
    guid_from_dotnet_bytes, Destination, Message, RunspacePoolState, RunspacePoolStateMessage,
    SessionCapability,
};
use psrp_core::pipeline::PipelineEvent;
use psrp_core::pool::{PoolEvent, RunspacePool, RunspacePoolConfig, Target};
use psrp_core::prompt::{HostAnswer, HostPrompt};
use uuid::Uuid;

/// Ids taken from the first message header in the input (fragment header
/// 21 bytes, then destination and type), so that recorded streams used as
/// seeds reach the pool and their pipeline.
fn ids(data: &[u8]) -> (Uuid, Uuid) {
    let guid = |range: std::ops::Range<usize>| {
        data.get(range)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .map(guid_from_dotnet_bytes)
            .unwrap_or_default()
    };
    let pipeline = guid(45..61);
    (
        guid(29..45),
        if pipeline.is_nil() {
            Uuid::from_u128(1)
        } else {
            pipeline
        },
    )
}

fn server_fragment(object_id: u64, message: Message) -> Vec<u8> {
    let raw = message
        .to_raw_for(Destination::Client, Uuid::nil(), None)
        .expect("encodable");
    let mut out = Vec::new();
    OutgoingMessage::new(object_id, raw.encode()).write_fragment(&mut out, usize::MAX);
    out
}

fn open_pool(id: Uuid, pipeline: Uuid) -> RunspacePool {
    let mut pool = RunspacePool::new(RunspacePoolConfig {
        id,
        ..RunspacePoolConfig::default()
    });
    pool.open(32 * 1024).expect("open");
    let opened = [
        server_fragment(1, Message::SessionCapability(SessionCapability::default())),
        server_fragment(
            2,
            Message::RunspacePoolState(RunspacePoolStateMessage {
                state: RunspacePoolState::Opened,
                error: None,
            }),
        ),
    ]
    .concat();
    pool.receive(Target::Pool, &opened).expect("receive");
    while let Ok(Some(_)) = pool.next_event() {}
    let spec = CreatePipeline::new(PowerShell::new(Command::new("Get-Item")));
    pool.create_pipeline_with_id(pipeline, spec, 32 * 1024)
        .expect("pipeline");
    pool
}

/// A host call read as the client's host reads it, and answered.
fn prompt(call: &HostCall) {
    let Ok(Some(prompt)) = HostPrompt::from_call(call) else {
        return;
    };
    let answer = match &prompt {
        HostPrompt::ReadLine => HostAnswer::Line(String::new()),
        HostPrompt::ReadLineAsSecureString => HostAnswer::Secure(SecureString::new("")),
        HostPrompt::Fields { fields, .. } => HostAnswer::Fields(
            fields
                .iter()
                .map(|f| (f.name.clone(), PsValue::Null))
                .collect(),
        ),
        HostPrompt::Credential { user_name, .. } => HostAnswer::Credential {
            user_name: user_name.clone(),
            password: SecureString::new(""),
        },
        HostPrompt::Choice {
            choices, default, ..
        } => HostAnswer::Choice(HostPrompt::choice_by_text(choices, *default, "y").unwrap_or(0)),
        HostPrompt::MultipleChoice { defaults, .. } => HostAnswer::Choices(defaults.clone()),
    };
    let _ = prompt.answer_value(answer);
}

/// Every event of the pool, host calls read as prompts.
fn drain(pool: &mut RunspacePool) {
    // next_event consumes one message per call, error or not.
    loop {
        match pool.next_event() {
            Ok(None) => break,
            Ok(Some(
                PoolEvent::HostCall(call) | PoolEvent::Pipeline(_, PipelineEvent::HostCall(call)),
            )) => prompt(&call),
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (id, pipeline) = ids(data);
    let mut pool = open_pool(id, pipeline);
    // Whole fragments go to the pool's Receive or the pipeline's by the
    // parity of their ObjectId, one Receive payload each, so that recorded
    // streams stay aligned; whatever trails goes to the pool.
    let mut pos = 0;
    while let Some(h) = FragmentHeader::parse(&data[pos..]) {
        let end = pos + FRAGMENT_HEADER_LEN + h.blob_len as usize;
        if end > data.len() {
            break;
        }
        let target = if h.object_id % 2 == 0 {
            Target::Pool
        } else {
            Target::Pipeline(pipeline)
        };
        let _ = pool.receive(target, &data[pos..end]);
        drain(&mut pool);
        pos = end;
    }
    let _ = pool.receive(Target::Pool, &data[pos..]);
    drain(&mut pool);
    let _ = pool.data_to_send(64);
});
