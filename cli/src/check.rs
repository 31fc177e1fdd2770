//! `psrp invoke --check`: the command and its parameters checked against
//! the endpoint's command metadata before anything is sent, the way
//! PowerShell binds them (names and aliases case-insensitively, or an
//! unambiguous prefix of a name), with value types that PowerShell could
//! not convert caught here. A miss names what exists: "did you mean
//! -Path?".

use psrp_core::clixml::{Collection, PsValue};

use crate::metadata::{short_type, CommandInfo, ParameterInfo};
use crate::params::Param;

/// Why an invocation would not bind.
#[derive(Debug, Clone, PartialEq)]
pub enum Miss {
    /// No visible command of that name.
    UnknownCommand {
        /// The name given.
        name: String,
        /// Close names that exist.
        suggestions: Vec<String>,
    },
    /// Parameter errors (one line each).
    Parameters(Vec<String>),
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::UnknownCommand { name, suggestions } => {
                write!(f, "--check: the endpoint has no command {name:?}")?;
                if !suggestions.is_empty() {
                    write!(f, "; did you mean {}?", suggestions.join(" or "))?;
                }
                Ok(())
            }
            Miss::Parameters(lines) => write!(f, "--check: {}", lines.join("; ")),
        }
    }
}

/// Checks `command` with `params` against the endpoint's `commands`.
pub fn check(command: &str, params: &[Param], commands: &[CommandInfo]) -> Result<(), Miss> {
    let Some(info) = commands
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(command))
    else {
        let names: Vec<&str> = commands.iter().map(|c| c.name.as_str()).collect();
        return Err(Miss::UnknownCommand {
            name: command.to_owned(),
            suggestions: closest(command, &names),
        });
    };
    if info.takes_any_arguments() {
        return Ok(());
    }
    let mut errors = Vec::new();
    for p in params {
        let (name, value) = match p {
            Param::Named(n, v) => (n, Some(v)),
            Param::Switch(n) => (n, None),
            Param::Positional(_) => continue,
        };
        match resolve(info, name) {
            Err(e) => errors.push(e),
            Ok(param) => {
                if let Err(e) = check_value(info, param, value) {
                    errors.push(e);
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Miss::Parameters(errors))
    }
}

/// The parameter a name binds to, as PowerShell resolves it.
fn resolve<'a>(info: &'a CommandInfo, given: &str) -> Result<&'a ParameterInfo, String> {
    let key = given.trim_start_matches('-').trim_end_matches(':');
    let exact = info.parameters.iter().find(|p| {
        p.name.eq_ignore_ascii_case(key) || p.aliases.iter().any(|a| a.eq_ignore_ascii_case(key))
    });
    if let Some(p) = exact {
        return Ok(p);
    }
    let lower = key.to_lowercase();
    let prefixed: Vec<&ParameterInfo> = info
        .parameters
        .iter()
        .filter(|p| p.name.to_lowercase().starts_with(&lower))
        .collect();
    match prefixed.as_slice() {
        [one] => Ok(one),
        [] => {
            let mut names: Vec<&str> = info.parameters.iter().map(|p| p.name.as_str()).collect();
            names.extend(
                info.parameters
                    .iter()
                    .flat_map(|p| p.aliases.iter().map(String::as_str)),
            );
            let suggestions = closest(key, &names);
            let own: Vec<String> = info
                .parameters
                .iter()
                .filter(|p| !p.common)
                .map(|p| format!("-{}", p.name))
                .collect();
            Err(if suggestions.is_empty() {
                format!(
                    "{} has no parameter -{key}; its parameters: {}",
                    info.name,
                    if own.is_empty() {
                        "none but the common ones".to_owned()
                    } else {
                        own.join(" ")
                    }
                )
            } else {
                let s: Vec<String> = suggestions.iter().map(|s| format!("-{s}")).collect();
                format!(
                    "{} has no parameter -{key}; did you mean {}?",
                    info.name,
                    s.join(" or ")
                )
            })
        }
        many => {
            let names: Vec<String> = many.iter().map(|p| format!("-{}", p.name)).collect();
            Err(format!(
                "-{key} of {} is ambiguous: it could be {}",
                info.name,
                names.join(", ")
            ))
        }
    }
}

/// Whether the value given (None: given as a switch) suits the parameter.
fn check_value(
    info: &CommandInfo,
    param: &ParameterInfo,
    value: Option<&PsValue>,
) -> Result<(), String> {
    let name = &param.name;
    let Some(value) = value else {
        return if param.switch {
            Ok(())
        } else {
            Err(format!(
                "-{name} of {} needs a value of type {} (it was given as a switch)",
                info.name,
                short_type(&param.parameter_type)
            ))
        };
    };
    if param.switch {
        return match value {
            PsValue::Bool(_) | PsValue::Null => Ok(()),
            other => Err(format!(
                "-{name} of {} is a switch: give it with -s {name} (or true/false with \
                 --param-json), not {}",
                info.name,
                describe(other)
            )),
        };
    }
    let (element, is_array) = match param.parameter_type.strip_suffix("[]") {
        Some(e) => (e, true),
        None => (param.parameter_type.as_str(), false),
    };
    // A list binds element by element to an array parameter; PowerShell
    // also unwraps a list of one value for a single-value parameter.
    let items: Vec<&PsValue> = match list_items(value) {
        Some(items) if is_array || items.len() == 1 => items.iter().collect(),
        _ => vec![value],
    };
    for item in items {
        if let Some(why) = convertible(element, item).err() {
            return Err(format!(
                "-{name} of {} takes {}; {} {why}",
                info.name,
                short_type(&param.parameter_type),
                describe(item)
            ));
        }
    }
    Ok(())
}

/// Whether PowerShell could convert `v` to the .NET type `t` (only the
/// types whose conversion rules are simple are judged; the others pass).
fn convertible(t: &str, v: &PsValue) -> Result<(), &'static str> {
    let integer = matches!(
        t,
        "System.Byte"
            | "System.SByte"
            | "System.Int16"
            | "System.UInt16"
            | "System.Int32"
            | "System.UInt32"
            | "System.Int64"
            | "System.UInt64"
    );
    let real = matches!(t, "System.Double" | "System.Single" | "System.Decimal");
    if integer || real {
        return match v {
            PsValue::String(s) => {
                let s = s.trim();
                let ok = if integer {
                    s.parse::<i128>().is_ok()
                        || s.strip_prefix("0x")
                            .is_some_and(|h| i128::from_str_radix(h, 16).is_ok())
                } else {
                    s.parse::<f64>().is_ok()
                };
                if ok {
                    Ok(())
                } else {
                    Err("is not a number")
                }
            }
            // $null becomes 0; a hashtable or a list of several values fails.
            PsValue::Object(_) => Err("is not a number"),
            _ => Ok(()),
        };
    }
    match t {
        // PowerShell refuses strings for Boolean parameters ("accept only
        // Boolean values and numbers").
        "System.Boolean" => match v {
            PsValue::String(_) | PsValue::Object(_) => Err("is not a boolean or a number"),
            _ => Ok(()),
        },
        "System.Collections.Hashtable" | "System.Collections.IDictionary" => {
            if dictionary(v) {
                Ok(())
            } else {
                Err("is not a hashtable (give an object with --param-json)")
            }
        }
        _ => Ok(()),
    }
}

fn list_items(v: &PsValue) -> Option<&[PsValue]> {
    match v {
        PsValue::Object(o) => match &o.collection {
            Some(Collection::List(items) | Collection::Enumerable(items)) => Some(items),
            _ => None,
        },
        _ => None,
    }
}

fn dictionary(v: &PsValue) -> bool {
    matches!(v, PsValue::Object(o) if matches!(o.collection, Some(Collection::Dictionary(_))))
}

/// The value given, for messages.
fn describe(v: &PsValue) -> String {
    match v {
        PsValue::String(s) => {
            let short: String = s.chars().take(40).collect();
            format!("the string {short:?}")
        }
        PsValue::Bool(b) => format!("the boolean {b}"),
        PsValue::Null => "null".to_owned(),
        PsValue::I32(n) => format!("the number {n}"),
        PsValue::I64(n) => format!("the number {n}"),
        PsValue::Double(n) => format!("the number {n}"),
        v if dictionary(v) => "a hashtable".to_owned(),
        v if list_items(v).is_some() => "a list".to_owned(),
        _ => "the value given".to_owned(),
    }
}

/// The names closest to `given` (case-insensitive edit distance at most 2,
/// or a third of the name for long names; only those at the smallest
/// distance found), at most three.
pub fn closest(given: &str, names: &[&str]) -> Vec<String> {
    let g = given.to_lowercase();
    let limit = (g.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = names
        .iter()
        .map(|n| (distance(&g, &n.to_lowercase()), *n))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    // Only the closest ones: "Pth" is Path (1), not also Depth (2).
    let best = scored.first().map(|(d, _)| *d).unwrap_or(0);
    let mut out: Vec<String> = Vec::new();
    for (_, n) in scored.into_iter().filter(|(d, _)| *d == best) {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(n)) {
            out.push(n.to_owned());
        }
        if out.len() == 3 {
            break;
        }
    }
    out
}

/// Optimal string alignment distance (Levenshtein with transpositions).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(name: &str, t: &str, aliases: &[&str]) -> ParameterInfo {
        ParameterInfo {
            name: name.into(),
            parameter_type: t.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            switch: t == "System.Management.Automation.SwitchParameter",
            dynamic: false,
            common: name == "ErrorAction",
        }
    }

    fn get_item() -> Vec<CommandInfo> {
        vec![CommandInfo {
            name: "Get-Item".into(),
            command_type: "Cmdlet".into(),
            namespace: None,
            help_uri: None,
            output_type: vec![],
            parameters: vec![
                param("Path", "System.String[]", &[]),
                param("Filter", "System.String", &[]),
                param("Force", "System.Management.Automation.SwitchParameter", &[]),
                param("Depth", "System.UInt32", &[]),
                param(
                    "ErrorAction",
                    "System.Management.Automation.ActionPreference",
                    &["ea"],
                ),
            ],
        }]
    }

    fn named(n: &str, v: PsValue) -> Param {
        Param::Named(n.into(), v)
    }

    #[test]
    fn names_aliases_and_prefixes_bind() {
        let c = get_item();
        let ok = [
            named("path", "C:\\".into()),
            named("ea", "Stop".into()),
            named("Fi", "*.txt".into()),
            Param::Switch("Force".into()),
            named("Depth", "3".into()),
            named("Depth", PsValue::I32(3)),
            named("Depth", psrp_core::command::list([4])),
            named("Depth", PsValue::Null),
            named("Path", psrp_core::command::list(["a", "b"])),
        ];
        assert_eq!(check("get-item", &ok, &c), Ok(()));
    }

    #[test]
    fn misses_say_what_exists() {
        let c = get_item();
        let e = check("Get-Item", &[named("Pth", "x".into())], &c).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--check: Get-Item has no parameter -Pth; did you mean -Path?"
        );
        let e = check("Get-Item", &[named("F", "x".into())], &c).unwrap_err();
        assert!(
            e.to_string()
                .contains("ambiguous: it could be -Filter, -Force"),
            "{e}"
        );
        let e = check("Get-Item", &[named("Depth", "deep".into())], &c).unwrap_err();
        assert!(
            e.to_string()
                .contains("-Depth of Get-Item takes UInt32; the string \"deep\" is not a number"),
            "{e}"
        );
        let e = check(
            "Get-Item",
            &[named("Depth", psrp_core::command::list([1, 2]))],
            &c,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("takes UInt32; a list is not a number"),
            "{e}"
        );
        let e = check("Get-Item", &[Param::Switch("Path".into())], &c).unwrap_err();
        assert!(
            e.to_string().contains("needs a value of type String[]"),
            "{e}"
        );
        let e = check("Get-Item", &[named("Force", "yes".into())], &c).unwrap_err();
        assert!(e.to_string().contains("is a switch"), "{e}");
        let e = check("Get-Itme", &[], &c).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--check: the endpoint has no command \"Get-Itme\"; did you mean Get-Item?"
        );
        let e = check("Remove-Everything", &[], &c).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--check: the endpoint has no command \"Remove-Everything\""
        );
    }

    #[test]
    fn distances() {
        assert_eq!(distance("path", "path"), 0);
        assert_eq!(distance("pth", "path"), 1);
        assert_eq!(distance("ptah", "path"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(
            closest("Recurce", &["Recurse", "Force", "Path"]),
            ["Recurse"]
        );
        assert!(closest("Zzzzzz", &["Recurse", "Force"]).is_empty());
    }
}

/// `--check` for one `psrp invoke` run: what to check and where the cache is.
#[derive(Debug, Clone)]
pub struct CheckJob {
    /// The command invoked.
    pub command: String,
    /// Its parameters.
    pub params: Vec<Param>,
    /// `--refresh`: ignore the cache.
    pub refresh: bool,
    /// The cache (none without XDG_CACHE_HOME and HOME).
    pub cache: Option<crate::metadata::Cache>,
}

impl CheckJob {
    /// The cached command list of the endpoint, unless `--refresh`.
    pub fn cached(
        &self,
        s: &crate::settings::Settings,
        host: &crate::hosts::HostSpec,
    ) -> Option<Vec<CommandInfo>> {
        if self.refresh {
            return None;
        }
        self.cache
            .as_ref()?
            .load(&crate::metadata::endpoint_key(s, host))
    }

    /// Keeps a freshly fetched list (a failure to write is only reported).
    pub fn store(
        &self,
        s: &crate::settings::Settings,
        host: &crate::hosts::HostSpec,
        commands: &[CommandInfo],
    ) -> Result<(), String> {
        match &self.cache {
            Some(cache) => cache
                .store(&crate::metadata::endpoint_key(s, host), commands)
                .map(|_| ())
                .map_err(|e| format!("cannot write the command cache: {e}")),
            None => Ok(()),
        }
    }

    /// The check; on a miss, the exit status: 2 for an unknown command
    /// (as when the server says so), 64 for a parameter.
    pub fn verify(&self, commands: &[CommandInfo]) -> Result<(), (String, crate::exit::Status)> {
        check(&self.command, &self.params, commands).map_err(|miss| {
            let status = match miss {
                Miss::UnknownCommand { .. } => crate::exit::Status::Failed,
                Miss::Parameters(_) => crate::exit::Status::Usage,
            };
            (format!("{miss}; nothing was sent"), status)
        })
    }
}
