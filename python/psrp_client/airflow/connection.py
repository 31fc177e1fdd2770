"""From an Airflow connection (and the operator's options) to ``psrp_client.RunspacePool`` arguments.

The connection is read as Airflow's PSRP provider (apache-airflow-providers-microsoft-psrp
4.x, on pypsrp) reads it, so an existing ``psrp`` connection works unchanged: host, login,
password, and the extras ``auth``, ``cert_validation``, ``connection_timeout``, ``locale``,
``read_timeout``, ``reconnection_retries``, ``reconnection_backoff``, ``ssl`` and
``configuration_name``, which beat the same keys in ``wsman_options`` /
``runspace_options``. pypsrp's defaults hold: HTTPS (``ssl`` true), Negotiate, path
``wsman``, certificates verified.

What this provider adds: the connection's **port** is used (the original ignores it), the
scheme follows a port of 5985/5986 when ``ssl`` is not given anywhere, and the extras
``spn``, ``negotiate_service``, ``negotiate_hostname_override``, ``no_ntlm_fallback``,
``path``, ``operation_timeout``, ``max_envelope_size`` and ``encryption``.

``reconnection_retries``/``reconnection_backoff`` map to psrp's reconnection after a
broken connection (see the README's "Long jobs and flaky networks"): when absent psrp's
defaults hold (5 retries from 1 s), not pypsrp's (0 retries); ``reconnection_retries: 0``
turns it off. The backoff doubles from the given value for each further retry (pypsrp
starts at twice the value).

Accepted with no effect (no equivalent in psrp yet, documented in the README):
``negotiate_send_cbt`` (channel bindings are always sent over HTTPS), and the runspace
options ``min_runspaces``, ``max_runspaces``, ``apartment_state``, ``thread_options``,
``session_key_timeout_ms``, ``no_profile``, ``idle_timeout`` and ``host``. Options psrp
cannot honour and that would change what happens on the wire (CredSSP or certificate
authentication, an explicit ``proxy``, Kerberos delegation) are refused with an error.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

ORIGINAL_EXTRAS = (
    "auth",
    "cert_validation",
    "connection_timeout",
    "locale",
    "read_timeout",
    "reconnection_retries",
    "reconnection_backoff",
    "ssl",
    "configuration_name",
)
OUR_EXTRAS = (
    "spn",
    "negotiate_service",
    "negotiate_hostname_override",
    "no_ntlm_fallback",
    "path",
    "operation_timeout",
    "max_envelope_size",
    "encryption",
)
ALLOWED_EXTRAS = ORIGINAL_EXTRAS + OUR_EXTRAS

# pypsrp WSMan keyword arguments that psrp accepts without an equivalent.
_IGNORED_WSMAN = ("negotiate_send_cbt", "server", "username", "password")
_IGNORED_RUNSPACE = ("min_runspaces", "max_runspaces", "apartment_state", "thread_options", "session_key_timeout_ms",
                     "no_profile", "idle_timeout", "host")
_AUTHS = {"negotiate", "kerberos", "ntlm", "basic", "certificate", "credssp"}
_BOOL_WORDS = ("true", "false", "yes", "no", "1", "0", "on", "off")


class ConnectionConfigError(ValueError):
    """The connection or the operator options cannot be turned into psrp settings."""


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", "0", "off"):
        return False
    if isinstance(value, int):
        return bool(value)
    raise ConnectionConfigError(f"{name} must be true or false, not {value!r}")


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConnectionConfigError(f"{name} must be a number of seconds, not {value!r}") from None


def pool_arguments(
    *,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any],
    wsman_options: Mapping[str, Any] | None = None,
    runspace_options: Mapping[str, Any] | None = None,
    operation_timeout: float | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``RunspacePool``/``AsyncRunspacePool`` (without ``session_init``).

    ``extra`` is the connection's extra (a dict); unknown keys are an error, as in the
    original provider. The password is passed through and never appears in an error.
    """
    unknown = sorted(set(extra) - set(ALLOWED_EXTRAS))
    if unknown:
        hint = "; the port goes in the connection's Port field" if "port" in unknown else ""
        raise ConnectionConfigError(
            f"Unexpected extra configuration keys: {', '.join(unknown)} (allowed: {', '.join(ALLOWED_EXTRAS)}{hint})"
        )
    if not host:
        raise ConnectionConfigError("the connection has no host")
    # The connection's extras beat the operator's options for the same key (as in the original).
    wsman = {k: v for k, v in (wsman_options or {}).items() if v is not None}
    runspace = {k: v for k, v in (runspace_options or {}).items() if v is not None}
    for key in ORIGINAL_EXTRAS + OUR_EXTRAS:
        if extra.get(key) is not None:
            (runspace if key == "configuration_name" else wsman)[key] = extra[key]
    if operation_timeout is not None and "operation_timeout" not in wsman:
        wsman["operation_timeout"] = operation_timeout

    refused = {
        "proxy": "psrp takes an HTTP CONNECT proxy from HTTPS_PROXY/HTTP_PROXY/NO_PROXY in the worker's environment",
    }
    for key, why in refused.items():
        if wsman.get(key):
            raise ConnectionConfigError(f"wsman_options {key!r} cannot be honoured: {why}")
    mechanism = str(wsman.get("credssp_auth_mechanism", "auto")).lower()
    if mechanism != "auto":
        # psrp picks CredSSP's inner mechanism itself: Kerberos when the KDC answers for the user, else NTLM.
        raise ConnectionConfigError(
            f"wsman_options 'credssp_auth_mechanism' {mechanism!r} cannot be honoured: psrp uses Kerberos when the "
            "KDC gives the user a ticket with the password, else NTLM (leave it unset or 'auto')")
    if wsman.get("no_proxy") and _bool("no_proxy", wsman["no_proxy"]):
        raise ConnectionConfigError("wsman_options 'no_proxy' cannot be honoured: unset HTTPS_PROXY/HTTP_PROXY instead")
    known_wsman = set(ALLOWED_EXTRAS) | set(_IGNORED_WSMAN) | set(refused) | {
        "port", "ssl", "no_proxy", "negotiate_delegate", "read_timeout", "data_locale", "credssp_disable_tlsv1_2",
        "credssp_minimum_version", "credssp_auth_mechanism", "certificate_key_password", "certificate_pem", "certificate_key_pem"}
    unknown = sorted(set(wsman) - known_wsman)
    if unknown:
        raise ConnectionConfigError(f"unknown wsman_options: {', '.join(unknown)}")
    unknown = sorted(set(runspace) - set(_IGNORED_RUNSPACE) - {"configuration_name"})
    if unknown:
        raise ConnectionConfigError(f"unknown runspace_options: {', '.join(unknown)}")

    args: dict[str, Any] = {"host": host}
    chosen_port = port or wsman.get("port")
    if chosen_port is not None:
        try:
            args["port"] = int(chosen_port)
        except (TypeError, ValueError):
            raise ConnectionConfigError(f"port must be a number, not {chosen_port!r}") from None
    if "ssl" in wsman:
        ssl = _bool("ssl", wsman["ssl"])
    elif args.get("port") in (5985, 5986):
        ssl = args["port"] == 5986  # WinRM's well-known ports say the scheme
    else:
        ssl = True  # pypsrp's default
    args["scheme"] = "https" if ssl else "http"

    auth = str(wsman.get("auth", "negotiate")).lower()
    if auth not in _AUTHS:
        raise ConnectionConfigError(
            f"auth {auth!r} is not supported by psrp (use one of: {', '.join(sorted(_AUTHS))})"
        )
    args["auth"] = auth
    if login:
        args["username"] = login
    if password:
        args["password"] = password

    if wsman.get("spn"):
        args["spn"] = str(wsman["spn"])
    elif wsman.get("negotiate_service") or wsman.get("negotiate_hostname_override"):
        service = str(wsman.get("negotiate_service") or "HTTP")
        args["spn"] = f"{service}/{wsman.get('negotiate_hostname_override') or host}"
    if wsman.get("negotiate_delegate") and _bool("negotiate_delegate", wsman["negotiate_delegate"]):
        args["delegate"] = True  # Kerberos delegation, as pypsrp's negotiate_delegate
    if auth == "certificate":
        # pypsrp's certificate auth: PEM file paths; an encrypted key takes the connection's password.
        if not (wsman.get("certificate_pem") and wsman.get("certificate_key_pem")):
            raise ConnectionConfigError("auth 'certificate' needs wsman_options certificate_pem and certificate_key_pem")
        args["cert_file"] = str(wsman["certificate_pem"])
        args["key_file"] = str(wsman["certificate_key_pem"])
    elif wsman.get("certificate_pem") or wsman.get("certificate_key_pem"):
        raise ConnectionConfigError("wsman_options certificate_pem and certificate_key_pem are for auth 'certificate'")
    if "no_ntlm_fallback" in wsman:
        args["no_ntlm_fallback"] = _bool("no_ntlm_fallback", wsman["no_ntlm_fallback"])

    if "cert_validation" in wsman:
        value = wsman["cert_validation"]
        if isinstance(value, str) and value.strip().lower() not in _BOOL_WORDS:
            args["ca_file"] = value
        elif not _bool("cert_validation", value):
            args["insecure_skip_tls_verify"] = True
    encryption = str(wsman.get("encryption", "auto")).lower()
    if encryption not in ("auto", "always", "never"):
        raise ConnectionConfigError(f"encryption must be auto, always or never, not {encryption!r}")
    if encryption == "never":
        args["allow_unencrypted"] = True

    if "connection_timeout" in wsman:
        args["connect_timeout"] = _number("connection_timeout", wsman["connection_timeout"])
    if "operation_timeout" in wsman:
        args["operation_timeout"] = _number("operation_timeout", wsman["operation_timeout"])
    if "read_timeout" in wsman:
        args["read_timeout"] = _number("read_timeout", wsman["read_timeout"])
    if "locale" in wsman:
        args["locale"] = str(wsman["locale"])
    if "data_locale" in wsman:
        args["data_locale"] = str(wsman["data_locale"])
    if "path" in wsman:
        args["path"] = str(wsman["path"]).strip("/")
    if "max_envelope_size" in wsman:
        args["max_envelope_size"] = int(wsman["max_envelope_size"])
    if "reconnection_retries" in wsman:
        value = wsman["reconnection_retries"]
        try:
            retries = int(str(value).strip())
        except ValueError:
            retries = -1
        if retries < 0 or isinstance(value, bool):
            raise ConnectionConfigError(f"reconnection_retries must be a whole number from 0, not {value!r}")
        args["reconnection_retries"] = retries
    if "reconnection_backoff" in wsman:
        args["reconnection_backoff"] = _number("reconnection_backoff", wsman["reconnection_backoff"])
    if "configuration_name" in runspace:
        args["configuration_name"] = str(runspace["configuration_name"])
    ignored = sorted(set(runspace) & set(_IGNORED_RUNSPACE))
    if ignored:
        warnings.warn(
            f"psrp has no equivalent for {', '.join(ignored)}: accepted and ignored", UserWarning, stacklevel=3
        )
    return args
