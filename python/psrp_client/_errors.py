"""Typed exceptions, classed like the exit statuses of the ``psrp`` command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from psrp_client._types import ErrorRecord, InvocationResult

__all__ = [
    "PsrpError",
    "ConnectionFailed",
    "AuthenticationError",
    "TlsError",
    "ShellConnectFailed",
    "PipelineFailed",
    "CommandNotFound",
    "PsrpTimeout",
    "UsageError",
    "InsecureSettingWarning",
]


class PsrpError(Exception):
    """Base of every error of this package. The message says what failed, why and
    what to try; it never contains a password.

    ``error_record`` is the server's error record when there is one; ``result``
    the InvocationResult so far when a pipeline was involved.
    """

    def __init__(
        self,
        message: str,
        *,
        error_record: Optional["ErrorRecord"] = None,
        result: Optional["InvocationResult"] = None,
    ) -> None:
        super().__init__(message)
        self.error_record = error_record
        self.result = result

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConnectionFailed(PsrpError):
    """The remote end could not be used: connection, transport, WS-Man fault,
    protocol error, broken pool (``psrp`` exit status 3)."""


class AuthenticationError(ConnectionFailed):
    """The server rejected the credentials, or authentication failed (check the
    user name and password; for Kerberos, the ticket cache and the SPN)."""


class TlsError(ConnectionFailed):
    """The TLS handshake or the server certificate check failed (trust the
    issuer with ``ca_file``; connect by the name the certificate is for)."""


class ShellConnectFailed(ConnectionFailed):
    """The server refused to connect to (or disconnect) a shell left running on it.
    ``reason`` says why: ``"unknown_shell"`` (wrong id, deleted),
    ``"idle_timeout_expired"`` (deleted with its output when its idle timeout
    passed), ``"wrong_user"`` (another user's shell), ``"connected_elsewhere"``
    (another client is connected to it)."""

    reason: str = "unknown_shell"


class PipelineFailed(PsrpError):
    """A pipeline or a session-init command ended Failed or Stopped: a terminating
    error (``psrp`` exit status 2). ``error_record`` is the terminating error."""


class CommandNotFound(PipelineFailed):
    """The command does not exist, or the JEA endpoint does not make it visible."""


class PsrpTimeout(PsrpError, TimeoutError):
    """An operation did not finish within its time bound (a pipeline past its
    ``timeout`` was stopped; ``result`` holds what it produced)."""


class UsageError(PsrpError, ValueError):
    """Bad options or parameter values (``psrp`` exit status 64)."""


class InsecureSettingWarning(UserWarning):
    """Warned for ``insecure_skip_tls_verify`` and ``allow_unencrypted``."""


def _is_command_not_found(record: Optional["ErrorRecord"]) -> bool:
    return record is not None and record.is_command_not_found


def pipeline_failed(result: "InvocationResult") -> PipelineFailed:
    """The exception for a result that did not complete."""
    record = result.terminating_error
    if record is not None:
        message = f"{result.command} ended {result.state}: {record.formatted()}"
    else:
        message = f"{result.command} ended {result.state}"
    cls = CommandNotFound if _is_command_not_found(record) else PipelineFailed
    return cls(message, error_record=record, result=result)


_KINDS = {
    "usage": UsageError,
    "auth": AuthenticationError,
    "tls": TlsError,
    "connection": ConnectionFailed,
    "timeout": PsrpTimeout,
    "pipeline": PipelineFailed,
}


def _from_native(
    kind: str, message: str, record: Optional["ErrorRecord"], result: Optional["InvocationResult"]
) -> PsrpError:
    """Called by the native module to build its exceptions."""
    if kind.startswith("connect:"):
        exc = ShellConnectFailed(message, error_record=record, result=result)
        exc.reason = kind.split(":", 1)[1]
        return exc
    cls = _KINDS.get(kind, PsrpError)
    if cls is PipelineFailed and _is_command_not_found(record):
        cls = CommandNotFound
    return cls(message, error_record=record, result=result)
