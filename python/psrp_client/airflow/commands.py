"""Commands as the PSRP provider's DAGs give them, as JSON-able specs and as ``psrp_client.Command``.

A spec is ``{"name": str, "parameters": {...}, "arguments": [...], "script": bool}``: what
``RunspacePool.start`` takes, and JSON, so that it can travel in a trigger's kwargs across a
deferral (Airflow stores those encrypted). A SecureString value is encoded there as
``{"$psrp_secure_string": text}``.

``psrp_session_init`` may hold our ``Command``, a command name, or a pypsrp ``Command``
(``pypsrp.complex_objects.Command``: ``cmd``, ``is_script`` and ``args``, a list of
``CommandParameter(name, value)`` where a name of None is a positional argument). The
pypsrp object is read through those attributes, so pypsrp need not be installed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psrp_client
from psrp_client import Command

SECURE_KEY = "$psrp_secure_string"


class CommandError(ValueError):
    """A command given to the operator cannot be sent."""


def secure_string(value: str) -> Any:
    """Marks a value to be sent as a System.Security.SecureString (the ``securestring`` template filter)."""
    marker = getattr(psrp_client, "SecureString", None)
    if marker is None:
        raise CommandError("this psrp_client build cannot send SecureString values")
    return marker(value)


def _is_secure(value: Any) -> bool:
    marker = getattr(psrp_client, "SecureString", None)
    return marker is not None and isinstance(value, marker)


def _secret_of(value: Any) -> str:
    for attr in ("value", "reveal", "get_secret_value"):
        got = getattr(value, attr, None)
        if got is not None:
            return str(got() if callable(got) else got)
    raise CommandError("cannot read the SecureString value to carry it across the deferral")


def plain_value(value: Any) -> Any:
    """A parameter value as our API takes it: pypsrp's TaggedValue("SS", x) becomes a SecureString."""
    if type(value).__name__ == "TaggedValue" and hasattr(value, "tag") and hasattr(value, "value"):
        return secure_string(value.value) if value.tag == "SS" else value.value
    if isinstance(value, Mapping):
        if set(value) == {SECURE_KEY}:
            return secure_string(str(value[SECURE_KEY]))
        return {k: plain_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    return value


def json_value(value: Any) -> Any:
    """A parameter value for a JSON spec (SecureString encoded)."""
    value = plain_value(value)
    if _is_secure(value):
        return {SECURE_KEY: _secret_of(value)}
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


def spec(name: str, parameters: Mapping[str, Any] | None = None, arguments: Sequence[Any] | None = None,
         script: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "parameters": {str(k): json_value(v) for k, v in (parameters or {}).items()},
        "arguments": [json_value(v) for v in (arguments or ())],
        "script": bool(script),
    }


def spec_of(value: Any) -> dict[str, Any]:
    """A spec from our Command, a command name, a spec, or a pypsrp Command (read by its fields)."""
    if isinstance(value, Command):
        return spec(value.name, value.parameters, value.arguments, value.is_script)
    if isinstance(value, str):
        return spec(value)
    if isinstance(value, Mapping) and "name" in value:
        return spec(value["name"], value.get("parameters"), value.get("arguments"), bool(value.get("script")))
    cmd = getattr(value, "cmd", None)
    if isinstance(cmd, str) and hasattr(value, "args"):
        parameters: dict[str, Any] = {}
        arguments: list[Any] = []
        for arg in getattr(value, "args", None) or []:
            name = getattr(arg, "name", None)
            if name is None:
                arguments.append(getattr(arg, "value", None))
            else:
                parameters[str(name)] = getattr(arg, "value", None)
        return spec(cmd, parameters, arguments, bool(getattr(value, "is_script", False)))
    raise CommandError(
        f"expected a psrp_client.Command, a command name or a pypsrp Command, not {type(value).__name__}"
    )


def session_init_specs(value: Any) -> list[dict[str, Any]]:
    """``psrp_session_init``: one command (any form above) or a list of them."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [spec_of(v) for v in value]
    return [spec_of(value)]


def command_of(data: Mapping[str, Any]) -> Command:
    """Our Command for a spec (session-init commands)."""
    parameters = {k: plain_value(v) for k, v in (data.get("parameters") or {}).items()}
    arguments = [plain_value(v) for v in data.get("arguments") or []]
    if data.get("script"):
        return Command.script(data["name"], parameters, arguments)
    return Command(data["name"], parameters, arguments)


def start_arguments(data: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) for ``RunspacePool.start`` / ``AsyncRunspacePool.start``."""
    parameters = {k: plain_value(v) for k, v in (data.get("parameters") or {}).items()}
    arguments = [plain_value(v) for v in data.get("arguments") or []]
    return (data["name"], parameters or None, arguments), {"script": bool(data.get("script"))}


def describe(data: Mapping[str, Any]) -> str:
    """A short label for logs and messages (no parameter values: they may be secrets)."""
    if data.get("script"):
        first = str(data["name"]).strip().splitlines()[0] if str(data["name"]).strip() else ""
        return f"script {first[:60]!r}"
    return str(data["name"])
