//! `psrp clixml` on real Windows data (shared/real-windows): the
//! `#< CLIXML` stderr documents PowerShell writes, every captured payload
//! (checked against psrpcore's reading of it), whole binary PSRP messages,
//! and UTF-16 documents as Windows PowerShell's Export-Clixml writes them.

mod cli_support;

use cli_support::Psrp;
use psrp_tests::real_windows_dir;
use serde_json::Value;

fn clixml_file(path: &std::path::Path, extra: &[&str]) -> cli_support::Run {
    Psrp::new().arg("clixml").arg(path).args(extra).run()
}

#[test]
fn stderr_clixml_streams_become_log_lines() {
    let dir = real_windows_dir().join("clixml");
    let run = clixml_file(&dir.join("stderr_clixml_with_error.xml"), &[]);
    run.expect_code(0);
    assert_eq!(run.json(), Value::Array(vec![]), "no output items");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"PROGRESS: Preparing modules for first use. (completed)"),
        "{}",
        run.stderr
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("PROGRESS:")).count(),
        1,
        "a repeated progress record is shown once"
    );
    let errors: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ERROR: "))
        .collect();
    assert_eq!(
        errors.first().copied(),
        Some("fake : The term 'fake' is not recognized as the name of a cmdlet, function, script file, or operable program. Check ")
    );
    assert!(errors.contains(&"    + FullyQualifiedErrorId : CommandNotFoundException"));
    assert!(
        errors.iter().all(|l| !l.trim().is_empty()),
        "blank fragments are dropped"
    );
    // --log-level filters here too.
    let quiet = clixml_file(
        &dir.join("stderr_clixml_with_error.xml"),
        &["--log-level", "none"],
    );
    quiet.expect_code(0);
    assert_eq!(quiet.stderr, "");
}

/// The top-level shape psrpcore found (its neutral form, see
/// shared/real-windows/README.md) against our JSON.
fn same_shape(expected: &Value, ours: &Value) -> Result<(), String> {
    let fail = || Err(format!("expected {expected} as JSON, got {ours}"));
    let Some(obj) = expected.as_object() else {
        return if expected == ours { Ok(()) } else { fail() };
    };
    if let (Some(_), Some(v)) = (obj.get("_prim"), obj.get("value")) {
        return match (v, ours) {
            (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => Ok(()),
            (Value::Number(_), _) => fail(),
            // Dates, GUIDs, ... are strings in both, in their own notation.
            (_, Value::String(_)) => Ok(()),
            _ => fail(),
        };
    }
    if let Some(name) = obj.get("_enum") {
        return if name == ours { Ok(()) } else { fail() };
    }
    if let Some(Value::Array(items)) = obj.get("_list") {
        return match ours {
            Value::Array(a) if a.len() == items.len() => Ok(()),
            _ => fail(),
        };
    }
    if let Some(Value::Array(entries)) = obj.get("_dict") {
        let keys: Vec<String> = entries
            .iter()
            .map(|e| match &e[0] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        return match ours {
            Value::Object(m) if m.keys().cloned().collect::<Vec<_>>() == keys => Ok(()),
            _ => fail(),
        };
    }
    // psrpcore rehydrates error and informational records into .NET-like
    // properties (Message, InvocationInfo); the wire, and our JSON, have the
    // flattened form (InformationalRecord_Message, ErrorCategory_*...).
    const REHYDRATED: [&str; 2] = [
        "System.Management.Automation.ErrorRecord",
        "System.Management.Automation.InformationalRecord",
    ];
    let rehydrated = obj["_type"]
        .as_array()
        .is_some_and(|t| t.iter().any(|n| REHYDRATED.iter().any(|r| n == r)));
    if rehydrated {
        return match ours {
            Value::Object(m)
                if m.contains_key("InformationalRecord_Message")
                    || m.contains_key("FullyQualifiedErrorId") =>
            {
                Ok(())
            }
            _ => fail(),
        };
    }
    let mut names: Vec<&String> = Vec::new();
    for part in ["_adapted", "_extended"] {
        if let Some(Value::Object(props)) = obj.get(part) {
            names.extend(props.keys());
        }
    }
    if names.is_empty() {
        // An object with no properties is its ToString.
        return match (obj.get("_toString"), ours) {
            (Some(Value::String(t)), Value::String(s)) if t == s => Ok(()),
            (_, Value::Object(m)) if m.is_empty() => Ok(()),
            _ => fail(),
        };
    }
    match ours {
        Value::Object(m) if names.iter().all(|n| m.contains_key(n.as_str())) => Ok(()),
        _ => fail(),
    }
}

#[test]
fn every_captured_payload_converts_like_psrpcore_reads_it() {
    let dir = real_windows_dir().join("clixml");
    let names = psrp_tests::xml_case_names(&dir);
    assert!(names.len() >= 48, "only {} captures", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let run = clixml_file(&dir.join(format!("{name}.xml")), &["-o", "ndjson"]);
        if run.code() != 0 {
            failures.push(format!("{name}: exit {}: {}", run.code(), run.stderr));
            continue;
        }
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap(),
        )
        .unwrap();
        let ours = run.ndjson();
        let check = match expected.get("_objs") {
            // Documents: output items only (stream items went to stderr).
            Some(Value::Array(items)) => {
                let outputs: Vec<&Value> = items
                    .iter()
                    .filter(|i| i["stream"].is_null())
                    .map(|i| &i["value"])
                    .collect();
                if outputs.len() == ours.len() {
                    outputs
                        .iter()
                        .zip(&ours)
                        .try_for_each(|(e, o)| same_shape(e, o))
                } else {
                    Err(format!("{} items, expected {}", ours.len(), outputs.len()))
                }
            }
            _ if ours.len() == 1 => same_shape(&expected, &ours[0]),
            _ => Err(format!("{} items for one payload", ours.len())),
        };
        if let Err(e) = check {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn whole_binary_psrp_messages_convert_to_their_payload() {
    let root = real_windows_dir();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("psrp")).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".msg.bin"))
        else {
            continue;
        };
        let run = clixml_file(&path, &["-o", "ndjson"]);
        run.expect_code(0);
        let ours = run.ndjson();
        assert_eq!(ours.len(), 1, "{name}");
        // Where the same payload is among the CLIXML captures, both agree.
        let xml = root.join("clixml").join(format!("{name}.xml"));
        if xml.exists() {
            let same = clixml_file(&xml, &["-o", "ndjson"]);
            assert_eq!(same.ndjson(), ours, "{name}");
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} messages had a CLIXML twin");
}

#[test]
fn utf16_export_clixml_documents_are_read() {
    let dir = real_windows_dir().join("clixml");
    let element = std::fs::read_to_string(dir.join("error_record_write_error.xml")).unwrap();
    let doc = format!(
        "<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">{element}<S>é 😀</S></Objs>"
    );
    let tmp = tempfile::tempdir().unwrap();
    for (name, bom, big_endian) in [
        ("le.xml", [0xFF, 0xFE], false),
        ("be.xml", [0xFE, 0xFF], true),
    ] {
        let mut bytes = bom.to_vec();
        for unit in doc.encode_utf16() {
            bytes.extend_from_slice(&if big_endian {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            });
        }
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let run = clixml_file(&path, &["-o", "ndjson"]);
        run.expect_code(0);
        let items = run.ndjson();
        let single = clixml_file(&dir.join("error_record_write_error.xml"), &["-o", "ndjson"]);
        assert_eq!(items.len(), 2, "{name}");
        assert_eq!(items[0], single.ndjson()[0], "{name}");
        assert_eq!(items[1], Value::from("é 😀"), "{name}");
    }
}

#[test]
fn invalid_input_exits_65_and_says_where() {
    let run = Psrp::new()
        .args(["clixml", "-"])
        .stdin("<Objs Version=\"1.1.0.1\"><I32>1</I32><I32>x</I32></Objs>")
        .run();
    run.expect_code(65);
    assert!(
        run.stderr.starts_with("psrp: stdin is not valid CLIXML:"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("at byte"), "{}", run.stderr);
    // What came before the bad item was written, and the array is closed.
    assert_eq!(run.json(), serde_json::json!([1]));

    let run = Psrp::new().args(["clixml", "/nonexistent.xml"]).run();
    run.expect_code(64);
    assert!(run.stderr.contains("cannot read /nonexistent.xml"));
    assert_eq!(run.stdout, "", "nothing is written for a missing file");
}
