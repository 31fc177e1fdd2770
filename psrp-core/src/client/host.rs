//! The client's PowerShell host: what the server may ask of it.

use std::sync::Arc;

use crate::clixml::PsValue;
use crate::host::{HostCall, HostInfo};
use crate::message::{ErrorCategory, ErrorRecord};
use crate::prompt::{HostAnswer, HostPrompt};

/// Answers the server's host calls (`Read-Host`, `Get-Credential`,
/// confirmations, RawUI getters...).
///
/// Every host call also reaches the consumer as
/// [`Event::HostCall`](super::Event::HostCall), void ones (`Write-Host`
/// lines, progress) included, so they can be logged. [`Host::respond`] is
/// only asked for calls that need an answer. It runs on a blocking thread
/// (`tokio::task::spawn_blocking`), so it may wait for a user at a
/// terminal; the pipeline waits meanwhile.
///
/// Most programs implement [`Host::prompt`], which gets the prompts typed
/// ([`HostPrompt`]: `Read-Host` with or without `-AsSecureString` and
/// `-Prompt`, `Get-Credential`, `PromptForChoice`), and declare a host
/// with a UI in [`Host::host_info`] so that the server sends them. Secrets
/// in the answer ([`SecureString::new`](crate::clixml::SecureString::new))
/// are encrypted with the pool's session key before they are sent (the key
/// is exchanged first if needed). An error record refuses the prompt: the
/// server raises it in the pipeline.
///
/// ```
/// use psrp_core::client::{Host, HostInfo, SecureString};
/// use psrp_core::message::ErrorRecord;
/// use psrp_core::prompt::{HostAnswer, HostPrompt};
///
/// /// Answers from a vault; confirms with "Yes".
/// struct Scripted;
///
/// impl Host for Scripted {
///     fn host_info(&self) -> HostInfo {
///         HostInfo::with_ui(None)
///     }
///
///     # #[allow(clippy::result_large_err)]
///     fn prompt(&self, prompt: &HostPrompt) -> Result<HostAnswer, ErrorRecord> {
///         match prompt {
///             HostPrompt::ReadLine => Ok(HostAnswer::Line("forty-two".into())),
///             HostPrompt::Credential { .. } => Ok(HostAnswer::Credential {
///                 user_name: "CORP\\svc".into(),
///                 password: SecureString::new("from the vault"),
///             }),
///             HostPrompt::Choice { choices, default, .. } => {
///                 HostPrompt::choice_by_text(choices, *default, "Yes")
///                     .map(HostAnswer::Choice)
///                     .ok_or_else(|| psrp_core::client::NonInteractiveHost::prompt_refusal(prompt))
///             }
///             _ => Err(psrp_core::client::NonInteractiveHost::prompt_refusal(prompt)),
///         }
///     }
/// }
/// ```
pub trait Host: Send + Sync + 'static {
    /// The HostInfo declared to the server (in INIT_RUNSPACEPOOL, and in
    /// CREATE_PIPELINE when it has a UI). The default declares no host:
    /// the server then handles what it can itself, and fails prompts.
    fn host_info(&self) -> HostInfo {
        HostInfo::default()
    }

    /// The answer to a prompt. The default refuses it.
    // Called once per prompt, so the size of the error does not matter.
    #[allow(clippy::result_large_err)]
    fn prompt(&self, prompt: &HostPrompt) -> Result<HostAnswer, ErrorRecord> {
        Err(NonInteractiveHost::prompt_refusal(prompt))
    }

    /// The answer to a call that needs one: the return value, or an error
    /// the server raises in the pipeline. The default answers prompts with
    /// [`Host::prompt`] and refuses every other call.
    #[allow(clippy::result_large_err)]
    fn respond(&self, call: &HostCall) -> Result<Option<PsValue>, ErrorRecord> {
        match HostPrompt::from_call(call) {
            Ok(Some(prompt)) => {
                let answer = self.prompt(&prompt)?;
                prompt.answer_value(answer).map(Some).map_err(|e| {
                    host_error(
                        format!("The client's answer to {} was refused: {e}.", prompt.kind()),
                        "HostAnswerInvalid",
                    )
                })
            }
            Ok(None) => Err(NonInteractiveHost::refusal(call)),
            Err(e) => Err(host_error(
                format!(
                    "The client could not read the host call {}: {e}.",
                    call.method.name()
                ),
                "HostCallMalformed",
            )),
        }
    }
}

impl<T: Host + ?Sized> Host for Arc<T> {
    fn host_info(&self) -> HostInfo {
        (**self).host_info()
    }

    fn prompt(&self, prompt: &HostPrompt) -> Result<HostAnswer, ErrorRecord> {
        (**self).prompt(prompt)
    }

    fn respond(&self, call: &HostCall) -> Result<Option<PsValue>, ErrorRecord> {
        (**self).respond(call)
    }
}

fn host_error(message: String, id: &str) -> ErrorRecord {
    ErrorRecord::new(
        message,
        "System.Management.Automation.Host.HostException",
        id,
        ErrorCategory::NotImplemented,
    )
}

/// The default host: declares no host and refuses every call that needs
/// an answer, so `Read-Host` fails at once instead of waiting for input
/// nobody will type.
#[derive(Clone, Copy, Debug, Default)]
pub struct NonInteractiveHost;

impl NonInteractiveHost {
    /// The error record a non-interactive host answers `call` with.
    pub fn refusal(call: &HostCall) -> ErrorRecord {
        ErrorRecord::new(
            format!(
                "The remote command called the host method {}, which needs user interaction; \
                 this client is not interactive.",
                call.method.name()
            ),
            "System.Management.Automation.Host.HostException",
            "HostNotInteractive",
            ErrorCategory::NotImplemented,
        )
    }
}

impl NonInteractiveHost {
    /// The error record a non-interactive host answers `prompt` with.
    pub fn prompt_refusal(prompt: &HostPrompt) -> ErrorRecord {
        host_error(
            format!(
                "The remote command asked for {}, which needs user interaction; \
                 this client is not interactive.",
                prompt.kind()
            ),
            "HostNotInteractive",
        )
    }
}

impl Host for NonInteractiveHost {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostMethodId;

    #[test]
    fn the_default_host_refuses_calls_saying_what_was_asked() {
        let call = |method| HostCall {
            call_id: 3,
            method,
            parameters: vec![],
        };
        let err = NonInteractiveHost
            .respond(&call(HostMethodId::ReadLine))
            .unwrap_err();
        assert!(err.exception_message().contains("a line (Read-Host)"));
        assert!(err.exception_message().contains("not interactive"));
        assert_eq!(
            err.exception_type(),
            Some("System.Management.Automation.Host.HostException")
        );
        // Not a prompt: named by its method.
        let err = NonInteractiveHost
            .respond(&call(HostMethodId::GetBufferContents))
            .unwrap_err();
        assert!(err.exception_message().contains("GetBufferContents"));
        assert!(NonInteractiveHost.host_info().is_host_null);
    }

    /// Answers with the wrong kind are refused to the server, not sent.
    struct Confused;

    impl Host for Confused {
        fn prompt(&self, _: &HostPrompt) -> Result<HostAnswer, ErrorRecord> {
            Ok(HostAnswer::Choice(0))
        }
    }

    #[test]
    fn an_answer_of_the_wrong_kind_is_an_error_record() {
        let call = HostCall {
            call_id: 5,
            method: HostMethodId::ReadLineAsSecureString,
            parameters: vec![],
        };
        let err = Confused.respond(&call).unwrap_err();
        assert!(
            err.exception_message()
                .contains("a choice answer does not answer a secret line"),
            "{}",
            err.exception_message()
        );
    }
}
