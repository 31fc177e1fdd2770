//! Command parameters from the command line: `-p Name=value` (string),
//! `--param-json Name=<json>`, `-s Switch`, `--params <json object>` (where
//! null means a switch, as in the Airflow PSRP operator), and positional
//! arguments. JSON values map to PowerShell types with
//! [`psrp_core::command::json_to_value`].

use psrp_core::clixml::{PsValue, SecureString};
use psrp_core::command::{json_to_value, Command};

use crate::args::ParamArgs;
use thiserror::Error;

/// One parameter for the command being invoked.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// `-Name value`
    Named(String, PsValue),
    /// `-Name` with no value.
    Switch(String),
    /// A positional argument.
    Positional(PsValue),
}

/// A parameter given on the command line that cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum ParamError {
    /// `-p`/`--param-json` without `=`.
    #[error("parameter '{0}' must be written Name=value")]
    MissingEquals(String),
    /// An empty or badly formed name.
    #[error(
        "parameter name '{0}' is not valid: use letters, digits, '_' or '-', without a leading '-'"
    )]
    BadName(String),
    /// The JSON of `--param-json` or `--params` does not parse.
    #[error("parameter '{name}': invalid JSON: {message}")]
    BadJson {
        /// Which parameter.
        name: String,
        /// What serde_json said.
        message: String,
    },
    /// `--params` is not a JSON object.
    #[error("--params must be a JSON object of parameter names to values (null for a switch)")]
    ParamsNotObject,
    /// The same parameter given twice (PowerShell would refuse it).
    #[error("parameter '{0}' is given more than once")]
    Duplicate(String),
    /// `--secure-param` with a source other than `env:VAR` or `stdin`.
    #[error(
        "--secure-param {0}: the value comes from env:VARIABLE or stdin, never from the command \
         line (e.g. --secure-param {0}=env:MY_SECRET)"
    )]
    SecureSource(String),
    /// `--secure-param Name=env:VAR` but VAR is not set.
    #[error("--secure-param {name}: the environment variable {var} is not set")]
    SecureEnvMissing {
        /// The parameter.
        name: String,
        /// The variable.
        var: String,
    },
    /// `--secure-param Name=stdin` could not read stdin, or stdin is used
    /// twice.
    #[error("--secure-param {name}=stdin: {message}")]
    SecureStdin {
        /// The parameter.
        name: String,
        /// What went wrong.
        message: String,
    },
}

fn check_name(name: &str) -> Result<String, ParamError> {
    let name = name.strip_prefix('-').unwrap_or(name);
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '?');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(ParamError::BadName(name.to_owned()))
    }
}

fn split_assignment(spec: &str) -> Result<(String, &str), ParamError> {
    let (name, value) = spec
        .split_once('=')
        .ok_or_else(|| ParamError::MissingEquals(spec.to_owned()))?;
    Ok((check_name(name)?, value))
}

/// `-p Name=value`: the value is a string, taken verbatim.
pub fn parse_string_param(spec: &str) -> Result<Param, ParamError> {
    let (name, value) = split_assignment(spec)?;
    Ok(Param::Named(name, PsValue::String(value.to_owned())))
}

/// `--param-json Name=<json>`: numbers, strings, booleans, lists, objects
/// (sent as hashtables) and null.
pub fn parse_json_param(spec: &str) -> Result<Param, ParamError> {
    let (name, text) = split_assignment(spec)?;
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| ParamError::BadJson {
        name: name.clone(),
        message: e.to_string(),
    })?;
    Ok(Param::Named(name, json_to_value(&json)))
}

/// `-s Switch`.
pub fn parse_switch(spec: &str) -> Result<Param, ParamError> {
    Ok(Param::Switch(check_name(spec)?))
}

/// `--params '{"Name": "x", "Force": null}'`: null means a switch, as the
/// Airflow PSRP operator does.
pub fn parse_params_object(text: &str) -> Result<Vec<Param>, ParamError> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| ParamError::BadJson {
        name: "--params".to_owned(),
        message: e.to_string(),
    })?;
    let serde_json::Value::Object(map) = json else {
        return Err(ParamError::ParamsNotObject);
    };
    map.iter()
        .map(|(name, value)| {
            let name = check_name(name)?;
            Ok(match value {
                serde_json::Value::Null => Param::Switch(name),
                v => Param::Named(name, json_to_value(v)),
            })
        })
        .collect()
}

/// Where a `--secure-param` value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecureSource {
    /// `env:VAR`
    Env(String),
    /// `stdin`: the first line of stdin.
    Stdin,
}

/// Reads `--secure-param NAME=env:VAR|stdin` (the name and the source only).
pub fn parse_secure_spec(spec: &str) -> Result<(String, SecureSource), ParamError> {
    let Some((name, source)) = spec.split_once('=') else {
        return Err(ParamError::SecureSource(spec.to_owned()));
    };
    let name = check_name(name)?;
    match source.strip_prefix("env:") {
        Some(var) if !var.is_empty() && !var.contains(['=', '\0']) => {
            Ok((name, SecureSource::Env(var.to_owned())))
        }
        Some(_) => Err(ParamError::SecureSource(name)),
        None if source == "stdin" => Ok((name, SecureSource::Stdin)),
        None => Err(ParamError::SecureSource(name)),
    }
}

/// Whether a `--secure-param` reads stdin.
pub fn secure_params_use_stdin(args: &ParamArgs) -> bool {
    args.secure_param
        .iter()
        .any(|s| matches!(parse_secure_spec(s), Ok((_, SecureSource::Stdin))))
}

/// The `--secure-param` values, read from their sources: variables are
/// taken out of the environment (call while the process has one thread).
fn secure_params(args: &ParamArgs) -> Result<Vec<Param>, ParamError> {
    let mut stdin_used = false;
    let mut params = Vec::new();
    for spec in &args.secure_param {
        let (name, source) = parse_secure_spec(spec)?;
        let secret = match source {
            SecureSource::Env(var) => {
                crate::password::take_env(&var).ok_or_else(|| ParamError::SecureEnvMissing {
                    name: name.clone(),
                    var,
                })?
            }
            SecureSource::Stdin => {
                if std::mem::replace(&mut stdin_used, true) {
                    return Err(ParamError::SecureStdin {
                        name,
                        message: "only one --secure-param can read stdin".to_owned(),
                    });
                }
                crate::password::read_stdin_secret("the secret").map_err(|message| {
                    ParamError::SecureStdin {
                        name: name.clone(),
                        message,
                    }
                })?
            }
        };
        let value = SecureString::new(secret.expose());
        params.push(Param::Named(name, PsValue::SecureString(value)));
    }
    Ok(params)
}

/// All parameters from the command line: `--params` first, then `-p`,
/// `--param-json`, `-s`, `--secure-param`, then the positional arguments
/// (strings).
pub fn collect(args: &ParamArgs, positional: &[String]) -> Result<Vec<Param>, ParamError> {
    let mut params = match &args.params {
        Some(text) => parse_params_object(text)?,
        None => Vec::new(),
    };
    for p in &args.param {
        params.push(parse_string_param(p)?);
    }
    for p in &args.param_json {
        params.push(parse_json_param(p)?);
    }
    for p in &args.switch {
        params.push(parse_switch(p)?);
    }
    params.extend(secure_params(args)?);
    let mut seen: Vec<String> = Vec::new();
    for p in &params {
        if let Param::Named(name, _) | Param::Switch(name) = p {
            let key = name.to_lowercase();
            if seen.contains(&key) {
                return Err(ParamError::Duplicate(name.clone()));
            }
            seen.push(key);
        }
    }
    params.extend(
        positional
            .iter()
            .map(|a| Param::Positional(PsValue::String(a.clone()))),
    );
    Ok(params)
}

/// Adds the parameters to a command.
pub fn apply(command: Command, params: &[Param]) -> Command {
    params.iter().fold(command, |c, p| match p {
        Param::Named(name, value) => c.param(name.clone(), value.clone()),
        Param::Switch(name) => c.switch(name.clone()),
        Param::Positional(value) => c.arg(value.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use psrp_core::clixml::Collection;

    #[test]
    fn string_param_keeps_text_verbatim() {
        assert_eq!(
            parse_string_param("Path=C:\\Temp=x").unwrap(),
            Param::Named("Path".into(), PsValue::String("C:\\Temp=x".into()))
        );
        assert_eq!(
            parse_string_param("-Name=").unwrap(),
            Param::Named("Name".into(), PsValue::String(String::new()))
        );
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        assert_eq!(
            parse_string_param("Path"),
            Err(ParamError::MissingEquals("Path".into()))
        );
        assert_eq!(
            parse_string_param("=x"),
            Err(ParamError::BadName(String::new()))
        );
        assert!(matches!(
            parse_json_param("Count=[1,"),
            Err(ParamError::BadJson { name, .. }) if name == "Count"
        ));
        assert_eq!(parse_params_object("[1]"), Err(ParamError::ParamsNotObject));
        assert_eq!(parse_switch("a b"), Err(ParamError::BadName("a b".into())));
    }

    #[test]
    fn json_numbers_take_the_narrowest_powershell_type() {
        let p = |s: &str| match parse_json_param(s).unwrap() {
            Param::Named(_, v) => v,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(p("N=42"), PsValue::I32(42));
        assert_eq!(p("N=-2147483649"), PsValue::I64(-2_147_483_649));
        assert_eq!(p("N=18446744073709551615"), PsValue::U64(u64::MAX));
        assert_eq!(p("N=1.5"), PsValue::Double(1.5));
        assert_eq!(p("N=null"), PsValue::Null);
        assert_eq!(p("N=true"), PsValue::Bool(true));
    }

    #[test]
    fn json_lists_and_objects_become_arrays_and_hashtables() {
        let Param::Named(_, v) = parse_json_param(r#"X={"a":[1,"two"],"b":{}}"#).unwrap() else {
            panic!("not named")
        };
        let obj = v.as_object().unwrap();
        assert!(obj
            .type_names
            .as_ref()
            .unwrap()
            .contains("System.Collections.Hashtable"));
        let Some(Collection::Dictionary(entries)) = &obj.collection else {
            panic!("not a dictionary")
        };
        assert_eq!(entries[0].0, PsValue::String("a".into()));
        let list = entries[0].1.as_object().unwrap();
        assert_eq!(
            list.collection,
            Some(Collection::List(vec![
                PsValue::I32(1),
                PsValue::String("two".into())
            ]))
        );
    }

    #[test]
    fn params_object_null_is_a_switch() {
        let params = parse_params_object(r#"{"Name":"x","Force":null,"Count":3}"#).unwrap();
        assert_eq!(
            params,
            vec![
                Param::Named("Name".into(), PsValue::String("x".into())),
                Param::Switch("Force".into()),
                Param::Named("Count".into(), PsValue::I32(3)),
            ]
        );
    }
}

#[cfg(test)]
mod collect_tests {
    use super::*;

    #[test]
    fn every_kind_in_order_and_duplicates_refused() {
        let args = ParamArgs {
            param: vec!["Name=x".into()],
            param_json: vec!["Count=3".into()],
            switch: vec!["Force".into()],
            params: Some(r#"{"Tags": ["a"], "WhatIf": null}"#.into()),
            ..ParamArgs::default()
        };
        let params = collect(&args, &["pos".into()]).unwrap();
        assert_eq!(params.len(), 6);
        assert_eq!(params[1], Param::Switch("WhatIf".into()));
        assert_eq!(params[5], Param::Positional(PsValue::String("pos".into())));
        let cmd = apply(Command::new("X"), &params);
        assert_eq!(cmd.parameters.len(), 6);
        assert_eq!(cmd.parameters[1].value, PsValue::Bool(true));
        assert_eq!(cmd.parameters[5].name, None);

        let dup = ParamArgs {
            param: vec!["name=x".into()],
            switch: vec!["Name".into()],
            ..ParamArgs::default()
        };
        assert_eq!(
            collect(&dup, &[]),
            Err(ParamError::Duplicate("Name".into()))
        );
    }

    #[test]
    fn secure_params_come_from_env_or_stdin_only() {
        assert_eq!(
            parse_secure_spec("Password=env:DB_PW").unwrap(),
            ("Password".to_owned(), SecureSource::Env("DB_PW".into()))
        );
        assert_eq!(
            parse_secure_spec("Password=stdin").unwrap(),
            ("Password".to_owned(), SecureSource::Stdin)
        );
        for bad in ["Password=hunter2", "Password", "Password=env:", "=stdin"] {
            let e = parse_secure_spec(bad).unwrap_err();
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let args = ParamArgs {
            secure_param: vec!["Password=env:PSRP_TEST_SURELY_UNSET_VARIABLE".into()],
            ..ParamArgs::default()
        };
        assert!(matches!(
            collect(&args, &[]),
            Err(ParamError::SecureEnvMissing { .. })
        ));
        let args = ParamArgs {
            param: vec!["password=x".into()],
            secure_param: vec!["Password=stdin".into()],
            ..ParamArgs::default()
        };
        assert!(secure_params_use_stdin(&args));
    }
}
