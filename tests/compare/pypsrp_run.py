"""Runs PowerShell scenarios through the real pypsrp client and prints what it got, as JSON.

Used by tests/tests/client_vs_pypsrp.rs to compare psrp's results with pypsrp's for the
same scenarios against the test peer. Reads one JSON document on stdin:

  {"connection": {"host", "port", "auth", "username"?, "password"?},
   "scenarios": [{"name", "configuration", "session_init": [STATEMENTS...],
                  "statements": [[{"command", "parameters": [[name, value]...],
                                   "switches": [name...], "arguments": [value...]}...]...]}]}

and writes {"results": [{"name", "state", "output", "errors", "warnings", "verbose", "debug",
"information"}]}. Parameter values are JSON (ints, strings, booleans, null, lists, objects),
which pypsrp sends as I32, S, B, Nil, System.Object[] and Hashtable, as psrp does.

Output objects are turned into JSON by the mapping psrp documents for its own conversion
(psrp-core/src/clixml/json.rs), applied to pypsrp's deserialized objects. Where pypsrp gives
a value in another form than psrp's model, the form is adjusted here, never the data:
DateTime text (pypsrp keeps the wire text) is written with trailing fraction zeros dropped,
and an object pypsrp could not deserialize (it returns the raw CLIXML) is read from that XML.
"""

import base64
import json
import math
import queue
import re
import sys
import typing
import uuid
import xml.etree.ElementTree as ET

from pypsrp.complex_objects import ComplexObject, GenericComplexObject
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

STATES = {0: "NotStarted", 1: "Running", 2: "Stopping", 3: "Stopped", 4: "Completed", 5: "Failed"}

_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,7}))?(Z|[+-]\d{2}:\d{2})?$")


def _datetime_text(text: str) -> str:
    """psrp's DateTime form: fraction without trailing zeros, offset or Z as sent."""
    m = _DATETIME.match(text)
    if not m:
        return text
    whole, frac, zone = m.groups()
    frac = (frac or "").rstrip("0")
    return whole + ("." + frac if frac else "") + (zone or "")


def _float(v: float) -> typing.Any:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def _key_text(k: typing.Any) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, bool):
        return "True" if k else "False"
    if isinstance(k, GenericComplexObject) and k.to_string is not None:
        return str(k.to_string)
    return str(k)


_PRIMITIVE_TAGS = {"S", "C", "B", "DT", "TS", "By", "SB", "U16", "I16", "U32", "I32", "U64", "I64", "Sg", "Db",
                   "D", "BA", "G", "URI", "Version", "XD", "SBK", "SS", "Nil"}


def _xml_primitive(el: ET.Element) -> typing.Any:
    tag, text = el.tag, el.text or ""
    if tag == "Nil":
        return None
    if tag == "B":
        return text.strip().lower() == "true"
    if tag in ("By", "SB", "U16", "I16", "U32", "I32", "U64", "I64"):
        return int(text)
    if tag in ("Sg", "Db"):
        return _float(float(text))
    if tag == "C":
        return chr(int(text))
    if tag == "DT":
        return _datetime_text(text.strip())
    if tag == "BA":
        return base64.b64encode(base64.b64decode(text)).decode()
    if tag == "SS":
        return "System.Security.SecureString"
    return text


def _from_xml(text: str) -> typing.Any:
    """An <Obj> pypsrp returned as raw CLIXML: its base primitive, else its ToString."""
    el = ET.fromstring(text)
    for child in el:
        if child.tag in _PRIMITIVE_TAGS and "N" not in child.attrib:
            return _xml_primitive(child)
    to_string = el.find("ToString")
    return to_string.text if to_string is not None else {}


def to_json(v: typing.Any) -> typing.Any:
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, str):
        if v.startswith("<Obj"):
            return _from_xml(v)
        return _datetime_text(v)
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [to_json(i) for i in v]
    if isinstance(v, queue.Queue):
        return [to_json(i) for i in list(v.queue)]
    if isinstance(v, dict):
        return {_key_text(k): to_json(val) for k, val in v.items()}
    if isinstance(v, GenericComplexObject):
        types = [t.replace("Deserialized.", "", 1) for t in v.types]
        if "System.Enum" in types and v.to_string is not None:
            return str(v.to_string)
        if v.property_sets:
            # An object wrapping a value: the value (psrp drops the notes too).
            return to_json(v.property_sets[0])
        if not v.adapted_properties and not v.extended_properties:
            return str(v.to_string) if v.to_string is not None else {}
        out: typing.Dict[str, typing.Any] = {}
        extended = {k.lower() for k in v.extended_properties}
        for name, value in v.adapted_properties.items():
            if name.lower() not in extended:
                out[name] = to_json(value)
        for name, value in v.extended_properties.items():
            out[name] = to_json(value)
        return out
    if isinstance(v, ComplexObject):
        return str(v)
    raise TypeError(f"no JSON form for {type(v).__name__}: {v!r}")


def _exception_message(record: typing.Any) -> str:
    exc = getattr(record, "exception", None)
    if isinstance(exc, GenericComplexObject):
        for props in (exc.adapted_properties, exc.extended_properties):
            if "Message" in props:
                return str(props["Message"])
        if exc.to_string is not None:
            return str(exc.to_string)
    return str(getattr(record, "message", "") or "")


def _build(ps: PowerShell, statements: typing.List[typing.List[typing.Dict[str, typing.Any]]]) -> None:
    for index, statement in enumerate(statements):
        if index:
            ps.add_statement()
        for command in statement:
            ps.add_cmdlet(command["command"])
            for name, value in command.get("parameters", []):
                ps.add_parameter(name, value)
            for name in command.get("switches", []):
                # True, as PowerShell sends a switch (pypsrp's default would send Nil).
                ps.add_parameter(name, True)
            for value in command.get("arguments", []):
                ps.add_argument(value)


def run(wsman: WSMan, scenario: typing.Dict[str, typing.Any]) -> typing.Dict[str, typing.Any]:
    with RunspacePool(wsman, configuration_name=scenario["configuration"]) as pool:
        for statements in scenario.get("session_init", []):
            init = PowerShell(pool)
            _build(init, statements)
            init.invoke()
            if init.state != 4:
                raise RuntimeError(f"session init of {scenario['name']} ended {STATES.get(init.state)}")
        ps = PowerShell(pool)
        _build(ps, scenario["statements"])
        output = ps.invoke()
        streams = ps.streams
        return {
            "name": scenario["name"],
            "state": STATES.get(ps.state, str(ps.state)),
            "output": [to_json(o) for o in output],
            "errors": [{"message": _exception_message(e), "id": e.fq_error} for e in streams.error],
            "warnings": [str(r.message) for r in streams.warning],
            "verbose": [str(r.message) for r in streams.verbose],
            "debug": [str(r.message) for r in streams.debug],
            "information": [to_json(r.message_data) for r in streams.information],
        }


def main() -> None:
    request = json.load(sys.stdin)
    c = request["connection"]
    kwargs: typing.Dict[str, typing.Any] = {
        "port": c["port"],
        "ssl": False,
        "auth": c["auth"],
        "connection_timeout": 10,
        "read_timeout": 30,
        "operation_timeout": 5,
    }
    if c.get("username"):
        kwargs["username"] = c["username"]
        kwargs["password"] = c["password"]
    if c["auth"] in ("kerberos", "negotiate"):
        kwargs["negotiate_service"] = "HTTP"
    wsman = WSMan(c["host"], **kwargs)
    results = [run(wsman, s) for s in request["scenarios"]]
    json.dump({"results": results}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
