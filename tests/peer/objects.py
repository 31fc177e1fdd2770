"""PowerShell objects the emulated commands emit, typed as Windows PowerShell 5.1 sends them.

Error records follow the real ones in /work/shared/real-windows (exception type chain,
FullyQualifiedErrorId, CategoryInfo fields); file-system objects carry the adapted .NET
properties (Props) and PowerShell's extended ones (MS) of FileInfo/DirectoryInfo.
"""

import datetime
import typing

from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    NETException,
    PSDateTime,
    PSEnumBase,
    PSFlagBase,
    PSInt64,
    PSNoteProperty,
    PSObject,
    PSType,
    add_note_property,
)
from psrpcore.types._serializer import _serialize_string

FS_PROVIDER = "Microsoft.PowerShell.Core\\FileSystem"
EXCEPTION_BASE = ["System.Exception", "System.Object"]


@PSType(["System.IO.FileAttributes"])
class FileAttributes(PSFlagBase):
    ReadOnly = 1
    Hidden = 2
    System = 4
    Directory = 16
    Archive = 32
    Normal = 128


@PSType(["Microsoft.PowerShell.Commands.DisplayHintType"])
class DisplayHintType(PSEnumBase):
    Date = 0
    Time = 1
    DateTime = 2


def exception(message: str, type_chain: typing.List[str], **extra: typing.Any) -> NETException:
    """A .NET exception with its full type chain (most derived first)."""
    exc = NETException(Message=message, HResult=-2146233087, Source="System.Management.Automation")
    exc.PSObject.type_names = list(type_chain) + EXCEPTION_BASE
    for name, value in extra.items():
        add_note_property(exc, name, value)
    return exc


def error_record(
    message: str,
    type_chain: typing.List[str],
    error_id: str,
    category: ErrorCategory,
    activity: typing.Optional[str],
    target: typing.Any,
    target_type: typing.Optional[str] = "String",
    **exception_extra: typing.Any,
) -> ErrorRecord:
    reason = type_chain[0].rsplit(".", 1)[-1]
    record = ErrorRecord(
        Exception=exception(message, type_chain, **exception_extra),
        CategoryInfo=ErrorCategoryInfo(
            Category=category,
            Activity=activity,
            Reason=reason,
            TargetName=None if target is None else str(target),
            TargetType=target_type if target is not None else None,
        ),
        TargetObject=target,
        FullyQualifiedErrorId=error_id,
    )
    # psrpcore writes <ToString> as is; PowerShell encodes it like any string
    # (real-windows/clixml/error_record_jea.xml: _x000D__x000A_), so control characters
    # never reach the XML raw.
    record.PSObject.to_string = _serialize_string(record.PSObject.to_string or "")
    return record


def command_not_found(name: str) -> ErrorRecord:
    # As Windows sends it in PIPELINE_STATE (real-windows/clixml/pipeline_state_jea_failed.xml).
    message = (
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable program. "
        "Check the spelling of the name, or if a path was included, verify that the path is correct and try again."
    )
    return error_record(
        message,
        [
            "System.Management.Automation.CommandNotFoundException",
            "System.Management.Automation.RuntimeException",
            "System.SystemException",
        ],
        "CommandNotFoundException",
        ErrorCategory.ObjectNotFound,
        None,
        name,
        CommandName=name,
    )


def scripts_not_allowed(script: str) -> ErrorRecord:
    # What a NoLanguage (JEA) runspace answers to any script text.
    return error_record(
        "The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode.",
        ["System.Management.Automation.ParseException", "System.Management.Automation.RuntimeException",
         "System.SystemException"],
        "ScriptsNotAllowed",
        ErrorCategory.ParserError,
        None,
        script,
    )


def parameter_not_found(command: str, parameter: str, cmdlet_class: str) -> ErrorRecord:
    return error_record(
        f"A parameter cannot be found that matches parameter name '{parameter}'.",
        ["System.Management.Automation.ParameterBindingException", "System.Management.Automation.RuntimeException",
         "System.SystemException"],
        f"NamedParameterNotFound,{cmdlet_class}",
        ErrorCategory.InvalidArgument,
        command,
        None,
    )


def parameter_error(command: str, message: str, error_id: str, cmdlet_class: str) -> ErrorRecord:
    return error_record(
        message,
        ["System.Management.Automation.ParameterBindingException", "System.Management.Automation.RuntimeException",
         "System.SystemException"],
        f"{error_id},{cmdlet_class}",
        ErrorCategory.InvalidArgument,
        command,
        None,
    )


def path_not_found(path: str, command: str, cmdlet_class: str) -> ErrorRecord:
    return error_record(
        f"Cannot find path '{path}' because it does not exist.",
        ["System.Management.Automation.ItemNotFoundException", "System.Management.Automation.SessionStateException",
         "System.Management.Automation.RuntimeException", "System.SystemException"],
        f"PathNotFound,{cmdlet_class}",
        ErrorCategory.ObjectNotFound,
        command,
        path,
        ItemName=path,
    )


def item_not_found(path: str, command: str, cmdlet_class: str) -> ErrorRecord:
    # Get-Item on a hidden item without -Force.
    return error_record(
        f"Could not find item {path}.",
        ["System.Management.Automation.ItemNotFoundException", "System.Management.Automation.SessionStateException",
         "System.Management.Automation.RuntimeException", "System.SystemException"],
        f"ItemNotFound,{cmdlet_class}",
        ErrorCategory.ObjectNotFound,
        command,
        path,
        ItemName=path,
    )


def write_error_record(
    message: str, category: ErrorCategory, error_id: typing.Optional[str], target: typing.Any
) -> ErrorRecord:
    return error_record(
        message,
        ["Microsoft.PowerShell.Commands.WriteErrorException", "System.SystemException"],
        error_id or "Microsoft.PowerShell.Commands.WriteErrorException",
        category,
        "Write-Error",
        target,
        target_type=None if target is None else type_name_of(target),
    )


def thrown(message: str) -> ErrorRecord:
    # `throw "message"`: RuntimeException, FullyQualifiedErrorId = the message itself.
    return error_record(
        message,
        ["System.Management.Automation.RuntimeException", "System.SystemException"],
        message,
        ErrorCategory.OperationStopped,
        None,
        message,
        WasThrownFromThrowStatement=True,
    )


def host_call_failed(message: str) -> ErrorRecord:
    return error_record(
        message,
        ["System.Management.Automation.Remoting.RemoteHostException", "System.Management.Automation.RuntimeException",
         "System.SystemException"],
        "HostMethodInvocationFailed",
        ErrorCategory.InvalidOperation,
        "Read-Host",
        None,
    )


def internal_error(message: str) -> ErrorRecord:
    return error_record(
        f"The test peer failed while running the command: {message}",
        ["System.InvalidOperationException", "System.SystemException"],
        "PeerInternalError",
        ErrorCategory.NotSpecified,
        None,
        None,
    )


def injected_failure(message: str) -> ErrorRecord:
    """The terminating error of a pipeline failed by the ``fail_pipeline`` fault."""
    return error_record(
        message,
        ["System.InvalidOperationException", "System.SystemException"],
        "PeerInjectedFailure",
        ErrorCategory.InvalidOperation,
        None,
        None,
    )


def type_name_of(value: typing.Any) -> str:
    if isinstance(value, PSObject) and value.PSObject.type_names:
        return value.PSObject.type_names[0].rsplit(".", 1)[-1]
    return {str: "String", int: "Int32", bool: "Boolean", float: "Double"}.get(type(value), type(value).__name__)


def get_date(now: typing.Optional[datetime.datetime] = None) -> PSDateTime:
    """Get-Date output: a DateTime with the DisplayHint note property."""
    now = now or datetime.datetime.now().astimezone()
    value = PSDateTime(
        now.year, now.month, now.day, now.hour, now.minute, now.second, now.microsecond, tzinfo=now.tzinfo
    )
    add_note_property(value, "DisplayHint", DisplayHintType.DateTime)
    return value


# ---- file system objects ---------------------------------------------------------------


def _drive_object() -> PSObject:
    drive = PSObject()
    drive.PSObject.type_names = ["System.Management.Automation.PSDriveInfo", "System.Object"]
    drive.PSObject.to_string = "C"
    for name, value in [
        ("CurrentLocation", "Users\\testuser\\Documents"),
        ("Name", "C"),
        ("Provider", FS_PROVIDER),
        ("Root", "C:\\"),
        ("Description", ""),
        ("MaximumSize", None),
        ("Credential", "System.Management.Automation.PSCredential"),
        ("DisplayRoot", None),
    ]:
        drive.PSObject.adapted_properties.append(PSNoteProperty(name, value))
    return drive


def _provider_object() -> PSObject:
    provider = PSObject()
    provider.PSObject.type_names = ["System.Management.Automation.ProviderInfo", "System.Object"]
    provider.PSObject.to_string = FS_PROVIDER
    for name, value in [
        ("ImplementingType", "Microsoft.PowerShell.Commands.FileSystemProvider"),
        ("HelpFile", "System.Management.Automation.dll-Help.xml"),
        ("Name", "FileSystem"),
        ("PSSnapIn", "Microsoft.PowerShell.Core"),
        ("ModuleName", "Microsoft.PowerShell.Core"),
        ("Module", None),
        ("Description", ""),
        ("Capabilities", "Filter, ShouldProcess, Credentials"),
        ("Home", "C:\\Users\\testuser"),
        ("Drives", "C"),
    ]:
        provider.PSObject.adapted_properties.append(PSNoteProperty(name, value))
    return provider


def mode_string(is_dir: bool, attributes: int) -> str:
    return "".join(
        [
            "d" if is_dir else "-",
            "a" if attributes & FileAttributes.Archive else "-",
            "r" if attributes & FileAttributes.ReadOnly else "-",
            "h" if attributes & FileAttributes.Hidden else "-",
            "s" if attributes & FileAttributes.System else "-",
            "-",
        ]
    )


def _dt(value: datetime.datetime) -> PSDateTime:
    return PSDateTime(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond,
        tzinfo=value.tzinfo,
    )


def file_system_object(
    full_name: str,
    is_dir: bool,
    length: int,
    attributes: int,
    created: datetime.datetime,
    written: datetime.datetime,
) -> PSObject:
    """A FileInfo or DirectoryInfo as Windows PowerShell serializes it (depth 1)."""
    parent, _, name = full_name.rstrip("\\").rpartition("\\")
    if parent.endswith(":"):
        parent += "\\"
    # .NET Path.GetExtension / GetFileNameWithoutExtension; BaseName of a directory is its Name.
    dot = name.rfind(".")
    extension = name[dot:] if 0 <= dot < len(name) - 1 else ""
    base_name = name if is_dir or dot < 0 else name[:dot]
    utc = datetime.timezone.utc
    obj = PSObject()
    kind = "DirectoryInfo" if is_dir else "FileInfo"
    obj.PSObject.type_names = [
        f"System.IO.{kind}",
        "System.IO.FileSystemInfo",
        "System.MarshalByRefObject",
        "System.Object",
    ]
    obj.PSObject.to_string = name if is_dir else full_name
    attrs = FileAttributes(attributes)
    adapted: typing.List[typing.Tuple[str, typing.Any]] = [("Name", name)]
    if is_dir:
        adapted += [("Parent", parent.rstrip("\\").rpartition("\\")[2] or parent), ("Root", "C:\\")]
    else:
        adapted += [
            ("Length", PSInt64(length)),
            ("DirectoryName", parent),
            ("Directory", parent),
            ("IsReadOnly", bool(attributes & FileAttributes.ReadOnly)),
        ]
    adapted += [
        ("Exists", True),
        ("FullName", full_name),
        ("Extension", extension),
        ("CreationTime", _dt(created)),
        ("CreationTimeUtc", _dt(created.astimezone(utc))),
        ("LastAccessTime", _dt(written)),
        ("LastAccessTimeUtc", _dt(written.astimezone(utc))),
        ("LastWriteTime", _dt(written)),
        ("LastWriteTimeUtc", _dt(written.astimezone(utc))),
        ("Attributes", attrs),
    ]
    for prop, value in adapted:
        obj.PSObject.adapted_properties.append(PSNoteProperty(prop, value))
    extended: typing.List[typing.Tuple[str, typing.Any]] = [
        ("PSPath", f"{FS_PROVIDER}::{full_name}"),
        ("PSParentPath", f"{FS_PROVIDER}::{parent}"),
        ("PSChildName", name),
        ("PSDrive", _drive_object()),
        ("PSProvider", _provider_object()),
        ("PSIsContainer", is_dir),
        ("Mode", mode_string(is_dir, attributes)),
        ("BaseName", base_name),
        ("Target", []),
        ("LinkType", None),
    ]
    if not is_dir:
        extended.insert(
            7,
            (
                "VersionInfo",
                f"File:             {full_name}\r\nInternalName:     \r\nOriginalFilename: \r\nFileVersion:      \r\n"
                "FileDescription:  \r\nProduct:          \r\nProductVersion:   \r\nDebug:            False\r\n"
                "Patched:          False\r\nPreRelease:       False\r\nPrivateBuild:     False\r\n"
                "SpecialBuild:     False\r\nLanguage:         \r\n",
            ),
        )
    for prop, value in extended:
        add_note_property(obj, prop, value)
    return obj


def process_object(name: str, pid: int, handles: int, ws: int, cpu: float) -> PSObject:
    obj = PSObject()
    obj.PSObject.type_names = ["System.Diagnostics.Process", "System.ComponentModel.Component",
                               "System.MarshalByRefObject", "System.Object"]
    obj.PSObject.to_string = f"System.Diagnostics.Process ({name})"
    for prop, value in [
        ("Name", name),
        ("Id", pid),
        ("ProcessName", name),
        ("HandleCount", handles),
        ("WorkingSet64", PSInt64(ws)),
        ("SessionId", 0),
    ]:
        obj.PSObject.adapted_properties.append(PSNoteProperty(prop, value))
    for prop, value in [("Handles", handles), ("WS", PSInt64(ws)), ("CPU", cpu), ("Path", None)]:
        add_note_property(obj, prop, value)
    return obj

