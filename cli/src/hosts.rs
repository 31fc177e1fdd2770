//! Host lists: `-H a,b:5986,[::1]` and hosts files (one host per line, `#`
//! comments).

use std::path::Path;

use thiserror::Error;

/// One host to run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Name or address (IPv6 without brackets).
    pub name: String,
    /// A port given with the host, overriding `--port`.
    pub port: Option<u16>,
}

impl HostSpec {
    /// How the host is shown in log lines and JSON: as given, with the port
    /// when one was given.
    pub fn label(&self) -> String {
        let name = if self.name.contains(':') {
            format!("[{}]", self.name)
        } else {
            self.name.clone()
        };
        match self.port {
            Some(p) => format!("{name}:{p}"),
            None => name,
        }
    }
}

/// A host list that cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum HostError {
    /// A malformed entry.
    #[error("host '{entry}'{place}: {reason}")]
    Bad {
        /// The entry as written.
        entry: String,
        /// ` (file:line)` when from a hosts file.
        place: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The hosts file could not be read.
    #[error("cannot read hosts file {path}: {message}")]
    Read {
        /// Which file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// No host at all.
    #[error("no host given: use -H/--host, --hosts-file, PSRP_HOST or a profile's host")]
    None,
}

/// Parses one entry: `name`, `name:port`, `[v6]`, `[v6]:port` or a bare
/// IPv6 address.
pub fn parse_entry(entry: &str, place: &str) -> Result<HostSpec, HostError> {
    let bad = |reason| HostError::Bad {
        entry: entry.to_owned(),
        place: place.to_owned(),
        reason,
    };
    let e = entry.trim();
    if e.is_empty() {
        return Err(bad("empty host name"));
    }
    if e.contains("://") || e.contains('/') {
        return Err(bad(
            "give a host name, not a URL (use --scheme, --port and --path)",
        ));
    }
    if e.chars().any(char::is_whitespace) {
        return Err(bad("host names cannot contain spaces"));
    }
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
    if let Some(rest) = e.strip_prefix('[') {
        let (name, tail) = rest
            .split_once(']')
            .ok_or_else(|| bad("unclosed '[' in an IPv6 address"))?;
        let port = match tail {
            "" => None,
            t => Some(
                t.strip_prefix(':')
                    .and_then(port)
                    .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
            ),
        };
        return Ok(HostSpec {
            name: name.to_owned(),
            port,
        });
    }
    match e.matches(':').count() {
        0 => Ok(HostSpec {
            name: e.to_owned(),
            port: None,
        }),
        1 => {
            let (name, p) = e.split_once(':').unwrap_or((e, ""));
            if name.is_empty() {
                return Err(bad("empty host name"));
            }
            Ok(HostSpec {
                name: name.to_owned(),
                port: Some(
                    port(p).ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
                ),
            })
        }
        // A bare IPv6 address.
        _ => Ok(HostSpec {
            name: e.to_owned(),
            port: None,
        }),
    }
}

/// Splits a comma-separated list.
pub fn parse_list(list: &str) -> Result<Vec<HostSpec>, HostError> {
    list.split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|e| parse_entry(e, ""))
        .collect()
}

/// Reads a hosts file: one host per line, blank lines and `#` comments
/// ignored.
pub fn read_file(path: &Path) -> Result<Vec<HostSpec>, HostError> {
    let text = std::fs::read_to_string(path).map_err(|e| HostError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse_file_text(&text, &path.display().to_string())
}

fn parse_file_text(text: &str, name: &str) -> Result<Vec<HostSpec>, HostError> {
    let mut hosts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if !line.is_empty() {
            hosts.push(parse_entry(line, &format!(" ({name}:{})", i + 1))?);
        }
    }
    Ok(hosts)
}

/// Drops repeated hosts, keeping the first.
pub fn dedup(hosts: Vec<HostSpec>) -> Vec<HostSpec> {
    let mut seen = Vec::with_capacity(hosts.len());
    for h in hosts {
        if !seen.contains(&h) {
            seen.push(h);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, port: Option<u16>) -> HostSpec {
        HostSpec {
            name: name.into(),
            port,
        }
    }

    #[test]
    fn entries_with_ports_and_ipv6() {
        assert_eq!(
            parse_list("a, b:5986,[::1]:1234,::1,[fe80::1]").unwrap(),
            vec![
                spec("a", None),
                spec("b", Some(5986)),
                spec("::1", Some(1234)),
                spec("::1", None),
                spec("fe80::1", None),
            ]
        );
        assert_eq!(spec("::1", Some(5)).label(), "[::1]:5");
        assert_eq!(spec("a", None).label(), "a");
    }

    #[test]
    fn bad_entries_say_why() {
        let err = parse_list("a,b:0").unwrap_err().to_string();
        assert!(err.contains("'b:0'") && err.contains("port"), "{err}");
        let err = parse_list("http://x/wsman").unwrap_err().to_string();
        assert!(err.contains("not a URL"), "{err}");
        assert!(parse_list("[::1").is_err());
        assert!(parse_list(":80").is_err());
    }

    #[test]
    fn hosts_file_comments_and_line_numbers() {
        let hosts = parse_file_text("# lab\nweb1\n\n  web2:5986  # second\n", "h.txt").unwrap();
        assert_eq!(hosts, vec![spec("web1", None), spec("web2", Some(5986))]);
        let err = parse_file_text("ok\nbad host\n", "h.txt")
            .unwrap_err()
            .to_string();
        assert!(err.contains("h.txt:2"), "{err}");
    }

    #[test]
    fn duplicates_are_dropped() {
        let hosts = dedup(parse_list("a,b,a,b:1").unwrap());
        assert_eq!(
            hosts,
            vec![spec("a", None), spec("b", None), spec("b", Some(1))]
        );
    }
}
