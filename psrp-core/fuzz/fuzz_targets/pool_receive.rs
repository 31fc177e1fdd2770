//! Receive payloads from a hostile server fed to an open runspace pool that
//! runs a pipeline: defragmenting, message parsing and the state
//! transitions, on the pool's stream and the pipeline's. Errors are fine;
//! panics are not.

#![no_main]

use libfuzzer_sys::fuzz_target;
use psrp_core::command::{Command, CreatePipeline, PowerShell};
use psrp_core::fragment::OutgoingMessage;
use psrp_core::message::{
    Destination, Message, RunspacePoolState, RunspacePoolStateMessage, SessionCapability,
};
use psrp_core::pool::{RunspacePool, RunspacePoolConfig, Target};
use uuid::Uuid;

/// The pipeline id the fuzzer can target (bytes 01 00 .. 00 in the header).
const PIPELINE: Uuid = Uuid::from_u128(1);

fn server_fragment(object_id: u64, message: Message) -> Vec<u8> {
    let raw = message
        .to_raw_for(Destination::Client, Uuid::nil(), None)
        .expect("encodable");
    let mut out = Vec::new();
    OutgoingMessage::new(object_id, raw.encode()).write_fragment(&mut out, usize::MAX);
    out
}

fn open_pool() -> RunspacePool {
    let mut pool = RunspacePool::new(RunspacePoolConfig {
        id: Uuid::nil(),
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
    pool.create_pipeline_with_id(PIPELINE, spec, 32 * 1024)
        .expect("pipeline");
    pool
}

fuzz_target!(|data: &[u8]| {
    let mut pool = open_pool();
    // The first byte splits the input between the pool's Receive and the
    // pipeline's.
    let Some((cut, rest)) = data.split_first() else {
        return;
    };
    let cut = (*cut as usize * rest.len()) / 255;
    for (target, chunk) in [(Target::Pool, &rest[..cut]), (Target::Pipeline(PIPELINE), &rest[cut..])] {
        let _ = pool.receive(target, chunk);
        // next_event consumes one message per call, error or not.
        while !matches!(pool.next_event(), Ok(None)) {}
    }
    let _ = pool.data_to_send(64);
});
