//! HTTP proxy selection: explicit URL, none, or the usual environment
//! variables (`HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`, lower case too, and
//! `NO_PROXY`).

use crate::config::ProxyConfig;
use crate::error::Error;
use url::Url;
use zeroize::Zeroizing;

/// A proxy to go through.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Proxy {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// `Proxy-Authorization` value from credentials in the proxy URL
    /// (cleared when dropped, never in Debug).
    pub(crate) authorization: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok())
        .filter(|v| !v.trim().is_empty())
}

/// Whether `host` is excluded by a NO_PROXY list.
pub(crate) fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            let entry = entry.to_ascii_lowercase();
            if entry == "*" {
                return true;
            }
            let entry = entry.trim_start_matches("*.").trim_start_matches('.');
            host == entry || host.ends_with(&format!(".{entry}"))
        })
}

/// Parses a proxy URL (`http://[user:pass@]host:port`).
pub(crate) fn parse(url: &str) -> Result<Proxy, Error> {
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let u = Url::parse(&with_scheme)
        .map_err(|e| Error::Config(format!("proxy URL is invalid: {e}")))?;
    if u.scheme() != "http" {
        return Err(Error::Config(format!(
            "proxy scheme {:?} is not supported (only http:// proxies)",
            u.scheme()
        )));
    }
    let host = u
        .host_str()
        .ok_or_else(|| Error::Config("proxy URL has no host".into()))?
        .to_string();
    let authorization = if u.username().is_empty() {
        None
    } else {
        use base64::Engine as _;
        let user = Zeroizing::new(percent_decode(u.username()));
        let pass = Zeroizing::new(percent_decode(u.password().unwrap_or("")));
        let pair = Zeroizing::new(format!("{}:{}", *user, *pass));
        let mut header = Zeroizing::new(String::with_capacity(6 + pair.len().div_ceil(3) * 4));
        header.push_str("Basic ");
        base64::engine::general_purpose::STANDARD.encode_string(pair.as_bytes(), &mut header);
        Some(header)
    };
    Ok(Proxy {
        host,
        port: u.port().unwrap_or(80),
        authorization,
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The proxy for `endpoint` under `cfg`, if any.
pub(crate) fn for_endpoint(cfg: &ProxyConfig, endpoint: &Url) -> Result<Option<Proxy>, Error> {
    match cfg {
        ProxyConfig::None => Ok(None),
        ProxyConfig::Url(u) => parse(u).map(Some),
        ProxyConfig::Environment => {
            let host = endpoint.host_str().unwrap_or_default();
            if let Some(list) = env(&["NO_PROXY", "no_proxy"]) {
                if no_proxy_matches(&list, host) {
                    return Ok(None);
                }
            }
            let var = if endpoint.scheme() == "https" {
                env(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])
            } else {
                env(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])
            };
            var.map(|v| parse(&v)).transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_lists() {
        assert!(no_proxy_matches(
            "localhost,.example.com",
            "win.example.com"
        ));
        assert!(no_proxy_matches("example.com", "example.com"));
        assert!(no_proxy_matches("example.com", "a.example.com"));
        assert!(!no_proxy_matches("example.com", "badexample.com"));
        assert!(no_proxy_matches("*", "anything"));
        assert!(no_proxy_matches("::1", "[::1]"));
        assert!(!no_proxy_matches("", "host"));
    }

    #[test]
    fn proxy_urls() {
        let p = parse("http://u%40d:p%3Ass@proxy.example:3128").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.example", 3128));
        use base64::Engine as _;
        let cred = base64::engine::general_purpose::STANDARD
            .decode(
                p.authorization
                    .clone()
                    .unwrap()
                    .trim_start_matches("Basic "),
            )
            .unwrap();
        assert_eq!(cred, b"u@d:p:ss");
        // Debug shows neither the password nor the encoded credentials.
        let shown = format!("{p:?}");
        assert!(
            shown.contains("proxy.example") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert!(
            !shown.contains("p%3Ass") && !shown.contains("dUBkOnA6c3M"),
            "{shown}"
        );
        assert_eq!(parse("proxy:8080").unwrap().port, 8080);
        assert!(parse("socks5://proxy:1080").is_err());
        let u = Url::parse("https://h/wsman").unwrap();
        assert_eq!(for_endpoint(&ProxyConfig::None, &u).unwrap(), None);
        assert_eq!(
            for_endpoint(&ProxyConfig::Url("http://p:1".into()), &u)
                .unwrap()
                .unwrap()
                .host,
            "p"
        );
    }
}
