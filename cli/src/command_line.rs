//! A small parser for one PowerShell command line given as text, such as
//! `--session-init "Set-PSDebug -Trace 1"`. It covers what a literal command
//! line holds (a command name, `-Name value`, `-Name:value`, switches,
//! positional values, quoted strings, numbers, `$true`/`$false`/`$null`) so
//! that it can be sent as a cmdlet invocation: JEA NoLanguage endpoints run
//! no script text.

use crate::params::Param;
use psrp_core::clixml::PsValue;
use thiserror::Error;

/// A command line split into its command name and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandLine {
    /// The command name.
    pub name: String,
    /// Parameters and positional arguments in the order written.
    pub params: Vec<Param>,
}

/// Why a command line could not be parsed.
#[derive(Debug, Error, PartialEq)]
pub enum CommandLineError {
    /// Nothing but spaces.
    #[error("empty command line")]
    Empty,
    /// A quote was not closed.
    #[error("unterminated {0} quote in command line")]
    Unterminated(char),
    /// Something that needs the PowerShell language (pipes, script blocks,
    /// variables other than $true/$false/$null, ...).
    #[error("'{0}' needs the PowerShell language; give a single command with literal values (use `psrp script` for scripts)")]
    NeedsLanguage(String),
}

#[derive(Debug, PartialEq)]
enum Token {
    /// Unquoted text.
    Bare(String),
    /// Quoted text (always a string value).
    Quoted(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, CommandLineError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '\'' || c == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err(CommandLineError::Unterminated(c)),
                    // PowerShell doubles a quote inside quotes to escape it.
                    Some(q) if q == c => {
                        if chars.peek() == Some(&c) {
                            chars.next();
                            s.push(c);
                        } else {
                            break;
                        }
                    }
                    Some(other) => s.push(other),
                }
            }
            tokens.push(Token::Quoted(s));
            continue;
        }
        let mut s = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '\'' || c == '"' {
                break;
            }
            if matches!(c, '|' | ';' | '{' | '}' | '(' | ')' | '&' | '`' | '@') {
                return Err(CommandLineError::NeedsLanguage(c.to_string()));
            }
            s.push(c);
            chars.next();
        }
        tokens.push(Token::Bare(s));
    }
    Ok(tokens)
}

/// The value a bare literal stands for, as PowerShell would bind it.
fn literal(text: &str) -> Result<PsValue, CommandLineError> {
    match text.to_ascii_lowercase().as_str() {
        "$true" => return Ok(PsValue::Bool(true)),
        "$false" => return Ok(PsValue::Bool(false)),
        "$null" => return Ok(PsValue::Null),
        _ => {}
    }
    if text.starts_with('$') {
        return Err(CommandLineError::NeedsLanguage(text.to_owned()));
    }
    if let Ok(i) = text.parse::<i64>() {
        return Ok(i32::try_from(i).map_or(PsValue::I64(i), PsValue::I32));
    }
    if text.contains('.') {
        if let Ok(f) = text.parse::<f64>() {
            if f.is_finite() {
                return Ok(PsValue::Double(f));
            }
        }
    }
    if text.contains(',') {
        // `-Name a,b` is an array in PowerShell: refuse rather than guess.
        return Err(CommandLineError::NeedsLanguage(text.to_owned()));
    }
    Ok(PsValue::String(text.to_owned()))
}

fn is_param_name(token: &Token) -> bool {
    matches!(token, Token::Bare(s) if s.len() > 1 && s.starts_with('-') && s.parse::<f64>().is_err())
}

fn value_of(token: &Token) -> Result<PsValue, CommandLineError> {
    match token {
        Token::Quoted(s) => Ok(PsValue::String(s.clone())),
        Token::Bare(s) => literal(s),
    }
}

/// Parses one command line.
pub fn parse(text: &str) -> Result<CommandLine, CommandLineError> {
    let tokens = tokenize(text)?;
    let mut iter = tokens.iter().peekable();
    let name = match iter.next() {
        None => return Err(CommandLineError::Empty),
        Some(Token::Bare(s)) | Some(Token::Quoted(s)) => s.clone(),
    };
    let mut params = Vec::new();
    while let Some(token) = iter.next() {
        if is_param_name(token) {
            let Token::Bare(raw) = token else {
                unreachable!("is_param_name only accepts bare tokens")
            };
            let raw = &raw[1..];
            if let Some((pname, value)) = raw.split_once(':') {
                let v = if value.is_empty() {
                    match iter.next() {
                        Some(t) => value_of(t)?,
                        None => PsValue::Null,
                    }
                } else {
                    literal(value)?
                };
                params.push(Param::Named(pname.to_owned(), v));
                continue;
            }
            match iter.peek() {
                Some(next) if !is_param_name(next) => {
                    params.push(Param::Named(raw.to_owned(), value_of(next)?));
                    iter.next();
                }
                _ => params.push(Param::Switch(raw.to_owned())),
            }
        } else {
            params.push(Param::Positional(value_of(token)?));
        }
    }
    Ok(CommandLine { name, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_psdebug_trace() {
        assert_eq!(
            parse("Set-PSDebug -Trace 1").unwrap(),
            CommandLine {
                name: "Set-PSDebug".into(),
                params: vec![Param::Named("Trace".into(), PsValue::I32(1))],
            }
        );
    }

    #[test]
    fn switches_quotes_positionals_and_colon_form() {
        let cl = parse(
            r#"Get-ChildItem 'C:\Program Files' -Force -Filter "*.log" -Recurse:$false -Depth -1"#,
        )
        .unwrap();
        assert_eq!(cl.name, "Get-ChildItem");
        assert_eq!(
            cl.params,
            vec![
                Param::Positional(PsValue::String("C:\\Program Files".into())),
                Param::Switch("Force".into()),
                Param::Named("Filter".into(), PsValue::String("*.log".into())),
                Param::Named("Recurse".into(), PsValue::Bool(false)),
                Param::Named("Depth".into(), PsValue::I32(-1)),
            ]
        );
    }

    #[test]
    fn doubled_quotes_escape() {
        let cl = parse("Write-Output 'it''s'").unwrap();
        assert_eq!(
            cl.params,
            vec![Param::Positional(PsValue::String("it's".into()))]
        );
    }

    #[test]
    fn language_is_refused() {
        assert!(matches!(
            parse("Get-Process | Stop-Process"),
            Err(CommandLineError::NeedsLanguage(_))
        ));
        assert!(matches!(
            parse("Write-Output $env:PATH"),
            Err(CommandLineError::NeedsLanguage(_))
        ));
        assert_eq!(parse("  "), Err(CommandLineError::Empty));
        assert_eq!(parse("x 'abc"), Err(CommandLineError::Unterminated('\'')));
    }
}
