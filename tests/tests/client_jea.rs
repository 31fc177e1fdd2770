//! The async client against the test peer's JEA.Maintenance endpoint over
//! Kerberos and HTTP (messages encrypted): cmdlets with parameters of every
//! type, JEA visibility, session init, every stream, large output, host calls.

mod client_common;

use client_common::{close, kerberos_jea, open, operations_of, peer};
use psrp_core::client::{Command, PipelineState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_computer_force_arrives_as_a_true_switch() {
    let p = peer();
    let pool = open(p, kerberos_jea(p)).await;
    let shell_id = pool.shell_id().to_owned();
    let result = pool
        .invoke(Command::new("Restart-Computer").switch("Force"))
        .await
        .unwrap();
    assert_eq!(result.state, PipelineState::Completed, "{result:?}");
    assert!(!result.had_errors());
    assert!(result.output.is_empty());

    let restarts = p.restarts().unwrap();
    let ours: Vec<_> = restarts
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["shell_id"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(&shell_id))
        })
        .collect();
    assert_eq!(ours.len(), 1, "{restarts}");
    assert_eq!(ours[0]["configuration"], "JEA.Maintenance");
    assert_eq!(ours[0]["force"], true);
    assert_eq!(
        ours[0]["force_form"], "true",
        "-Force must arrive as <B>true</B>"
    );

    // Every operation on this shell went Kerberos-authenticated and encrypted.
    let ops = operations_of(p, &shell_id);
    assert!(ops.len() >= 4, "{ops:?}");
    for op in &ops {
        assert_eq!(op["encrypted"], true, "{op}");
        assert_eq!(op["auth"]["mechanism"], "kerberos", "{op}");
        assert_eq!(op["transport"], "http", "{op}");
    }
    close(p, pool).await;
}
