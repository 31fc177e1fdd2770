"""The CLIXML element each command argument arrived as, for Invoke-Echo.

psrpcore parses CREATE_PIPELINE; this only walks the same raw XML to name the element
(``I32``, ``S``, ``Nil``, ``B`` ...) or, for complex objects, ``Obj:<first type name>``
so that tests can assert how a client encoded a value.
"""

import typing
from xml.etree import ElementTree as ET


def _label(el: ET.Element, types: typing.Dict[str, str], objs: typing.Dict[str, ET.Element]) -> str:
    if el.tag == "Ref":
        target = objs.get(el.get("RefId", ""))
        return _label(target, types, objs) if target is not None else "Ref"
    if el.tag != "Obj":
        return el.tag
    tn = el.find("TN")
    if tn is not None:
        first = tn.find("T")
        return "Obj:" + (first.text if first is not None and first.text else "")
    tnref = el.find("TNRef")
    if tnref is not None:
        return "Obj:" + types.get(tnref.get("RefId", ""), "")
    return "Obj"


def argument_types(raw: bytes) -> typing.List[typing.List[str]]:
    """For each command (in psrpcore's order), the label of each parameter value."""
    root = ET.fromstring(raw)
    # Resolve TN/TNRef and Ref in document order, as the deserializer does.
    types: typing.Dict[str, str] = {}
    objs: typing.Dict[str, ET.Element] = {}
    for el in root.iter("Obj"):
        if el.get("RefId") is not None:
            objs[el.get("RefId", "")] = el
        tn = el.find("TN")
        if tn is not None and tn.get("RefId") is not None:
            first = tn.find("T")
            types[tn.get("RefId", "")] = first.text if first is not None and first.text else ""

    def deref(el: typing.Optional[ET.Element]) -> typing.Optional[ET.Element]:
        if el is not None and el.tag == "Ref":
            return objs.get(el.get("RefId", ""))
        return el

    def prop(obj: typing.Optional[ET.Element], name: str) -> typing.Optional[ET.Element]:
        obj = deref(obj)
        if obj is None:
            return None
        for container in ("MS", "Props"):
            c = obj.find(container)
            if c is not None:
                for child in c:
                    if child.get("N") == name:
                        return deref(child)
        return None

    def items(lst_owner: typing.Optional[ET.Element]) -> typing.List[ET.Element]:
        lst_owner = deref(lst_owner)
        if lst_owner is None:
            return []
        lst = lst_owner.find("LST")
        return [deref(e) for e in lst] if lst is not None else []  # type: ignore[misc]

    powershell = prop(root, "PowerShell")
    extra = prop(powershell, "ExtraCmds")
    if extra is not None and extra.tag != "Nil":
        statements = [prop(s, "Cmds") for s in items(extra)]
    else:
        statements = [prop(powershell, "Cmds")]
    result = []
    for cmds in statements:
        for cmd in items(cmds):
            labels = []
            for arg in items(prop(cmd, "Args")):
                value = None
                ms = arg.find("MS") if arg is not None else None
                if ms is not None:
                    for child in ms:
                        if child.get("N") == "V":
                            value = child
                labels.append(_label(value, types, objs) if value is not None else "missing")
            result.append(labels)
    return result
