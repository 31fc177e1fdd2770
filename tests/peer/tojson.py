"""ConvertTo-Json as Windows PowerShell 5.1 writes it, over the peer's emulated objects.

WinRM endpoints run Windows PowerShell 5.1, so this follows its ConvertTo-Json (on
.NET's JavaScriptSerializer), not PowerShell 7's (Newtonsoft, ISO dates, 2-space indent):

- Objects are walked to ``-Depth`` (default 2): the input is depth 0 and each property,
  element or entry one more; a non-primitive object deeper than that becomes its string
  form (a PSCustomObject ``@{Name=value; ...}``, an array its elements joined by spaces,
  any other object its ToString).
- An object's properties are its adapted (.NET) properties then its extended (ETS)
  ones. A primitive, array or dictionary that carries extended properties becomes
  ``{"value": <it>, <extended properties>}``; a wrapped DateTime also gets the
  ``DateTime`` script property of types.ps1xml (``Get-Date | ConvertTo-Json``).
- DateTime is ``"\\/Date(<ms since 1970 UTC>)\\/"``; enums are numbers (names for 64-bit
  enums); doubles use .NET's round-trip format; strings are escaped as
  HttpUtility.JavaScriptStringEncode does (``'``, ``<``, ``>``, ``&`` as ``\\u0027``...).
- Without ``-Compress`` the text is re-indented the 5.1 way: CRLF line ends, 4 spaces per
  level, two spaces after the colon, and nested objects aligned after their key.

What the peer cannot reproduce is the depth of live .NET objects: it holds objects as
Windows serialized them for remoting (e.g. a FileInfo's Directory is already a string),
so the JSON has that shape.
"""

import datetime
import decimal
import enum
import re
import typing
import uuid

from psrpcore.types import PSChar, PSCustomObject, PSInt64, PSObject, PSUInt64

DEFAULT_DEPTH = 2
MAX_DEPTH = 100
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()


class NonStringKey(Exception):
    """A dictionary key is not a string (JavaScriptSerializer refuses those)."""


class _Date(typing.NamedTuple):
    """A DateTime in the tree to serialize."""

    value: datetime.datetime


def convert(value: typing.Any, depth: int = DEFAULT_DEPTH, compress: bool = False) -> str:
    """The JSON text ConvertTo-Json writes for one input value (its pipeline input, collected)."""
    tree = _process(value, 0, depth)
    return _serialize(tree) if compress else _pretty(tree)


# ---- ProcessValue: objects to a tree of JSON values ------------------------------------------------


def _meta(value: typing.Any) -> typing.Any:
    # psrpcore's PSObject.__getattribute__ builds a property table on every access: go around it.
    return object.__getattribute__(value, "PSObject")


def _extended(value: typing.Any) -> typing.List[typing.Any]:
    return list(_meta(value).extended_properties) if isinstance(value, PSObject) else []


def _process(value: typing.Any, level: int, max_depth: int) -> typing.Any:
    extended = _extended(value)
    if value is None or isinstance(value, bool):
        tree: typing.Any = value
    elif isinstance(value, PSChar):
        tree = chr(int(value))
    elif isinstance(value, str):
        tree = str(value)
    elif isinstance(value, datetime.datetime):
        tree = _Date(value)
    elif isinstance(value, uuid.UUID):
        tree = str(value)
    elif isinstance(value, enum.Enum):
        base = getattr(value, "_value_", None)
        tree = _to_string(value) if isinstance(base, (PSInt64, PSUInt64)) else int(value)
    elif isinstance(value, float):
        tree = float(value)
    elif isinstance(value, decimal.Decimal):
        tree = decimal.Decimal(value)
    elif isinstance(value, int):
        tree = int(value)
    elif level > max_depth:
        if _is_pure_psobject(value):
            return _to_string(value)  # no extended properties added to a pure PSObject's string
        tree = _to_string(value)
    elif isinstance(value, dict):
        tree = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise NonStringKey(_type_name(value))
            tree[str(key)] = _process(item, level + 1, max_depth)
    elif isinstance(value, datetime.timedelta):
        tree = _timespan(value, level, max_depth)
    elif isinstance(value, (list, tuple, bytes)):
        tree = [_process(item, level + 1, max_depth) for item in value]
    elif isinstance(value, PSObject):
        # A .NET object: its public properties are the adapted ones. Extended ones follow below.
        tree = {p.name: _process(p.get_value(value), level + 1, max_depth) for p in _meta(value).adapted_properties}
        if not extended:
            return tree
    else:
        tree = _to_string(value)
    if not isinstance(value, PSObject) or not extended:
        return tree
    # AddPsProperties: instance (ETS) members of the wrapping PSObject.
    receiver = tree if isinstance(tree, dict) else {"value": tree}
    for prop in extended:
        if prop.name not in receiver:
            receiver[prop.name] = _process(prop.get_value(value), level + 1, max_depth)
    if isinstance(value, datetime.datetime) and "DateTime" not in receiver:
        receiver["DateTime"] = _datetime_script_property(value)
    return receiver


def _timespan(value: datetime.timedelta, level: int, max_depth: int) -> typing.Dict[str, typing.Any]:
    ticks = (value.days * 86400 + value.seconds) * 10_000_000 + value.microseconds * 10
    total_ms = ticks / 10_000
    whole = abs(ticks)
    sign = -1 if ticks < 0 else 1
    return {
        "Ticks": ticks,
        "Days": sign * (whole // 864_000_000_000),
        "Hours": sign * (whole // 36_000_000_000 % 24),
        "Milliseconds": sign * (whole // 10_000 % 1000),
        "Minutes": sign * (whole // 600_000_000 % 60),
        "Seconds": sign * (whole // 10_000_000 % 60),
        "TotalDays": total_ms / 86_400_000,
        "TotalHours": total_ms / 3_600_000,
        "TotalMilliseconds": total_ms,
        "TotalMinutes": total_ms / 60_000,
        "TotalSeconds": total_ms / 1000,
    }


def _is_pure_psobject(value: typing.Any) -> bool:
    """A PSObject with no base object (PSCustomObject, New-Object PSObject)."""
    return isinstance(value, PSCustomObject) or (
        type(value) is PSObject and not _meta(value).adapted_properties and _meta(value).to_string is None
    )


def _type_name(value: typing.Any) -> str:
    if isinstance(value, PSObject) and _meta(value).type_names:
        return _meta(value).type_names[0]
    return {dict: "System.Collections.Hashtable", list: "System.Object[]"}.get(type(value), "System.Object")


def _to_string(value: typing.Any) -> str:
    """LanguagePrimitives.ConvertTo(value, string, InvariantCulture) for the emulated objects."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, enum.Enum):
        return str(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, PSChar):
        return chr(int(value))
    if isinstance(value, datetime.datetime):
        return value.strftime("%m/%d/%Y %H:%M:%S")
    if isinstance(value, float):
        return _double(value)
    if isinstance(value, (int, decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return " ".join(_to_string(v) for v in value)  # $OFS
    if _is_pure_psobject(value):
        props = list(_meta(value).adapted_properties) + list(_meta(value).extended_properties)
        return "@{" + "; ".join(f"{p.name}={_to_string(p.get_value(value))}" for p in props) + "}"
    if isinstance(value, PSObject) and _meta(value).to_string is not None:
        return str(_meta(value).to_string)
    return _type_name(value)


_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]


def _datetime_script_property(value: datetime.datetime) -> str:
    """types.ps1xml's DateTime ScriptProperty (ToLongDateString/ToLongTimeString, en-US)."""
    long_date = f"{_DAYS[value.weekday()]}, {_MONTHS[value.month - 1]} {value.day}, {value.year}"
    long_time = f"{(value.hour % 12) or 12}:{value.minute:02}:{value.second:02} {'AM' if value.hour < 12 else 'PM'}"
    hint = next((p.get_value(value) for p in _extended(value) if p.name == "DisplayHint"), None)
    hint_name = getattr(hint, "name", None)
    if hint_name == "Date":
        return long_date
    if hint_name == "Time":
        return long_time
    return f"{long_date} {long_time}"


# ---- JavaScriptSerializer: the compact text ---------------------------------------------------------


def _serialize(tree: typing.Any) -> str:
    if tree is None:
        return "null"
    if tree is True:
        return "true"
    if tree is False:
        return "false"
    if isinstance(tree, str):
        return _string(tree)
    if isinstance(tree, _Date):
        return '"\\/Date(' + str(_epoch_ms(tree.value)) + ')\\/"'
    if isinstance(tree, float):
        return _double(tree)
    if isinstance(tree, (int, decimal.Decimal)):
        return str(tree)
    if isinstance(tree, list):
        return "[" + ",".join(_serialize(v) for v in tree) + "]"
    return "{" + ",".join(_string(k) + ":" + _serialize(v) for k, v in tree.items()) + "}"


_SHORT_ESCAPES = {"\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\", "\n": "\\n", "\b": "\\b", "\f": "\\f"}
_ESCAPED = re.compile("[\x00-\x1f\"\\\\'<>&\u0085\u2028\u2029]")


def _escape(match: "re.Match[str]") -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _string(text: str) -> str:
    """HttpUtility.JavaScriptStringEncode in double quotes."""
    return '"' + _ESCAPED.sub(_escape, text) + '"'


def _epoch_ms(value: datetime.datetime) -> int:
    # DateTime.ToUniversalTime (a naive value is local time), then ticks / 10000 truncated. Integer
    # arithmetic on the fields: exact, and around psrpcore's slow PSDateTime subtraction.
    offset = value.utcoffset()
    if offset is None:
        offset = datetime.datetime.fromtimestamp(value.timestamp()).astimezone().utcoffset() or datetime.timedelta()
    seconds = (value.toordinal() - _EPOCH_ORDINAL) * 86400 + value.hour * 3600 + value.minute * 60 + value.second
    micro = seconds * 1_000_000 + value.microsecond - (offset.days * 86400 + offset.seconds) * 1_000_000 \
        - offset.microseconds
    return -((-micro) // 1000) if micro < 0 else micro // 1000


def _double(value: float) -> str:
    """Double.ToString("R", InvariantCulture): shortest round-trip digits, exponent from 1E+15 or below 1E-05."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign, digits, exponent = decimal.Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    # Position of the decimal point relative to the first digit (scientific exponent).
    sci = len(digits) + int(exponent) - 1
    prefix = "-" if sign else ""
    if sci >= 15 or sci < -5:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}E{'+' if sci >= 0 else '-'}{abs(sci):02}"
    if sci < 0:
        return f"{prefix}0.{'0' * (-sci - 1)}{text}"
    if len(text) <= sci + 1:
        return prefix + text + "0" * (sci + 1 - len(text))
    return f"{prefix}{text[: sci + 1]}.{text[sci + 1:]}"


# ---- ConvertToPrettyJsonString: 5.1's re-indentation ---------------------------------------------------


def _pretty(tree: typing.Any, close_pad: str = "") -> str:
    """The tree as 5.1 re-indents the compact text; close_pad indents the closing bracket."""
    if isinstance(tree, list):
        opener, closer = "[", "]"
        inner = close_pad + "    "
        items = [inner + _pretty(item, inner) for item in tree]
    elif isinstance(tree, dict):
        opener, closer = "{", "}"
        inner = close_pad + "    "
        items = []
        for key, item in tree.items():
            quoted = _string(key)
            # A nested object is indented past its key: '"key":  ' is len(quoted) + 3.
            items.append(inner + quoted + ":  " + _pretty(item, inner + " " * (len(quoted) + 3)))
    else:
        return _serialize(tree)
    return opener + "\r\n" + ",\r\n".join(items) + "\r\n" + close_pad + closer
