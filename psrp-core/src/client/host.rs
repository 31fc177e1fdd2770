//! The client's PowerShell host: what the server may ask of it.

use crate::clixml::PsValue;
use crate::host::{HostCall, HostInfo};
use crate::message::{ErrorCategory, ErrorRecord};

/// Answers the server's host calls (`Read-Host`, prompts, RawUI getters...).
///
/// Every host call also reaches the consumer as
/// [`Event::HostCall`](super::Event::HostCall), void ones (`Write-Host`
/// lines, progress) included, so they can be logged. [`Host::respond`] is
/// only asked for calls that need an answer; it runs on the runtime, so it
/// must not block for long.
///
/// ```
/// use psrp_core::client::{Host, HostCall, HostMethodId, PsValue};
/// use psrp_core::message::ErrorRecord;
///
/// /// Answers Read-Host with a fixed line, everything else as the default does.
/// struct Scripted(&'static str);
///
/// impl Host for Scripted {
///     # #[allow(clippy::result_large_err)]
///     fn respond(&self, call: &HostCall) -> Result<Option<PsValue>, ErrorRecord> {
///         match call.method {
///             HostMethodId::ReadLine => Ok(Some(PsValue::from(self.0))),
///             _ => Err(psrp_core::client::NonInteractiveHost::refusal(call)),
///         }
///     }
/// }
/// ```
pub trait Host: Send + Sync + 'static {
    /// The HostInfo declared to the server (in INIT_RUNSPACEPOOL). The
    /// default declares no host: the server then handles what it can
    /// itself, and fails prompts.
    fn host_info(&self) -> HostInfo {
        HostInfo::default()
    }

    /// The answer to a call that needs one: the return value, or an error
    /// the server raises in the pipeline. The default refuses every call.
    // Called once per prompt, so the size of the error does not matter.
    #[allow(clippy::result_large_err)]
    fn respond(&self, call: &HostCall) -> Result<Option<PsValue>, ErrorRecord> {
        Err(NonInteractiveHost::refusal(call))
    }
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

impl Host for NonInteractiveHost {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostMethodId;

    #[test]
    fn the_default_host_refuses_calls_with_the_method_name() {
        let call = HostCall {
            call_id: 3,
            method: HostMethodId::ReadLine,
            parameters: vec![],
        };
        let err = NonInteractiveHost.respond(&call).unwrap_err();
        assert!(err.exception_message().contains("ReadLine"));
        assert_eq!(
            err.exception_type(),
            Some("System.Management.Automation.Host.HostException")
        );
        assert!(NonInteractiveHost.host_info().is_host_null);
    }
}
