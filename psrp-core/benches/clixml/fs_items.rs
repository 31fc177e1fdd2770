//! File-system items shaped as a Windows server sends `Get-ChildItem`
//! output: one PIPELINE_OUTPUT body per object, each its own RefId and TN
//! scope. FileInfo with adapted properties (strings, Int64, DateTimes,
//! booleans, a FileAttributes enum, nested DirectoryInfo objects written
//! beyond the serialization depth as TN + ToString, reusing their type names
//! through TNRef) and the extended members PowerShell adds (PSPath..., the
//! PSDrive and PSProvider objects with their own properties, Mode,
//! VersionInfo with CRLFs, BaseName, Target, LinkType). Names include
//! spaces, non-ASCII text, XML specials and `_x` sequences.

use std::sync::Arc;

use psrp_core::clixml::{
    encode, Collection, DateTime, DateTimeKind, Property, PsObject, PsValue, TypeNames,
};

fn prop(name: &str, value: PsValue) -> Property {
    Property::new(name, value)
}

fn s(v: &str) -> PsValue {
    PsValue::String(v.to_owned())
}

struct Types {
    file: TypeNames,
    dir: TypeNames,
    attributes: TypeNames,
    drive: TypeNames,
    credential: TypeNames,
    provider: TypeNames,
    list: TypeNames,
    drives: TypeNames,
}

fn types() -> Types {
    Types {
        file: TypeNames::new([
            "System.IO.FileInfo",
            "System.IO.FileSystemInfo",
            "System.MarshalByRefObject",
            "System.Object",
        ]),
        dir: TypeNames::new([
            "System.IO.DirectoryInfo",
            "System.IO.FileSystemInfo",
            "System.MarshalByRefObject",
            "System.Object",
        ]),
        attributes: TypeNames::new([
            "System.IO.FileAttributes",
            "System.Enum",
            "System.ValueType",
            "System.Object",
        ]),
        drive: TypeNames::new(["System.Management.Automation.PSDriveInfo", "System.Object"]),
        credential: TypeNames::new(["System.Management.Automation.PSCredential", "System.Object"]),
        provider: TypeNames::new(["System.Management.Automation.ProviderInfo", "System.Object"]),
        list: TypeNames::new([
            "System.Collections.Generic.List`1[[System.String, System.Private.CoreLib, Version=4.0.0.0, Culture=neutral, PublicKeyToken=7cec85d7bea7798e]]",
            "System.Object",
        ]),
        drives: TypeNames::new([
            "System.Collections.ObjectModel.Collection`1[[System.Management.Automation.PSDriveInfo, System.Management.Automation, Version=3.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35]]",
            "System.Object",
        ]),
    }
}

fn when(i: usize, salt: usize) -> (DateTime, DateTime) {
    let n = i.wrapping_mul(2_654_435_761).wrapping_add(salt * 97);
    let local = DateTime {
        year: 2015 + (n % 10) as u16,
        month: 1 + (n / 10 % 12) as u8,
        day: 1 + (n / 120 % 28) as u8,
        hour: (n / 3360 % 23) as u8 + 1,
        minute: (n / 7 % 60) as u8,
        second: (n / 11 % 60) as u8,
        ticks: (n % 10_000_000) as u32,
        kind: DateTimeKind::Local { offset_minutes: 60 },
    };
    let utc = DateTime {
        hour: local.hour - 1,
        kind: DateTimeKind::Utc,
        ..local
    };
    (local, utc)
}

fn file_name(i: usize) -> String {
    match i % 10 {
        0 => format!("report {i} (final).docx"),
        1 => format!("données_{i}.csv"),
        2 => format!("a&b <{i}>.txt"),
        3 => format!("my_x{i}_file.log"),
        4 => format!("日本語ファイル{i}.txt"),
        _ => format!("file{i:06}.txt"),
    }
}

/// One object as a PSRP message body.
fn message(i: usize, t: &Types) -> String {
    encode(&item(i, t))
}

fn item(i: usize, t: &Types) -> PsValue {
    let name = file_name(i);
    let dir = format!("C:\\Users\\admin\\Documents\\project{}", i % 50);
    let full = format!("{dir}\\{name}");
    let base = name
        .rsplit_once('.')
        .map_or(name.as_str(), |(b, _)| b)
        .to_owned();
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    let (attr_name, attr_value) = match i % 7 {
        0 => ("ReadOnly, Archive", 33),
        1 => ("Hidden, Archive", 34),
        2 => ("Normal", 128),
        _ => ("Archive", 32),
    };
    let (c, cu) = when(i, 1);
    let (a, au) = when(i, 2);
    let (w, wu) = when(i, 3);
    let dir_obj = |path: &str| {
        PsValue::object(PsObject {
            type_names: Some(t.dir.clone()),
            to_string: Some(path.to_owned()),
            ..PsObject::default()
        })
    };
    let credential = PsValue::object(PsObject {
        type_names: Some(t.credential.clone()),
        to_string: Some("System.Management.Automation.PSCredential".into()),
        adapted: vec![
            prop("UserName", PsValue::Null),
            prop("Password", PsValue::Null),
        ],
        ..PsObject::default()
    });
    let drive = Arc::new(PsObject {
        type_names: Some(t.drive.clone()),
        to_string: Some("C".into()),
        adapted: vec![
            prop("CurrentLocation", s("Users\\admin")),
            prop("Name", s("C")),
            prop("Provider", s("Microsoft.PowerShell.Core\\FileSystem")),
            prop("Root", s("C:\\")),
            prop("Description", s("")),
            prop("MaximumSize", PsValue::Null),
            prop("Credential", credential),
            prop("DisplayRoot", PsValue::Null),
        ],
        extended: vec![
            prop("Used", PsValue::U64(53_687_091_200 + i as u64)),
            prop("Free", PsValue::U64(214_748_364_800 - i as u64)),
        ],
        ..PsObject::default()
    });
    let provider = PsValue::object(PsObject {
        type_names: Some(t.provider.clone()),
        to_string: Some("Microsoft.PowerShell.Core\\FileSystem".into()),
        adapted: vec![
            prop(
                "ImplementingType",
                s("Microsoft.PowerShell.Commands.FileSystemProvider"),
            ),
            prop("HelpFile", s("System.Management.Automation.dll-Help.xml")),
            prop("Name", s("FileSystem")),
            prop("PSSnapIn", s("Microsoft.PowerShell.Core")),
            prop("ModuleName", s("Microsoft.PowerShell.Core")),
            prop("Module", PsValue::Null),
            prop("Description", s("")),
            prop("Capabilities", s("Filter, ShouldProcess, Credentials")),
            prop("Home", s("C:\\Users\\admin")),
            prop(
                "Drives",
                PsValue::object(PsObject {
                    type_names: Some(t.drives.clone()),
                    collection: Some(Collection::List(vec![PsValue::Object(Arc::clone(&drive))])),
                    ..PsObject::default()
                }),
            ),
        ],
        ..PsObject::default()
    });
    let version_info = format!(
        "File:             {full}\r\nInternalName:     \r\nOriginalFilename: \r\nFileVersion:      \r\nFileDescription:  \r\nProduct:          \r\nProductVersion:   \r\nDebug:            False\r\nPatched:          False\r\nPreRelease:       False\r\nPrivateBuild:     False\r\nSpecialBuild:     False\r\nLanguage:         \r\n"
    );
    PsValue::object(PsObject {
        type_names: Some(t.file.clone()),
        to_string: Some(full.clone()),
        adapted: vec![
            prop("Name", s(&name)),
            prop("Length", PsValue::I64((i as i64 * 7919) % 10_000_000)),
            prop("DirectoryName", s(&dir)),
            prop("Directory", dir_obj(&dir)),
            prop("IsReadOnly", PsValue::Bool(attr_value & 1 == 1)),
            prop("Exists", PsValue::Bool(true)),
            prop("FullName", s(&full)),
            prop("Extension", s(&format!(".{ext}"))),
            prop("CreationTime", PsValue::DateTime(c)),
            prop("CreationTimeUtc", PsValue::DateTime(cu)),
            prop("LastAccessTime", PsValue::DateTime(a)),
            prop("LastAccessTimeUtc", PsValue::DateTime(au)),
            prop("LastWriteTime", PsValue::DateTime(w)),
            prop("LastWriteTimeUtc", PsValue::DateTime(wu)),
            prop(
                "Attributes",
                PsValue::object(PsObject {
                    type_names: Some(t.attributes.clone()),
                    to_string: Some(attr_name.into()),
                    base: Some(PsValue::I32(attr_value)),
                    ..PsObject::default()
                }),
            ),
            prop("Root", dir_obj("C:\\")),
        ],
        extended: vec![
            prop(
                "PSPath",
                s(&format!("Microsoft.PowerShell.Core\\FileSystem::{full}")),
            ),
            prop(
                "PSParentPath",
                s(&format!("Microsoft.PowerShell.Core\\FileSystem::{dir}")),
            ),
            prop("PSChildName", s(&name)),
            prop("PSDrive", PsValue::Object(drive)),
            prop("PSProvider", provider),
            prop("PSIsContainer", PsValue::Bool(false)),
            prop(
                "Mode",
                s(if attr_value & 1 == 1 {
                    "-ar---"
                } else {
                    "-a----"
                }),
            ),
            prop("VersionInfo", s(&version_info)),
            prop("BaseName", s(&base)),
            prop(
                "Target",
                PsValue::object(PsObject {
                    type_names: Some(t.list.clone()),
                    collection: Some(Collection::List(Vec::new())),
                    ..PsObject::default()
                }),
            ),
            prop("LinkType", PsValue::Null),
        ],
        ..PsObject::default()
    })
}

/// `n` distinct messages.
pub fn messages(n: usize) -> Vec<String> {
    let t = types();
    (0..n).map(|i| message(i, &t)).collect()
}
