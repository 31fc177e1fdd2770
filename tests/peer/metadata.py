"""GET_COMMAND_METADATA: what the peer says about its commands (MS-PSRP 2.2.2.14, 2.2.3.21-2.2.3.23).

A real server answers the way ``Import-PSSession`` expects: the pipeline writes one
``Selected.Microsoft.PowerShell.Commands.GenericMeasureInfo`` object with the ``Count``, then
one ``Selected.System.Management.Automation.CmdletInfo`` (or ``FunctionInfo``) object per
command with Name, Namespace, HelpUri, CommandType, ResolvedCommandName, OutputType and a
``Dictionary<string, ParameterMetadata>`` of Parameters, each ParameterMetadata with Name,
ParameterType, Aliases, IsDynamic and SwitchParameter (the shape of the Windows PowerShell 5.1
captures in ../shared/real-windows: cmdlet_info_metadata, function_info_metadata,
generic_measure_info). Common parameters are listed as Windows lists them. Only the commands
visible in the session configuration are answered, so a JEA endpoint shows just its own.
"""

import fnmatch
import typing

from psrpcore.types import (
    CommandMetadataCount,
    CommandTypes,
    PSDictBase,
    PSInvocationState,
    PSListBase,
    PSNoteProperty,
    PSObject,
    PSType,
    add_note_property,
)

from peer import binding
from peer.runner import Configuration

SWITCH = "System.Management.Automation.SwitchParameter"

# .NET parameter types of the emulated commands (as Windows PowerShell 5.1 declares them);
# a parameter not listed is System.Object, a switch is SwitchParameter.
PARAMETER_TYPES: typing.Dict[str, typing.Dict[str, str]] = {
    "Get-Item": {"Path": "System.String[]", "Filter": "System.String", "Include": "System.String[]",
                 "Exclude": "System.String[]", "Credential": "System.Management.Automation.PSCredential"},
    "Get-ChildItem": {"Path": "System.String[]", "Filter": "System.String", "Include": "System.String[]",
                      "Exclude": "System.String[]", "Depth": "System.UInt32"},
    "Remove-Item": {"Path": "System.String[]"},
    "Write-Output": {"InputObject": "System.Management.Automation.PSObject[]"},
    "Write-Error": {"Message": "System.String", "Category": "System.Management.Automation.ErrorCategory",
                    "ErrorId": "System.String", "TargetObject": "System.Object",
                    "RecommendedAction": "System.String", "CategoryActivity": "System.String",
                    "CategoryReason": "System.String", "CategoryTargetName": "System.String",
                    "CategoryTargetType": "System.String"},
    "Write-Warning": {"Message": "System.String"},
    "Write-Verbose": {"Message": "System.String"},
    "Write-Debug": {"Message": "System.String"},
    "Write-Information": {"MessageData": "System.Object", "Tags": "System.String[]"},
    "Write-Progress": {"Activity": "System.String", "Status": "System.String", "Id": "System.Int32",
                       "PercentComplete": "System.Int32", "SecondsRemaining": "System.Int32",
                       "CurrentOperation": "System.String", "ParentId": "System.Int32", "SourceId": "System.Int32"},
    "Restart-Computer": {"ComputerName": "System.String[]", "Timeout": "System.Int32", "Delay": "System.Int16",
                         "For": "Microsoft.PowerShell.Commands.WaitForServiceTypes",
                         "Protocol": "System.String", "WsmanAuthentication": "System.String",
                         "Credential": "System.Management.Automation.PSCredential"},
    "Set-PSDebug": {"Trace": "System.Int32"},
    "Get-Process": {"Name": "System.String[]", "Id": "System.Int32[]"},
    "ConvertTo-Json": {"InputObject": "System.Object", "Depth": "System.Int32"},
    "Invoke-Expression": {"Command": "System.String"},
    "Invoke-Throw": {"Message": "System.String"},
    "Start-Sleep": {"Seconds": "System.Int32", "Milliseconds": "System.Int32"},
    "Read-Host": {"Prompt": "System.Object"},
    "Get-Credential": {"Credential": "System.Management.Automation.PSCredential", "UserName": "System.String",
                       "Message": "System.String", "Title": "System.String"},
    "Get-LargeOutput": {"Count": "System.Int32"},
}

OUTPUT_TYPES: typing.Dict[str, typing.List[str]] = {
    "Get-Date": ["System.DateTime", "System.String"],
    "Get-ChildItem": ["System.IO.FileInfo", "System.IO.DirectoryInfo"],
    "Get-Process": ["System.Diagnostics.Process"],
    "ConvertTo-Json": ["System.String"],
    "Read-Host": ["System.String", "System.Security.SecureString"],
    "Get-Credential": ["System.Management.Automation.PSCredential"],
    "Get-LargeOutput": ["System.IO.FileInfo"],
}

# Modules (Namespace) of the commands; commands of the peer's own module are functions.
MODULES: typing.Dict[str, str] = {
    "Get-Item": "Microsoft.PowerShell.Management",
    "Get-ChildItem": "Microsoft.PowerShell.Management",
    "Remove-Item": "Microsoft.PowerShell.Management",
    "Restart-Computer": "Microsoft.PowerShell.Management",
    "Get-Process": "Microsoft.PowerShell.Management",
    "Set-PSDebug": "Microsoft.PowerShell.Core",
    "Get-Credential": "Microsoft.PowerShell.Security",
}
PEER_MODULE = "PeerTools"
UTILITY = "Microsoft.PowerShell.Utility"

# Common parameters in the order Windows lists them, with their types and aliases.
COMMON_PARAMETERS: typing.List[typing.Tuple[str, str, typing.Tuple[str, ...]]] = [
    ("Verbose", SWITCH, ("vb",)),
    ("Debug", SWITCH, ("db",)),
    ("ErrorAction", "System.Management.Automation.ActionPreference", ("ea",)),
    ("WarningAction", "System.Management.Automation.ActionPreference", ("wa",)),
    ("InformationAction", "System.Management.Automation.ActionPreference", ("infa",)),
    ("ErrorVariable", "System.String", ("ev",)),
    ("WarningVariable", "System.String", ("wv",)),
    ("InformationVariable", "System.String", ("iv",)),
    ("OutVariable", "System.String", ("ov",)),
    ("OutBuffer", "System.Int32", ("ob",)),
    ("PipelineVariable", "System.String", ("pv",)),
]
# ShouldProcess parameters carry these aliases on Windows.
SHOULD_PROCESS_ALIASES = {"WhatIf": ("wi",), "Confirm": ("cf",)}

ASSEMBLY = "System.Management.Automation, Version=3.0.0.0, Culture=neutral, PublicKeyToken=31bf3856ad364e35"
MSCORLIB = "mscorlib, Version=4.0.0.0, Culture=neutral, PublicKeyToken=b77a5c561934e089"


@PSType([f"System.Collections.ObjectModel.ReadOnlyCollection`1[[System.Management.Automation.PSTypeName, {ASSEMBLY}]]"])
class _OutputTypes(PSListBase):
    pass


@PSType([f"System.Collections.ObjectModel.Collection`1[[System.String, {MSCORLIB}]]"])
class _Aliases(PSListBase):
    pass


@PSType([
    f"System.Collections.Generic.Dictionary`2[[System.String, {MSCORLIB}],"
    f"[System.Management.Automation.ParameterMetadata, {ASSEMBLY}]]"
])
class _Parameters(PSDictBase):
    pass


def _parameter(name: str, type_name: str, aliases: typing.Iterable[str]) -> PSObject:
    meta = PSObject()
    meta.PSObject.type_names = ["System.Management.Automation.ParameterMetadata", "System.Object"]
    meta.PSObject.to_string = "System.Management.Automation.ParameterMetadata"
    for prop, value in [
        ("Name", name),
        ("ParameterType", type_name),
        ("Aliases", _Aliases(aliases)),
        ("IsDynamic", False),
        ("SwitchParameter", type_name == SWITCH),
    ]:
        meta.PSObject.adapted_properties.append(PSNoteProperty(prop, value))
    return meta


def _command_type(spec: typing.Any) -> CommandTypes:
    return CommandTypes.Cmdlet if spec.cmdlet_class.startswith("Microsoft.") else CommandTypes.Function


def _namespace(spec: typing.Any) -> str:
    if _command_type(spec) == CommandTypes.Function:
        return PEER_MODULE
    return MODULES.get(spec.name, UTILITY)


def command_metadata(spec: typing.Any) -> PSObject:
    """The CommandMetadata object (Selected.*Info) of one emulated command."""
    kind = _command_type(spec)
    info = "CmdletInfo" if kind == CommandTypes.Cmdlet else "FunctionInfo"
    obj = PSObject()
    obj.PSObject.type_names = [
        f"Selected.System.Management.Automation.{info}",
        "System.Management.Automation.PSCustomObject",
        "System.Object",
    ]
    namespace = _namespace(spec)
    types = PARAMETER_TYPES.get(spec.name, {})
    parameters = _Parameters()
    # A function without a param block (params None) takes $args: no parameters at all,
    # not even the common ones, as on Windows.
    if spec.params is not None:
        for p in spec.params:
            type_name = SWITCH if p.switch else types.get(p.name, "System.Object")
            aliases = tuple(p.aliases) + SHOULD_PROCESS_ALIASES.get(p.name, ())
            parameters[p.name] = _parameter(p.name, type_name, aliases)
        for name, type_name, aliases in COMMON_PARAMETERS:
            parameters[name] = _parameter(name, type_name, aliases)
    help_uri = "" if kind == CommandTypes.Function else \
        f"https://docs.microsoft.com/powershell/module/{namespace.lower()}/{spec.name.lower()}"
    for prop, value in [
        ("Name", spec.name),
        ("Namespace", namespace),
        ("HelpUri", help_uri),
        ("CommandType", kind),
        ("ResolvedCommandName", None),
        ("OutputType", _OutputTypes(OUTPUT_TYPES.get(spec.name, []))),
        ("Parameters", parameters),
    ]:
        add_note_property(obj, prop, value)
    return obj


def _matches(value: str, patterns: typing.Optional[typing.List[typing.Any]]) -> bool:
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(value.lower(), str(p).lower()) for p in patterns)


def find(request: typing.Any, configuration: Configuration) -> typing.List[typing.Any]:
    """The visible command specs a GetMetadata request names, sorted by name."""
    from peer import commands

    wanted = int(request.command_type) if request.command_type is not None else int(CommandTypes.All)
    found = []
    for spec in commands.REGISTRY.values():
        if not configuration.is_visible(spec.name):
            continue
        if not int(_command_type(spec)) & wanted:
            continue
        if not _matches(spec.name, request.name) or not _matches(_namespace(spec), request.namespace):
            continue
        found.append(spec)
    return sorted(found, key=lambda s: s.name.lower())


def count_object(count: int) -> CommandMetadataCount:
    """The first object of the reply. (psrpcore's ``CommandMetadataCount(Count=n)`` serializes
    Count twice, once as Nil; set as an attribute it is the single I32 Windows sends.)"""
    obj = CommandMetadataCount()
    obj.Count = count
    return obj


def answer(pipeline: typing.Any, configuration: Configuration) -> typing.List[str]:
    """Writes the reply to a GET_COMMAND_METADATA pipeline and completes it; returns the names."""
    specs = find(pipeline.metadata, configuration)
    pipeline._change_state(PSInvocationState.Running, emit=False)
    pipeline.write_output(count_object(len(specs)))
    for spec in specs:
        pipeline.write_output(command_metadata(spec))
    pipeline.complete()
    return [s.name for s in specs]


# binding's common parameter names and this table must agree (the peer binds what it lists).
assert [c[0] for c in COMMON_PARAMETERS] == list(binding.COMMON_SWITCHES) + list(binding.COMMON_VALUED)
