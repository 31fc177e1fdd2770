//! Differential tests against psrpcore, an independent CLIXML
//! implementation:
//! - testdata/clixml/psrpcore holds CLIXML psrpcore wrote for values of
//!   every element and form, with psrpcore's reading of each (regenerate
//!   with tests/clixml/gen_corpus.py); our decoder must read the same;
//! - values encoded by our encoder are read back by psrpcore
//!   (tests/clixml/read_with_psrpcore.py) and must be what we meant.

mod clixml_support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use clixml_support::{assert_no_failures, check, check_case, check_objs, repo_root};
use psrp_core::clixml::{
    decode, encode, encode_objs, Collection, DateTime, DateTimeKind, Decimal, ObjsReader, Property,
    PsObject, PsValue, SecureString, TimeSpan, TypeNames, Version,
};
use serde_json::Value;

fn corpus_dir() -> PathBuf {
    repo_root().join("testdata/clixml/psrpcore")
}

fn corpus() -> Vec<(String, String, Value)> {
    let dir = corpus_dir();
    psrp_tests::xml_case_names(&dir)
        .into_iter()
        .map(|name| {
            let xml = std::fs::read_to_string(dir.join(format!("{name}.xml"))).unwrap();
            let exp = std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap();
            (name, xml, serde_json::from_str(&exp).unwrap())
        })
        .collect()
}

#[test]
fn we_read_what_psrpcore_wrote() {
    let corpus = corpus();
    assert!(corpus.len() >= 80, "only {} cases", corpus.len());
    let mut failures = Vec::new();
    for (name, xml, expected) in &corpus {
        if let Err(e) = check_case(expected, xml) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert_no_failures(&failures, corpus.len(), "cases");
}

/// Values psrpcore cannot write but Windows can, or that stress our
/// encoder: extremes, odd strings, sharing, cycles, wrapped objects.
fn handmade() -> Vec<(String, PsValue)> {
    let tn = |names: &[&str]| Some(TypeNames::new(names.iter().copied()));
    let prop = |name: &str, value: PsValue| Property::new(name, value);
    let custom = |props: Vec<Property>| {
        PsValue::object(PsObject {
            type_names: tn(&[
                "System.Management.Automation.PSCustomObject",
                "System.Object",
            ]),
            extended: props,
            ..PsObject::default()
        })
    };
    let dt = |year, ticks, kind| {
        PsValue::DateTime(DateTime {
            year,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 59,
            ticks,
            kind,
        })
    };
    let mut v: Vec<(&str, PsValue)> = vec![
        ("datetime_year_1", dt(1, 0, DateTimeKind::Utc)),
        (
            "datetime_unspecified_ticks",
            dt(2024, 9_999_999, DateTimeKind::Unspecified),
        ),
        (
            "datetime_offset",
            dt(
                2024,
                1,
                DateTimeKind::Local {
                    offset_minutes: -570,
                },
            ),
        ),
        (
            "timespan_min",
            PsValue::TimeSpan(TimeSpan { ticks: i64::MIN }),
        ),
        (
            "timespan_max",
            PsValue::TimeSpan(TimeSpan { ticks: i64::MAX }),
        ),
        ("timespan_tick", PsValue::TimeSpan(TimeSpan { ticks: -1 })),
        ("double_nan", PsValue::Double(f64::NAN)),
        ("double_neg_zero", PsValue::Double(-0.0)),
        ("double_exp", PsValue::Double(1.25e-300)),
        ("single_max", PsValue::Single(f32::MAX)),
        ("single_inf", PsValue::Single(f32::INFINITY)),
        (
            "decimal",
            PsValue::Decimal(Decimal::new("-0.000100").unwrap()),
        ),
        ("string_noncharacters", PsValue::from("a\u{FFFE}b\u{FFFF}c")),
        (
            "string_escapes",
            PsValue::from("_x0041_\r\n\t\u{0}😀_X_x005F_"),
        ),
        ("string_xml", PsValue::from("]]> <![CDATA[ & &amp; \"'")),
        ("char_surrogate_unit", PsValue::Char(0xD83D)),
        ("bytes", PsValue::Bytes((0..=255).collect())),
        ("uri", PsValue::Uri("file:///C:/a b/_x".into())),
        ("script_block", PsValue::ScriptBlock("{ $_ }\r\n".into())),
        (
            "xml_document",
            PsValue::XmlDocument("<a b=\"&amp;\"/>".into()),
        ),
        (
            "version_full",
            PsValue::Version(Version {
                major: 2147483647,
                minor: 0,
                build: Some(1),
                revision: Some(2),
            }),
        ),
        (
            "guid",
            PsValue::Guid(uuid::Uuid::from_u128(
                0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
            )),
        ),
        (
            "secure_string",
            PsValue::SecureString(SecureString::from_ciphertext(vec![7; 32])),
        ),
        (
            "property_names",
            custom(vec![
                prop("_x0041_", 1.into()),
                prop("a\tb", 2.into()),
                prop("<&>\"", 3.into()),
                prop("😀", 4.into()),
            ]),
        ),
        (
            "enum_flags",
            PsValue::object(PsObject {
                type_names: tn(&[
                    "System.IO.FileAttributes",
                    "System.Enum",
                    "System.ValueType",
                    "System.Object",
                ]),
                to_string: Some("ReadOnly, Archive".into()),
                base: Some(PsValue::I32(33)),
                ..PsObject::default()
            }),
        ),
        (
            "string_with_notes",
            PsValue::object(PsObject {
                base: Some(PsValue::from("line")),
                extended: vec![
                    prop("PSPath", "C:\\x".into()),
                    prop("ReadCount", PsValue::I64(3)),
                ],
                ..PsObject::default()
            }),
        ),
        (
            "collections",
            PsValue::object(PsObject {
                type_names: tn(&["System.Collections.Hashtable", "System.Object"]),
                collection: Some(Collection::Dictionary(vec![
                    (PsValue::I32(1), PsValue::from("int key")),
                    (
                        PsValue::from("list"),
                        list(Collection::List(vec![1.into(), PsValue::Null])),
                    ),
                    (
                        PsValue::from("stack"),
                        list(Collection::Stack(vec![1.into(), 2.into()])),
                    ),
                    (
                        PsValue::from("queue"),
                        list(Collection::Queue(vec!["a".into()])),
                    ),
                    (
                        PsValue::from("ie"),
                        list(Collection::Enumerable(vec![true.into()])),
                    ),
                ])),
                ..PsObject::default()
            }),
        ),
    ];
    // The same Arc three times: written once, then as <Ref>.
    let shared = custom(vec![prop("Shared", true.into())]);
    v.push((
        "shared_reference",
        list(Collection::List(vec![
            shared.clone(),
            shared.clone(),
            custom(vec![prop("Again", shared)]),
        ])),
    ));
    // A hashtable holding itself.
    v.push((
        "cycle",
        PsValue::object(PsObject {
            type_names: tn(&["System.Collections.Hashtable", "System.Object"]),
            collection: Some(Collection::Dictionary(vec![(
                PsValue::from("self"),
                PsValue::Ref(0),
            )])),
            ..PsObject::default()
        }),
    ));
    let mut deep = PsValue::from("bottom");
    for _ in 0..60 {
        deep = list(Collection::List(vec![deep]));
    }
    v.push(("deep", deep));
    v.into_iter().map(|(n, v)| (n.to_owned(), v)).collect()
}

fn list(c: Collection) -> PsValue {
    PsValue::object(PsObject {
        type_names: Some(TypeNames::new([
            "System.Object[]",
            "System.Array",
            "System.Object",
        ])),
        collection: Some(c),
        ..PsObject::default()
    })
}

/// psrpcore's reading of each XML, by name.
fn psrpcore_reads(cases: &[(String, String, bool)]) -> serde_json::Map<String, Value> {
    let input: Vec<Value> = cases
        .iter()
        .map(|(name, xml, objs)| serde_json::json!({"name": name, "xml": xml, "objs": objs}))
        .collect();
    let script = repo_root().join("tests/clixml/read_with_psrpcore.py");
    let mut child = Command::new(psrp_tests::venv_python().unwrap_or_else(|e| panic!("{e}")))
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start psrpcore reader");
    let mut stdin = child.stdin.take().unwrap();
    let body = serde_json::to_vec(&input).unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Object(m) => m,
        other => panic!("unexpected reader output {other}"),
    }
}

#[test]
fn psrpcore_reads_what_we_wrote() {
    // Every value of the psrpcore corpus (as we decode it), plus values
    // psrpcore cannot write.
    let mut values: Vec<(String, PsValue)> = Vec::new();
    let mut objs_docs = Vec::new();
    for (name, xml, expected) in corpus() {
        if expected.get("_objs").is_some() {
            let items: Vec<_> = ObjsReader::new(xml.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
            objs_docs.push((format!("corpus_{name}"), items));
        } else {
            values.push((format!("corpus_{name}"), decode(&xml).unwrap()));
        }
    }
    values.extend(handmade());
    let mut cases: Vec<(String, String, bool)> = values
        .iter()
        .map(|(name, v)| (name.clone(), encode(v), false))
        .collect();
    for (name, items) in &objs_docs {
        let doc = encode_objs(items.iter().map(|i| (i.value.clone(), i.stream.as_deref())));
        cases.push((name.clone(), doc, true));
    }

    let read = psrpcore_reads(&cases);
    let mut failures = Vec::new();
    for (name, v) in &values {
        match read.get(name).and_then(|r| r.get("value")) {
            Some(exp) => {
                if let Err(e) = check(exp, v, "") {
                    failures.push(format!("{name}: {e}"));
                }
            }
            None => failures.push(format!("{name}: psrpcore: {}", read[name])),
        }
    }
    for (name, items) in &objs_docs {
        match read.get(name).and_then(|r| r.get("value")) {
            Some(exp) => {
                if let Err(e) = check_objs(exp, items) {
                    failures.push(format!("{name}: {e}"));
                }
            }
            None => failures.push(format!("{name}: psrpcore: {}", read[name])),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} values read back differently:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
