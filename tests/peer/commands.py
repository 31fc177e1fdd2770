"""The emulated PowerShell commands (Python implementations emitting typed objects)."""

import datetime
import fnmatch
import hashlib
import threading
import typing
from xml.etree import ElementTree

from psrpcore.types import (
    ChoiceDescription,
    ErrorCategory,
    FieldDescription,
    HostMethodIdentifier,
    ProgressRecordType,
    PSCustomObject,
    PSCredential,
    PSDict,
    PSSecureString,
    serialize,
)
from psrpcore.types._psrp import SessionCapability
from psrpcore._crypto import PSRemotingCrypto

from peer import fakefs, objects, tojson
from peer.binding import Param
from peer.runner import Call, Configuration, TerminatingError


class Spec(typing.NamedTuple):
    name: str
    cmdlet_class: str
    params: typing.Optional[typing.List[Param]]  # None: accepts anything
    func: typing.Callable[[Call], None]

    def is_switch(self, name: str) -> bool:
        if self.params is None:
            return False
        key = name.lower()
        return any(p.switch and (p.name.lower() == key or key in (a.lower() for a in p.aliases)) for p in self.params) \
            or key in ("verbose", "debug")


REGISTRY: typing.Dict[str, Spec] = {}


def command(name: str, cmdlet_class: str, params: typing.Optional[typing.List[Param]]) -> typing.Callable:
    def register(func: typing.Callable[[Call], None]) -> typing.Callable[[Call], None]:
        REGISTRY[name.lower()] = Spec(name, cmdlet_class, params, func)
        return func

    return register


def lookup(name: str, configuration: Configuration) -> typing.Optional[Spec]:
    spec = REGISTRY.get(name.lower())
    if spec is None or not configuration.is_visible(spec.name):
        return None
    return spec


def _as_list(value: typing.Any) -> typing.List[typing.Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


# ---- file system ------------------------------------------------------------------------


def _resolve_paths(
    call: Call, command: str, cmdlet_class: str, default: typing.Any = None
) -> typing.Iterator[typing.Tuple[str, typing.Any]]:
    """(full path, node) for each item the -Path values name; a path naming nothing is a PathNotFound error."""
    fs = call.inv.session.fs
    for path in _as_list(call.bound.get("Path", default)):
        path = str(path)
        found = fs.resolve(path)
        if not found:
            call.error(objects.path_not_found(path, command, cmdlet_class))
        yield from found


@command(
    "Get-Item",
    "Microsoft.PowerShell.Commands.GetItemCommand",
    [Param("Path", 0, mandatory=True), Param("Force", switch=True), Param("Filter"), Param("Include"),
     Param("Exclude"), Param("Credential")],
)
def get_item(call: Call) -> None:
    force = call.bound.switch("Force")
    cmdlet_class = "Microsoft.PowerShell.Commands.GetItemCommand"
    for full, node in _resolve_paths(call, "Get-Item", cmdlet_class):
        if node.hidden and not force:
            call.error(objects.item_not_found(full, "Get-Item", cmdlet_class))
            continue
        call.output(fakefs.to_object(full, node))


@command(
    "Get-ChildItem",
    "Microsoft.PowerShell.Commands.GetChildItemCommand",
    [Param("Path", 0), Param("Filter", 1), Param("Force", switch=True), Param("Recurse", switch=True),
     Param("Name", switch=True), Param("File", switch=True), Param("Directory", switch=True),
     Param("Include"), Param("Exclude"), Param("Depth")],
)
def get_child_item(call: Call) -> None:
    fs = call.inv.session.fs
    force = call.bound.switch("Force")
    recurse = call.bound.switch("Recurse")
    name_filter = call.bound.get("Filter")
    found = _resolve_paths(call, "Get-ChildItem", "Microsoft.PowerShell.Commands.GetChildItemCommand", fakefs.HOME)
    for full, node in found:
        items = fs.children(full, node, recurse, force) if node.is_dir else [(full, node)]
        for item_full, item in items:
            if name_filter and not fnmatch.fnmatchcase(item.name.lower(), str(name_filter).lower()):
                continue
            if call.bound.switch("File") and item.is_dir or call.bound.switch("Directory") and not item.is_dir:
                continue
            if call.bound.switch("Name"):
                call.output(item_full[len(full.rstrip("\\")) + 1 :] if node.is_dir else item.name)
            else:
                call.output(fakefs.to_object(item_full, item))


@command(
    "Remove-Item",
    "Microsoft.PowerShell.Commands.RemoveItemCommand",
    [Param("Path", 0, mandatory=True), Param("Force", switch=True), Param("Recurse", switch=True),
     Param("WhatIf", switch=True), Param("Confirm", switch=True)],
)
def remove_item(call: Call) -> None:
    fs = call.inv.session.fs
    force = call.bound.switch("Force")
    for full, node in _resolve_paths(call, "Remove-Item", "Microsoft.PowerShell.Commands.RemoveItemCommand"):
        protected = node.hidden or node.attributes & objects.FileAttributes.ReadOnly
        if protected and not force:
            call.error(
                objects.error_record(
                    f"Cannot remove item {full}: You do not have sufficient access rights to perform this "
                    "operation.",
                    ["System.IO.IOException", "System.SystemException"],
                    "RemoveFileSystemItemUnAuthorizedAccess,Microsoft.PowerShell.Commands.RemoveItemCommand",
                    ErrorCategory.PermissionDenied,
                    "Remove-Item",
                    full,
                    target_type="FileInfo",
                )
            )
            continue
        if node.is_dir and node.children and not call.bound.switch("Recurse"):
            call.error(
                objects.error_record(
                    f"The item at {full} has children and the Recurse parameter was not specified.",
                    ["System.IO.IOException", "System.SystemException"],
                    "DirectoryNotEmpty,Microsoft.PowerShell.Commands.RemoveItemCommand",
                    ErrorCategory.WriteError,
                    "Remove-Item",
                    full,
                    target_type="DirectoryInfo",
                )
            )
            continue
        if call.bound.switch("WhatIf"):
            continue
        if call.bound.switch("Confirm") and not confirm(call, "Remove File", full):
            continue
        fs.remove(full)


# ---- output and streams ---------------------------------------------------------------


@command("Get-Date", "Microsoft.PowerShell.Commands.GetDateCommand", [])
def get_date(call: Call) -> None:
    call.output(objects.get_date())


@command(
    "Write-Output",
    "Microsoft.PowerShell.Commands.WriteOutputCommand",
    [Param("InputObject", 0, remaining=True), Param("NoEnumerate", switch=True)],
)
def write_output(call: Call) -> None:
    values = call.input if not call.bound.has("InputObject") else [call.bound.get("InputObject")]
    for value in values:
        if isinstance(value, list) and not call.bound.switch("NoEnumerate"):
            for item in value:
                call.output(item)
        else:
            call.output(value)


@command(
    "Write-Error",
    "Microsoft.PowerShell.Commands.WriteErrorCommand",
    [Param("Message", 0, mandatory=True, aliases=("Msg",)), Param("Category"), Param("ErrorId"),
     Param("TargetObject"), Param("RecommendedAction"), Param("CategoryActivity"), Param("CategoryReason"),
     Param("CategoryTargetName"), Param("CategoryTargetType")],
)
def write_error(call: Call) -> None:
    category = ErrorCategory.NotSpecified
    if call.bound.has("Category"):
        try:
            category = ErrorCategory[str(call.bound.get("Category"))]
        except KeyError:
            raise TerminatingError(
                objects.parameter_error(
                    "Write-Error",
                    f"Cannot bind parameter 'Category'. Cannot convert value \"{call.bound.get('Category')}\" to type "
                    "\"System.Management.Automation.ErrorCategory\".",
                    "CannotConvertArgumentNoMessage",
                    "Microsoft.PowerShell.Commands.WriteErrorCommand",
                )
            ) from None
    call.error(
        objects.write_error_record(
            str(call.bound.get("Message")), category, call.bound.get("ErrorId"), call.bound.get("TargetObject")
        )
    )


def _message(call: Call) -> str:
    return str(call.bound.get("Message"))


@command("Write-Warning", "Microsoft.PowerShell.Commands.WriteWarningCommand",
         [Param("Message", 0, mandatory=True, aliases=("Msg",))])
def write_warning(call: Call) -> None:
    call.warning(_message(call))


@command("Write-Verbose", "Microsoft.PowerShell.Commands.WriteVerboseCommand",
         [Param("Message", 0, mandatory=True, aliases=("Msg",))])
def write_verbose(call: Call) -> None:
    call.verbose(_message(call))


@command("Write-Debug", "Microsoft.PowerShell.Commands.WriteDebugCommand",
         [Param("Message", 0, mandatory=True, aliases=("Msg",))])
def write_debug(call: Call) -> None:
    call.debug(_message(call))


@command(
    "Write-Information",
    "Microsoft.PowerShell.Commands.WriteInformationCommand",
    [Param("MessageData", 0, mandatory=True, aliases=("Msg", "Message")), Param("Tags", 1)],
)
def write_information(call: Call) -> None:
    action = str(call.bound.get("InformationAction") or "").lower()
    if action == "ignore":
        return
    tags = [str(t) for t in _as_list(call.bound.get("Tags"))]
    call.inv.write_information(call.bound.get("MessageData"), tags, "Write-Information")


@command(
    "Write-Progress",
    "Microsoft.PowerShell.Commands.WriteProgressCommand",
    [Param("Activity", 0, mandatory=True), Param("Status", 1), Param("Id", 2), Param("PercentComplete"),
     Param("SecondsRemaining"), Param("CurrentOperation"), Param("ParentId"), Param("Completed", switch=True),
     Param("SourceId")],
)
def write_progress(call: Call) -> None:
    if call.inv.session.preferences["ProgressPreference"].lower() in ("silentlycontinue", "ignore"):
        return
    b = call.bound
    call.inv.write(
        lambda p: p.write_progress(
            activity=str(b.get("Activity")),
            activity_id=int(b.get("Id", 0)),
            status_description=str(b.get("Status", "Processing")),
            current_operation=b.get("CurrentOperation"),
            parent_activity_id=int(b.get("ParentId", -1)),
            percent_complete=int(b.get("PercentComplete", -1)),
            record_type=ProgressRecordType.Completed if b.switch("Completed") else ProgressRecordType.Processing,
            seconds_remaining=int(b.get("SecondsRemaining", -1)),
        )
    )


# ---- system -------------------------------------------------------------------------------


@command(
    "Restart-Computer",
    "Microsoft.PowerShell.Commands.RestartComputerCommand",
    [Param("ComputerName", 0, aliases=("CN", "__SERVER", "Server", "IPAddress")), Param("Force", switch=True),
     Param("Wait", switch=True), Param("Timeout"), Param("Delay"), Param("For"), Param("Protocol"),
     Param("WsmanAuthentication"), Param("Credential"), Param("WhatIf", switch=True),
     Param("Confirm", switch=True)],
)
def restart_computer(call: Call) -> None:
    force = call.bound.has("Force")
    call.inv.instance.record_restart(
        {
            "shell_id": call.inv.shell.id,
            "configuration": call.inv.session.configuration.name,
            "command_id": call.inv.command.id_text,
            "force": call.bound.switch("Force"),
            "force_form": call.bound.switch_forms.get("Force") if force else None,
            "parameters": {
                name: _jsonable(value) for name, value in call.bound.values.items()
            },
        }
    )


@command(
    "Set-PSDebug",
    "Microsoft.PowerShell.Commands.SetPSDebugCommand",
    [Param("Trace"), Param("Step", switch=True), Param("Strict", switch=True), Param("Off", switch=True)],
)
def set_ps_debug(call: Call) -> None:
    if call.bound.switch("Off"):
        call.inv.session.trace_level = 0
    elif call.bound.has("Trace"):
        level = int(call.bound.get("Trace"))
        if level not in (0, 1, 2):
            raise TerminatingError(
                objects.parameter_error(
                    "Set-PSDebug",
                    f"Cannot validate argument on parameter 'Trace'. The {level} argument is greater than the "
                    "maximum allowed range of 2. Supply an argument that is less than or equal to 2 and then try "
                    "the command again.",
                    "ParameterArgumentValidationError",
                    "Microsoft.PowerShell.Commands.SetPSDebugCommand",
                )
            )
        call.inv.session.trace_level = level


@command(
    "Get-Process",
    "Microsoft.PowerShell.Commands.GetProcessCommand",
    [Param("Name", 0, aliases=("ProcessName",)), Param("Id", aliases=("PID",))],
)
def get_process(call: Call) -> None:
    table = [("Idle", 0, 0, 8192, 0.0), ("System", 4, 3120, 151552, 812.5),
             ("svchost", 1020, 690, 22351872, 12.3), ("wsmprovhost", 4242, 512, 73400320, 1.5)]
    names = [str(n).lower() for n in _as_list(call.bound.get("Name"))]
    ids = [int(i) for i in _as_list(call.bound.get("Id"))]
    for name, pid, handles, ws, cpu in table:
        if names and not any(fnmatch.fnmatchcase(name.lower(), n) for n in names):
            continue
        if ids and pid not in ids:
            continue
        call.output(objects.process_object(name, pid, handles, ws, cpu))


@command(
    "ConvertTo-Json",
    "Microsoft.PowerShell.Commands.ConvertToJsonCommand",
    [Param("InputObject", 0), Param("Depth"), Param("Compress", switch=True)],
)
def convert_to_json(call: Call) -> None:
    """Windows PowerShell 5.1's ConvertTo-Json (see peer.tojson); not visible in JEA.Maintenance."""
    cmdlet_class = "Microsoft.PowerShell.Commands.ConvertToJsonCommand"
    depth = tojson.DEFAULT_DEPTH
    if call.bound.has("Depth"):
        raw = call.bound.get("Depth")
        try:
            depth = int(raw)
        except (TypeError, ValueError):
            raise TerminatingError(
                objects.parameter_error(
                    "ConvertTo-Json",
                    f"Cannot process argument transformation on parameter 'Depth'. Cannot convert value \"{raw}\" "
                    "to type \"System.Int32\". Error: \"Input string was not in a correct format.\"",
                    "ParameterArgumentTransformationError",
                    cmdlet_class,
                )
            ) from None
        if depth < 1:
            raise TerminatingError(
                objects.parameter_error(
                    "ConvertTo-Json",
                    f"Cannot validate argument on parameter 'Depth'. The {depth} argument is less than the minimum "
                    "allowed range of 1. Supply an argument that is greater than or equal to 1 and then try the "
                    "command again.",
                    "ParameterArgumentValidationError",
                    cmdlet_class,
                )
            )
    if depth > tojson.MAX_DEPTH:
        raise TerminatingError(
            objects.error_record(
                f"The maximum depth allowed for serialization is {tojson.MAX_DEPTH}.",
                ["System.InvalidOperationException", "System.SystemException"],
                f"ReachedMaximumDepthAllowed,{cmdlet_class}",
                objects.ErrorCategory.InvalidOperation,
                "ConvertTo-Json",
                None,
            )
        )
    # ProcessRecord keeps each non-null input; EndProcessing converts one object, or all of them as an array.
    inputs = call.input if not call.bound.has("InputObject") else [call.bound.get("InputObject")]
    kept = [value for value in inputs if value is not None]
    if not kept:
        return
    value = kept[0] if len(kept) == 1 else kept
    try:
        text = tojson.convert(value, depth, compress=call.bound.switch("Compress"))
    except tojson.NonStringKey as e:
        raise TerminatingError(
            objects.error_record(
                f"The type '{e}' is not supported for serialization or deserialization of a dictionary. Keys must "
                "be strings.",
                ["System.InvalidOperationException", "System.SystemException"],
                f"NonStringKeyInDictionary,{cmdlet_class}",
                objects.ErrorCategory.InvalidOperation,
                "ConvertTo-Json",
                None,
            )
        ) from None
    call.output(text)


@command("Invoke-Expression", "Microsoft.PowerShell.Commands.InvokeExpressionCommand",
         [Param("Command", 0, mandatory=True)])
def invoke_expression(call: Call) -> None:
    out = call.inv.run_script(str(call.bound.get("Command")), call.input, collect=True) or []
    for value in out:
        call.output(value)


# ---- test helpers ---------------------------------------------------------------------


@command("Invoke-Echo", "Invoke-Echo", None)
def invoke_echo(call: Call) -> None:
    """Returns what arrived: parameters (value re-emitted with its type), arguments, types."""
    parameters: typing.Dict[str, typing.Any] = {}
    types: typing.Dict[str, str] = {}
    arguments: typing.List[typing.Any] = []
    argument_types: typing.List[str] = []
    wire = call.wire_types or []
    for index, (name, value) in enumerate(call.raw_params):
        label = wire[index] if index < len(wire) else _python_label(value)
        if name is None:
            arguments.append(value)
            argument_types.append(label)
        else:
            parameters[name] = value
            types[name] = label
    call.output(
        PSCustomObject(
            Command="Invoke-Echo",
            Parameters=PSDict(parameters),
            Arguments=arguments,
            Types=PSDict(types),
            ArgumentTypes=argument_types,
            Input=list(call.input),
        )
    )


def _python_label(value: typing.Any) -> str:
    # For arguments from the emulated script (no CLIXML): the element psrpcore would write.
    element = serialize(value, PSRemotingCrypto())
    if element.tag == "Obj":
        first = element.find("TN/T")
        return "Obj:" + (first.text or "") if first is not None else "Obj"
    return element.tag


def _jsonable(value: typing.Any) -> typing.Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


@command("Invoke-Throw", "Invoke-Throw", [Param("Message", 0)])
def invoke_throw(call: Call) -> None:
    raise TerminatingError(objects.thrown(str(call.bound.get("Message", "ScriptHalted"))))


@command("Start-Sleep", "Microsoft.PowerShell.Commands.StartSleepCommand",
         [Param("Seconds", 0, aliases=("s",)), Param("Milliseconds", aliases=("ms",))])
def start_sleep(call: Call) -> None:
    seconds = float(call.bound.get("Seconds", 0)) + float(call.bound.get("Milliseconds", 0)) / 1000.0
    call.inv.sleep(seconds)


@command("Read-Host", "Microsoft.PowerShell.Commands.ReadHostCommand",
         [Param("Prompt", 0), Param("AsSecureString", switch=True)])
def read_host(call: Call) -> None:
    """As PowerShell's ReadHostCommand: with -Prompt one UI.Prompt call with a FieldDescription
    named after the prompt (typed String or SecureString), else UI.ReadLine[AsSecureString]."""
    prompt = call.bound.get("Prompt")
    secure = call.bound.switch("AsSecureString")
    if prompt is None:
        method = HostMethodIdentifier.ReadLineAsSecureString if secure else HostMethodIdentifier.ReadLine
        call.output(call.inv.host_call(method, []))
        return
    name = str(prompt)
    field = FieldDescription(
        Name=name,
        ParameterTypeName="SecureString" if secure else "String",
        ParameterTypeFullName="System.Security.SecureString" if secure else "System.String",
        ParameterAssemblyFullName="mscorlib, Version=4.0.0.0, Culture=neutral, PublicKeyToken=b77a5c561934e089",
        Label="",
        HelpMessage="",
        IsMandatory=True,
    )
    answer = call.inv.host_call(
        HostMethodIdentifier.Prompt, ["", "", [FieldDescription.ToPSObjectForRemoting(field, for_host=True)]])
    if isinstance(answer, dict):
        for value in answer.values():
            call.output(value)


@command("Get-Credential", "Microsoft.PowerShell.Commands.GetCredentialCommand",
         [Param("Credential", 0), Param("UserName"), Param("Message"), Param("Title")])
def get_credential(call: Call) -> None:
    """UI.PromptForCredential(title, message, user name, ""), as Windows PowerShell 5.1 does;
    writes the PSCredential the client returned."""
    user = call.bound.get("UserName", call.bound.get("Credential"))
    answer = call.inv.host_call(HostMethodIdentifier.PromptForCredential1, [
        str(call.bound.get("Title", "Windows PowerShell credential request")),
        str(call.bound.get("Message", "Enter your credentials.")),
        "" if user is None else str(user),
        "",
    ])
    if answer is not None:
        call.output(answer)


_CONFIRM_CHOICES = [
    ("&Yes", "Continue with only the next step of the operation."),
    ("Yes to &All", "Continue with all the steps of the operation."),
    ("&No", "Skip this operation and proceed with the next operation."),
    ("No to A&ll", "Skip this operation and all subsequent operations."),
]


def confirm(call: Call, action: str, target: str) -> bool:
    """ShouldProcess under -Confirm: UI.PromptForChoice("Confirm", ...) with PowerShell's four
    choices (Suspend is not offered to a remote host); Yes/No to All hold for the rest of the call."""
    remembered = getattr(call, "confirm_all", None)
    if remembered is not None:
        return bool(remembered)
    choices = [ChoiceDescription.ToPSObjectForRemoting(ChoiceDescription(Label=label, HelpMessage=help_text),
                                                       for_host=True) for label, help_text in _CONFIRM_CHOICES]
    answer = call.inv.host_call(HostMethodIdentifier.PromptForChoice, [
        "Confirm",
        f'Are you sure you want to perform this action?\nPerforming the operation "{action}" on target "{target}".',
        choices,
        0,
    ])
    index = int(answer)
    if index in (1, 3):
        call.confirm_all = index == 1  # type: ignore[attr-defined]
    return index in (0, 1)


# ---- SecureString: the session key exchange, both ways ------------------------------------

SESSION_KEY_WAIT = 60.0


@command("Get-SecretHash", "Get-SecretHash", [Param("Secret", 0)])
def get_secret_hash(call: Call) -> None:
    """Proves a SecureString arrived intact: psrpcore decrypts it with the session key it sent
    the client, and the command returns its length and the SHA-256 of its UTF-8 bytes (never the
    text). -Secret, or pipeline input (Read-Host -AsSecureString | Get-SecretHash); a PSCredential
    gives its password's hash and its UserName."""
    secrets = [call.bound.get("Secret")] if call.bound.get("Secret") is not None else list(call.input)
    if not secrets:
        raise TerminatingError(objects.thrown("Get-SecretHash: no -Secret and no pipeline input."))
    for secret in secrets:
        _secret_hash(call, secret)


def _secret_hash(call: Call, secret: typing.Any) -> None:
    user = None
    if isinstance(secret, PSCredential):
        user, secret = str(secret.UserName), secret.Password
    if not isinstance(secret, PSSecureString):
        raise TerminatingError(objects.thrown(
            f"Cannot bind parameter 'Secret': a {type(secret).__name__} is not a System.Security.SecureString."))
    try:
        text = secret.decrypt()
    except Exception as e:  # wrong key (no exchange), bad padding, not UTF-16
        raise TerminatingError(objects.thrown(
            f"The SecureString could not be decrypted with the session key: {type(e).__name__}")) from None
    digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()
    if user is None:
        call.output(PSCustomObject(Length=len(text), Sha256=digest))
    else:
        call.output(PSCustomObject(UserName=user, Length=len(text), Sha256=digest))


@command("Get-DelegatedIdentity", "Get-DelegatedIdentity", [])
def get_delegated_identity(call: Call) -> None:
    """The principal of the Kerberos credentials the client delegated to this session (its
    forwarded TGT, as a second hop would use it), or nothing when it delegated none."""
    principal = call.inv.session.delegated_principal
    if principal:
        call.output(principal)


@command("New-SecureSecret", "New-SecureSecret", [Param("Text", 0, mandatory=True), Param("Count", 1)])
def new_secure_secret(call: Call) -> None:
    """Returns -Text as a SecureString (-Count times). When the client has not exchanged keys,
    the peer first sends PUBLIC_KEY_REQUEST on the pool and waits for the PUBLIC_KEY, as Windows
    does before it can serialize a SecureString."""
    text = str(call.bound.get("Text"))
    shell = call.inv.shell
    with shell.cond:
        if not shell.wait_for_session_key(call.inv._check, SESSION_KEY_WAIT):
            raise TerminatingError(objects.thrown(
                "The client did not answer PUBLIC_KEY_REQUEST: no session key to encrypt the SecureString."))
    for _ in range(int(call.bound.get("Count", 1))):
        call.output(PSSecureString(text))


# ---- Get-LargeOutput: objects serialized once, then patched --------------------------------

_LARGE_MARK = "@@@@@@@@@@"  # ten characters: the object number, zero padded, goes here
_large_template: typing.Optional[typing.List[bytes]] = None
_LARGE_TIME = datetime.datetime(2024, 3, 9, 8, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))


def _large_object(number: str) -> typing.Any:
    return objects.file_system_object(
        f"C:\\Temp\\bulk\\item-{number}.dat", False, 4096, int(objects.FileAttributes.Archive), _LARGE_TIME,
        _LARGE_TIME
    )
_large_lock = threading.Lock()
LARGE_BATCH = 256


def _large_template_parts() -> typing.List[bytes]:
    """CLIXML of one FileInfo, split where its number goes (serialized once per process)."""
    global _large_template
    with _large_lock:
        if _large_template is None:
            obj = _large_object(_LARGE_MARK)
            capability = SessionCapability(PSVersion="2.0", protocolversion="2.3", SerializationVersion="1.1.0.1")
            element = serialize(obj, PSRemotingCrypto(), our_capability=capability, their_capability=capability)
            data = ElementTree.tostring(element, encoding="utf-8", method="xml")
            _large_template = data.split(_LARGE_MARK.encode())
        return _large_template


@command("Get-LargeOutput", "Get-LargeOutput", [Param("Count", 0)])
def get_large_output(call: Call) -> None:
    count = int(call.bound.get("Count", 1000))
    parts = _large_template_parts()
    if not call.last_in_pipeline:
        # Feeding another command: real objects (slow path, rarely used).
        for i in range(count):
            call.output(_large_object(f"{i:010d}"))
        return
    for start in range(0, count, LARGE_BATCH):
        batch = []
        for i in range(start, min(start + LARGE_BATCH, count)):
            number = b"%010d" % i
            batch.append(number.join(parts))
        call.inv.inject_output(batch)

