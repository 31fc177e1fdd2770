//! The library's host trait answering the peer's prompts: `Read-Host`
//! (`UI.Prompt` with `-Prompt`, `ReadLine`, `ReadLineAsSecureString`),
//! `Get-Credential` (`PromptForCredential`) and `Remove-Item -Confirm`
//! (`PromptForChoice`). The peer is psrpcore's server: it decrypts the
//! secret answers with the session key the client exchanged on demand.

mod client_common;

use std::sync::Mutex;

use client_common::{close, kerberos, peer};
use psrp_core::client::{
    Command, Host, HostAnswer, HostInfo, HostPrompt, PipelineState, PoolOptions, PsValue,
    RunspacePool, SecureString,
};
use psrp_core::message::ErrorRecord;

const SECRET: &str = "host-Pässw0rd-🔑";
const PASSWORD: &str = "cred-pw-✓";

/// Answers every prompt kind and keeps what it was asked.
#[derive(Default)]
struct Answering {
    asked: Mutex<Vec<HostPrompt>>,
}

impl Host for Answering {
    fn host_info(&self) -> HostInfo {
        HostInfo::with_ui(None)
    }

    #[allow(clippy::result_large_err)]
    fn prompt(&self, prompt: &HostPrompt) -> Result<HostAnswer, ErrorRecord> {
        self.asked.lock().unwrap().push(prompt.clone());
        Ok(match prompt {
            HostPrompt::ReadLine => HostAnswer::Line("a line".into()),
            HostPrompt::ReadLineAsSecureString => HostAnswer::Secure(SecureString::new(SECRET)),
            HostPrompt::Fields { fields, .. } => HostAnswer::Fields(
                fields
                    .iter()
                    .map(|f| (f.name.clone(), PsValue::from(format!("field {}", f.name))))
                    .collect(),
            ),
            HostPrompt::Credential { .. } => HostAnswer::Credential {
                user_name: "PEER\\alice".into(),
                password: SecureString::new(PASSWORD),
            },
            HostPrompt::Choice {
                choices, default, ..
            } => HostAnswer::Choice(HostPrompt::choice_by_text(choices, *default, "No").unwrap()),
            HostPrompt::MultipleChoice { defaults, .. } => HostAnswer::Choices(defaults.clone()),
        })
    }
}

fn secret_of(pool: &RunspacePool, value: Option<&PsValue>) -> String {
    match value {
        Some(PsValue::SecureString(s)) => pool.decrypt(s).unwrap().to_string(),
        other => panic!("expected a SecureString, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_host_answers_read_host_credentials_and_choices() {
    let p = peer();
    let host = std::sync::Arc::new(Answering::default());
    let pool = RunspacePool::open_with(kerberos(p), PoolOptions::new().host(host.clone()))
        .await
        .unwrap();

    let run = |command: Command| {
        let pool = &pool;
        async move {
            let result = pool.invoke(command).await.unwrap();
            assert_eq!(result.state, PipelineState::Completed, "{result:?}");
            result.output
        }
    };
    let out = run(Command::new("Read-Host")).await;
    assert_eq!(out, [PsValue::from("a line")]);
    let out = run(Command::new("Read-Host").param("Prompt", "Name")).await;
    assert_eq!(out, [PsValue::from("field Name")]);

    // The secret goes out sealed with a session key exchanged on demand,
    // and comes back as Read-Host's SecureString output.
    assert!(!pool.has_session_key());
    let out = run(Command::new("Read-Host").switch("AsSecureString")).await;
    assert!(pool.has_session_key());
    assert_eq!(secret_of(&pool, out.first()), SECRET);

    let out = run(Command::new("Get-Credential").param("Message", "For the backup share")).await;
    let credential = out[0].as_object().expect("a PSCredential");
    assert!(credential
        .type_names
        .as_ref()
        .is_some_and(|t| t.contains("System.Management.Automation.PSCredential")));
    assert_eq!(
        credential.property("UserName").and_then(PsValue::as_str),
        Some("PEER\\alice")
    );
    assert_eq!(secret_of(&pool, credential.property("Password")), PASSWORD);

    // "No": the file stays.
    let path = "C:\\Temp\\report.txt";
    run(Command::new("Remove-Item")
        .param("Path", path)
        .switch("Confirm"))
    .await;
    let out = run(Command::new("Get-Item").param("Path", path)).await;
    assert_eq!(out.len(), 1, "{out:?}");

    let asked = host.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 5, "{asked:?}");
    assert_eq!(asked[0], HostPrompt::ReadLine);
    let HostPrompt::Fields { fields, .. } = &asked[1] else {
        panic!("{asked:?}")
    };
    assert_eq!(fields[0].name, "Name");
    assert!(!fields[0].is_secure());
    assert_eq!(asked[2], HostPrompt::ReadLineAsSecureString);
    let HostPrompt::Credential {
        caption, message, ..
    } = &asked[3]
    else {
        panic!("{asked:?}")
    };
    assert_eq!(caption, "Windows PowerShell credential request");
    assert_eq!(message, "For the backup share");
    let HostPrompt::Choice {
        caption,
        message,
        choices,
        default,
    } = &asked[4]
    else {
        panic!("{asked:?}")
    };
    assert_eq!(caption, "Confirm");
    assert!(message.contains(path), "{message}");
    let labels: Vec<_> = choices.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["&Yes", "Yes to &All", "&No", "No to A&ll"]);
    assert_eq!(*default, Some(0));
    close(p, pool).await;
}
