"""psrpcore's reading of CLIXML, written in a neutral JSON form.

The form is the one described in shared/real-windows/README.md, extended so
that every CLIXML element can be expressed:

- plain JSON for ``S`` strings, ``I32`` numbers, booleans and ``Nil``;
- ``{"_prim": TAG, "value": ...}`` for the other primitives: numbers for
  integer types and ``C``, floats as their Python repr text or ``"NaN"``/``"Infinity"``/
  ``"-Infinity"``, ``DT`` as ``YYYY-MM-DDTHH:MM:SS.fffffff`` plus ``Z`` or
  ``+HH:MM`` (none when unspecified), ``TS`` as its total 100 ns ticks,
  ``D`` as its decimal text, ``BA`` and ``SS`` as base64 (``SS`` is the
  ciphertext), the rest as their text;
- objects ``{"_type", "_toString", "_adapted", "_extended", "_list",
  "_dict"}``, enums ``{"_type", "_enum", "value"}``;
- a primitive carrying notes ``{"_base": prim, "_toString", "_extended"}``;
- a reference back to an enclosing object (a cycle) ``{"_cycle": true}``;
- an ``<Objs>`` document ``{"_objs": [{"stream", "value"}]}``.
"""

import base64
import datetime
import enum
import math
import queue
import typing

from psrpcore.types import (
    PSDictBase,
    PSIEnumerable,
    PSListBase,
    PSObject,
    PSQueueBase,
    PSSecureString,
    PSStackBase,
)
from psrpcore.types._base import TypeRegistry
from psrpcore.types._primitive import _timedelta_total_nanoseconds
from psrpcore.types._serializer import _serialize_enum_to_string

_CLASS_TO_TAG = {cls: tag for tag, cls in TypeRegistry().element_registry.items()}
_CONTAINER_TAGS = {"LST", "IE", "STK", "QUE", "DCT", "PR"}


def _float(v: float) -> str:
    # As text: JSON readers do not all round decimal floats correctly.
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return repr(v)


def _datetime(v: datetime.datetime) -> str:
    ticks = v.microsecond * 10 + (getattr(v, "nanosecond", 0) or 0) // 100
    # Not strftime("%Y"): it does not pad years below 1000 on Linux.
    text = f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{ticks:07d}"
    offset = v.utcoffset()
    if offset is None:
        return text
    if offset == datetime.timedelta(0):
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return text + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _primitive(tag: str, v: typing.Any) -> typing.Any:
    if tag == "S":
        return str(v)
    if tag == "I32":
        return int(v)
    if tag in ("C", "By", "SB", "U16", "I16", "U32", "U64", "I64"):
        value: typing.Any = int(v)
    elif tag in ("Sg", "Db"):
        value = _float(float(v))
    elif tag == "D":
        value = str(v)
    elif tag == "DT":
        value = _datetime(v)
    elif tag == "TS":
        value = _timedelta_total_nanoseconds(v) // 100
    elif tag == "BA":
        value = base64.b64encode(bytes(v)).decode()
    elif tag == "SS":
        # The element text as read: the base64 ciphertext.
        value = v._value
    else:  # G, URI, Version, XD, SBK
        value = str(v)
    return {"_prim": tag, "value": value}


def _props(obj: PSObject, kind: str, stack: typing.List[int]) -> typing.Dict[str, typing.Any]:
    return {p.name: neutral(p.get_value(obj), stack) for p in getattr(obj.PSObject, f"{kind}_properties")}


def neutral(v: typing.Any, stack: typing.Optional[typing.List[int]] = None) -> typing.Any:
    """The neutral JSON form of a value psrpcore deserialized."""
    stack = stack if stack is not None else []
    if v is None or isinstance(v, bool):
        return v
    if id(v) in stack:
        return {"_cycle": True}

    if isinstance(v, enum.Enum):
        return {
            "_type": list(type(v).PSObject.type_names),
            "_enum": _serialize_enum_to_string(v),
            "value": int(v.value),
        }

    tag = _CLASS_TO_TAG.get(type(v))
    if tag is not None and tag not in _CONTAINER_TAGS:
        prim = _primitive(tag, v)
        type_names = list(v.PSObject.type_names)
        if "System.Enum" in type_names:
            return {"_type": type_names, "_enum": v.PSObject.to_string, "value": int(v)}
        extended = _props(v, "extended", stack) if not isinstance(v, PSSecureString) else {}
        if extended:
            return {"_base": prim, "_toString": v.PSObject.to_string, "_extended": extended}
        return prim

    if isinstance(v, PSObject):
        stack = stack + [id(v)]
        out: typing.Dict[str, typing.Any] = {
            "_type": list(v.PSObject.type_names),
            "_toString": v.PSObject.to_string,
        }
        adapted = _props(v, "adapted", stack)
        extended = _props(v, "extended", stack)
        if adapted:
            out["_adapted"] = adapted
        if extended:
            out["_extended"] = extended
        if isinstance(v, (PSDictBase, dict)):
            out["_dict"] = [[neutral(k, stack), neutral(val, stack)] for k, val in v.items()]
        elif isinstance(v, (PSQueueBase, queue.Queue)):
            out["_list"] = [neutral(i, stack) for i in list(v.queue)]
        elif isinstance(v, (PSStackBase, PSListBase, PSIEnumerable, list)):
            out["_list"] = [neutral(i, stack) for i in v]
        return out

    raise TypeError(f"no neutral form for {type(v)!r}: {v!r}")

