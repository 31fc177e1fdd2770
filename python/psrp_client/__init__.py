"""psrp_client: PowerShell Remoting (MS-PSRP) from Python on psrp's Rust client.

Run cmdlets on Windows hosts over WinRM (HTTP with Kerberos/NTLM/Negotiate
message encryption, or HTTPS), JEA endpoints included, with output objects as
Python values and every PowerShell stream as typed records::

    from psrp_client import RunspacePool

    with RunspacePool("win01.example.com", auth="kerberos",
                      configuration_name="JEA.Maintenance") as pool:
        result = pool.invoke("Get-Item", {"Path": r"C:\\Windows\\win.ini"})
        result.raise_for_status()
        print(result.output[0]["Length"])

:class:`AsyncRunspacePool` is the asyncio version. The import name
``psrp_client`` does not clash with ``pypsrp`` or ``psrpcore``.
"""

from psrp_client._client import AsyncInvocation, AsyncRunspacePool, Command, DetachedJob, Invocation, RunspacePool
from psrp_client._errors import (
    AuthenticationError,
    CommandNotFound,
    ConnectionFailed,
    InsecureSettingWarning,
    PipelineFailed,
    PsrpError,
    PsrpTimeout,
    ShellConnectFailed,
    TlsError,
    UsageError,
)
from psrp_client._native import Event, __version__
from psrp_client._types import (
    ErrorRecord,
    InformationRecord,
    InvocationResult,
    ProgressRecord,
    ReceivedSecureString,
    Record,
    SecureString,
)

__all__ = [
    "RunspacePool",
    "AsyncRunspacePool",
    "Command",
    "Invocation",
    "AsyncInvocation",
    "DetachedJob",
    "InvocationResult",
    "Event",
    "Record",
    "ErrorRecord",
    "InformationRecord",
    "ProgressRecord",
    "SecureString",
    "ReceivedSecureString",
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
    "__version__",
]
