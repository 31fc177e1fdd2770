//! The async client against the test peer's JEA.Maintenance endpoint over
//! Kerberos and HTTP (messages encrypted): cmdlets with parameters of every
//! type, JEA visibility, session init, every stream, large output, host calls.

mod client_common;

use client_common::{close, kerberos_jea, open, operations_of, peer, Peer, PeerOptions};
use psrp_core::client::{
    hashtable, json_to_value, list, to_json, Command, ErrorKind, ErrorRecord, Event, Host,
    HostCall, HostMethodId, InvocationResult, NonInteractiveHost, PipelineState, PoolOptions,
    PowerShell, PsValue, RunspacePool,
};
use psrp_core::clixml::{Collection, Decimal};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_computer_force_arrives_as_a_true_switch() {
    let p = peer();
    let pool = open(p, kerberos_jea(p)).await;
    let shell_id = pool.shell_id().to_owned();
    let result = pool
        .invoke(Command::new("Restart-Computer").switch("Force"))
        .await
        .unwrap();
    assert_eq!(result.state, PipelineState::Completed, "{result:?}");
    assert!(!result.had_errors());
    assert!(result.output.is_empty());

    let restarts = p.restarts().unwrap();
    let ours: Vec<_> = restarts
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["shell_id"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(&shell_id))
        })
        .collect();
    assert_eq!(ours.len(), 1, "{restarts}");
    assert_eq!(ours[0]["configuration"], "JEA.Maintenance");
    assert_eq!(ours[0]["force"], true);
    assert_eq!(
        ours[0]["force_form"], "true",
        "-Force must arrive as <B>true</B>"
    );

    // Every operation on this shell went Kerberos-authenticated and encrypted.
    let ops = operations_of(p, &shell_id);
    assert!(ops.len() >= 4, "{ops:?}");
    for op in &ops {
        assert_eq!(op["encrypted"], true, "{op}");
        assert_eq!(op["auth"]["mechanism"], "kerberos", "{op}");
        assert_eq!(op["transport"], "http", "{op}");
    }
    close(p, pool).await;
}

/// The entries of a dictionary value, keys as text.
fn entries(v: &PsValue) -> Vec<(String, PsValue)> {
    match v.as_object().and_then(|o| o.collection.as_ref()) {
        Some(Collection::Dictionary(items)) => items
            .iter()
            .map(|(k, v)| (k.as_str().unwrap_or_default().to_owned(), v.clone()))
            .collect(),
        other => panic!("not a dictionary: {other:?}"),
    }
}

fn items(v: &PsValue) -> Vec<PsValue> {
    match v.as_object().and_then(|o| o.collection.as_ref()) {
        Some(Collection::List(items)) => items.clone(),
        other => panic!("not a list: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_echo_receives_every_parameter_type_as_sent() {
    let p = peer();
    let pool = open(p, kerberos_jea(p)).await;
    let text = "quotes \" ' <tag> & amp; tab\t newline\n cr\r ctl\u{1} esc _x0041_ é 😀";
    let decimal = PsValue::Decimal(Decimal::new("79228162514264337593543950335").unwrap());
    let scalars: Vec<(&str, PsValue, &str)> = vec![
        ("Byte", PsValue::U8(255), "By"),
        ("SByte", PsValue::I8(-128), "SB"),
        ("Int16", PsValue::I16(i16::MIN), "I16"),
        ("UInt16", PsValue::U16(u16::MAX), "U16"),
        ("Int32", PsValue::I32(i32::MIN), "I32"),
        ("UInt32", PsValue::U32(u32::MAX), "U32"),
        ("Int64", PsValue::I64(i64::MIN), "I64"),
        ("UInt64", PsValue::U64(u64::MAX), "U64"),
        ("Single", PsValue::Single(1.5), "Sg"),
        ("Double", PsValue::Double(-0.1), "Db"),
        ("Decimal", decimal, "D"),
        ("Text", PsValue::from(text), "S"),
        ("Empty", PsValue::from(""), "S"),
        ("Null", PsValue::Null, "Nil"),
        ("Flag", PsValue::Bool(false), "B"),
    ];
    let mut command = Command::new("Invoke-Echo");
    for (name, value, _) in &scalars {
        command = command.param(*name, value.clone());
    }
    let command = command
        .param(
            "List",
            list([PsValue::I32(1), PsValue::from("two"), PsValue::Null]),
        )
        .param(
            "Table",
            hashtable([("name", PsValue::from("x")), ("count", PsValue::I64(3))]),
        )
        .param(
            "Nested",
            hashtable([(
                "servers",
                list([
                    hashtable([("host", PsValue::from("a")), ("ports", list([80, 443]))]),
                    hashtable([("host", PsValue::from("b")), ("ports", list([22]))]),
                ]),
            )]),
        )
        .param(
            "FromJson",
            json_to_value(&json!({"a": [1, 2.5, null, true], "b": {"c": "d"}})),
        )
        .switch("Force")
        .arg("first")
        .arg(PsValue::I32(42));
    let result = pool.invoke(command).await.unwrap().into_result().unwrap();
    assert_eq!(result.output.len(), 1, "{result:?}");
    let echo = result.output[0].as_object().unwrap();
    let params = entries(echo.property("Parameters").unwrap());
    let types = entries(echo.property("Types").unwrap());
    let get = |list: &[(String, PsValue)], name: &str| {
        list.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} missing from {list:?}"))
    };
    // Scalars come back with their exact type and value.
    for (name, value, label) in &scalars {
        assert_eq!(&get(&params, name), value, "value of {name}");
        assert_eq!(get(&types, name).as_str(), Some(*label), "type of {name}");
    }
    assert_eq!(get(&params, "Force"), PsValue::Bool(true));
    assert_eq!(get(&types, "Force").as_str(), Some("B"));
    assert_eq!(get(&types, "List").as_str(), Some("Obj:System.Object[]"));
    assert_eq!(
        get(&types, "Table").as_str(),
        Some("Obj:System.Collections.Hashtable")
    );
    // Collections: compared as JSON.
    assert_eq!(to_json(&get(&params, "List")), json!([1, "two", null]));
    assert_eq!(
        to_json(&get(&params, "Table")),
        json!({"name": "x", "count": 3})
    );
    assert_eq!(
        to_json(&get(&params, "Nested")),
        json!({"servers": [{"host": "a", "ports": [80, 443]}, {"host": "b", "ports": [22]}]})
    );
    assert_eq!(
        to_json(&get(&params, "FromJson")),
        json!({"a": [1, 2.5, null, true], "b": {"c": "d"}})
    );
    // Positional arguments, in order, with their types.
    let args = items(echo.property("Arguments").unwrap());
    assert_eq!(args, [PsValue::from("first"), PsValue::I32(42)]);
    let arg_types: Vec<_> = items(echo.property("ArgumentTypes").unwrap())
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(arg_types, ["S", "I32"]);
    close(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_outside_the_jea_role_fails_with_command_not_found() {
    let p = peer();
    let pool = open(p, kerberos_jea(p)).await;
    let result = pool.invoke(Command::new("Get-Process")).await.unwrap();
    assert_eq!(result.state, PipelineState::Failed);
    assert!(result.had_errors() && result.output.is_empty());
    let record = result.terminating_error.as_ref().expect("an error record");
    assert_eq!(
        record.exception_type(),
        Some("System.Management.Automation.CommandNotFoundException")
    );
    assert!(
        record.exception_message().contains("'Get-Process'"),
        "{record:?}"
    );
    let err = result.into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PipelineFailed);
    let text = err.to_string();
    assert!(
        text.contains("Get-Process") && text.contains("CommandNotFoundException"),
        "{text}"
    );
    // Scripts are refused by the NoLanguage endpoint, also as a typed failure.
    let script = pool
        .invoke(PowerShell::script("Get-Date | Out-String"))
        .await
        .unwrap();
    assert_eq!(script.state, PipelineState::Failed);
    assert_eq!(
        script
            .terminating_error
            .as_ref()
            .and_then(|e| e.fully_qualified_error_id.as_deref()),
        Some("ScriptsNotAllowed")
    );
    // The pool is still usable afterwards.
    let ok = pool.invoke(Command::new("Get-Date")).await.unwrap();
    assert!(ok.succeeded() && ok.output.len() == 1, "{ok:?}");
    close(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_init_set_psdebug_traces_the_following_commands() {
    let p = peer();
    let options = PoolOptions::new().session_init(Command::new("Set-PSDebug").param("Trace", 1));
    let pool = RunspacePool::open_with(kerberos_jea(p), options)
        .await
        .unwrap();
    let init = pool.session_init_results();
    assert_eq!(init.len(), 1);
    assert!(init[0].succeeded(), "{:?}", init[0]);
    let result = pool
        .invoke(Command::new("Get-ChildItem").param("Path", "C:\\Temp"))
        .await
        .unwrap();
    assert!(result.succeeded(), "{result:?}");
    assert!(!result.output.is_empty());
    let debug: Vec<_> = result.debug.iter().map(|d| d.message.as_str()).collect();
    assert!(
        debug
            .iter()
            .any(|m| m.contains(">>>> Get-ChildItem") && m.trim_start().starts_with("1+")),
        "no trace line for Get-ChildItem in {debug:?}"
    );
    // Without the init command, the same call has no trace.
    let plain = open(p, kerberos_jea(p)).await;
    let quiet = plain
        .invoke(Command::new("Get-ChildItem").param("Path", "C:\\Temp"))
        .await
        .unwrap();
    assert!(quiet.debug.is_empty(), "{:?}", quiet.debug);
    close(p, plain).await;
    close(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_session_init_command_fails_the_open_and_deletes_the_shell() {
    // A private peer: its shell count is this test's alone.
    let p = &Peer::start(&PeerOptions::default()).unwrap();
    let options = PoolOptions::new().session_init(Command::new("Get-Process"));
    let err = RunspacePool::open_with(kerberos_jea(p), options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SessionInit, "{err}");
    assert!(err.to_string().contains("Get-Process"), "{err}");
    assert_eq!(
        err.error_record().and_then(|r| r.exception_type()),
        Some("System.Management.Automation.CommandNotFoundException")
    );
    let ops = p.operations().unwrap();
    let actions: Vec<_> = ops.iter().filter_map(|o| o["action"].as_str()).collect();
    assert_eq!(actions.first(), Some(&"Create"), "{actions:?}");
    assert_eq!(actions.last(), Some(&"Delete"), "{actions:?}");
    assert_eq!(p.open_shells().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_arrives_in_order_with_its_level_and_content() {
    let p = peer();
    let pool = open(p, kerberos_jea(p)).await;
    let ps = PowerShell::new(Command::new("Write-Output").arg("first"))
        .statement(Command::new("Write-Warning").param("Message", "careful"))
        .statement(
            Command::new("Write-Verbose")
                .param("Message", "details")
                .switch("Verbose"),
        )
        .statement(
            Command::new("Write-Debug")
                .param("Message", "internals")
                .switch("Debug"),
        )
        .statement(
            Command::new("Write-Information")
                .param("MessageData", "fyi")
                .param("Tags", list(["t1", "t2"])),
        )
        .statement(
            Command::new("Write-Progress")
                .param("Activity", "Copying")
                .param("Status", "half way")
                .param("PercentComplete", 50),
        )
        .statement(Command::new("Write-Error").param("Message", "it broke"))
        .statement(Command::new("Write-Output").arg(PsValue::I64(2)));
    let mut run = pool.start(ps).await.unwrap();
    let mut streams = Vec::new();
    let mut result = InvocationResult::new("streams");
    while let Some(event) = run.next().await.unwrap() {
        streams.push(event.stream());
        result.push(event);
    }
    assert_eq!(
        streams,
        [
            "output",
            "warning",
            "verbose",
            "debug",
            "information",
            "progress",
            "error",
            "output"
        ]
    );
    let completion = run.completion().unwrap();
    assert_eq!(completion.state, PipelineState::Completed);
    assert_eq!(result.output, [PsValue::from("first"), PsValue::I64(2)]);
    assert_eq!(result.warnings[0].message, "careful");
    assert_eq!(result.verbose[0].message, "details");
    assert_eq!(result.debug[0].message, "internals");
    let info = &result.information[0];
    assert_eq!(info.message_data, PsValue::from("fyi"));
    assert_eq!(info.tags, ["t1", "t2"]);
    assert_eq!(info.source.as_deref(), Some("Write-Information"));
    let progress = &result.progress[0];
    assert_eq!(
        (
            progress.activity.as_str(),
            progress.status_description.as_str(),
            progress.percent_complete
        ),
        ("Copying", "half way", 50)
    );
    let error = &result.errors[0];
    assert_eq!(error.exception_message(), "it broke");
    assert!(error
        .fully_qualified_error_id
        .as_deref()
        .is_some_and(|id| id.contains("WriteErrorException")));
    // Verbose and debug records are only sent when asked for, as in PowerShell.
    let quiet = pool
        .invoke(
            PowerShell::new(Command::new("Write-Verbose").param("Message", "v"))
                .statement(Command::new("Write-Debug").param("Message", "d")),
        )
        .await
        .unwrap();
    assert!(
        quiet.verbose.is_empty() && quiet.debug.is_empty(),
        "{quiet:?}"
    );
    close(p, pool).await;
}

/// The number in a Get-LargeOutput item's name.
fn item_number(v: &PsValue) -> u64 {
    let name = v.as_object().unwrap().property("Name").unwrap();
    let name = name.as_str().unwrap();
    name.trim_start_matches("item-")
        .trim_end_matches(".dat")
        .parse()
        .unwrap_or_else(|_| panic!("bad name {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_output_arrives_whole_and_in_order() {
    let p = peer();
    let pool = open(p, kerberos_jea(p)).await;
    let count = 20_000;
    let result = pool
        .invoke(Command::new("Get-LargeOutput").param("Count", count))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(result.output.len(), count as usize);
    for (i, v) in result.output.iter().enumerate() {
        assert_eq!(item_number(v), i as u64);
    }
    let json = to_json(&result.output[count as usize - 1]);
    assert_eq!(json["Name"], "item-0000019999.dat");
    assert_eq!(json["Length"], 4096);
    assert_eq!(json["LastWriteTime"], "2024-03-09T08:00:00+01:00");
    // The many Receives it took all belong to this shell and were encrypted.
    let ops = operations_of(p, pool.shell_id());
    let receives = ops
        .iter()
        .filter(|o| o["action"] == "Receive" && o["command_id"].is_string())
        .count();
    assert!(receives > 10, "{receives} Receives for {count} objects");
    // None of them failed (no Receive after the command was done or released).
    let faults: Vec<_> = ops.iter().filter(|o| o["status"] != 200).collect();
    assert!(faults.is_empty(), "{faults:?}");
    close(p, pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_pauses_the_receives() {
    let p = peer();
    let options = PoolOptions::new().event_buffer(16);
    let pool = RunspacePool::open_with(kerberos_jea(p), options)
        .await
        .unwrap();
    let mut run = pool
        .start(Command::new("Get-LargeOutput").param("Count", 5_000))
        .await
        .unwrap();
    let command_id = run.id().to_string();
    let receives = || {
        operations_of(p, pool.shell_id())
            .into_iter()
            .filter(|o| {
                o["action"] == "Receive"
                    && o["command_id"]
                        .as_str()
                        .is_some_and(|c| c.eq_ignore_ascii_case(&command_id))
            })
            .count()
    };
    assert_eq!(item_number(&output_of(run.next().await.unwrap())), 0);
    // While nothing is read, the buffers fill and the Receives stop: wait
    // until the count holds still (bounded), then it must be a handful,
    // although the whole output takes dozens.
    let mut paused_at = receives();
    let mut still = 0;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let now = receives();
        still = if now == paused_at { still + 1 } else { 0 };
        paused_at = now;
        if still == 4 {
            break;
        }
    }
    assert_eq!(still, 4, "the Receives never paused");
    assert!(paused_at <= 5, "{paused_at} Receives with one event read");
    // Reading again resumes them, and everything arrives in order.
    let mut next = 1;
    while let Some(event) = run.next().await.unwrap() {
        assert_eq!(item_number(&output_of(Some(event))), next);
        next += 1;
    }
    assert_eq!(next, 5_000);
    let total = receives();
    assert!(total > 20, "only {total} Receives for the whole output");
    close(p, pool).await;
}

fn output_of(event: Option<Event>) -> PsValue {
    match event {
        Some(Event::Output(v)) => v,
        other => panic!("expected output, got {other:?}"),
    }
}

/// Answers Read-Host with a fixed line.
struct Scripted;

impl Host for Scripted {
    #[allow(clippy::result_large_err)]
    fn respond(&self, call: &HostCall) -> Result<Option<PsValue>, ErrorRecord> {
        match call.method {
            HostMethodId::ReadLine => Ok(Some(PsValue::from("typed answer"))),
            _ => Err(NonInteractiveHost::refusal(call)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_host_fails_cleanly_by_default_and_a_custom_host_answers_it() {
    let p = peer();
    let pool = open(p, kerberos_jea(p)).await;
    let result = pool
        .invoke(Command::new("Read-Host").param("Prompt", "Name"))
        .await
        .unwrap();
    assert_eq!(result.state, PipelineState::Failed, "{result:?}");
    let methods: Vec<_> = result.host_calls.iter().map(|c| c.method).collect();
    // Read-Host -Prompt asks through UI.Prompt, as PowerShell's ReadHostCommand does.
    assert_eq!(methods, [HostMethodId::Prompt]);
    let message = result
        .terminating_error
        .as_ref()
        .map(|e| e.exception_message().to_owned())
        .unwrap_or_default();
    assert!(message.contains("not interactive"), "{message}");
    close(p, pool).await;

    let pool = RunspacePool::open_with(kerberos_jea(p), PoolOptions::new().host(Scripted))
        .await
        .unwrap();
    let result = pool
        .invoke(Command::new("Read-Host"))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(result.output, [PsValue::from("typed answer")]);
    pool.close().await.unwrap();
}

/// The commands `JEA.Maintenance` makes visible (tests/peer/runner.py, JEA_VISIBLE).
const JEA_VISIBLE: [&str; 16] = [
    "Get-ChildItem",
    "Get-Date",
    "Get-Item",
    "Get-LargeOutput",
    "Invoke-Echo",
    "Read-Host",
    "Restart-Computer",
    "Set-PSDebug",
    "Start-Sleep",
    "Write-Debug",
    "Write-Error",
    "Write-Information",
    "Write-Output",
    "Write-Progress",
    "Write-Verbose",
    "Write-Warning",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_metadata_lists_the_visible_commands_with_their_parameters() {
    use psrp_core::client::{CommandTypes, GetCommandMetadata};

    let p = peer();
    let pool = open(p, kerberos_jea(p)).await;
    let all = pool.get_command_metadata(["*"]).await.unwrap();
    let mut names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names, JEA_VISIBLE,
        "ConvertTo-Json exists but is not visible"
    );

    let item = all.iter().find(|c| c.name == "Get-Item").unwrap();
    assert_eq!(item.command_type, CommandTypes::CMDLET);
    assert_eq!(
        item.namespace.as_deref(),
        Some("Microsoft.PowerShell.Management")
    );
    let param = |name: &str| item.parameters.iter().find(|p| p.name == name).unwrap();
    assert_eq!(param("Path").parameter_type, "System.String[]");
    assert!(!param("Path").switch_parameter);
    assert!(param("Force").switch_parameter);
    assert_eq!(param("ErrorAction").aliases, ["ea"]);
    let echo = all.iter().find(|c| c.name == "Invoke-Echo").unwrap();
    assert_eq!(echo.command_type, CommandTypes::FUNCTION);
    assert!(echo.parameters.is_empty(), "a function taking $args");

    // Patterns filter on the server (case-insensitive), several at once.
    let some = pool
        .get_command_metadata(["write-w*", "Get-Date", "ConvertTo-Json"])
        .await
        .unwrap();
    let names: Vec<&str> = some.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Get-Date", "Write-Warning"]);
    // Command types filter too: the peer's own functions only.
    let mut request = GetCommandMetadata::new("*");
    request.command_type = CommandTypes::FUNCTION;
    let functions = pool.get_command_metadata_with(request).await.unwrap();
    let names: Vec<&str> = functions.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Get-LargeOutput", "Invoke-Echo"]);
    // The pool still runs commands afterwards.
    let result = pool.invoke(Command::new("Get-Date")).await.unwrap();
    assert_eq!(result.state, PipelineState::Completed);

    let shell_id = pool.shell_id().to_owned();
    let asked: Vec<_> = p
        .log()
        .unwrap()
        .into_iter()
        .filter(|r| {
            r["kind"] == "command_metadata"
                && r["shell_id"]
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(&shell_id))
        })
        .collect();
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert_eq!(
        asked[1]["names"],
        json!(["write-w*", "Get-Date", "ConvertTo-Json"])
    );
    close(p, pool).await;
}
