"""Parameter binding for the emulated cmdlets, close to PowerShell's rules.

Names match case-insensitively, by alias, or by an unambiguous prefix; positional
arguments fill positions in order; switches count as present unless their value is
``$false`` (a Nil value, as pypsrp sends, is present; the form is recorded).
"""

import typing

from psrpcore.types import ErrorRecord

from peer import objects

COMMON_SWITCHES = ("Verbose", "Debug")
COMMON_VALUED = (
    "ErrorAction",
    "WarningAction",
    "InformationAction",
    "ErrorVariable",
    "WarningVariable",
    "InformationVariable",
    "OutVariable",
    "OutBuffer",
    "PipelineVariable",
)
COMMON_ALIASES = {
    "vb": "Verbose",
    "db": "Debug",
    "ea": "ErrorAction",
    "wa": "WarningAction",
    "infa": "InformationAction",
    "ev": "ErrorVariable",
    "wv": "WarningVariable",
    "iv": "InformationVariable",
    "ov": "OutVariable",
    "ob": "OutBuffer",
    "pv": "PipelineVariable",
}


class Param(typing.NamedTuple):
    name: str
    position: typing.Optional[int] = None
    switch: bool = False
    mandatory: bool = False
    remaining: bool = False  # ValueFromRemainingArguments
    aliases: typing.Tuple[str, ...] = ()


class BindingError(Exception):
    def __init__(self, record: ErrorRecord) -> None:
        super().__init__(str(record.Exception.Message))
        self.record = record


def switch_form(value: typing.Any) -> str:
    """How a switch value arrived: 'true' (B true), 'nil' (Nil), 'false', or its type."""
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return type(value).__name__


class Bound:
    """Parameters after binding."""

    def __init__(self) -> None:
        self.values: typing.Dict[str, typing.Any] = {}
        self.switch_forms: typing.Dict[str, str] = {}

    def get(self, name: str, default: typing.Any = None) -> typing.Any:
        return self.values.get(name, default)

    def has(self, name: str) -> bool:
        return name in self.values

    def switch(self, name: str) -> bool:
        if name not in self.values:
            return False
        return self.switch_forms.get(name) != "false"


def bind(
    command: str,
    cmdlet_class: str,
    params: typing.List[Param],
    supplied: typing.List[typing.Tuple[typing.Optional[str], typing.Any]],
) -> Bound:
    all_params = list(params) + [Param(n, switch=True) for n in COMMON_SWITCHES] + [Param(n) for n in COMMON_VALUED]
    by_name = {p.name.lower(): p for p in all_params}
    aliases = {a.lower(): p for p in all_params for a in p.aliases}
    aliases.update({k: by_name[v.lower()] for k, v in COMMON_ALIASES.items()})
    bound = Bound()
    positional: typing.List[typing.Any] = []

    for name, value in supplied:
        if name is None:
            positional.append(value)
            continue
        key = name.lstrip("-").rstrip(":").lower()
        param = by_name.get(key) or aliases.get(key)
        if param is None:
            matches = sorted({p.name for p in all_params if p.name.lower().startswith(key)})
            if len(matches) > 1:
                raise BindingError(
                    objects.parameter_error(
                        command,
                        f"Parameter cannot be processed because the parameter name '{name}' is ambiguous. "
                        f"Possible matches include: {' '.join('-' + m for m in matches)}.",
                        "AmbiguousParameter",
                        cmdlet_class,
                    )
                )
            if not matches:
                raise BindingError(objects.parameter_not_found(command, name, cmdlet_class))
            param = by_name[matches[0].lower()]
        if param.name in bound.values:
            raise BindingError(
                objects.parameter_error(
                    command,
                    f"Cannot bind parameter because parameter '{param.name}' is specified more than once. To "
                    "provide multiple values to parameters that can accept multiple values, use the array syntax.",
                    "ParameterAlreadyBound",
                    cmdlet_class,
                )
            )
        bound.values[param.name] = value
        if param.switch:
            bound.switch_forms[param.name] = switch_form(value)

    ordered = sorted((p for p in params if p.position is not None), key=lambda p: p.position or 0)
    for param in ordered:
        if not positional:
            break
        if param.name in bound.values:
            continue
        if param.remaining:
            bound.values[param.name] = positional if len(positional) > 1 else positional[0]
            positional = []
        else:
            bound.values[param.name] = positional.pop(0)
    if positional:
        raise BindingError(
            objects.parameter_error(
                command,
                f"A positional parameter cannot be found that accepts argument '{positional[0]}'.",
                "PositionalParameterNotFound",
                cmdlet_class,
            )
        )
    missing = [p.name for p in params if p.mandatory and p.name not in bound.values]
    if missing:
        raise BindingError(
            objects.parameter_error(
                command,
                f"Cannot process command because of one or more missing mandatory parameters: {' '.join(missing)}.",
                "MissingMandatoryParameter",
                cmdlet_class,
            )
        )
    return bound
