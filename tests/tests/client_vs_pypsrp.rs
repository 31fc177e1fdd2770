//! The same scenarios through psrp's client and through the real pypsrp
//! client (tests/compare/pypsrp_run.py, in the test venv), against the test
//! peer with Kerberos over HTTP: the JSON of the output objects, the stream
//! messages and the final states must be the same.

mod client_common;

use client_common::{kerberos, peer};
use psrp_core::client::{
    json_to_value, to_json, Command, InvocationResult, PoolOptions, PowerShell, RunspacePool,
};
use serde_json::{json, Value};

/// The scenarios, in the form both sides build pipelines from.
fn scenarios() -> Value {
    let cmd = |name: &str| json!({"command": name});
    json!([
        {
            "name": "file system listing",
            "configuration": "JEA.Maintenance",
            "statements": [[{"command": "Get-ChildItem", "parameters": [["Path", "C:\\Temp"]]}]],
        },
        {
            "name": "recursive listing with hidden files",
            "configuration": "JEA.Maintenance",
            "statements": [[{"command": "Get-ChildItem", "parameters": [["Path", "C:\\"]],
                             "switches": ["Recurse", "Force"]}]],
        },
        {
            "name": "one item",
            "configuration": "JEA.Maintenance",
            "statements": [[{"command": "Get-Item", "arguments": ["C:\\Windows\\win.ini"]}]],
        },
        {
            "name": "echo of every JSON parameter type",
            "configuration": "JEA.Maintenance",
            "statements": [[{
                "command": "Invoke-Echo",
                "parameters": [
                    ["Count", 42], ["Negative", -7], ["Text", "tab\t quote\" <x> & _x0041_ é 😀"],
                    ["Empty", ""], ["Yes", true], ["No", false], ["Nothing", null],
                    // No list directly inside a list: pypsrp 0.9.1 sends that as a bare
                    // <LST> and reads the echo back as raw XML (psrp's own JEA test
                    // covers nested lists).
                    ["List", [1, "two", null]],
                    ["Table", {"name": "web01", "ports": [80, 443], "tags": {"env": "prod"}}],
                ],
                "switches": ["Force"],
                "arguments": ["first", 2],
            }]],
        },
        {
            "name": "values through Write-Output",
            "configuration": "JEA.Maintenance",
            // No null: pypsrp 0.9.1 reads a null output object as "" (psrp: null).
            "statements": [[{"command": "Write-Output", "parameters": [["InputObject",
                ["a", 1, true, {"k": "v"}, [1, 2]]]]}]],
        },
        {
            "name": "large output",
            "configuration": "JEA.Maintenance",
            "statements": [[{"command": "Get-LargeOutput", "parameters": [["Count", 300]]}]],
        },
        {
            "name": "every stream",
            "configuration": "JEA.Maintenance",
            "statements": [
                [{"command": "Write-Output", "arguments": ["out"]}],
                [{"command": "Write-Warning", "parameters": [["Message", "careful"]]}],
                [{"command": "Write-Verbose", "parameters": [["Message", "details"]], "switches": ["Verbose"]}],
                [{"command": "Write-Debug", "parameters": [["Message", "internals"]], "switches": ["Debug"]}],
                [{"command": "Write-Information", "parameters": [["MessageData", "fyi"]]}],
                [{"command": "Write-Error", "parameters": [["Message", "it broke"]]}],
            ],
        },
        {
            "name": "command outside the JEA role",
            "configuration": "JEA.Maintenance",
            "statements": [[cmd("Get-Process")]],
        },
        {
            "name": "restart with a switch",
            "configuration": "JEA.Maintenance",
            "statements": [[{"command": "Restart-Computer", "switches": ["Force"]}]],
        },
        {
            "name": "session init trace",
            "configuration": "JEA.Maintenance",
            "session_init": [[[{"command": "Set-PSDebug", "parameters": [["Trace", 1]]}]]],
            "statements": [[{"command": "Get-Item", "parameters": [["Path", "C:\\Temp"]]}]],
        },
        {
            "name": "processes",
            "configuration": "Microsoft.PowerShell",
            "statements": [[cmd("Get-Process")]],
        },
        {
            "name": "pipe",
            "configuration": "Microsoft.PowerShell",
            "statements": [[
                {"command": "Get-ChildItem", "parameters": [["Path", "C:\\Temp\\Logs"]]},
                cmd("Write-Output"),
            ]],
        },
    ])
}

fn command_of(spec: &Value) -> Command {
    let mut c = Command::new(spec["command"].as_str().unwrap());
    for p in spec["parameters"].as_array().into_iter().flatten() {
        c = c.param(p[0].as_str().unwrap(), json_to_value(&p[1]));
    }
    for s in spec["switches"].as_array().into_iter().flatten() {
        c = c.switch(s.as_str().unwrap());
    }
    for a in spec["arguments"].as_array().into_iter().flatten() {
        c = c.arg(json_to_value(a));
    }
    c
}

fn powershell_of(statements: &Value) -> PowerShell {
    let mut ps: Option<PowerShell> = None;
    for statement in statements.as_array().unwrap() {
        for (i, spec) in statement.as_array().unwrap().iter().enumerate() {
            let c = command_of(spec);
            ps = Some(match (ps, i) {
                (None, _) => PowerShell::new(c),
                (Some(ps), 0) => ps.statement(c),
                (Some(ps), _) => ps.pipe(c),
            });
        }
    }
    ps.unwrap()
}

/// psrp's result in the form the pypsrp script writes.
fn summary(name: &str, r: &InvocationResult) -> Value {
    let errors: Vec<Value> = r
        .errors
        .iter()
        .chain(r.terminating_error.iter())
        .map(|e| json!({"message": e.exception_message(), "id": e.fully_qualified_error_id}))
        .collect();
    json!({
        "name": name,
        "state": r.state.name(),
        "output": r.output_json(),
        "errors": errors,
        "warnings": r.warnings.iter().map(|w| w.message.clone()).collect::<Vec<_>>(),
        "verbose": r.verbose.iter().map(|w| w.message.clone()).collect::<Vec<_>>(),
        "debug": r.debug.iter().map(|w| w.message.clone()).collect::<Vec<_>>(),
        "information": r.information.iter().map(|i| to_json(&i.message_data)).collect::<Vec<_>>(),
    })
}

async fn run_psrp(scenario: &Value) -> Value {
    let p = peer();
    let mut options = PoolOptions::new();
    for init in scenario["session_init"].as_array().into_iter().flatten() {
        options = options.session_init(powershell_of(init));
    }
    let connection = kerberos(p).configuration_name(scenario["configuration"].as_str().unwrap());
    let pool = RunspacePool::open_with(connection, options).await.unwrap();
    let result = pool
        .invoke(powershell_of(&scenario["statements"]))
        .await
        .unwrap();
    pool.close().await.unwrap();
    summary(scenario["name"].as_str().unwrap(), &result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psrp_and_pypsrp_get_the_same_objects_and_records() {
    let scenarios = scenarios();
    // pypsrp is synchronous: run it on a blocking thread meanwhile.
    let theirs = {
        let s = scenarios.clone();
        tokio::task::spawn_blocking(move || psrp_tests::run_pypsrp(peer(), &s).unwrap())
    };
    let mut ours = Vec::new();
    for s in scenarios.as_array().unwrap() {
        ours.push(run_psrp(s).await);
    }
    let theirs = theirs.await.unwrap();
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(
            a, b,
            "scenario {:?}: psrp (left) and pypsrp (right) differ",
            a["name"]
        );
    }
    // The comparison covered real data, not empty results.
    let by_name = |n: &str| ours.iter().find(|r| r["name"] == n).unwrap();
    assert!(
        by_name("file system listing")["output"]
            .as_array()
            .unwrap()
            .len()
            >= 4
    );
    assert_eq!(
        by_name("large output")["output"].as_array().unwrap().len(),
        300
    );
    assert_eq!(by_name("command outside the JEA role")["state"], "Failed");
    assert_eq!(
        by_name("session init trace")["debug"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let streams = by_name("every stream");
    for key in ["warnings", "verbose", "debug", "information", "errors"] {
        assert_eq!(streams[key].as_array().unwrap().len(), 1, "{key}");
    }
}
