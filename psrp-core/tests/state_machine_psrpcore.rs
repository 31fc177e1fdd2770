//! The sans-IO runspace pool and pipelines end to end against a real
//! psrpcore ServerRunspacePool (tests/psrpcore_peer.py), bytes pumped both
//! ways by the test as a WS-Man transport would: creationXml, Command
//! Arguments and Sends to the server; Receive payloads to the client.

mod support;

use psrp_core::clixml::PsValue;
use psrp_core::command::{hashtable, Command, CreatePipeline, PowerShell};
use psrp_core::host::{HostInfo, HostMethodId};
use psrp_core::message::{
    dictionary_get, Availability, ErrorCategory, PipelineState, ProgressRecordType,
    RunspacePoolState,
};
use psrp_core::pipeline::PipelineEvent;
use psrp_core::pool::{PoolEvent, RunspacePool, RunspacePoolConfig, Stream, Target};
use serde_json::{json, Value};
use support::peer::Peer;
use uuid::Uuid;

const MAX: usize = 32 * 1024;

/// Sends everything queued on the client to the server; returns the
/// server's events.
fn client_to_server(pool: &mut RunspacePool, peer: &mut Peer, max: usize) -> Vec<Value> {
    let mut events = Vec::new();
    while let Some(p) = pool.data_to_send(max).unwrap() {
        assert!(p.data.len() <= max);
        events.extend(peer.feed(p.command_id(), &p.data));
    }
    events
}

/// Moves everything the server has to the client (pool payloads to the
/// pool's Receive, pipeline payloads to that pipeline's); returns the
/// client's events.
fn server_to_client(peer: &mut Peer, pool: &mut RunspacePool, amount: usize) -> Vec<PoolEvent> {
    let mut events = Vec::new();
    for p in peer.drain(amount) {
        assert!(p.data.len() <= amount);
        let target = p.pipeline.map_or(Target::Pool, Target::Pipeline);
        pool.receive(target, &p.data).unwrap();
        while let Some(ev) = pool.next_event().unwrap() {
            events.push(ev);
        }
    }
    events
}

fn open_pool(
    config: RunspacePoolConfig,
    peer: &mut Peer,
    creation_max: usize,
) -> (RunspacePool, Vec<Value>) {
    let mut pool = RunspacePool::new(config);
    let creation = pool.open(creation_max).unwrap();
    assert!(creation.len() <= creation_max);
    let mut server_events = peer.feed(None, &creation);
    server_events.extend(client_to_server(&mut pool, peer, creation_max));
    let events = server_to_client(peer, &mut pool, MAX);
    assert!(
        matches!(events[0], PoolEvent::SessionCapability(_)),
        "{events:?}"
    );
    assert!(
        matches!(events[1], PoolEvent::ApplicationPrivateData(_)),
        "{events:?}"
    );
    assert_eq!(
        events[2],
        PoolEvent::StateChanged {
            state: RunspacePoolState::Opened,
            error: None
        }
    );
    assert_eq!(pool.state(), RunspacePoolState::Opened);
    (pool, server_events)
}

fn pipeline_events(events: Vec<PoolEvent>, id: Uuid) -> Vec<PipelineEvent> {
    events
        .into_iter()
        .map(|e| match e {
            PoolEvent::Pipeline(pid, ev) => {
                assert_eq!(pid, id);
                ev
            }
            other => panic!("expected a pipeline event, got {other:?}"),
        })
        .collect()
}

/// Starts `spec` as a WS-Man client would: Command with the first fragment,
/// then Sends. Returns the pipeline id and the server's CreatePipeline event.
fn start(
    pool: &mut RunspacePool,
    peer: &mut Peer,
    spec: CreatePipeline,
    max: usize,
) -> (Uuid, Value) {
    let new = pool.create_pipeline(spec, max).unwrap();
    assert!(new.command_arguments.len() <= max);
    let mut events = peer.feed(Some(new.id), &new.command_arguments);
    events.extend(client_to_server(pool, peer, max));
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "CreatePipeline");
    assert_eq!(events[0]["pipeline"], new.id.to_string());
    (new.id, events.remove(0))
}

#[test]
fn open_negotiates_and_reports_the_server() {
    let mut peer = Peer::start();
    let config = RunspacePoolConfig {
        min_runspaces: 1,
        max_runspaces: 3,
        host_info: HostInfo::with_ui(None),
        application_arguments: Some(vec![("Tag".to_owned(), PsValue::from("psrp-test"))]),
        ..RunspacePoolConfig::default()
    };
    let (pool, server_events) = open_pool(config, &mut peer, MAX);
    assert_eq!(server_events[0]["type"], "SessionCapability");
    assert_eq!(server_events[0]["protocol"], "2.3");
    let init = &server_events[1];
    assert_eq!(init["type"], "InitRunspacePool");
    assert_eq!(
        (init["min"].as_i64(), init["max"].as_i64()),
        (Some(1), Some(3))
    );
    assert_eq!(init["host"]["is_host_null"], false);
    assert_eq!(init["host"]["is_host_ui_null"], false);
    assert_eq!(init["apartment_state"], 2);
    let args = init["application_arguments"]["v"].as_array().unwrap();
    assert_eq!(args[0][0]["v"], "Tag");
    assert_eq!(args[0][1]["v"], "psrp-test");

    assert_eq!(
        pool.server_capability()
            .unwrap()
            .protocol_version
            .to_string(),
        "2.3"
    );
    assert_eq!(pool.protocol_version().to_string(), "2.3");
    let apd = pool.application_private_data().unwrap();
    let table = apd.get("PSVersionTable").expect("PSVersionTable");
    assert!(dictionary_get(table, "PSRemotingProtocolVersion").is_some());
    assert_eq!(peer.act(None, json!([["pool_state"]]))[0], "Opened");
}

#[test]
fn open_with_a_small_creation_payload_sends_the_rest() {
    let mut peer = Peer::start();
    // 300 bytes hold SESSION_CAPABILITY but not INIT_RUNSPACEPOOL: the rest
    // goes by Send to the pool.
    let mut probe = RunspacePool::new(RunspacePoolConfig::default());
    probe.open(300).unwrap();
    let rest = probe
        .data_to_send(300)
        .unwrap()
        .expect("INIT_RUNSPACEPOOL continues in a Send");
    assert_eq!(rest.target, Target::Pool);
    let (pool, server_events) = open_pool(RunspacePoolConfig::default(), &mut peer, 300);
    assert_eq!(server_events.len(), 2);
    assert_eq!(server_events[1]["type"], "InitRunspacePool");
    assert_eq!(pool.state(), RunspacePoolState::Opened);
}

#[test]
fn pipeline_reports_every_stream_then_completes() {
    let mut peer = Peer::start();
    let (mut pool, _) = open_pool(RunspacePoolConfig::default(), &mut peer, MAX);
    let spec = CreatePipeline::new(PowerShell::new(
        Command::new("Get-Item")
            .param("Path", "C:\\x")
            .switch("Force"),
    ));
    let (id, created) = start(&mut pool, &mut peer, spec, MAX);
    assert_eq!(created["commands"][0]["cmd"], "Get-Item");
    peer.act(
        Some(id),
        json!([
            ["start_quiet"],
            ["output", "str", "hello"],
            ["output", "int", 42],
            ["output", "object", {"Name": "a.txt", "Length": 12}],
            ["error", "Cannot find path 'C:\\x'", "PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand", "C:\\x"],
            ["warning", "careful"],
            ["verbose", "details"],
            ["debug", "trace"],
            ["information", "note", "Write-Information"],
            ["progress", "Copying", 7, "3 of 9", 33],
            ["complete"]
        ]),
    );
    let events = pipeline_events(server_to_client(&mut peer, &mut pool, MAX), id);
    assert_eq!(events.len(), 10, "{events:?}");
    assert_eq!(events[0], PipelineEvent::Output(PsValue::from("hello")));
    assert_eq!(events[1], PipelineEvent::Output(PsValue::I32(42)));
    match &events[2] {
        PipelineEvent::Output(PsValue::Object(o)) => {
            assert_eq!(
                o.type_names.as_ref().unwrap().names()[0],
                "System.IO.FileInfo"
            );
            assert_eq!(o.property("Name"), Some(&PsValue::from("a.txt")));
            assert_eq!(o.property("Length"), Some(&PsValue::I32(12)));
        }
        e => panic!("{e:?}"),
    }
    match &events[3] {
        PipelineEvent::Error(e) => {
            assert_eq!(e.exception_message(), "Cannot find path 'C:\\x'");
            assert_eq!(
                e.fully_qualified_error_id.as_deref(),
                Some("PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand")
            );
            assert_eq!(e.category.category, ErrorCategory::ObjectNotFound);
            assert_eq!(e.category.reason.as_deref(), Some("ItemNotFoundException"));
            assert_eq!(e.category.activity.as_deref(), Some("Get-Item"));
            assert_eq!(e.target_object, Some(PsValue::from("C:\\x")));
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(&events[4], PipelineEvent::Warning(r) if r.message == "careful"));
    assert!(matches!(&events[5], PipelineEvent::Verbose(r) if r.message == "details"));
    assert!(matches!(&events[6], PipelineEvent::Debug(r) if r.message == "trace"));
    match &events[7] {
        PipelineEvent::Information(r) => {
            assert_eq!(r.text(), "note");
            assert_eq!(r.source.as_deref(), Some("Write-Information"));
            assert_eq!(r.tags, vec!["tag1".to_owned()]);
            assert_eq!(r.computer.as_deref(), Some("peer"));
            assert!(r.time_generated.is_some());
        }
        e => panic!("{e:?}"),
    }
    match &events[8] {
        PipelineEvent::Progress(p) => {
            assert_eq!(p.activity, "Copying");
            assert_eq!(p.activity_id, 7);
            assert_eq!(p.status_description, "3 of 9");
            assert_eq!(p.percent_complete, 33);
            assert_eq!(p.record_type, ProgressRecordType::Processing);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(
        events[9],
        PipelineEvent::StateChanged {
            state: PipelineState::Completed,
            error: None
        }
    );
    assert!(events[9].is_terminal());
    assert_eq!(pool.pipeline_state(id), Some(PipelineState::Completed));
    pool.close_pipeline(id).unwrap();
    assert!(pool.pipeline_ids().is_empty());
}

#[test]
fn failed_pipeline_carries_its_error_record() {
    let mut peer = Peer::start();
    let (mut pool, _) = open_pool(RunspacePoolConfig::default(), &mut peer, MAX);
    let spec = CreatePipeline::new(PowerShell::new(Command::new("Restart-Everything")));
    let (id, _) = start(&mut pool, &mut peer, spec, MAX);
    peer.act(
        Some(id),
        json!([
            ["start"],
            [
                "fail",
                "The term 'Restart-Everything' is not recognized",
                "CommandNotFoundException"
            ]
        ]),
    );
    let events = pipeline_events(server_to_client(&mut peer, &mut pool, MAX), id);
    // psrpcore announces Running (Windows does not), then Failed.
    assert_eq!(
        events[0],
        PipelineEvent::StateChanged {
            state: PipelineState::Running,
            error: None
        }
    );
    match &events[1] {
        PipelineEvent::StateChanged {
            state: PipelineState::Failed,
            error: Some(e),
        } => {
            assert_eq!(
                e.exception_message(),
                "The term 'Restart-Everything' is not recognized"
            );
            assert_eq!(
                e.fully_qualified_error_id.as_deref(),
                Some("CommandNotFoundException")
            );
            assert_eq!(e.category.category, ErrorCategory::ObjectNotFound);
            assert_eq!(
                e.category.reason.as_deref(),
                Some("CommandNotFoundException")
            );
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(pool.pipeline_state(id), Some(PipelineState::Failed));
}

#[test]
fn stopped_pipeline_reports_stopped() {
    let mut peer = Peer::start();
    let (mut pool, _) = open_pool(RunspacePoolConfig::default(), &mut peer, MAX);
    let spec = CreatePipeline::new(PowerShell::new(
        Command::new("Start-Sleep").param("Seconds", 600),
    ));
    let (id, created) = start(&mut pool, &mut peer, spec, MAX);
    assert_eq!(created["commands"][0]["params"][0][1]["t"], "PSInt");
    peer.act(
        Some(id),
        json!([["start_quiet"], ["output", "str", "partial"]]),
    );
    let first = pipeline_events(server_to_client(&mut peer, &mut pool, MAX), id);
    assert_eq!(first, vec![PipelineEvent::Output(PsValue::from("partial"))]);
    // The client asks to stop (a WS-Man Signal); the server stops.
    pool.begin_stop(id).unwrap();
    assert_eq!(pool.pipeline_state(id), Some(PipelineState::Stopping));
    peer.act(Some(id), json!([["stop"]]));
    let events = pipeline_events(server_to_client(&mut peer, &mut pool, MAX), id);
    match &events[..] {
        [PipelineEvent::StateChanged {
            state: PipelineState::Stopped,
            error: Some(e),
        }] => {
            assert_eq!(e.exception_message(), "The pipeline has been stopped.");
            assert_eq!(e.category.category, ErrorCategory::OperationStopped);
            assert_eq!(
                e.exception_type(),
                Some("System.Management.Automation.PipelineStoppedException")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.pipeline_state(id), Some(PipelineState::Stopped));
}

#[test]
fn host_calls_are_answered_on_the_prompt_response_stream() {
    let mut peer = Peer::start();
    let config = RunspacePoolConfig {
        host_info: HostInfo::with_ui(None),
        ..RunspacePoolConfig::default()
    };
    let (mut pool, _) = open_pool(config, &mut peer, MAX);
    let spec = CreatePipeline::new(PowerShell::new(Command::new("Read-Host")));
    let (id, _) = start(&mut pool, &mut peer, spec, MAX);
    let cis = peer.act(
        Some(id),
        json!([
            ["start_quiet"],
            ["host_call", "WriteLine2", "a line for the host"],
            ["host_call", "ReadLine"],
            [
                "host_call",
                "PromptForCredential1",
                "caption",
                "message",
                "user",
                "target"
            ]
        ]),
    );
    let (read_ci, cred_ci) = (cis[2].as_i64().unwrap(), cis[3].as_i64().unwrap());
    let events = pipeline_events(server_to_client(&mut peer, &mut pool, MAX), id);
    let calls: Vec<_> = events
        .iter()
        .map(|e| match e {
            PipelineEvent::HostCall(c) => c.clone(),
            e => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(calls[0].method, HostMethodId::WriteLine2);
    assert_eq!(
        calls[0].parameters,
        vec![PsValue::from("a line for the host")]
    );
    assert!(!calls[0].needs_response());
    assert_eq!(
        (calls[1].method, calls[1].call_id),
        (HostMethodId::ReadLine, read_ci)
    );
    assert!(calls[1].needs_response());
    assert_eq!(calls[2].method, HostMethodId::PromptForCredential1);
    assert_eq!(calls[2].call_id, cred_ci);
    assert_eq!(calls[2].parameters.len(), 4);

    pool.host_response(
        Target::Pipeline(id),
        calls[1].respond(Some(PsValue::from("typed"))),
    )
    .unwrap();
    pool.host_response(Target::Pipeline(id), calls[2].respond_not_implemented())
        .unwrap();
    let payload = pool.data_to_send(MAX).unwrap().unwrap();
    assert_eq!(payload.stream, Stream::PromptResponse);
    assert_eq!(payload.stream.name(), "pr");
    assert_eq!(payload.command_id(), Some(id));
    let answers = peer.feed(payload.command_id(), &payload.data);
    assert!(pool.data_to_send(MAX).unwrap().is_none());
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["type"], "PipelineHostResponse");
    assert_eq!(answers[0]["ci"], read_ci);
    assert_eq!(answers[0]["method"], "ReadLine");
    assert_eq!(answers[0]["result"]["v"], "typed");
    assert_eq!(answers[0]["error"], Value::Null);
    assert_eq!(answers[1]["ci"], cred_ci);
    assert_eq!(answers[1]["result"]["t"], "Null");
    let err = &answers[1]["error"];
    assert!(err["message"]
        .as_str()
        .unwrap()
        .contains("PromptForCredential1"));
    assert_eq!(err["category"], ErrorCategory::NotImplemented.as_i32());
    assert_eq!(err["fqid"], "HostMethodNotImplemented");
}

#[test]
fn pool_level_host_calls_user_events_and_availability() {
    let mut peer = Peer::start();
    let config = RunspacePoolConfig {
        host_info: HostInfo::with_ui(None),
        max_runspaces: 1,
        ..RunspacePoolConfig::default()
    };
    let (mut pool, _) = open_pool(config, &mut peer, MAX);
    let ci = peer.act(
        None,
        json!([
            ["pool_host_call", "GetName"],
            ["user_event", 5, "Timer.Elapsed", "payload"]
        ]),
    )[0]
    .as_i64()
    .unwrap();
    let events = server_to_client(&mut peer, &mut pool, MAX);
    let call = match &events[0] {
        PoolEvent::HostCall(c) => c.clone(),
        e => panic!("{e:?}"),
    };
    assert_eq!((call.method, call.call_id), (HostMethodId::GetName, ci));
    match &events[1] {
        PoolEvent::UserEvent(u) => {
            assert_eq!(u.event_identifier, Some(5));
            assert_eq!(u.source_identifier.as_deref(), Some("Timer.Elapsed"));
            assert_eq!(u.message_data, PsValue::from("payload"));
            assert_eq!(u.computer_name.as_deref(), Some("peer"));
            assert_eq!(u.runspace_id, Some(pool.id()));
        }
        e => panic!("{e:?}"),
    }
    pool.host_response(Target::Pool, call.respond(Some(PsValue::from("psrp"))))
        .unwrap();
    let payload = pool.data_to_send(MAX).unwrap().unwrap();
    assert_eq!(
        (payload.target, payload.stream),
        (Target::Pool, Stream::PromptResponse)
    );
    let answer = peer.feed(None, &payload.data);
    assert_eq!(answer[0]["type"], "RunspacePoolHostResponse");
    assert_eq!(answer[0]["result"]["v"], "psrp");

    let set_ci = pool.set_max_runspaces(4).unwrap();
    let avail_ci = pool.get_available_runspaces().unwrap();
    let reset_ci = pool.reset_runspace_state().unwrap();
    let server = client_to_server(&mut pool, &mut peer, MAX);
    let types: Vec<_> = server
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "SetMaxRunspaces",
            "GetAvailableRunspaces",
            "ResetRunspaceState"
        ]
    );
    assert_eq!(server[0]["count"], 4);
    let answers = server_to_client(&mut peer, &mut pool, MAX);
    let got: Vec<_> = answers
        .iter()
        .map(|e| match e {
            PoolEvent::RunspaceAvailability(a) => (a.call_id, a.response),
            e => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            (set_ci, Availability::Success(true)),
            (avail_ci, Availability::Count(3)),
            (reset_ci, Availability::Success(true)),
        ]
    );
    assert_eq!(pool.max_runspaces(), 4);
    assert_eq!(peer.act(None, json!([["max_runspaces"]]))[0], 4);
}

#[test]
fn broken_pool_reports_its_error_record() {
    let mut peer = Peer::start();
    let (mut pool, _) = open_pool(RunspacePoolConfig::default(), &mut peer, MAX);
    peer.act(None, json!([["set_broken", "The WinRM plugin failed"]]));
    let events = server_to_client(&mut peer, &mut pool, MAX);
    match &events[..] {
        [PoolEvent::StateChanged {
            state: RunspacePoolState::Broken,
            error: Some(e),
        }] => {
            assert_eq!(e.exception_message(), "The WinRM plugin failed");
            assert_eq!(e.fully_qualified_error_id.as_deref(), Some("PoolBroken"));
            assert_eq!(e.category.category, ErrorCategory::ResourceUnavailable);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.state(), RunspacePoolState::Broken);
    let spec = CreatePipeline::new(PowerShell::new(Command::new("a")));
    assert!(pool.create_pipeline(spec, MAX).is_err());
}

#[test]
fn large_output_arrives_whole_across_many_fragments() {
    let mut peer = Peer::start();
    let (mut pool, _) = open_pool(RunspacePoolConfig::default(), &mut peer, MAX);
    let spec = CreatePipeline::new(PowerShell::new(Command::new("Get-Content")));
    let (id, _) = start(&mut pool, &mut peer, spec, MAX);
    peer.act(
        Some(id),
        json!([
            ["start_quiet"],
            ["output", "bigstr", "0123456789", 100000],
            ["output", "many", 300, 200],
            ["complete"]
        ]),
    );
    // Small Receive payloads: the 1 MB string spans hundreds of fragments.
    let payloads = peer.drain(4096);
    assert!(payloads.len() > 250, "{} payloads", payloads.len());
    let mut events = Vec::new();
    for p in payloads {
        assert_eq!(p.pipeline, Some(id));
        pool.receive(Target::Pipeline(id), &p.data).unwrap();
        while let Some(e) = pool.next_event().unwrap() {
            events.push(e);
        }
    }
    let events = pipeline_events(events, id);
    assert_eq!(events.len(), 302);
    match &events[0] {
        PipelineEvent::Output(PsValue::String(s)) => {
            assert_eq!(s.len(), 1_000_000);
            assert_eq!(&s[..10], "0123456789");
        }
        e => panic!("{e:?}"),
    }
    for (i, e) in events[1..301].iter().enumerate() {
        assert_eq!(
            e,
            &PipelineEvent::Output(PsValue::String(format!("item {i} {}", "x".repeat(200))))
        );
    }
    assert!(events[301].is_terminal());
}

#[test]
fn pipeline_input_reaches_the_server() {
    let mut peer = Peer::start();
    let (mut pool, _) = open_pool(RunspacePoolConfig::default(), &mut peer, MAX);
    let spec = CreatePipeline {
        no_input: false,
        ..CreatePipeline::new(PowerShell::new(Command::new("ForEach-Object")))
    };
    let (id, created) = start(&mut pool, &mut peer, spec, MAX);
    assert_eq!(created["no_input"], false);
    pool.send_input(id, PsValue::from("first")).unwrap();
    pool.send_input(id, PsValue::I32(2)).unwrap();
    pool.send_input(id, hashtable([("k", PsValue::from("v"))]))
        .unwrap();
    pool.end_input(id).unwrap();
    let events = client_to_server(&mut pool, &mut peer, MAX);
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0]["type"], "PipelineInput");
    assert_eq!(events[0]["value"], json!({"t": "PSString", "v": "first"}));
    assert_eq!(events[1]["value"], json!({"t": "PSInt", "v": 2}));
    assert_eq!(events[2]["value"]["t"], "PSDict");
    assert_eq!(events[3]["type"], "EndOfPipelineInput");
    assert!(pool.send_input(id, PsValue::Null).is_err());
}

#[test]
fn large_create_pipeline_is_split_between_command_and_send() {
    let mut peer = Peer::start();
    let (mut pool, _) = open_pool(RunspacePoolConfig::default(), &mut peer, MAX);
    let big = "y".repeat(50_000);
    let spec = CreatePipeline::new(PowerShell::new(
        Command::new("Set-Content")
            .param("Value", big.as_str())
            .param("Path", "C:\\f"),
    ));
    let new = pool.create_pipeline(spec, 8192).unwrap();
    assert_eq!(new.command_arguments.len(), 8192);
    // The first fragment alone is not a message yet.
    assert!(peer.feed(Some(new.id), &new.command_arguments).is_empty());
    let mut sends = 0;
    let mut events = Vec::new();
    while let Some(p) = pool.data_to_send(8192).unwrap() {
        assert_eq!(p.target, Target::Pipeline(new.id));
        sends += 1;
        events.extend(peer.feed(p.command_id(), &p.data));
    }
    assert!(sends >= 6, "{sends} sends");
    assert_eq!(events.len(), 1);
    let params = &events[0]["commands"][0]["params"];
    assert_eq!(params[0][1]["v"].as_str().unwrap().len(), 50_000);
    assert_eq!(params[1], json!(["Path", {"t": "PSString", "v": "C:\\f"}]));
}

#[test]
fn pipelines_run_side_by_side_in_one_pool() {
    let mut peer = Peer::start();
    let config = RunspacePoolConfig {
        max_runspaces: 2,
        ..RunspacePoolConfig::default()
    };
    let (mut pool, _) = open_pool(config, &mut peer, MAX);
    let (a, _) = start(
        &mut pool,
        &mut peer,
        CreatePipeline::new(PowerShell::new(Command::new("A"))),
        MAX,
    );
    let (b, _) = start(
        &mut pool,
        &mut peer,
        CreatePipeline::new(PowerShell::new(Command::new("B"))),
        MAX,
    );
    peer.act(
        Some(a),
        json!([["start_quiet"], ["output", "str", "from a"]]),
    );
    peer.act(
        Some(b),
        json!([["start_quiet"], ["output", "str", "from b"], ["complete"]]),
    );
    peer.act(Some(a), json!([["complete"]]));
    let events = server_to_client(&mut peer, &mut pool, MAX);
    let mut per: std::collections::HashMap<Uuid, Vec<PipelineEvent>> = Default::default();
    for e in events {
        match e {
            PoolEvent::Pipeline(id, ev) => per.entry(id).or_default().push(ev),
            e => panic!("{e:?}"),
        }
    }
    assert_eq!(per[&a][0], PipelineEvent::Output(PsValue::from("from a")));
    assert_eq!(per[&b][0], PipelineEvent::Output(PsValue::from("from b")));
    assert!(per[&a][1].is_terminal() && per[&b][1].is_terminal());
    // Lists as output objects.
    let (c, _) = start(
        &mut pool,
        &mut peer,
        CreatePipeline::new(PowerShell::new(Command::new("C"))),
        MAX,
    );
    peer.act(
        Some(c),
        json!([
            ["start_quiet"],
            ["output", "list", [1, "two"]],
            ["complete"]
        ]),
    );
    let events = pipeline_events(server_to_client(&mut peer, &mut pool, MAX), c);
    match &events[0] {
        PipelineEvent::Output(v) => assert_eq!(
            psrp_core::clixml::encode(v)
                .matches("<I32>1</I32><S>two</S>")
                .count(),
            1
        ),
        e => panic!("{e:?}"),
    }
}
