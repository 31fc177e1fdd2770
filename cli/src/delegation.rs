//! `--delegate`: which of the causes the library names applies, from the
//! ticket cache's own flags (GSSAPI does not tell whether a TGT is
//! forwardable; `FILE:` caches can be read for it, as `psrp doctor` does).

use crate::doctor::{ccache, kerberos};

/// When the default ticket cache is a readable `FILE:` cache of
/// `principal` (the one whose TGT was not forwarded), what its TGT says
/// about delegation: not forwardable (the fix is `kinit -f`), or
/// forwardable (so the KDC refused to forward it). None when the cache
/// cannot be read (other cache types) or is someone else's.
pub fn cache_cause(principal: &str) -> Option<String> {
    let name = kerberos::ccache_name(&kerberos::config_files());
    let cache = kerberos::read_cache(&name)?.ok()?;
    if !cache.principal.eq_ignore_ascii_case(principal) {
        return None;
    }
    let tgt = cache
        .credentials
        .iter()
        .find(|c| c.server.starts_with("krbtgt/"))?;
    Some(if tgt.flags & ccache::FORWARDABLE == 0 {
        format!(
            "{name}: the ticket-granting ticket of {} is not forwardable; get a forwardable one \
             with `kinit -f` (or `forwardable = true` in krb5.conf [libdefaults])",
            cache.principal
        )
    } else {
        format!(
            "{name}: the ticket-granting ticket of {} is forwardable, so the KDC refused to \
             forward it: check the account's delegation policy on the KDC",
            cache.principal
        )
    })
}
