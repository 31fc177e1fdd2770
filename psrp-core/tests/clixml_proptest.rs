//! Property tests of the CLIXML codec: decode(encode(v)) == v for arbitrary
//! values (weird strings, NaN and other float edges, nested objects,
//! collections, enums, shared objects), and neither decoding damaged
//! encodings nor converting to JSON ever panics.

use proptest::prelude::*;
use psrp_core::clixml::{
    decode, encode, to_json_with, Collection, DateTime, DateTimeKind, Decimal, JsonOptions,
    Property, PsObject, PsValue, SecureString, TimeSpan, TypeNames, Version,
};

/// Strings that stress the escaping: controls, `_x` look-alikes, XML
/// specials, non-BMP characters, noncharacters, and arbitrary text.
fn weird_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("_x".to_owned()),
        Just("_X".to_owned()),
        Just("_x0041_".to_owned()),
        Just("_x005F_".to_owned()),
        Just("_xD83D__xDE00_".to_owned()),
        Just("<![CDATA[".to_owned()),
        Just("]]>".to_owned()),
        Just("&amp;".to_owned()),
        Just("\r\n".to_owned()),
        Just("\u{FFFE}\u{FFFF}".to_owned()),
        Just("😀".to_owned()),
        any::<char>().prop_map(String::from),
        (0u32..0x100).prop_map(|c| char::from_u32(c).unwrap().to_string()),
        "[ -~]{0,8}",
    ];
    prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

fn float64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(f64::MAX),
        (-1e6f64..1e6),
    ]
}

fn float32() -> impl Strategy<Value = f32> {
    prop_oneof![
        any::<f32>(),
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(-0.0f32),
        Just(f32::MIN_POSITIVE),
        Just(1e-45f32),
        Just(f32::MAX),
    ]
}

fn datetime() -> impl Strategy<Value = DateTime> {
    (
        1u16..=9999,
        1u8..=12,
        1u8..=28,
        0u8..24,
        0u8..60,
        0u8..60,
        0u32..10_000_000,
        prop_oneof![
            Just(DateTimeKind::Unspecified),
            Just(DateTimeKind::Utc),
            (-(23 * 60 + 59)..=(23 * 60 + 59) as i16)
                .prop_map(|offset_minutes| DateTimeKind::Local { offset_minutes }),
        ],
    )
        .prop_map(
            |(year, month, day, hour, minute, second, ticks, kind)| DateTime {
                year,
                month,
                day,
                hour,
                minute,
                second,
                ticks,
                kind,
            },
        )
}

fn version() -> impl Strategy<Value = Version> {
    let part = 0u32..=i32::MAX as u32;
    (
        part.clone(),
        part.clone(),
        prop::option::of((part.clone(), prop::option::of(part))),
    )
        .prop_map(|(major, minor, rest)| Version {
            major,
            minor,
            build: rest.map(|r| r.0),
            revision: rest.and_then(|r| r.1),
        })
}

fn primitive() -> impl Strategy<Value = PsValue> {
    prop_oneof![
        Just(PsValue::Null),
        weird_string().prop_map(PsValue::String),
        any::<u16>().prop_map(PsValue::Char),
        any::<bool>().prop_map(PsValue::Bool),
        datetime().prop_map(PsValue::DateTime),
        any::<i64>().prop_map(|ticks| PsValue::TimeSpan(TimeSpan { ticks })),
        any::<u8>().prop_map(PsValue::U8),
        any::<i8>().prop_map(PsValue::I8),
        any::<u16>().prop_map(PsValue::U16),
        any::<i16>().prop_map(PsValue::I16),
        any::<u32>().prop_map(PsValue::U32),
        any::<i32>().prop_map(PsValue::I32),
        any::<u64>().prop_map(PsValue::U64),
        any::<i64>().prop_map(PsValue::I64),
        float32().prop_map(PsValue::Single),
        float64().prop_map(PsValue::Double),
        "-?[0-9]{1,29}(\\.[0-9]{1,28})?".prop_map(|d| PsValue::Decimal(Decimal::new(&d).unwrap())),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(PsValue::Bytes),
        any::<u128>().prop_map(|g| PsValue::Guid(uuid::Uuid::from_u128(g))),
        weird_string().prop_map(PsValue::Uri),
        version().prop_map(PsValue::Version),
        weird_string().prop_map(PsValue::XmlDocument),
        weird_string().prop_map(PsValue::ScriptBlock),
        prop::collection::vec(any::<u8>(), 0..48).prop_map(|ciphertext| PsValue::SecureString(
            SecureString::from_ciphertext(ciphertext)
        )),
    ]
}

fn type_names() -> impl Strategy<Value = Option<TypeNames>> {
    prop::option::of(
        prop_oneof![
            Just(vec![
                "System.Management.Automation.PSCustomObject".to_owned(),
                "System.Object".to_owned()
            ]),
            Just(vec!["Deserialized.System.IO.FileInfo".to_owned()]),
            prop::collection::vec(weird_string(), 0..4),
        ]
        .prop_map(TypeNames::new),
    )
}

fn enum_value() -> impl Strategy<Value = PsValue> {
    (weird_string(), any::<i32>()).prop_map(|(name, n)| {
        PsValue::object(PsObject {
            type_names: Some(TypeNames::new([
                "Some.Enum",
                "System.Enum",
                "System.ValueType",
                "System.Object",
            ])),
            to_string: Some(name),
            base: Some(PsValue::I32(n)),
            ..PsObject::default()
        })
    })
}

fn properties(
    inner: impl Strategy<Value = PsValue> + Clone,
) -> impl Strategy<Value = Vec<Property>> {
    prop::collection::vec(
        (weird_string(), inner).prop_map(|(name, value)| Property::new(name, value)),
        0..4,
    )
}

fn value() -> impl Strategy<Value = PsValue> {
    let leaf = prop_oneof![4 => primitive(), 1 => enum_value()];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let items = prop::collection::vec(inner.clone(), 0..5);
        let collection = prop_oneof![
            items.clone().prop_map(Collection::List),
            items.clone().prop_map(Collection::Enumerable),
            items.clone().prop_map(Collection::Stack),
            items.prop_map(Collection::Queue),
            prop::collection::vec((inner.clone(), inner.clone()), 0..4)
                .prop_map(Collection::Dictionary),
        ];
        prop_oneof![
            (
                type_names(),
                prop::option::of(weird_string()),
                prop::option::of(prop_oneof![primitive(), inner.clone()]),
                prop::option::of(collection),
                properties(inner.clone()),
                properties(inner.clone()),
            )
                .prop_map(
                    |(type_names, to_string, base, collection, adapted, extended)| {
                        PsValue::object(PsObject {
                            type_names,
                            to_string,
                            base,
                            collection,
                            adapted,
                            extended,
                        })
                    }
                ),
            // The same object twice: shared through one Arc (written as <Ref>).
            inner.prop_map(|v| {
                PsValue::object(PsObject {
                    collection: Some(Collection::List(vec![v.clone(), v])),
                    ..PsObject::default()
                })
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_inverts_encode(v in value()) {
        let xml = encode(&v);
        let back = decode(&xml).map_err(|e| TestCaseError::fail(format!("{e}\n{xml}")))?;
        prop_assert_eq!(&back, &v, "{}", xml);
    }

    #[test]
    fn damaged_encodings_never_panic(v in value(), cut in any::<prop::sample::Index>(), byte in any::<u8>(), mode in 0u8..3) {
        let xml = encode(&v).into_bytes();
        let at = cut.index(xml.len().max(1)).min(xml.len());
        let damaged = match mode {
            0 => xml[..at].to_vec(),
            1 => { let mut d = xml.clone(); d.insert(at, byte); d }
            _ => { let mut d = xml.clone(); if at < d.len() { d[at] = byte; } d }
        };
        if let Ok(text) = std::str::from_utf8(&damaged) {
            let _ = decode(text);
        }
    }

    #[test]
    fn json_conversion_is_total(v in value(), depth in 0usize..6, numbers in any::<bool>()) {
        let options = JsonOptions::default().with_max_depth(depth).with_enums_as_numbers(numbers);
        let json = to_json_with(&v, &options);
        prop_assert!(serde_json::to_string(&json).is_ok());
    }
}
