"""Type stubs of the native module (Rust, PyO3). Use the psrp_client package API."""

from typing import Any, Awaitable, Dict, List, Optional

from psrp_client._client import Command
from psrp_client._types import InvocationResult, Record

__version__: str

class Event:
    """One output object or stream record, in the order the server sent them."""

    @property
    def kind(self) -> str:
        """``"output"``, ``"error"``, ``"warning"``, ``"verbose"``, ``"debug"``,
        ``"information"`` or ``"progress"``."""
    @property
    def value(self) -> Any:
        """For ``"output"``: the object as a Python value (the JSON mapping of
        ``psrp invoke -o json``, built in Rust). None otherwise."""
    @property
    def record(self) -> Optional[Record]:
        """For the other kinds: the Record, ErrorRecord, InformationRecord or
        ProgressRecord. None for output."""

class Settings:
    def __init__(
        self,
        host: str,
        *,
        port: Optional[int] = None,
        scheme: str = "http",
        path: str = "wsman",
        auth: str = "negotiate",
        username: Optional[str] = None,
        password: Optional[str] = None,
        spn: Optional[str] = None,
        configuration_name: str = "Microsoft.PowerShell",
        ca_file: Optional[str] = None,
        insecure_skip_tls_verify: bool = False,
        allow_unencrypted: bool = False,
        no_ntlm_fallback: bool = False,
        connect_timeout: Optional[float] = None,
        operation_timeout: Optional[float] = None,
        read_timeout: Optional[float] = None,
        locale: Optional[str] = None,
        data_locale: Optional[str] = None,
        max_envelope_size: Optional[int] = None,
        reconnection_retries: Optional[int] = None,
        reconnection_backoff: Optional[float] = None,
    ) -> None: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def configuration_name(self) -> str: ...

class Invocation:
    @property
    def command(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def done(self) -> bool: ...
    def next_event(self) -> Optional[Event]: ...
    def next_event_async(self) -> Awaitable[Optional[Event]]: ...
    def stop(self) -> None: ...
    def stop_async(self) -> Awaitable[None]: ...
    def cancel(self) -> None: ...
    def cancel_async(self) -> Awaitable[None]: ...
    def result(self, timeout: Optional[float] = None) -> InvocationResult: ...
    def result_async(self, timeout: Optional[float] = None) -> Awaitable[InvocationResult]: ...

class Pool:
    @staticmethod
    def open(settings: Settings, session_init: List[Command]) -> "Pool": ...
    @staticmethod
    def open_async(settings: Settings, session_init: List[Command]) -> Awaitable["Pool"]: ...
    def start(self, command: Command) -> Invocation: ...
    def start_async(self, command: Command) -> Awaitable[Invocation]: ...
    def invoke(self, command: Command, timeout: Optional[float] = None) -> InvocationResult: ...
    def invoke_async(self, command: Command, timeout: Optional[float] = None) -> Awaitable[InvocationResult]: ...
    def close(self) -> None: ...
    def close_async(self) -> Awaitable[None]: ...
    @property
    def is_closed(self) -> bool: ...
    @property
    def shell_id(self) -> str: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def configuration_name(self) -> str: ...
    @property
    def protocol_version(self) -> str: ...
    @property
    def ps_version_table(self) -> Optional[Dict[str, Any]]: ...
    @property
    def session_init_results(self) -> List[InvocationResult]: ...
