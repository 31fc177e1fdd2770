//! Unit tests of the decoder and encoder on hand-written CLIXML.

use std::sync::Arc;

use super::*;

fn obj(v: &PsValue) -> &PsObject {
    v.as_object().expect("an object")
}

#[test]
fn decodes_every_primitive() {
    let cases: &[(&str, PsValue)] = &[
        ("<S>a_x000A_b</S>", PsValue::String("a\nb".into())),
        ("<S />", PsValue::String(String::new())),
        ("<C>97</C>", PsValue::Char(97)),
        ("<B>true</B>", PsValue::Bool(true)),
        ("<B>false</B>", PsValue::Bool(false)),
        ("<By>254</By>", PsValue::U8(254)),
        ("<SB>-128</SB>", PsValue::I8(-128)),
        ("<U16>65535</U16>", PsValue::U16(65535)),
        ("<I16>-32768</I16>", PsValue::I16(-32768)),
        ("<U32>4294967295</U32>", PsValue::U32(u32::MAX)),
        ("<I32>-2147483648</I32>", PsValue::I32(i32::MIN)),
        ("<U64>18446744073709551615</U64>", PsValue::U64(u64::MAX)),
        ("<I64>-9223372036854775808</I64>", PsValue::I64(i64::MIN)),
        ("<Sg>1.5</Sg>", PsValue::Single(1.5)),
        ("<Db>-1.5E+20</Db>", PsValue::Double(-1.5e20)),
        ("<Db>INF</Db>", PsValue::Double(f64::INFINITY)),
        (
            "<D>-12.3400</D>",
            PsValue::Decimal(Decimal("-12.3400".into())),
        ),
        ("<BA>AQID</BA>", PsValue::Bytes(vec![1, 2, 3])),
        (
            "<G>792e5b37-4505-47ef-b7d2-8711bb7affa8</G>",
            PsValue::Guid(uuid::Uuid::parse_str("792e5b37-4505-47ef-b7d2-8711bb7affa8").unwrap()),
        ),
        (
            "<URI>http://x/_x0020_</URI>",
            PsValue::Uri("http://x/ ".into()),
        ),
        (
            "<Version>2.3.0.1</Version>",
            PsValue::Version(Version {
                major: 2,
                minor: 3,
                build: Some(0),
                revision: Some(1),
            }),
        ),
        ("<XD>&lt;a/&gt;</XD>", PsValue::XmlDocument("<a/>".into())),
        (
            "<SBK>Get-Date</SBK>",
            PsValue::ScriptBlock("Get-Date".into()),
        ),
        ("<Nil />", PsValue::Null),
        ("<Nil></Nil>", PsValue::Null),
        (
            "<TS>PT1.5S</TS>",
            PsValue::TimeSpan(TimeSpan { ticks: 15_000_000 }),
        ),
        (
            "<DT>2024-01-02T03:04:05.6Z</DT>",
            PsValue::DateTime(DateTime {
                year: 2024,
                month: 1,
                day: 2,
                hour: 3,
                minute: 4,
                second: 5,
                ticks: 6_000_000,
                kind: DateTimeKind::Utc,
            }),
        ),
        (
            "<SS>AAEC</SS>",
            PsValue::SecureString(SecureString::from_ciphertext(vec![0, 1, 2])),
        ),
    ];
    for (xml, expected) in cases {
        let got = decode(xml).unwrap_or_else(|e| panic!("{xml}: {e}"));
        assert_eq!(&got, expected, "{xml}");
        // And back: encode(decode(x)) decodes to the same value.
        assert_eq!(&decode(&encode(&got)).unwrap(), expected, "{xml}");
    }
    let nan = decode("<Db>NaN</Db>").unwrap();
    assert!(matches!(nan, PsValue::Double(f) if f.is_nan()));
}

#[test]
fn text_with_entities_cdata_and_line_ends() {
    assert_eq!(
        decode("<S>a&amp;b&#x41;&lt;<![CDATA[<c>]]>\r\nd</S>").unwrap(),
        PsValue::String("a&bA<<c>\nd".into())
    );
    // A character reference to CR is kept (XML normalizes only literal CRs).
    assert_eq!(
        decode("<S>a&#13;b\rc</S>").unwrap(),
        PsValue::String("a\rb\nc".into())
    );
}

#[test]
fn decodes_enum_and_type_name_reuse() {
    let xml = r#"<Obj RefId="0"><MS>
        <Obj N="A" RefId="1"><TN RefId="0"><T>System.ConsoleColor</T><T>System.Enum</T><T>System.ValueType</T><T>System.Object</T></TN><ToString>White</ToString><I32>15</I32></Obj>
        <Obj N="B" RefId="2"><TNRef RefId="0" /><ToString>Black</ToString><I32>0</I32></Obj>
        </MS></Obj>"#;
    let v = decode(xml).unwrap();
    let o = obj(&v);
    let a = obj(o.property("A").unwrap());
    let b = obj(o.property("B").unwrap());
    assert!(a.is_enum());
    assert_eq!(a.to_string.as_deref(), Some("White"));
    assert_eq!(a.base, Some(PsValue::I32(15)));
    assert_eq!(b.to_string.as_deref(), Some("Black"));
    // TNRef shares the list.
    let (ta, tb) = (
        a.type_names.as_ref().unwrap(),
        b.type_names.as_ref().unwrap(),
    );
    assert!(Arc::ptr_eq(&ta.0, &tb.0));
    assert_eq!(ta.names()[0], "System.ConsoleColor");
}

#[test]
fn decodes_collections_and_refs() {
    let xml = r#"<Obj RefId="0"><TN RefId="0"><T>System.Object[]</T></TN><LST>
        <Obj RefId="1"><DCT><En><S N="Key">k</S><I32 N="Value">1</I32></En><En><I32 N="Value">2</I32><Nil N="Key" /></En></DCT></Obj>
        <Ref RefId="1" />
        <Obj RefId="2"><STK><I32>1</I32></STK></Obj>
        <Obj RefId="3"><QUE><I32>2</I32></QUE></Obj>
        <Obj RefId="4"><IE><B>true</B></IE></Obj>
        </LST></Obj>"#;
    let v = decode(xml).unwrap();
    let Some(Collection::List(items)) = &obj(&v).collection else {
        panic!("list expected")
    };
    assert_eq!(items.len(), 5);
    let (PsValue::Object(d1), PsValue::Object(d2)) = (&items[0], &items[1]) else {
        panic!("objects expected")
    };
    assert!(Arc::ptr_eq(d1, d2), "Ref shares the Arc");
    assert_eq!(
        d1.collection,
        Some(Collection::Dictionary(vec![
            (PsValue::from("k"), PsValue::I32(1)),
            (PsValue::Null, PsValue::I32(2)),
        ]))
    );
    assert!(matches!(
        obj(&items[2]).collection,
        Some(Collection::Stack(_))
    ));
    assert!(matches!(
        obj(&items[3]).collection,
        Some(Collection::Queue(_))
    ));
    assert!(matches!(
        obj(&items[4]).collection,
        Some(Collection::Enumerable(_))
    ));
    // Re-encoding keeps the sharing as a Ref.
    let again = encode(&v);
    assert!(again.contains(r#"<Ref RefId="1" />"#), "{again}");
    assert_eq!(decode(&again).unwrap(), v);
}

#[test]
fn cycle_decodes_to_ref_and_round_trips() {
    let xml = r#"<Obj RefId="7"><DCT><En><S N="Key">self</S><Ref N="Value" RefId="7" /></En></DCT></Obj>"#;
    let v = decode(xml).unwrap();
    assert_eq!(
        obj(&v).collection,
        Some(Collection::Dictionary(vec![(
            PsValue::from("self"),
            PsValue::Ref(0)
        )]))
    );
    let again = encode(&v);
    assert_eq!(
        again,
        r#"<Obj RefId="0"><DCT><En><S N="Key">self</S><Ref N="Value" RefId="0" /></En></DCT></Obj>"#
    );
    assert_eq!(decode(&again).unwrap(), v);
}

#[test]
fn progress_record_element() {
    let xml = "<PR><AV>Act</AV><AI>3</AI><Nil /><PI>-1</PI><PC>50</PC><T>Processing</T><SR>-1</SR><SD>half</SD></PR>";
    let v = decode(xml).unwrap();
    let o = obj(&v);
    assert!(o
        .type_names
        .as_ref()
        .unwrap()
        .contains("System.Management.Automation.ProgressRecord"));
    assert_eq!(o.property("Activity"), Some(&PsValue::from("Act")));
    assert_eq!(o.property("ActivityId"), Some(&PsValue::I32(3)));
    assert_eq!(o.property("PercentComplete"), Some(&PsValue::I32(50)));
    assert_eq!(o.property("CurrentOperation"), Some(&PsValue::Null));
    let rt = obj(o.property("RecordType").unwrap());
    assert!(rt.is_enum());
    assert_eq!(rt.to_string.as_deref(), Some("Processing"));
    assert_eq!(decode(&encode(&v)).unwrap(), v);
}

#[test]
fn accepts_bom_declaration_and_whitespace() {
    let v = decode("\u{FEFF}<?xml version=\"1.0\"?>\n<!-- c -->\n<I32>1</I32>\n").unwrap();
    assert_eq!(v, PsValue::I32(1));
}

fn err(xml: &str) -> DecodeError {
    decode(xml).expect_err(xml)
}

#[test]
fn errors_say_what_and_where() {
    let e = err(r#"<Obj RefId="0"><MS><I32 N="Count">x1</I32></MS></Obj>"#);
    assert!(matches!(
        e.kind(),
        DecodeErrorKind::InvalidValue { element: "I32", .. }
    ));
    let path: Vec<_> = e.path().collect();
    assert_eq!(path, ["Obj[RefId=\"0\"]", "MS", "I32[N=\"Count\"]"]);
    assert!(e.offset() > 20 && e.offset() <= 45, "{}", e.offset());
    let msg = e.to_string();
    assert!(msg.contains("invalid <I32> value \"x1\""), "{msg}");
    assert!(
        msg.contains("/Obj[RefId=\"0\"]/MS/I32[N=\"Count\"]"),
        "{msg}"
    );
}

type KindCheck = fn(&DecodeErrorKind) -> bool;

#[test]
fn rejects_malformed_input() {
    let cases: &[(&str, KindCheck)] = &[
        ("", |k| matches!(k, DecodeErrorKind::NoRootElement)),
        ("<I32>1</I32><I32>2</I32>", |k| {
            matches!(k, DecodeErrorKind::TrailingContent)
        }),
        ("<I32>1</I64>", |k| matches!(k, DecodeErrorKind::Xml(_))),
        ("<Obj>", |k| matches!(k, DecodeErrorKind::UnexpectedEof)),
        ("<S>a<b/></S>", |k| {
            matches!(k, DecodeErrorKind::UnexpectedElement { .. })
        }),
        ("<Obj>text</Obj>", |k| {
            matches!(k, DecodeErrorKind::UnexpectedText { .. })
        }),
        ("<Ref RefId=\"3\" />", |k| {
            matches!(k, DecodeErrorKind::UnknownRef(3))
        }),
        ("<Ref />", |k| {
            matches!(k, DecodeErrorKind::MissingAttribute { .. })
        }),
        ("<Obj><TNRef RefId=\"0\" /></Obj>", |k| {
            matches!(k, DecodeErrorKind::UnknownTypeNamesRef(0))
        }),
        (
            "<Obj RefId=\"0\"><LST><Obj RefId=\"0\" /></LST></Obj>",
            |k| matches!(k, DecodeErrorKind::DuplicateRefId(0)),
        ),
        ("<Obj><MS><I32>1</I32></MS></Obj>", |k| {
            matches!(k, DecodeErrorKind::MissingAttribute { attribute: "N", .. })
        }),
        ("<Obj><DCT><En><S N=\"Key\">a</S></En></DCT></Obj>", |k| {
            matches!(k, DecodeErrorKind::IncompleteEntry("Value"))
        }),
        ("<Obj><I32>1</I32><I32>2</I32></Obj>", |k| {
            matches!(k, DecodeErrorKind::DuplicateMember(_))
        }),
        ("<Obj><Obj /><I32>1</I32></Obj>", |k| {
            matches!(k, DecodeErrorKind::DuplicateMember(_))
        }),
        ("<Foo />", |k| {
            matches!(k, DecodeErrorKind::UnexpectedElement { .. })
        }),
        ("<S>&bogus;</S>", |k| matches!(k, DecodeErrorKind::Xml(_))),
        ("<Obj RefId=\"x\" />", |k| {
            matches!(k, DecodeErrorKind::InvalidAttribute { .. })
        }),
        ("<Obj RefId=0 />", |k| matches!(k, DecodeErrorKind::Xml(_))),
        ("<By>256</By>", |k| {
            matches!(k, DecodeErrorKind::InvalidValue { .. })
        }),
        ("<Db>infinite</Db>", |k| {
            matches!(k, DecodeErrorKind::InvalidValue { .. })
        }),
        ("<PR><AV>a</AV></PR>", |k| {
            matches!(k, DecodeErrorKind::InvalidProgressRecord(_))
        }),
    ];
    for (xml, check) in cases {
        let e = err(xml);
        assert!(check(e.kind()), "{xml}: {e}");
    }
}

#[test]
fn secure_string_text_is_not_echoed_in_errors() {
    let e = err("<SS>not base64 secret!</SS>");
    assert!(!e.to_string().contains("secret"), "{e}");
}

#[test]
fn depth_is_bounded() {
    let depth = 300;
    let xml = format!(
        "{}<I32>1</I32>{}",
        "<Obj><LST>".repeat(depth),
        "</LST></Obj>".repeat(depth)
    );
    let e = err(&xml);
    assert!(matches!(e.kind(), DecodeErrorKind::TooDeep(256)), "{e}");
    // Within the limit it decodes, on a test thread's normal stack.
    let ok = format!(
        "{}<I32>1</I32>{}",
        "<Obj><LST>".repeat(127),
        "</LST></Obj>".repeat(127)
    );
    decode(&ok).unwrap();
    let limits = Limits::default().with_max_depth(10);
    assert!(decode_with(&ok, &limits).is_err());
}

#[test]
fn encoder_writes_windows_forms() {
    let tn = TypeNames::new([
        "System.Management.Automation.PSCustomObject",
        "System.Object",
    ]);
    let inner = Arc::new(PsObject {
        type_names: Some(tn.clone()),
        ..PsObject::default()
    });
    let v = PsValue::object(PsObject {
        type_names: Some(tn.clone()),
        to_string: Some("line1\nline2".into()),
        extended: vec![
            Property {
                name: "a_x".into(),
                value: PsValue::Object(Arc::clone(&inner)),
            },
            Property {
                name: "b".into(),
                value: PsValue::Object(inner),
            },
            Property {
                name: "c".into(),
                value: PsValue::Double(1e20),
            },
        ],
        ..PsObject::default()
    });
    assert_eq!(
        encode(&v),
        concat!(
            r#"<Obj RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T><T>System.Object</T></TN>"#,
            r#"<ToString>line1_x000A_line2</ToString><MS>"#,
            r#"<Obj N="a_x005F_x" RefId="1"><TNRef RefId="0" /></Obj>"#,
            r#"<Ref N="b" RefId="1" /><Db N="c">1E+20</Db></MS></Obj>"#
        )
    );
    assert_eq!(decode(&encode(&v)).unwrap(), v);
}

#[test]
fn cycle_refs_count_enclosing_objects_in_any_member_order() {
    let xml = r#"<Obj RefId="5"><MS><Obj N="child" RefId="6"><MS><Ref N="parent" RefId="5" /><Ref N="me" RefId="6" /></MS></Obj></MS><LST><Obj RefId="7" /></LST></Obj>"#;
    let v = decode(xml).unwrap();
    let child = obj(obj(&v).property("child").unwrap());
    assert_eq!(child.property("parent"), Some(&PsValue::Ref(1)));
    assert_eq!(child.property("me"), Some(&PsValue::Ref(0)));
    // The encoder writes the list before MS, renumbering RefIds: the
    // references still name the same enclosing objects.
    let again = encode(&v);
    assert!(
        again.find("<LST>").unwrap() < again.find("<MS>").unwrap(),
        "{again}"
    );
    assert_eq!(decode(&again).unwrap(), v);
    // A Ref naming no enclosing object cannot be written as a reference.
    assert_eq!(encode(&PsValue::Ref(0)), "<Nil />");
}

#[test]
fn each_message_is_its_own_ref_id_scope() {
    // The decoder reuses its id tables between messages: nothing defined
    // in one message may be visible in the next, even after an error.
    let first =
        r#"<Obj RefId="0"><TN RefId="0"><T>A</T></TN><MS><Obj N="x" RefId="1" /></MS></Obj>"#;
    decode(first).unwrap();
    let e = err(r#"<Obj RefId="0"><TN RefId="1"><T>B</T></TN><MS><Ref N="y" RefId="1" />"#);
    assert!(matches!(e.kind(), DecodeErrorKind::UnknownRef(1)), "{e}");
    let e = err(r#"<Obj RefId="2"><TNRef RefId="0" /></Obj>"#);
    assert!(
        matches!(e.kind(), DecodeErrorKind::UnknownTypeNamesRef(0)),
        "{e}"
    );
    let e = err(r#"<Obj RefId="3"><TNRef RefId="1" /></Obj>"#);
    assert!(
        matches!(e.kind(), DecodeErrorKind::UnknownTypeNamesRef(1)),
        "{e}"
    );
    let e = err(r#"<Obj RefId="4"><MS><Ref N="z" RefId="0" /></MS></Obj>"#);
    assert!(matches!(e.kind(), DecodeErrorKind::UnknownRef(0)), "{e}");
    // The same ids are free to be defined again.
    assert_eq!(decode(first).unwrap(), decode(first).unwrap());
}

#[test]
fn property_names_of_any_length_and_escaping() {
    let long = "A".repeat(24) + "Longer than inline";
    let xml = format!(
        r#"<Obj RefId="0"><MS><I32 N="{long}">1</I32><I32 N="a_x0020_b &amp; c">2</I32><I32 N="Short">3</I32></MS></Obj>"#
    );
    let v = decode(&xml).unwrap();
    let names: Vec<&str> = obj(&v).extended.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, [long.as_str(), "a b & c", "Short"]);
    assert_eq!(obj(&v).property(&long), Some(&PsValue::I32(1)));
    assert_eq!(decode(&encode(&v)).unwrap(), v);
}
