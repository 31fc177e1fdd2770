//! Shared by the CLIXML corpus tests: locating test data and comparing a
//! decoded value with psrpcore's reading of the same CLIXML, written in the
//! neutral JSON form described in shared/real-windows/README.md:
//!
//! - plain JSON for `S` strings, `I32` numbers, booleans and `Nil`;
//! - `{"_prim": TAG, "value": ...}` for the other primitives;
//! - `{"_type", "_toString", "_adapted", "_extended", "_list", "_dict"}`
//!   for objects and `{"_type", "_enum", "value"}` for enums;
//! - `{"_objs": [{"stream", "value"}]}` for `<Objs>` documents;
//! - (in the psrpcore corpus, tests/clixml/neutral.py) `{"_base": prim,
//!   "_toString", "_extended"}` for a primitive carrying notes and
//!   `{"_cycle": true}` for a reference back to an enclosing object.
//!
//! psrpcore's reading differs from the wire in known ways, each allowed
//! here and nowhere else:
//! 1. it prefixes `Deserialized.` to type names it does not rehydrate, and
//!    gives the types it rehydrates its own (shorter) type-name list;
//! 2. it invents a `_toString` (its Python repr) for collections and for
//!    the types it rehydrates, where the wire had no `<ToString>`;
//! 3. it merges an `<Obj>` that wraps another `<Obj>` into one object
//!    (outer type names and ToString, properties by name, outer last);
//! 4. its neutral writer shows some enums as their bare number;
//! 5. it writes a DateTime with offset +00:00 as UTC (`Z`);
//! 6. it rebuilds error and informational records (ErrorRecord,
//!    Debug/Verbose/WarningRecord) from their remoting notes into its own
//!    classes (dropping the ToString, rebuilding nested objects): for those
//!    only the type names and the primitive properties both sides have are
//!    compared (psrpcore's `X` is the wire note `X` or
//!    `InformationalRecord_X`, MS-PSRP 2.2.3.16);
//! 7. it shows a primitive wrapped in an `<Obj>` as the bare primitive, and
//!    spells enum names its own way (compared ignoring case).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use psrp_core::clixml::{
    decode, Collection, DateTimeKind, ObjsReader, Property, PsObject, PsValue,
};
use serde_json::Value;

/// The repository root (the folder holding the workspace Cargo.toml).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("psrp-core has a parent folder")
        .to_path_buf()
}

fn fail(path: &str, what: String) -> Result<(), String> {
    Err(format!("at {path}: {what}"))
}

fn obj_parts(v: &PsValue) -> Option<PsObject> {
    let PsValue::Object(o) = v else { return None };
    // Rule 3: an object wrapping an object is compared as one merged object.
    if let Some(PsValue::Object(inner)) = &o.base {
        let inner = obj_parts(&PsValue::Object(inner.clone()))?;
        let concat = |a: &[Property], b: &[Property]| {
            let mut out: Vec<Property> = a.to_vec();
            for p in b {
                match out.iter_mut().find(|q| q.name == p.name) {
                    Some(q) => q.value = p.value.clone(),
                    None => out.push(p.clone()),
                }
            }
            out
        };
        return Some(PsObject {
            type_names: o.type_names.clone().or(inner.type_names.clone()),
            to_string: o.to_string.clone().or(inner.to_string.clone()),
            base: inner.base.clone(),
            collection: inner.collection.clone(),
            adapted: concat(&inner.adapted, &o.adapted),
            extended: concat(&inner.extended, &o.extended),
        });
    }
    Some((**o).clone())
}

/// Ticks-exact .NET-style text: `2018-06-13T23:45:29.4583203Z`.
fn datetime_text(v: &PsValue) -> Option<String> {
    let PsValue::DateTime(d) = v else { return None };
    let suffix = match d.kind {
        DateTimeKind::Unspecified => String::new(),
        DateTimeKind::Utc => "Z".into(),
        DateTimeKind::Local { offset_minutes } => {
            let a = offset_minutes.unsigned_abs();
            let sign = if offset_minutes < 0 { '-' } else { '+' };
            format!("{sign}{:02}:{:02}", a / 60, a % 60)
        }
    };
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}{suffix}",
        d.year, d.month, d.day, d.hour, d.minute, d.second, d.ticks
    ))
}

/// A float in the neutral form: its decimal text (parsed with correct
/// rounding), `"NaN"`, `"Infinity"` or `"-Infinity"`.
fn neutral_float(exp: &Value) -> Option<f64> {
    match exp.as_str()? {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        text => text.parse().ok(),
    }
}

fn float_matches(exp: &Value, got: f64) -> bool {
    match neutral_float(exp) {
        Some(e) if e.is_nan() => got.is_nan(),
        // Bitwise: -0.0 must stay -0.0.
        Some(e) => e.to_bits() == got.to_bits(),
        None => false,
    }
}

fn prim(tag: &str, exp: &Value, v: &PsValue, path: &str) -> Result<(), String> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let int = |n: i128| {
        exp.as_i64()
            .map(i128::from)
            .or(exp.as_u64().map(i128::from))
            == Some(n)
    };
    let ok = match (tag, v) {
        ("C", PsValue::Char(c)) => int((*c).into()),
        ("By", PsValue::U8(n)) => int((*n).into()),
        ("SB", PsValue::I8(n)) => int((*n).into()),
        ("U16", PsValue::U16(n)) => int((*n).into()),
        ("I16", PsValue::I16(n)) => int((*n).into()),
        ("U32", PsValue::U32(n)) => int((*n).into()),
        ("I32", PsValue::I32(n)) => int((*n).into()),
        ("U64", PsValue::U64(n)) => int((*n).into()),
        ("I64", PsValue::I64(n)) => int((*n).into()),
        // psrpcore keeps a Single as a double: compare at single precision.
        ("Sg", PsValue::Single(f)) => match neutral_float(exp) {
            Some(e) if e.is_nan() => f.is_nan(),
            Some(e) => (e as f32).to_bits() == f.to_bits(),
            None => false,
        },
        ("Db", PsValue::Double(f)) => float_matches(exp, *f),
        ("D", PsValue::Decimal(d)) => exp.as_str() == Some(d.as_str()),
        ("DT", v @ PsValue::DateTime(_)) => {
            let text = datetime_text(v).unwrap_or_default();
            exp.as_str() == Some(text.as_str())
                || exp.as_str().map(|e| e.replace('Z', "+00:00")) == Some(text)
        }
        ("TS", PsValue::TimeSpan(t)) => exp.as_i64() == Some(t.ticks),
        ("BA", PsValue::Bytes(b)) => exp.as_str() == Some(b64.encode(b).as_str()),
        ("G", PsValue::Guid(g)) => exp.as_str() == Some(g.hyphenated().to_string().as_str()),
        ("Version", PsValue::Version(ver)) => exp.as_str() == Some(ver.to_string().as_str()),
        ("URI", PsValue::Uri(s))
        | ("XD", PsValue::XmlDocument(s))
        | ("SBK", PsValue::ScriptBlock(s)) => exp.as_str() == Some(s.as_str()),
        // The session key is not recorded: only the kind can be checked,
        // unless the corpus gives the ciphertext.
        ("SS", PsValue::SecureString(s)) => {
            exp.is_null() || exp.as_str() == Some(b64.encode(&s.ciphertext).as_str())
        }
        _ => return fail(path, format!("expected <{tag}> {exp}, got {v:?}")),
    };
    if ok {
        Ok(())
    } else {
        fail(path, format!("expected <{tag}> {exp}, got {v:?}"))
    }
}

fn type_names_match(exp: &Value, obj: &PsObject, path: &str) -> Result<(), String> {
    let exp: Vec<&str> = exp
        .as_array()
        .ok_or_else(|| format!("at {path}: _type is not an array"))?
        .iter()
        .map(|t| t.as_str().unwrap_or_default())
        .collect();
    let got: Vec<&str> = obj
        .type_names
        .as_ref()
        .map(|t| t.names().iter().map(String::as_str).collect())
        .unwrap_or_default();
    // Rule 1: psrpcore may add one `Deserialized.`, or use its own list
    // for a type it rehydrates (same most derived name, a subsequence).
    let same = (exp.len() == got.len()
        && exp
            .iter()
            .zip(&got)
            .all(|(e, g)| e == g || e.strip_prefix("Deserialized.") == Some(g)))
        || (!exp.is_empty() && exp.first() == got.first() && {
            let mut rest = got.iter();
            exp.iter().all(|e| rest.any(|g| g == e))
        });
    if same {
        Ok(())
    } else {
        fail(path, format!("type names {exp:?} vs {got:?}"))
    }
}

fn props_match(exp: &Value, got: &[Property], path: &str) -> Result<(), String> {
    let empty = serde_json::Map::new();
    let exp = match exp {
        Value::Null => &empty,
        Value::Object(m) => m,
        _ => return fail(path, "property map is not an object".into()),
    };
    if exp.len() != got.len() {
        let names: Vec<_> = got.iter().map(|p| p.name.as_str()).collect();
        let exp_names: Vec<_> = exp.keys().collect();
        return fail(path, format!("properties {exp_names:?} vs {names:?}"));
    }
    for p in got {
        let e = exp
            .get(p.name.as_str())
            .ok_or_else(|| format!("at {path}: unexpected property {}", p.name))?;
        check(e, &p.value, &format!("{path}.{}", p.name))?;
    }
    Ok(())
}

/// Rule 6: the primitive properties both sides have must match; at least
/// one must.
fn shared_props_match(
    m: &serde_json::Map<String, Value>,
    obj: &PsObject,
    path: &str,
) -> Result<(), String> {
    let mut compared = 0;
    for group in ["_adapted", "_extended"] {
        let Some(Value::Object(props)) = m.get(group) else {
            continue;
        };
        for (name, e) in props {
            let wire_name = format!("InformationalRecord_{name}");
            let Some(p) = obj
                .properties()
                .find(|p| &p.name == name || p.name == wire_name)
            else {
                continue;
            };
            let nested = matches!(e, Value::Object(m) if m.contains_key("_type"))
                || matches!(p.value, PsValue::Object(_));
            if !nested {
                check(e, &p.value, &format!("{path}.{name}"))?;
                compared += 1;
            }
        }
    }
    if compared == 0 {
        return fail(path, "no property in common with psrpcore's record".into());
    }
    Ok(())
}

/// Compares `v` with psrpcore's neutral reading `exp`.
pub fn check(exp: &Value, v: &PsValue, path: &str) -> Result<(), String> {
    // Rule 7: a wrapped primitive shown bare.
    if !matches!(exp, Value::Object(m) if m.contains_key("_type") || m.contains_key("_base")) {
        if let Some(o) = v.as_object() {
            if let Some(base) = &o.base {
                if !o.is_enum() && !matches!(base, PsValue::Object(_)) {
                    return check(exp, base, path);
                }
            }
        }
    }
    match exp {
        Value::Null => match v {
            PsValue::Null => Ok(()),
            _ => fail(path, format!("expected null, got {v:?}")),
        },
        Value::Bool(b) => match v {
            PsValue::Bool(g) if g == b => Ok(()),
            _ => fail(path, format!("expected {b}, got {v:?}")),
        },
        Value::Number(_) => match obj_parts(v) {
            // Rule 4: an enum shown as its number.
            Some(o) if o.is_enum() => {
                prim("I32", exp, o.base.as_ref().unwrap_or(&PsValue::Null), path)
            }
            _ => prim("I32", exp, v, path),
        },
        Value::String(s) => match v {
            PsValue::String(g) if g == s => Ok(()),
            _ => fail(path, format!("expected {s:?}, got {v:?}")),
        },
        Value::Array(_) => fail(path, "bare array in expected value".into()),
        Value::Object(m) => {
            if let Some(tag) = m.get("_prim").and_then(Value::as_str) {
                return prim(tag, &m["value"], v, path);
            }
            if m.contains_key("_cycle") {
                return match v {
                    PsValue::Ref(_) => Ok(()),
                    _ => fail(path, format!("expected a cycle reference, got {v:?}")),
                };
            }
            if let Some(base) = m.get("_base") {
                let obj = v
                    .as_object()
                    .ok_or_else(|| format!("at {path}: expected a wrapped primitive, got {v:?}"))?;
                check(
                    base,
                    obj.base.as_ref().unwrap_or(&PsValue::Null),
                    &format!("{path}/base"),
                )?;
                if let (Some(g), Some(e)) =
                    (&obj.to_string, m.get("_toString").and_then(Value::as_str))
                {
                    if g != e {
                        return fail(path, format!("ToString {e:?} vs {g:?}"));
                    }
                }
                props_match(
                    m.get("_adapted").unwrap_or(&Value::Null),
                    &obj.adapted,
                    &format!("{path}/adapted"),
                )?;
                return props_match(
                    m.get("_extended").unwrap_or(&Value::Null),
                    &obj.extended,
                    &format!("{path}/extended"),
                );
            }
            let obj =
                obj_parts(v).ok_or_else(|| format!("at {path}: expected an object, got {v:?}"))?;
            type_names_match(&m["_type"], &obj, path)?;
            if let Some(name) = m.get("_enum") {
                let same = match (&obj.to_string, name.as_str()) {
                    (Some(g), Some(e)) => g.eq_ignore_ascii_case(e),
                    _ => false,
                };
                if !same {
                    return fail(path, format!("enum name {name} vs {:?}", obj.to_string));
                }
                let base = obj
                    .base
                    .as_ref()
                    .ok_or_else(|| format!("at {path}: enum without value"))?;
                return match base.as_i64() {
                    Some(n) if m["value"].as_i64() == Some(n) => Ok(()),
                    _ => fail(path, format!("enum value {} vs {base:?}", m["value"])),
                };
            }
            let rebuilt = obj.type_names.as_ref().is_some_and(|t| {
                t.contains("System.Management.Automation.ErrorRecord")
                    || t.contains("System.Management.Automation.InformationalRecord")
            });
            if rebuilt {
                return shared_props_match(m, &obj, path);
            }
            let exp_to_string = m.get("_toString").unwrap_or(&Value::Null);
            match (&obj.to_string, exp_to_string) {
                (Some(g), Value::String(e)) if g == e => {}
                (None, Value::Null) => {}
                // Rule 2: psrpcore's own text where the wire had none.
                (None, Value::String(_)) => {}
                (g, e) => return fail(path, format!("ToString {e} vs {g:?}")),
            }
            props_match(
                m.get("_adapted").unwrap_or(&Value::Null),
                &obj.adapted,
                &format!("{path}/adapted"),
            )?;
            props_match(
                m.get("_extended").unwrap_or(&Value::Null),
                &obj.extended,
                &format!("{path}/extended"),
            )?;
            match (&obj.collection, m.get("_list"), m.get("_dict")) {
                (None, None, None) => {}
                (
                    Some(
                        Collection::List(items)
                        | Collection::Enumerable(items)
                        | Collection::Stack(items)
                        | Collection::Queue(items),
                    ),
                    Some(Value::Array(exp_items)),
                    None,
                ) => {
                    if items.len() != exp_items.len() {
                        return fail(
                            path,
                            format!("{} items vs {}", exp_items.len(), items.len()),
                        );
                    }
                    for (i, (e, g)) in exp_items.iter().zip(items).enumerate() {
                        check(e, g, &format!("{path}[{i}]"))?;
                    }
                }
                (Some(Collection::Dictionary(entries)), None, Some(Value::Array(exp_entries))) => {
                    if entries.len() != exp_entries.len() {
                        return fail(
                            path,
                            format!("{} entries vs {}", exp_entries.len(), entries.len()),
                        );
                    }
                    for (i, (e, (k, val))) in exp_entries.iter().zip(entries).enumerate() {
                        check(&e[0], k, &format!("{path}{{key {i}}}"))?;
                        check(&e[1], val, &format!("{path}{{value {i}}}"))?;
                    }
                }
                (c, l, d) => return fail(path, format!("collection {l:?}/{d:?} vs {c:?}")),
            }
            match (&obj.base, obj.collection.is_some()) {
                (None, _) => Ok(()),
                (Some(b), _) => fail(path, format!("unexpected wrapped value {b:?}")),
            }
        }
    }
}

/// Whether an item's `S` attribute matches psrpcore's stream name (output
/// items may have no attribute).
pub fn same_stream(ours: Option<&str>, expected: &str) -> bool {
    match ours {
        None => expected.eq_ignore_ascii_case("output"),
        Some(s) => s.eq_ignore_ascii_case(expected),
    }
}

/// Compares an `<Objs>` document's items with `{"_objs": [...]}`.
/// Decodes one case (an `<Objs>` document when `expected` describes one,
/// else one element) and compares it with psrpcore's reading. Returns the
/// decoded element, for the checks a caller adds.
pub fn check_case(expected: &Value, xml: &str) -> Result<Option<PsValue>, String> {
    if expected.get("_objs").is_some() {
        let items = ObjsReader::new(xml.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        check_objs(expected, &items).map(|()| None)
    } else {
        let v = decode(xml).map_err(|e| e.to_string())?;
        check(expected, &v, "").map(|()| Some(v))
    }
}

/// Fails listing every case that differs (`failures` as "name: why").
pub fn assert_no_failures(failures: &[String], cases: usize, what: &str) {
    assert!(
        failures.is_empty(),
        "{} of {cases} {what} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

pub fn check_objs(expected: &Value, items: &[psrp_core::clixml::ObjsItem]) -> Result<(), String> {
    let objs = expected["_objs"]
        .as_array()
        .ok_or("_objs is not an array")?;
    if objs.len() != items.len() {
        return Err(format!("{} items, expected {}", items.len(), objs.len()));
    }
    for (i, (e, item)) in objs.iter().zip(items).enumerate() {
        let stream = e["stream"].as_str().unwrap_or_default();
        if !same_stream(item.stream.as_deref(), stream) {
            return Err(format!("item {i}: stream {:?} vs {stream}", item.stream));
        }
        check(&e["value"], &item.value, &format!("item {i}"))?;
    }
    Ok(())
}
