"""Stream records and invocation results (filled by the native module)."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

__all__ = [
    "Record",
    "ErrorRecord",
    "InformationRecord",
    "ProgressRecord",
    "InvocationResult",
    "SecureString",
    "ReceivedSecureString",
]


class SecureString:
    """A secret to send as a ``System.Security.SecureString`` parameter value.

    ``pool.invoke("New-LocalUser", {"Name": "svc", "Password": SecureString(pw)})``: the
    client exchanges the session key with the server (RSA, then AES-256) and sends the
    value encrypted with it. ``repr`` and ``str`` never show the text; ``reveal()`` does.
    (Python strings cannot be cleared from memory; the Rust side clears its copies.)
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"SecureString takes a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The secret text."""
        return self._value

    def __repr__(self) -> str:
        return "SecureString(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecureString) and other._value == self._value

    def __hash__(self) -> int:
        return hash((SecureString, self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a SecureString is not pickled (it would write the secret in clear)")


class ReceivedSecureString(str):
    """A ``System.Security.SecureString`` the server sent, still encrypted.

    It is the ``str`` ``"System.Security.SecureString"`` (what ``psrp invoke`` prints for
    it, so output values equal the CLI's JSON) and carries the ciphertext: decrypt it with
    ``pool.decrypt(value)`` on the pool that received it, or pass it back as a parameter
    value on that pool (it is sent as the same SecureString).
    """

    ciphertext: bytes

    def __new__(cls, ciphertext: bytes) -> "ReceivedSecureString":
        self = super().__new__(cls, "System.Security.SecureString")
        self.ciphertext = bytes(ciphertext)
        return self

    def __getnewargs__(self) -> Any:  # copy and pickle keep the ciphertext
        return (self.ciphertext,)

    def __repr__(self) -> str:
        return f"ReceivedSecureString(<{len(self.ciphertext)} encrypted bytes>)"


@dataclasses.dataclass(frozen=True)
class Record:
    """A warning, verbose or debug record (and the base of the other records).

    ``level`` is the stream: ``"warning"``, ``"verbose"``, ``"debug"`` (and
    ``"error"``, ``"information"``, ``"progress"`` in the subclasses).
    ``invocation_info`` holds PowerShell's InvocationInfo fields
    (``MyCommand``, ``PositionMessage``, ...) when the server sent them.
    """

    level: str
    message: str
    invocation_info: Optional[Dict[str, Any]] = None

    def __str__(self) -> str:
        return self.message


@dataclasses.dataclass(frozen=True)
class ErrorRecord(Record):
    """An error record (non-terminating, or the terminating error of a failed pipeline).

    ``category`` is the ErrorCategory name (``"ObjectNotFound"``),
    ``category_info`` the line PowerShell prints for it
    (``"ObjectNotFound: (C:\\nope:String) [Get-Item], ItemNotFoundException"``),
    ``target`` the target object as text.
    """

    category: str = "NotSpecified"
    category_info: str = ""
    fully_qualified_error_id: str = ""
    target: Optional[str] = None
    exception_type: Optional[str] = None
    exception_message: Optional[str] = None
    recommended_action: Optional[str] = None
    script_stack_trace: Optional[str] = None
    formatted_text: str = dataclasses.field(default="", repr=False)

    def formatted(self) -> str:
        """The multi-line text ``psrp`` prints after ``ERROR:``::

            Get-Item : Cannot find path 'C:\\nope' because it does not exist.
                + CategoryInfo          : ObjectNotFound: (C:\\nope:String) [Get-Item], ItemNotFoundException
                + FullyQualifiedErrorId : PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand
                + TargetObject          : C:\\nope
        """
        return self.formatted_text or self.message

    @property
    def is_command_not_found(self) -> bool:
        """Whether the command does not exist or is not visible (JEA)."""
        return (self.exception_type or "").endswith("CommandNotFoundException") or (
            self.fully_qualified_error_id.split(",", 1)[0] == "CommandNotFoundException"
        )


@dataclasses.dataclass(frozen=True)
class InformationRecord(Record):
    """An information record (``Write-Information``, ``Write-Host``; text written
    through the host UI has ``source="Host"`` and the tag ``PSHOST``).

    ``data`` is the MessageData as a Python value, ``time_generated`` an
    ISO 8601 string.
    """

    source: Optional[str] = None
    tags: List[str] = dataclasses.field(default_factory=list)
    time_generated: Optional[str] = None
    data: Any = None


@dataclasses.dataclass(frozen=True)
class ProgressRecord(Record):
    """A progress record; ``message`` is the line ``psrp`` logs for it
    (``"Copying: file 3 of 4 (75%)"``). ``-1`` means unknown for the numbers."""

    activity: str = ""
    status: str = ""
    current_operation: Optional[str] = None
    percent_complete: int = -1
    seconds_remaining: int = -1
    activity_id: int = 0
    parent_activity_id: int = -1
    completed: bool = False


@dataclasses.dataclass
class InvocationResult:
    """What a pipeline produced, by stream, and how it ended.

    ``output`` holds the output objects as Python values (the JSON mapping of
    ``psrp invoke -o json``: objects are dicts in property order, dates ISO
    8601 strings, enums their names). ``state`` is ``"Completed"``,
    ``"Failed"`` or ``"Stopped"``; ``had_errors`` is PowerShell's HadErrors
    (error records were written, or the pipeline did not complete);
    ``exit_code`` is the code the remote set with ``$host.SetShouldExit``
    (``exit N`` in a script), if any.

    From ``Invocation.result()`` after iterating, the lists hold only the
    events not yet handed out; ``state``, ``had_errors`` and ``exit_code``
    cover the whole run.
    """

    command: str
    output: List[Any]
    errors: List[ErrorRecord]
    warnings: List[Record]
    verbose: List[Record]
    debug: List[Record]
    information: List[InformationRecord]
    progress: List[ProgressRecord]
    state: str
    had_errors: bool
    exit_code: Optional[int]
    terminating_error: Optional[ErrorRecord]

    @property
    def succeeded(self) -> bool:
        """Whether the pipeline completed (it may still have written errors)."""
        return self.state == "Completed"

    def raise_for_status(self) -> None:
        """Raises :class:`PipelineFailed` (:class:`CommandNotFound` for a missing or
        hidden command) when the pipeline did not complete; does nothing otherwise."""
        if not self.succeeded:
            from psrp_client._errors import pipeline_failed

            raise pipeline_failed(self)
