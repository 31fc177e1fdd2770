//! The host name Kerberos will put in the SPN: MIT krb5 canonicalizes the
//! host of a host-based service name (`HTTP@host`, what psrp imports) as
//! krb5.conf `[libdefaults]` says: `dns_canonicalize_hostname` (true,
//! false or fallback; default true) takes the forward lookup's canonical
//! name (CNAME target), and `rdns` (default true) then the reverse (PTR)
//! name of its first address. A PTR record that names another host (a
//! load balancer, a cluster node, a stale record) sends the client to
//! `HTTP/<that name>`, the classic "Server not found in Kerberos database"
//! for a host that resolves fine.

use std::ffi::{CStr, CString};
use std::path::PathBuf;

/// MIT's `dns_canonicalize_hostname`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canonicalize {
    /// Use DNS (the default).
    Yes,
    /// Never: the SPN has the name as given.
    No,
    /// The name as given first, DNS only if the KDC does not know it.
    Fallback,
}

/// What krb5.conf says about canonicalization, and where it said it.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `dns_canonicalize_hostname`.
    pub canonicalize: Canonicalize,
    /// `rdns`.
    pub rdns: bool,
    /// The files read (KRB5_CONFIG, else /etc/krb5.conf).
    pub files: Vec<PathBuf>,
}

/// MIT's boolean words (profile library: y, yes, true, t, 1, on / n, no,
/// false, nil, 0, off).
fn boolean(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" | "t" | "1" | "on" => Some(true),
        "n" | "no" | "false" | "nil" | "0" | "off" => Some(false),
        _ => None,
    }
}

impl Policy {
    /// Reads the policy from the krb5.conf files the library uses.
    pub fn read(files: Vec<PathBuf>) -> Policy {
        let get = |key: &str| super::kerberos::libdefault(&files, key);
        let canonicalize = match get("dns_canonicalize_hostname").as_deref() {
            Some(v) if v.eq_ignore_ascii_case("fallback") => Canonicalize::Fallback,
            Some(v) => match boolean(v) {
                Some(false) => Canonicalize::No,
                _ => Canonicalize::Yes,
            },
            None => Canonicalize::Yes,
        };
        let rdns = get("rdns").and_then(|v| boolean(&v)).unwrap_or(true);
        Policy {
            canonicalize,
            rdns,
            files,
        }
    }
}

/// The forward lookup's canonical name and the reverse name of its first
/// address, as MIT's `k5_expand_hostname` finds them.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// The first address (as text).
    pub address: Option<String>,
    /// `ai_canonname` of `getaddrinfo(AI_CANONNAME)`.
    pub forward: Option<String>,
    /// `getnameinfo(NI_NAMEREQD)` of the first address: its PTR name.
    pub reverse: Option<String>,
}

impl Names {
    /// The name MIT puts in the SPN under `policy` (lower case, no final
    /// dot); `host` when canonicalization is off or DNS says nothing.
    pub fn kerberos_name(&self, host: &str, policy: &Policy) -> String {
        let name = match policy.canonicalize {
            Canonicalize::No => return host.to_ascii_lowercase(),
            _ if policy.rdns && self.reverse.is_some() => self.reverse.as_deref(),
            _ => self.forward.as_deref(),
        };
        name.unwrap_or(host)
            .trim_end_matches('.')
            .to_ascii_lowercase()
    }
}

/// Looks `host` up as MIT does (blocking: run it off the async threads).
pub fn lookup(host: &str) -> Names {
    let Ok(c_host) = CString::new(host) else {
        return Names::default();
    };
    resolve(&c_host)
}

/// getaddrinfo/getnameinfo through libc: std and tokio resolve forward
/// only, and give neither the canonical name nor reverse lookups.
#[allow(unsafe_code)]
fn resolve(host: &CStr) -> Names {
    let mut names = Names::default();
    // SAFETY: `hints` is a zeroed addrinfo (valid: null pointers, zero
    // lengths) with flags and family set; `list` receives a list that is
    // read only while alive and freed once with freeaddrinfo; the name
    // buffers are passed with their lengths and getnameinfo NUL-terminates
    // what it writes on success.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_CANONNAME;
        hints.ai_family = libc::AF_UNSPEC;
        hints.ai_socktype = libc::SOCK_STREAM;
        let mut list: *mut libc::addrinfo = std::ptr::null_mut();
        if libc::getaddrinfo(host.as_ptr(), std::ptr::null(), &hints, &mut list) != 0
            || list.is_null()
        {
            return names;
        }
        let first = &*list;
        if !first.ai_canonname.is_null() {
            names.forward = Some(
                CStr::from_ptr(first.ai_canonname)
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        let mut numeric = [0 as libc::c_char; 64];
        if libc::getnameinfo(
            first.ai_addr,
            first.ai_addrlen,
            numeric.as_mut_ptr(),
            numeric.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NUMERICHOST,
        ) == 0
        {
            names.address = Some(
                CStr::from_ptr(numeric.as_ptr())
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        let mut name = [0 as libc::c_char; 1025]; // NI_MAXHOST
        if libc::getnameinfo(
            first.ai_addr,
            first.ai_addrlen,
            name.as_mut_ptr(),
            name.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        ) == 0
        {
            names.reverse = Some(CStr::from_ptr(name.as_ptr()).to_string_lossy().into_owned());
        }
        libc::freeaddrinfo(list);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(canonicalize: Canonicalize, rdns: bool) -> Policy {
        Policy {
            canonicalize,
            rdns,
            files: Vec::new(),
        }
    }

    #[test]
    fn the_spn_host_follows_the_policy() {
        let names = Names {
            address: Some("10.0.0.5".into()),
            forward: Some("web.example.com".into()),
            reverse: Some("LB7.Example.com.".into()),
        };
        let host = "Web";
        assert_eq!(
            names.kerberos_name(host, &policy(Canonicalize::No, true)),
            "web"
        );
        assert_eq!(
            names.kerberos_name(host, &policy(Canonicalize::Yes, true)),
            "lb7.example.com"
        );
        assert_eq!(
            names.kerberos_name(host, &policy(Canonicalize::Yes, false)),
            "web.example.com"
        );
        let no_ptr = Names {
            reverse: None,
            ..names
        };
        assert_eq!(
            no_ptr.kerberos_name(host, &policy(Canonicalize::Yes, true)),
            "web.example.com"
        );
    }

    #[test]
    fn krb5_conf_words() {
        let dir = std::env::temp_dir().join(format!("psrp-canon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("krb5.conf");
        std::fs::write(
            &f,
            "[libdefaults]\n  rdns = off\n  dns_canonicalize_hostname = fallback\n[realms]\n  rdns = true\n",
        )
        .unwrap();
        let p = Policy::read(vec![f.clone()]);
        assert_eq!(p.canonicalize, Canonicalize::Fallback);
        assert!(!p.rdns);
        std::fs::write(&f, "[libdefaults]\n  default_realm = X\n").unwrap();
        let p = Policy::read(vec![f]);
        assert_eq!(p.canonicalize, Canonicalize::Yes);
        assert!(p.rdns);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
