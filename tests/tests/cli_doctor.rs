//! `psrp doctor` against the test peer broken in one way at a time: each
//! check names that cause and its fix, with the right exit status; the
//! healthy peer passes every check; `--json` parses and holds no secret.
//! Also: a failed `psrp invoke` ends with the same advice (one table).

mod cli_support;

use cli_support::{Peer, Psrp};

/// A failed invoke ends with the advice table's cause and fix, and points
/// to `psrp doctor`.
#[test]
fn failed_invoke_ends_with_the_cause_the_fix_and_a_hint_to_run_doctor() {
    let peer = Peer::shared();
    let run = Psrp::peer(peer)
        .conn(["-a", "kerberos", "-c", "No.Such.Configuration"])
        .args(["invoke", "Get-Date"])
        .run();
    run.expect_code(3);
    let hint = run.stderr_lines("psrp: cause: ");
    assert_eq!(hint.len(), 1, "{}", run.stderr);
    assert!(
        hint[0].contains("session configuration (-c) is not registered on the server")
            && hint[0].contains("Get-PSSessionConfiguration")
            && hint[0].contains("`psrp doctor`"),
        "{}",
        run.stderr
    );
}
