//! CREATE_PIPELINE as built by `Command`/`PowerShell`, read by psrpcore's
//! server (ServerRunspacePool / ServerPipeline): command names, parameters
//! with their types, switches, positional arguments, statements, scripts,
//! merge options per protocol version and the pipeline settings.

mod support;

use psrp_core::clixml::{Decimal, PsValue, Version};
use psrp_core::command::{
    hashtable, json_to_value, list, Command, CreatePipeline, PowerShell, RemoteStreamOptions,
};
use psrp_core::host::HostInfo;
use psrp_core::message::{SessionCapability, PROTOCOL_2_2};
use psrp_core::pool::{RunspacePool, RunspacePoolConfig, Target};
use serde_json::{json, Value};
use support::peer::Peer;

const MAX: usize = 32 * 1024;

fn opened(peer: &mut Peer, config: RunspacePoolConfig) -> RunspacePool {
    let mut pool = RunspacePool::new(config);
    let creation = pool.open(MAX).unwrap();
    peer.feed(None, &creation);
    for p in peer.drain(MAX) {
        pool.receive(Target::Pool, &p.data).unwrap();
    }
    while pool.next_event().unwrap().is_some() {}
    pool
}

/// The server's view of `spec`: psrpcore's CreatePipeline event.
fn server_view(
    peer: &mut Peer,
    pool: &mut RunspacePool,
    spec: CreatePipeline,
    max: usize,
) -> Value {
    let new = pool.create_pipeline(spec, max).unwrap();
    let mut events = peer.feed(Some(new.id), &new.command_arguments);
    while let Some(p) = pool.data_to_send(max).unwrap() {
        events.extend(peer.feed(p.command_id(), &p.data));
    }
    assert_eq!(events.len(), 1, "{events:?}");
    events.remove(0)
}

fn param(cmd: &Value, i: usize) -> (&Value, &Value) {
    let p = &cmd["params"][i];
    (&p[0], &p[1])
}

#[test]
fn named_switch_and_positional_parameters() {
    let mut peer = Peer::start();
    let mut pool = opened(&mut peer, RunspacePoolConfig::default());
    let spec = CreatePipeline::new(PowerShell::new(
        Command::new("Get-ChildItem")
            .param("Path", "C:\\Temp")
            .switch("Force")
            .arg("positional")
            .param("Depth", 2),
    ));
    let view = server_view(&mut peer, &mut pool, spec, MAX);
    let cmd = &view["commands"][0];
    assert_eq!(cmd["cmd"], "Get-ChildItem");
    assert_eq!(cmd["is_script"], false);
    assert_eq!(cmd["use_local_scope"], Value::Null);
    assert_eq!(
        param(cmd, 0),
        (&json!("Path"), &json!({"t": "PSString", "v": "C:\\Temp"}))
    );
    // A switch arrives as True, exactly as PowerShell's own client sends it.
    assert_eq!(
        param(cmd, 1),
        (&json!("Force"), &json!({"t": "bool", "v": true}))
    );
    // A positional argument has no name.
    assert_eq!(
        param(cmd, 2),
        (&Value::Null, &json!({"t": "PSString", "v": "positional"}))
    );
    assert_eq!(
        param(cmd, 3),
        (&json!("Depth"), &json!({"t": "PSInt", "v": 2}))
    );
    assert_eq!(view["no_input"], true);
    assert_eq!(view["is_nested"], false);
    assert_eq!(view["add_to_history"], false);
    assert_eq!(view["remote_stream_options"], 0);
    assert_eq!(view["host"]["is_host_null"], true);
    assert_eq!(view["host"]["use_runspace_host"], true);
}

#[test]
fn values_of_every_type_keep_their_types() {
    let mut peer = Peer::start();
    let mut pool = opened(&mut peer, RunspacePoolConfig::default());
    let guid = uuid::Uuid::parse_str("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
    let values: Vec<(&str, PsValue, Value)> = vec![
        (
            "S",
            PsValue::from("text <&> _x000A_ \n é 😀"),
            json!({"t": "PSString", "v": "text <&> _x000A_ \n é 😀"}),
        ),
        (
            "Empty",
            PsValue::from(""),
            json!({"t": "PSString", "v": ""}),
        ),
        ("I32", PsValue::I32(-7), json!({"t": "PSInt", "v": -7})),
        (
            "I64",
            PsValue::I64(5_000_000_000),
            json!({"t": "PSInt64", "v": 5_000_000_000i64}),
        ),
        ("U8", PsValue::U8(255), json!({"t": "PSByte", "v": 255})),
        ("I8", PsValue::I8(-3), json!({"t": "PSSByte", "v": -3})),
        (
            "I16",
            PsValue::I16(-300),
            json!({"t": "PSInt16", "v": -300}),
        ),
        (
            "U16",
            PsValue::U16(65535),
            json!({"t": "PSUInt16", "v": 65535}),
        ),
        (
            "U32",
            PsValue::U32(4_000_000_000),
            json!({"t": "PSUInt", "v": 4_000_000_000u32}),
        ),
        (
            "U64",
            PsValue::U64(u64::MAX),
            json!({"t": "PSUInt64", "v": u64::MAX}),
        ),
        (
            "Db",
            PsValue::Double(1.25),
            json!({"t": "PSDouble", "v": 1.25}),
        ),
        (
            "Sg",
            PsValue::Single(0.5),
            json!({"t": "PSSingle", "v": 0.5}),
        ),
        ("True", PsValue::Bool(true), json!({"t": "bool", "v": true})),
        (
            "False",
            PsValue::Bool(false),
            json!({"t": "bool", "v": false}),
        ),
        ("Null", PsValue::Null, json!({"t": "Null"})),
        ("Char", PsValue::Char(97), json!({"t": "PSChar", "v": 97})),
    ];
    let mut cmd = Command::new("Set-Values");
    for (name, v, _) in &values {
        cmd = cmd.param(*name, v.clone());
    }
    let cmd = cmd
        .param("Guid", PsValue::Guid(guid))
        .param("Bytes", PsValue::Bytes(vec![0, 1, 254, 255]))
        .param(
            "Version",
            PsValue::Version(Version {
                major: 1,
                minor: 2,
                build: Some(3),
                revision: None,
            }),
        )
        .param("Decimal", PsValue::Decimal(Decimal("-12.50".to_owned())))
        .param("List", list(["a", "b"]))
        .param(
            "Table",
            hashtable([("k", PsValue::I32(1)), ("n", PsValue::Null)]),
        )
        .param(
            "Nested",
            hashtable([(
                "inner",
                list([
                    PsValue::from("x"),
                    hashtable([("deep", PsValue::Bool(true))]),
                ]),
            )]),
        )
        .param(
            "Json",
            json_to_value(&json!({"count": 3, "names": ["a", "b"], "on": true, "none": null})),
        );
    let view = server_view(
        &mut peer,
        &mut pool,
        CreatePipeline::new(PowerShell::new(cmd)),
        MAX,
    );
    let c = &view["commands"][0];
    for (i, (name, _, want)) in values.iter().enumerate() {
        assert_eq!(param(c, i), (&json!(name), want), "{name}");
    }
    let n = values.len();
    assert_eq!(
        param(c, n).1,
        &json!({"t": "PSGuid", "v": guid.to_string()})
    );
    assert_eq!(
        param(c, n + 1).1,
        &json!({"t": "PSByteArray", "v": "0001feff"})
    );
    assert_eq!(param(c, n + 2).1, &json!({"t": "PSVersion", "v": "1.2.3"}));
    assert_eq!(param(c, n + 3).1, &json!({"t": "PSDecimal", "v": "-12.50"}));
    assert_eq!(
        param(c, n + 4).1,
        &json!({"t": "PSList", "v": [{"t": "PSString", "v": "a"}, {"t": "PSString", "v": "b"}]})
    );
    assert_eq!(
        param(c, n + 5).1,
        &json!({"t": "PSDict", "v": [
            [{"t": "PSString", "v": "k"}, {"t": "PSInt", "v": 1}],
            [{"t": "PSString", "v": "n"}, {"t": "Null"}]
        ]})
    );
    let nested = param(c, n + 6).1;
    assert_eq!(nested["t"], "PSDict");
    let inner = &nested["v"][0][1];
    assert_eq!(inner["t"], "PSList");
    assert_eq!(inner["v"][0], json!({"t": "PSString", "v": "x"}));
    assert_eq!(
        inner["v"][1],
        json!({"t": "PSDict", "v": [[{"t": "PSString", "v": "deep"}, {"t": "bool", "v": true}]]})
    );
    let from_json = param(c, n + 7).1;
    assert_eq!(from_json["t"], "PSDict");
    assert_eq!(
        from_json["v"][0],
        json!([{"t": "PSString", "v": "count"}, {"t": "PSInt", "v": 3}])
    );
    assert_eq!(from_json["v"][1][1]["t"], "PSList");
    assert_eq!(from_json["v"][3][1], json!({"t": "Null"}));
}

#[test]
fn pipes_statements_and_scripts() {
    let mut peer = Peer::start();
    let mut pool = opened(&mut peer, RunspacePoolConfig::default());
    let ps = PowerShell::new(Command::new("Get-Process").param("Name", "svc*"))
        .pipe(Command::new("Select-Object").param("First", 3))
        .statement(Command::script("$x = 1; $x + 1").local_scope(true))
        .statement(Command::new("Get-Date"))
        .pipe(Command::new("Out-String"));
    let view = server_view(&mut peer, &mut pool, CreatePipeline::new(ps), MAX);
    let cmds = view["commands"].as_array().unwrap();
    let summary: Vec<(String, bool, bool)> = cmds
        .iter()
        .map(|c| {
            (
                c["cmd"].as_str().unwrap().to_owned(),
                c["is_script"].as_bool().unwrap(),
                c["end_of_statement"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("Get-Process".to_owned(), false, false),
            ("Select-Object".to_owned(), false, true),
            ("$x = 1; $x + 1".to_owned(), true, true),
            ("Get-Date".to_owned(), false, false),
            ("Out-String".to_owned(), false, true),
        ]
    );
    assert_eq!(cmds[2]["use_local_scope"], true);
    assert_eq!(
        param(&cmds[1], 0),
        (&json!("First"), &json!({"t": "PSInt", "v": 3}))
    );
}

#[test]
fn pipeline_settings_reach_the_server() {
    let mut peer = Peer::start();
    let mut pool = opened(&mut peer, RunspacePoolConfig::default());
    let mut ps = PowerShell::new(Command::new("Get-History"));
    ps.is_nested = false;
    ps.redirect_shell_error_output_pipe = false;
    let spec = CreatePipeline {
        no_input: false,
        add_to_history: true,
        remote_stream_options: RemoteStreamOptions::ADD_INVOCATION_INFO,
        host_info: HostInfo::with_ui(None),
        ..CreatePipeline::new(ps)
    };
    let view = server_view(&mut peer, &mut pool, spec, MAX);
    assert_eq!(view["no_input"], false);
    assert_eq!(view["add_to_history"], true);
    assert_eq!(view["remote_stream_options"], 15);
    assert_eq!(view["redirect_shell_error_to_out"], false);
    assert_eq!(view["host"]["is_host_null"], false);
    assert_eq!(view["host"]["is_host_ui_null"], false);
    assert_eq!(view["host"]["use_runspace_host"], false);
}

#[test]
fn merge_options_follow_the_negotiated_protocol() {
    let mut peer = Peer::start();
    let mut pool = opened(&mut peer, RunspacePoolConfig::default());
    let spec = CreatePipeline::new(PowerShell::new(
        Command::new("Invoke-Thing").merge_all_to_output(),
    ));
    let view = server_view(&mut peer, &mut pool, spec, MAX);
    let c = &view["commands"][0];
    // Output = 1, Error = 2 (PipelineResultTypes).
    assert_eq!(
        (c["merge_my"].as_i64(), c["merge_to"].as_i64()),
        (Some(2), Some(1))
    );
    for key in [
        "merge_error",
        "merge_warning",
        "merge_verbose",
        "merge_debug",
        "merge_information",
    ] {
        assert_eq!(c[key], 1, "{key}");
    }

    // A client speaking 2.2 (as against a PowerShell 3/4 server) leaves out
    // MergeInformation and cannot redirect the information stream.
    let mut peer = Peer::start();
    let config = RunspacePoolConfig {
        capability: SessionCapability {
            protocol_version: PROTOCOL_2_2,
            ..SessionCapability::default()
        },
        ..RunspacePoolConfig::default()
    };
    let mut pool = opened(&mut peer, config);
    assert_eq!(pool.protocol_version(), PROTOCOL_2_2);
    let spec = CreatePipeline::new(PowerShell::new(
        Command::new("Invoke-Thing").merge_information_to_output(),
    ));
    assert!(pool.create_pipeline(spec, MAX).is_err());
    let spec = CreatePipeline::new(PowerShell::new(
        Command::new("Invoke-Thing")
            .merge_warning_to_output()
            .merge_error_to_output(),
    ));
    let view = server_view(&mut peer, &mut pool, spec, MAX);
    let c = &view["commands"][0];
    assert_eq!(c["merge_warning"], 1);
    assert_eq!(c["merge_error"], 1);
    assert_eq!(c["merge_information"], 0);
}

#[test]
fn create_pipeline_split_into_small_fragments_still_parses() {
    let mut peer = Peer::start();
    let mut pool = opened(&mut peer, RunspacePoolConfig::default());
    let mut ps = PowerShell::new(Command::new("Start-Job"));
    for i in 0..40 {
        ps = ps.statement(
            Command::new(format!("Step-{i}"))
                .param("Index", i)
                .switch("Now"),
        );
    }
    // 512-byte fragments: the Command carries one, dozens of Sends the rest.
    let view = server_view(&mut peer, &mut pool, CreatePipeline::new(ps), 512);
    let cmds = view["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 41);
    assert_eq!(cmds[40]["cmd"], "Step-39");
    assert_eq!(
        param(&cmds[40], 0),
        (&json!("Index"), &json!({"t": "PSInt", "v": 39}))
    );
    assert_eq!(
        param(&cmds[40], 1),
        (&json!("Now"), &json!({"t": "bool", "v": true}))
    );
    assert!(cmds.iter().all(|c| c["end_of_statement"] == true));
}

#[test]
fn get_command_metadata_reaches_the_server() {
    let mut peer = Peer::start();
    let mut pool = opened(&mut peer, RunspacePoolConfig::default());
    let request = psrp_core::message::GetCommandMetadata::new("Get-*");
    let new = pool.get_command_metadata(request, MAX).unwrap();
    let events = peer.feed(Some(new.id), &new.command_arguments);
    assert_eq!(events[0]["type"], "GetCommandMetadata");
    assert_eq!(events[0]["names"], json!(["Get-*"]));
    assert_eq!(events[0]["command_type"], 383);
}
