"""The peer validated by the real pypsrp client over every supported path.

Each test goes through pypsrp (requests + pyspnego on the client side) against the peer
(pyspnego acceptor, MIT KDC, psrpcore server) and asserts both what pypsrp decoded and
what the peer recorded (control endpoint).
"""

import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
import time
import typing
import uuid

import pytest
import requests
from pypsrp.exceptions import AuthenticationError, WinRMTransportError, WSManFaultError
from pypsrp.host import PSHost, PSHostUserInterface
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from pypsrp.wsman import WSMan

from peer.conftest import HERE, PeerProcess

TIMEOUT_CODE = 2150858793
SHELL_NOT_FOUND = 2150858843


def connect(peer: PeerProcess, auth: str = "ntlm", ssl: bool = False, **kwargs: typing.Any) -> WSMan:
    info = peer.info
    if auth != "kerberos-ccache" and auth != "negotiate-ccache":
        kwargs.setdefault("username", info["user"])
        kwargs.setdefault("password", info["password"])
    auth = auth.replace("-ccache", "")
    if ssl:
        kwargs.setdefault("cert_validation", info["ca_file"])
    if auth in ("kerberos", "negotiate"):
        kwargs.setdefault("negotiate_service", "HTTP")
    kwargs.setdefault("connection_timeout", 10)
    kwargs.setdefault("read_timeout", 30)
    return WSMan("localhost", port=info["https_port" if ssl else "http_port"], ssl=ssl, auth=auth, **kwargs)


def invoke(
    wsman: WSMan,
    build: typing.Callable[[PowerShell], typing.Any],
    configuration: str = "Microsoft.PowerShell",
    **pool_kwargs: typing.Any,
) -> PowerShell:
    with RunspacePool(wsman, configuration_name=configuration, **pool_kwargs) as pool:
        ps = PowerShell(pool)
        build(ps)
        ps.invoke()
        return ps


def last_auth(peer: PeerProcess) -> typing.Dict[str, typing.Any]:
    return peer.log("wsman")[-1]["auth"]


# ---- transports and authentication ---------------------------------------------------------


def test_pool_opens_as_on_windows_and_every_request_is_logged(peer: PeerProcess) -> None:
    """The pool's opening as the real Windows recordings show it (SESSION_CAPABILITY and
    APPLICATION_PRIVATE_DATA in the first pool Receive, the Opened state in a second one),
    and one ``request`` record per HTTP request, authentication legs included."""
    peer.control("/log/reset")
    ps = invoke(connect(peer, "ntlm"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    log = peer.control("/log")
    ops = [r for r in log if r["kind"] == "wsman"]
    actions = [o["action"] for o in ops]
    assert actions[:4] == ["Create", "Receive", "Receive", "Command"], actions
    assert [o["fragments"] for o in ops[1:3]] == [2, 1]
    # Each WS-Man operation came in a request of its own on its connection, and the
    # authentication legs (challenge, then ok) in requests of their own too.
    requests_ = [r for r in log if r["kind"] == "request"]
    auth = [r for r in log if r["kind"] == "auth"]
    assert [a["result"] for a in auth] == ["challenge", "ok"]
    for record in ops + auth:
        before = [r for r in log if r["seq"] < record["seq"] and r["connection"] == record["connection"]]
        assert before and before[-1]["kind"] in ("request", "auth"), record
    assert len(requests_) >= len(ops) + 1
    assert {r["connection"] for r in requests_} == {ops[0]["connection"]}


def test_http_ntlm_encrypted(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    ps = invoke(connect(peer, "ntlm"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    assert len(ps.output) == 1
    ops = peer.log()
    assert [o["action"] for o in ops][:2] == ["Create", "Receive"]
    assert ops[-1]["action"] == "Delete"
    assert all(o["encrypted"] for o in ops)
    assert {o["auth"]["mechanism"] for o in ops} == {"ntlm"}
    assert {o["connection"] for o in ops} == {ops[0]["connection"]}, "one keep-alive connection"
    auth = peer.log("auth")
    assert [a["result"] for a in auth] == ["challenge", "ok"]


def test_http_kerberos_from_ccache(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    ps = invoke(connect(peer, "kerberos-ccache"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    auth = last_auth(peer)
    assert auth["mechanism"] == "kerberos" and auth["principal"] == peer.info["principal"]
    assert all(o["encrypted"] for o in peer.log())


def test_http_kerberos_with_password(peer: PeerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # No ticket cache: pyspnego gets a TGT from the KDC with the password itself.
    monkeypatch.setenv("KRB5CCNAME", "MEMORY:psrp-peer-test-password")
    peer.control("/log/reset")
    wsman = connect(peer, "kerberos", username=peer.info["principal"])
    ps = invoke(wsman, lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    assert last_auth(peer)["mechanism"] == "kerberos"


def test_http_negotiate_picks_kerberos(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    ps = invoke(connect(peer, "negotiate-ccache"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    auth = last_auth(peer)
    assert auth["scheme"] == "Negotiate" and auth["mechanism"] == "kerberos"


def _delegated_identity(wsman: WSMan) -> typing.List[typing.Any]:
    ps = invoke(wsman, lambda ps: ps.add_cmdlet("Get-DelegatedIdentity"))
    assert ps.state == PSInvocationState.COMPLETED and not ps.had_errors
    return list(ps.output)


@pytest.mark.parametrize("auth", ["kerberos-ccache", "negotiate-ccache"])
def test_kerberos_delegation(peer: PeerProcess, auth: str) -> None:
    # pyspnego sets GSS_C_DELEG_FLAG; MIT forwards the (forwardable) TGT and the peer's acceptor
    # gets it as delegated credentials, which the session then holds.
    peer.control("/log/reset")
    assert _delegated_identity(connect(peer, auth, negotiate_delegate=True)) == [peer.info["principal"]]
    ok = [a for a in peer.log("auth") if a["result"] == "ok"]
    assert ok and ok[-1]["mechanism"] == "kerberos" and ok[-1]["delegated"] == peer.info["principal"]


def test_kerberos_without_delegation(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    assert _delegated_identity(connect(peer, "kerberos-ccache")) == []
    assert [a["delegated"] for a in peer.log("auth") if a["result"] == "ok"] == [None]


def test_kerberos_delegation_of_a_non_forwardable_ticket(peer: PeerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # MIT drops the delegation silently when the TGT is not forwardable; pyspnego does not check,
    # so the session simply holds no delegated credentials.
    monkeypatch.setenv("KRB5CCNAME", "FILE:" + peer.info["kerberos_variants"]["ccache_not_forwardable"])
    peer.control("/log/reset")
    assert _delegated_identity(connect(peer, "kerberos-ccache", negotiate_delegate=True)) == []
    assert [a["delegated"] for a in peer.log("auth") if a["result"] == "ok"] == [None]


def test_http_negotiate_falls_back_to_ntlm(peer: PeerProcess) -> None:
    # pypsrp's default SPN service "host" is not in the keytab: SPNEGO falls back to NTLM.
    peer.control("/log/reset")
    ps = invoke(connect(peer, "negotiate", negotiate_service="host"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    auth = last_auth(peer)
    assert auth["scheme"] == "Negotiate" and auth["mechanism"] == "ntlm"


def test_kerberos_scheme_word_uses_kerberos_encryption(private_peer: typing.Callable[..., PeerProcess]) -> None:
    p = private_peer("--schemes", "Kerberos")
    ps = invoke(connect(p, "kerberos-ccache"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    auth = last_auth(p)
    assert auth["scheme"] == "Kerberos" and auth["mechanism"] == "kerberos"


@pytest.mark.parametrize("username_key", [0, 1, 3])
def test_ntlm_user_name_forms(peer: PeerProcess, username_key: int) -> None:
    user = peer.info["ntlm"]["accepted_usernames"][username_key]
    ps = invoke(connect(peer, "ntlm", username=user), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED


def test_https_basic(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    ps = invoke(connect(peer, "basic", ssl=True), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    ops = peer.log()
    assert {o["transport"] for o in ops} == {"https"}
    assert not any(o["encrypted"] for o in ops)
    assert {o["auth"]["scheme"] for o in ops} == {"Basic"}


def test_https_ntlm_with_channel_binding(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    ps = invoke(connect(peer, "ntlm", ssl=True), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    ok = [a for a in peer.log("auth") if a["result"] == "ok"]
    assert ok and ok[0]["transport"] == "https" and ok[0]["ntlm_cbt"] not in (None, "0" * 32)


@pytest.mark.parametrize("auth", ["ntlm", "kerberos-ccache"])
def test_https_without_channel_binding_is_refused_when_strict(peer: PeerProcess, auth: str) -> None:
    with pytest.raises(AuthenticationError):
        invoke(connect(peer, auth, ssl=True, negotiate_send_cbt=False), lambda ps: ps.add_cmdlet("Get-Date"))
    refused = [a for a in peer.log("auth") if a["result"] == "refused"]
    assert refused and "channel" in refused[-1]["reason"].lower()


def test_https_without_channel_binding_accepted_when_cbt_none(private_peer: typing.Callable[..., PeerProcess]) -> None:
    p = private_peer("--cbt", "none")
    ps = invoke(connect(p, "ntlm", ssl=True, negotiate_send_cbt=False), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED


@pytest.mark.parametrize("auth", ["ntlm", "kerberos-ccache"])
def test_https_channel_binding_mismatch_behind_a_proxy(
    peer: PeerProcess, private_peer: typing.Callable[..., PeerProcess], auth: str
) -> None:
    """--cbt proxy: the acceptor checks the bindings against another certificate (a server
    behind a TLS-terminating load balancer): pypsrp's correct bindings are refused with 401,
    while the same client and credentials pass against the server that knows its own
    certificate (the shared peer) and over HTTP, where no bindings are involved."""
    p = private_peer("--cbt", "proxy")
    with pytest.raises(AuthenticationError):
        invoke(connect(p, auth, ssl=True), lambda ps: ps.add_cmdlet("Get-Date"))
    refused = [a for a in p.log("auth") if a["result"] == "refused"]
    assert refused and refused[-1]["transport"] == "https"
    if auth == "ntlm":
        # pyspnego names the NTLM mismatch; its GSSAPI wrapper hides the Kerberos one
        # (GSS_S_BAD_BINDINGS) behind an AttributeError, so only the refusal is checked.
        assert "binding" in refused[-1]["reason"].lower(), refused[-1]
    ps = invoke(connect(p, auth), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    ps = invoke(connect(peer, auth, ssl=True), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED


def test_http_basic_refused_without_allow_unencrypted(peer: PeerProcess) -> None:
    with pytest.raises(AuthenticationError):
        invoke(connect(peer, "basic", encryption="never"), lambda ps: ps.add_cmdlet("Get-Date"))


def test_http_basic_with_allow_unencrypted(private_peer: typing.Callable[..., PeerProcess]) -> None:
    p = private_peer("--allow-unencrypted")
    ps = invoke(connect(p, "basic", encryption="never"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    assert not any(o["encrypted"] for o in p.log())


def test_http_ntlm_unencrypted_body_refused(peer: PeerProcess) -> None:
    with pytest.raises((AuthenticationError, WinRMTransportError)):
        invoke(connect(peer, "ntlm", encryption="never"), lambda ps: ps.add_cmdlet("Get-Date"))
    refused = [a for a in peer.log("auth") if a["result"] == "refused"]
    assert refused and "unencrypted" in refused[-1]["reason"]


@pytest.mark.parametrize("auth,ssl", [("ntlm", False), ("basic", True), ("ntlm", True)])
def test_wrong_password_is_authentication_error(peer: PeerProcess, auth: str, ssl: bool) -> None:
    with pytest.raises(AuthenticationError):
        invoke(connect(peer, auth, ssl=ssl, password="not-the-password"), lambda ps: ps.add_cmdlet("Get-Date"))


def test_passwords_never_logged(peer: PeerProcess) -> None:
    invoke(connect(peer, "basic", ssl=True), lambda ps: ps.add_cmdlet("Get-Date"))
    with pytest.raises(AuthenticationError):
        invoke(connect(peer, "basic", ssl=True, password="wrong-Pw-123"), lambda ps: ps.add_cmdlet("Get-Date"))
    with pytest.raises(AuthenticationError):
        invoke(connect(peer, "ntlm", password="wrong-Pw-123"), lambda ps: ps.add_cmdlet("Get-Date"))
    with open(peer.info["log_file"], encoding="utf-8", errors="replace") as f:
        text = f.read()
    assert "wrong user name or password" in text  # failures are logged, with reasons
    assert peer.info["password"] not in text and "wrong-Pw-123" not in text


@pytest.mark.parametrize("listener", ["untrusted_port", "wrong_host_port"])
def test_bad_certificate_is_refused(peer: PeerProcess, listener: str) -> None:
    wsman = WSMan(
        "localhost",
        port=peer.info["bad_cert"][listener],
        ssl=True,
        auth="basic",
        username=peer.info["user"],
        password=peer.info["password"],
        cert_validation=peer.info["ca_file"],
        connection_timeout=10,
    )
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED|hostname|match"):
        invoke(wsman, lambda ps: ps.add_cmdlet("Get-Date"))


def test_shared_realm_instance_accepts_kerberos(private_peer: typing.Callable[..., PeerProcess]) -> None:
    p = private_peer()
    assert p.info["owns_kdc"] is False and p.info["http_port"] != 0
    ps = invoke(connect(p, "kerberos-ccache"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED


# ---- commands ---------------------------------------------------------------------------------


def test_get_child_item_typed_file_system_objects(peer: PeerProcess) -> None:
    ps = invoke(connect(peer), lambda ps: ps.add_cmdlet("Get-ChildItem").add_parameter("Path", "C:\\Temp"))
    names = [o.adapted_properties["Name"] for o in ps.output]
    assert names == ["Logs", "data.csv", "readonly.log", "report.txt"]  # hidden secret.txt needs -Force
    directory, csv = ps.output[0], ps.output[1]
    assert directory.types[0] == "System.IO.DirectoryInfo"
    assert csv.types[:2] == ["System.IO.FileInfo", "System.IO.FileSystemInfo"]
    assert csv.adapted_properties["Length"] == 4096
    assert csv.adapted_properties["FullName"] == "C:\\Temp\\data.csv"
    assert csv.adapted_properties["Extension"] == ".csv"
    assert csv.extended_properties["PSPath"] == "Microsoft.PowerShell.Core\\FileSystem::C:\\Temp\\data.csv"
    assert csv.extended_properties["PSIsContainer"] is False
    assert csv.extended_properties["Mode"] == "-a----"
    assert csv.extended_properties["BaseName"] == "data"
    attributes = csv.adapted_properties["Attributes"]
    assert attributes.types[0] == "System.IO.FileAttributes" and str(attributes) == "Archive"
    assert directory.extended_properties["Mode"] == "d-----"


def test_get_child_item_force_and_recurse(peer: PeerProcess) -> None:
    def build(ps: PowerShell) -> None:
        ps.add_cmdlet("Get-ChildItem").add_parameter("Path", "C:\\Temp").add_parameter("Force").add_parameter(
            "Recurse"
        ).add_parameter("Name")

    ps = invoke(connect(peer), build)
    assert ps.output == [
        "Logs",
        "Logs\\old",
        "Logs\\old\\2023.log",
        "Logs\\app.log",
        "data.csv",
        "readonly.log",
        "report.txt",
        "secret.txt",
    ]


def test_get_item_missing_path_is_non_terminating_error(peer: PeerProcess) -> None:
    def build(ps: PowerShell) -> None:
        ps.add_cmdlet("Get-Item").add_parameter("Path", ["C:\\nope", "C:\\Temp\\report.txt"])

    ps = invoke(connect(peer), build)
    assert ps.state == PSInvocationState.COMPLETED
    assert [o.adapted_properties["Name"] for o in ps.output] == ["report.txt"]
    (err,) = ps.streams.error
    assert err.fq_error == "PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand"
    assert str(err) == "Cannot find path 'C:\\nope' because it does not exist."
    assert err.reason == "ItemNotFoundException" and err.category == 13  # ObjectNotFound


def test_get_item_hidden_needs_force(peer: PeerProcess) -> None:
    ps = invoke(connect(peer), lambda ps: ps.add_cmdlet("Get-Item").add_parameter("Path", "C:\\Temp\\secret.txt"))
    assert ps.output == [] and ps.streams.error[0].fq_error.startswith("ItemNotFound,")
    ps = invoke(
        connect(peer),
        lambda ps: ps.add_cmdlet("Get-Item").add_parameter("Path", "C:\\Temp\\secret.txt").add_parameter("Force"),
    )
    assert ps.output[0].extended_properties["Mode"] == "-a-h--"


def test_invoke_echo_reports_values_and_wire_types(peer: PeerProcess) -> None:
    def build(ps: PowerShell) -> None:
        ps.add_cmdlet("Invoke-Echo")
        ps.add_parameter("Int", 42)
        ps.add_parameter("Text", "hello <&> world")
        ps.add_parameter("Flag", True)
        ps.add_parameter("Real", 1.5)
        ps.add_parameter("List", ["a", 1, None])
        ps.add_parameter("Table", {"k": "v", "n": 2})
        ps.add_parameter("Nested", {"inner": {"deep": [1, "x"]}})
        ps.add_parameter("Nothing", None)
        ps.add_parameter("Switch")
        ps.add_argument("positional")
        ps.add_argument(7)

    ps = invoke(connect(peer), build)
    (echo,) = ps.output
    props = echo.extended_properties
    params = props["Parameters"]
    assert params["Int"] == 42 and params["Text"] == "hello <&> world"
    assert params["Flag"] is True and params["Real"] == 1.5
    assert params["List"] == ["a", 1, None]
    assert params["Table"] == {"k": "v", "n": 2}
    assert params["Nested"] == {"inner": {"deep": [1, "x"]}}
    assert params["Nothing"] is None and params["Switch"] is None
    assert props["Arguments"] == ["positional", 7]
    assert props["Types"] == {
        "Int": "I32",
        "Text": "S",
        "Flag": "B",
        "Real": "Sg",  # pypsrp encodes a Python float as Single
        "List": "Obj:System.Object[]",
        "Table": "Obj:System.Collections.Hashtable",
        "Nested": "Obj:System.Collections.Hashtable",
        "Nothing": "Nil",
        "Switch": "Nil",  # pypsrp sends a switch as Nil; PowerShell's own client sends true
    }
    assert props["ArgumentTypes"] == ["S", "I32"]


def test_pipeline_input(peer: PeerProcess) -> None:
    with RunspacePool(connect(peer)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Write-Output")
        assert ps.invoke(input=["one", 2]) == ["one", 2]


def test_restart_computer_records_force_form(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    ps = invoke(connect(peer), lambda ps: ps.add_cmdlet("Restart-Computer").add_parameter("Force"))
    assert ps.output == [] and ps.state == PSInvocationState.COMPLETED
    ps = invoke(connect(peer), lambda ps: ps.add_cmdlet("Restart-Computer").add_parameter("Force", True))
    ps = invoke(connect(peer), lambda ps: ps.add_cmdlet("Restart-Computer"))
    calls = peer.control("/restarts")
    assert [(c["force"], c["force_form"]) for c in calls] == [(True, "nil"), (True, "true"), (False, None)]
    assert {c["configuration"] for c in calls} == {"Microsoft.PowerShell"}


def test_every_stream(peer: PeerProcess) -> None:
    def build(ps: PowerShell) -> None:
        ps.add_cmdlet("Write-Output").add_argument("out")
        ps.add_statement()
        ps.add_cmdlet("Write-Error").add_parameter("Message", "bad thing")
        ps.add_statement()
        ps.add_cmdlet("Write-Warning").add_parameter("Message", "careful")
        ps.add_statement()
        ps.add_cmdlet("Write-Verbose").add_parameter("Message", "not shown")  # $VerbosePreference is SilentlyContinue
        ps.add_statement()
        ps.add_cmdlet("Write-Verbose").add_parameter("Message", "chatty").add_parameter("Verbose")
        ps.add_statement()
        ps.add_cmdlet("Write-Debug").add_parameter("Message", "not shown either")
        ps.add_statement()
        ps.add_cmdlet("Write-Debug").add_parameter("Message", "details").add_parameter("Debug")
        ps.add_statement()
        ps.add_cmdlet("Write-Information").add_parameter("MessageData", "fyi").add_parameter("Tags", ["t1", "t2"])
        ps.add_statement()
        ps.add_cmdlet("Write-Progress").add_parameter("Activity", "copying").add_parameter(
            "Status", "half"
        ).add_parameter("PercentComplete", 50)

    ps = invoke(connect(peer), build)
    assert ps.state == PSInvocationState.COMPLETED
    assert ps.output == ["out"]
    (err,) = ps.streams.error
    assert str(err) == "bad thing" and err.fq_error == "Microsoft.PowerShell.Commands.WriteErrorException"
    assert [w.message for w in ps.streams.warning] == ["careful"]
    assert [v.message for v in ps.streams.verbose] == ["chatty"]
    assert [d.message for d in ps.streams.debug] == ["details"]
    (info,) = ps.streams.information
    assert info.message_data == "fyi" and info.tags == ["t1", "t2"]
    (progress,) = ps.streams.progress
    assert progress.activity == "copying" and progress.description == "half" and progress.percent_complete == 50


def test_error_action_stop_fails_the_pipeline(peer: PeerProcess) -> None:
    def build(ps: PowerShell) -> None:
        ps.add_cmdlet("Get-Item").add_parameter("Path", "C:\\nope").add_parameter("ErrorAction", "Stop")
        ps.add_statement()
        ps.add_cmdlet("Write-Output").add_argument("never")

    ps = invoke(connect(peer), build)
    assert ps.state == PSInvocationState.FAILED and ps.output == []
    assert ps.streams.error[0].fq_error == "PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand"


def test_set_psdebug_trace(peer: PeerProcess) -> None:
    with RunspacePool(connect(peer)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Set-PSDebug").add_parameter("Trace", 1)
        ps.invoke()
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Date")
        ps.invoke()
        assert [d.message for d in ps.streams.debug] == ["    1+  >>>> Get-Date"]
        ps = PowerShell(pool)
        ps.add_cmdlet("Set-PSDebug").add_parameter("Off")
        ps.invoke()
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Date")
        ps.invoke()
        assert ps.streams.debug == []
        ps = PowerShell(pool)
        ps.add_cmdlet("Set-PSDebug").add_parameter("Trace", 2)
        ps.invoke()
        ps = PowerShell(pool)
        ps.add_script("$VerbosePreference = 'Continue'\nGet-Date")
        ps.invoke()
        assert [d.message for d in ps.streams.debug] == [
            "     ! CALL function '<ScriptBlock>'",
            "    1+  >>>> $VerbosePreference = 'Continue'",
            "     ! SET $VerbosePreference = 'Continue'.",
            "    2+  >>>> Get-Date",
        ]
    # Another pool starts without tracing.
    ps = invoke(connect(peer), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.streams.debug == []


def test_invoke_throw_fails_pipeline(peer: PeerProcess) -> None:
    ps = invoke(connect(peer), lambda ps: ps.add_cmdlet("Invoke-Throw").add_parameter("Message", "it broke"))
    assert ps.state == PSInvocationState.FAILED and ps.had_errors
    assert str(ps.streams.error[0]) == "it broke"


def test_unknown_parameter_fails_like_powershell(peer: PeerProcess) -> None:
    ps = invoke(connect(peer), lambda ps: ps.add_cmdlet("Get-Date").add_parameter("Bogus", 1))
    assert ps.state == PSInvocationState.FAILED
    assert str(ps.streams.error[0]) == "A parameter cannot be found that matches parameter name 'Bogus'."


def test_script_emulation_in_full_language(peer: PeerProcess) -> None:
    script = (
        "$VerbosePreference = 'Continue'\n"
        "Write-Verbose -Message loud; Get-Item -Path C:\\Temp\\report.txt\n"
        "Write-Output 1,2 | Write-Output\n"
        "Get-Nothing-Here\n"
        "Write-Output 'after'"
    )
    ps = invoke(connect(peer), lambda ps: ps.add_script(script))
    assert ps.state == PSInvocationState.COMPLETED
    assert [v.message for v in ps.streams.verbose] == ["loud"]
    assert ps.output[0].adapted_properties["Name"] == "report.txt"
    assert ps.output[1:] == [1, 2, "after"]
    assert ps.streams.error[0].fq_error == "CommandNotFoundException"


def _ms(value: "datetime.datetime") -> int:
    return int(value.timestamp() * 1000)


def test_convert_to_json_as_windows_powershell_writes_it(peer: PeerProcess) -> None:
    def build(ps: PowerShell) -> None:
        ps.add_cmdlet("Get-Item").add_parameter("Path", "C:\\Windows\\win.ini")
        ps.add_cmdlet("ConvertTo-Json")

    ps = invoke(connect(peer), build)
    assert ps.state == PSInvocationState.COMPLETED, ps.streams.error
    (text,) = ps.output
    # 5.1's layout: CRLF, 4-space indent, two spaces after the colon, nested objects aligned after the key.
    lines = text.split("\r\n")
    assert lines[:3] == ["{", '    "Name":  "win.ini",', '    "Length":  92,']
    assert '    "PSDrive":  {' in lines and '                    "Name":  "C",' in lines
    assert lines[-1] == "}" and "\n" not in text.replace("\r\n", "")
    value = json.loads(text)
    written = datetime.datetime(2024, 3, 1, 17, 15, 30, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert value["LastWriteTime"] == f"/Date({_ms(written)})/"  # "\/Date(ms)\/" in the text
    assert f'"LastWriteTime":  "\\/Date({_ms(written)})\\/"' in text
    assert value["Attributes"] == 32 and value["IsReadOnly"] is False and value["LinkType"] is None
    assert value["PSDrive"]["Root"] == "C:\\" and value["Mode"] == "-a----" and value["Target"] == []
    assert list(value)[:2] == ["Name", "Length"] and list(value)[-1] == "LinkType"


def test_convert_to_json_collects_pipeline_input_and_honours_depth(peer: PeerProcess) -> None:
    def build(depth: typing.Optional[int]) -> typing.Callable[[PowerShell], None]:
        def add(ps: PowerShell) -> None:
            ps.add_cmdlet("Get-ChildItem").add_parameter("Path", "C:\\Temp")
            ps.add_cmdlet("ConvertTo-Json").add_parameter("Compress")
            if depth is not None:
                ps.add_parameter("Depth", depth)

        return add

    (text,) = invoke(connect(peer), build(None)).output
    assert text.startswith('[{"Name":"Logs",') and "\r\n" not in text
    items = json.loads(text)  # several input objects: one array
    assert [i["Name"] for i in items] == ["Logs", "data.csv", "readonly.log", "report.txt"]
    assert items[1]["PSDrive"]["Name"] == "C"  # depth 2: array 0, item 1, PSDrive 2
    (text,) = invoke(connect(peer), build(1)).output
    assert json.loads(text)[1]["PSDrive"] == "C"  # deeper than -Depth: its ToString
    # One input object is not wrapped in an array; -InputObject takes the array as one object.
    ps = invoke(connect(peer), lambda ps: ps.add_cmdlet("Get-Date").add_cmdlet("ConvertTo-Json"))
    date = json.loads(ps.output[0])
    assert list(date) == ["value", "DisplayHint", "DateTime"] and date["DisplayHint"] == 2
    assert date["value"].startswith("/Date(")
    ps = invoke(
        connect(peer),
        lambda ps: ps.add_cmdlet("ConvertTo-Json").add_parameter("InputObject", ["a'<b>&", 1, None, True, 2.5])
        .add_parameter("Compress"),
    )
    assert ps.output == ['["a\\u0027\\u003cb\\u003e\\u0026",1,null,true,2.5]']
    ps = invoke(connect(peer), lambda ps: ps.add_script("Get-ChildItem C:\\Temp\\Logs | ConvertTo-Json -Depth 1"))
    assert ps.state == PSInvocationState.COMPLETED, ps.streams.error
    assert [i["Name"] for i in json.loads(ps.output[0])] == ["old", "app.log"]


def test_convert_to_json_not_visible_in_jea(peer: PeerProcess) -> None:
    # Airflow's PsrpOperator appends ConvertTo-Json when pushing to XCom: in JEA.Maintenance the whole
    # statement fails at command discovery, so the action before it does not run either.
    before = len(peer.control("/restarts"))

    def build(ps: PowerShell) -> None:
        ps.add_cmdlet("Restart-Computer").add_parameter("Force")
        ps.add_cmdlet("ConvertTo-Json")

    ps = invoke(connect(peer), build, configuration="JEA.Maintenance")
    assert ps.state == PSInvocationState.FAILED
    (err,) = ps.streams.error
    assert err.fq_error == "CommandNotFoundException"
    assert str(err).startswith("The term 'ConvertTo-Json' is not recognized")
    assert len(peer.control("/restarts")) == before


@pytest.mark.parametrize(
    "command",
    ["Get-Date", "Get-Item", "Get-ChildItem", "Invoke-Echo", "Write-Output", "Write-Warning"],
)
def test_jea_visible_commands_work(peer: PeerProcess, command: str) -> None:
    def build(ps: PowerShell) -> None:
        ps.add_cmdlet(command)
        if command in ("Get-Item",):
            ps.add_parameter("Path", "C:\\Temp")
        if command in ("Write-Output", "Write-Warning"):
            ps.add_argument("x")

    ps = invoke(connect(peer), build, configuration="JEA.Maintenance")
    assert ps.state == PSInvocationState.COMPLETED, ps.streams.error


@pytest.mark.parametrize(
    "command", ["Get-Process", "Remove-Item", "Invoke-Expression", "Invoke-Throw", "ConvertTo-Json"]
)
def test_jea_hidden_commands_not_found(peer: PeerProcess, command: str) -> None:
    ps = invoke(connect(peer), lambda ps: ps.add_cmdlet(command), configuration="JEA.Maintenance")
    assert ps.state == PSInvocationState.FAILED
    (err,) = ps.streams.error
    assert err.fq_error == "CommandNotFoundException" and err.reason == "CommandNotFoundException"
    assert str(err).startswith(f"The term '{command}' is not recognized as the name of a cmdlet")
    # The same command exists in the unrestricted configuration.
    if command == "Get-Process":
        ps = invoke(connect(peer), lambda ps: ps.add_cmdlet(command))
        assert ps.state == PSInvocationState.COMPLETED and ps.output


def test_jea_refuses_scripts(peer: PeerProcess) -> None:
    ps = invoke(connect(peer), lambda ps: ps.add_script("Get-Date"), configuration="JEA.Maintenance")
    assert ps.state == PSInvocationState.FAILED
    (err,) = ps.streams.error
    assert str(err) == (
        "The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode."
    )
    assert err.fq_error == "ScriptsNotAllowed" and err.reason == "ParseException"


def test_unknown_configuration_fault(peer: PeerProcess) -> None:
    with pytest.raises(WSManFaultError) as e:
        invoke(connect(peer), lambda ps: ps.add_cmdlet("Get-Date"), configuration="No.Such.Config")
    assert e.value.code == 2150858811
    assert "Cannot find the No.Such.Config session configuration" in e.value.message


def test_large_output_spans_many_envelopes(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    before = peer.control("/stats")["cpu_seconds"]
    ps = invoke(connect(peer), lambda ps: ps.add_cmdlet("Get-LargeOutput").add_parameter("Count", 20000))
    assert ps.state == PSInvocationState.COMPLETED
    assert len(ps.output) == 20000
    names = [o.adapted_properties["Name"] for o in ps.output]
    assert names[0] == "item-0000000000.dat" and names[-1] == "item-0000019999.dat"
    assert len(set(names)) == 20000
    assert ps.output[123].types[0] == "System.IO.FileInfo"
    receives = [o for o in peer.log() if o["action"] == "Receive" and o.get("command_id")]
    assert len(receives) > 10
    assert all(o["response_bytes"] <= o["max_envelope_size"] for o in receives)
    assert peer.control("/stats")["cpu_seconds"] >= before


def test_receive_timeout_fault_is_polled_through(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    wsman = connect(peer, operation_timeout=1, read_timeout=10)
    ps = invoke(wsman, lambda ps: ps.add_cmdlet("Start-Sleep").add_parameter("Seconds", 3))
    assert ps.state == PSInvocationState.COMPLETED
    faults = [o for o in peer.log() if o["action"] == "Receive" and o.get("fault_code") == TIMEOUT_CODE]
    assert len(faults) >= 2
    assert all(o.get("command_id") for o in faults), "only pipeline Receives time out"


def test_stop_with_pypsrp_signal(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    with RunspacePool(connect(peer)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Start-Sleep").add_parameter("Seconds", 60)
        started = time.monotonic()
        ps.begin_invoke()
        ps.stop()
        assert ps.state == PSInvocationState.STOPPED
        shells = peer.control("/shells")["shells"]
        assert shells[0]["commands"] == []  # pypsrp's ctrl_c code releases the command
    assert time.monotonic() - started < 20
    signals = [o for o in peer.log() if o["action"] == "Signal"]
    assert signals[0]["signal_code"] == "powershell/signal/ctrl_c"


def test_stop_with_powershell_crtl_c_signal(peer: PeerProcess) -> None:
    # PowerShell's own stop code (sic) stops the pipeline; the client then reads Stopped.
    with RunspacePool(connect(peer, operation_timeout=2)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Start-Sleep").add_parameter("Seconds", 60)
        ps.begin_invoke()
        pool.shell.signal("powershell/signal/crtl_c", str(ps.id).upper())
        ps.end_invoke()
        assert ps.state == PSInvocationState.STOPPED
        assert ps.streams.error[0].fq_error == "PipelineStopped"
        ps.close()  # terminate releases the stopped command


class AnsweringUI(PSHostUserInterface):
    """pypsrp's own host UI answering the peer's prompts; records what it was asked."""

    def __init__(self, answer: typing.Optional[str]) -> None:
        super().__init__()
        self.answer = answer
        self.prompts: typing.List[str] = []
        self.fields: typing.List[typing.Dict[str, typing.Any]] = []
        self.credentials: typing.List[typing.Tuple[str, str, str]] = []
        self.choices: typing.List[typing.Tuple[str, typing.List[str], int]] = []
        self.choice = 0

    def Write1(self, runspace: typing.Any, pipeline: typing.Any, value: str) -> None:
        self.prompts.append(value)

    def ReadLine(self, runspace: typing.Any, pipeline: typing.Any) -> str:
        if self.answer is None:
            raise RuntimeError("no console here")
        return self.answer

    def ReadLineAsSecureString(self, runspace: typing.Any, pipeline: typing.Any) -> typing.Any:
        from pypsrp.serializer import TaggedValue

        return TaggedValue("SS", f"secret {self.answer}")

    def Prompt(self, runspace: typing.Any, pipeline: typing.Any, caption: str, message: str,
               descriptions: typing.List[typing.Any]) -> typing.Dict[str, typing.Any]:
        fields = [d.extended_properties for d in descriptions]
        self.fields.extend(fields)
        return {f["name"]: self.answer for f in fields}

    def PromptForCredential1(self, runspace: typing.Any, pipeline: typing.Any, caption: str, message: str,
                             user_name: str, target_name: str) -> typing.Any:
        from pypsrp.complex_objects import PSCredential

        self.credentials.append((caption, message, user_name))
        return PSCredential(username=user_name or "PEER\\pypsrp", password=f"secret {self.answer}")

    def PromptForChoice(self, runspace: typing.Any, pipeline: typing.Any, caption: str, message: str,
                        choices: typing.List[typing.Any], default_choice: int) -> int:
        self.choices.append((caption, [c.extended_properties["label"] for c in choices], default_choice))
        return self.choice


def test_read_host_answered_by_client_host(peer: PeerProcess) -> None:
    # Read-Host -Prompt asks through UI.Prompt (one FieldDescription named after the prompt),
    # without -Prompt through UI.ReadLine, as PowerShell's ReadHostCommand does.
    ui = AnsweringUI("forty-two")
    host = PSHost(None, None, False, "peer-test", None, ui, "1.0")
    with RunspacePool(connect(peer), host=host) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Read-Host").add_parameter("Prompt", "Answer")
        assert ps.invoke() == ["forty-two"]
        ps = PowerShell(pool)
        ps.add_cmdlet("Read-Host")
        assert ps.invoke() == ["forty-two"]
    assert [(f["name"], f["parameterTypeFullName"]) for f in ui.fields] == [("Answer", "System.String")]


def test_secure_prompts_credentials_and_choices_answered_by_pypsrp_host(peer: PeerProcess) -> None:
    """Read-Host -AsSecureString and Get-Credential answered with pypsrp's SecureString and
    PSCredential serialization (the peer decrypts them: Get-SecretHash), and Remove-Item
    -Confirm's PromptForChoice with pypsrp's choice index."""
    ui = AnsweringUI("pypsrp")
    host = PSHost(None, None, False, "peer-test", None, ui, "1.0")
    expected = hashlib.sha256(b"secret pypsrp").hexdigest()
    with RunspacePool(connect(peer), configuration_name="Microsoft.PowerShell", host=host) as pool:
        pool.exchange_keys()  # pypsrp serializes SecureStrings only with a session key
        ps = PowerShell(pool)
        ps.add_cmdlet("Read-Host").add_parameter("AsSecureString").add_cmdlet("Get-SecretHash")
        ps.invoke()
        assert ps.state == PSInvocationState.COMPLETED, ps.streams.error
        assert ps.output[0].extended_properties["Sha256"] == expected

        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Credential").add_parameter("UserName", "PEER\\bob").add_cmdlet("Get-SecretHash")
        ps.invoke()
        assert ps.state == PSInvocationState.COMPLETED, ps.streams.error
        reported = ps.output[0].extended_properties
        assert (reported["UserName"], reported["Sha256"]) == ("PEER\\bob", expected)
        assert ui.credentials == [("Windows PowerShell credential request", "Enter your credentials.", "PEER\\bob")]

        for choice, kept in [(2, True), (0, False)]:  # No, then Yes
            ui.choice = choice
            ps = PowerShell(pool)
            ps.add_cmdlet("Remove-Item").add_parameter("Path", "C:\\Temp\\report.txt").add_parameter("Confirm")
            ps.add_statement().add_cmdlet("Get-ChildItem").add_parameter("Path", "C:\\Temp").add_parameter("Name")
            names = ps.invoke()
            assert ("report.txt" in names) == kept, names
    caption, labels, default = ui.choices[0]
    assert (caption, labels, default) == ("Confirm", ["&Yes", "Yes to &All", "&No", "No to A&ll"], 0)


def test_exit_sets_the_host_exit_code(peer: PeerProcess) -> None:
    host = PSHost(None, None, False, "peer-test", None, None, "1.0")
    with RunspacePool(connect(peer), host=host) as pool:
        ps = PowerShell(pool)
        ps.add_script("Write-Output before; exit 7; Write-Output after")
        assert ps.invoke() == ["before"]
        assert ps.state == PSInvocationState.COMPLETED
    assert host.rc == 7


def test_create_pipeline_split_between_command_and_send(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    big = "x" * 700_000  # larger than one 500 KiB envelope: CREATE_PIPELINE needs several fragments
    ps = invoke(connect(peer), lambda ps: ps.add_cmdlet("Invoke-Echo").add_parameter("Big", big))
    assert ps.output[0].extended_properties["Parameters"]["Big"] == big
    ops = peer.log()
    command = [o for o in ops if o["action"] == "Command"][0]
    sends = [o for o in ops if o["action"] == "Send"]
    assert command["create_pipeline_fragments"] == {"command": 1}
    assert sum(o["create_pipeline_fragments"]["send"] for o in sends) >= 1


# ---- SecureString: the session key exchange (psrpcore's server side) ------------------------------


def _shell_session_key(peer: PeerProcess, shell_id: str) -> typing.Dict[str, typing.Any]:
    shells = peer.control("/shells")["shells"]
    return [s for s in shells if s["shell_id"].lower() == shell_id.lower()][0]["session_key"]


def test_secure_string_parameter_and_output_with_pypsrp(peer: PeerProcess) -> None:
    """pypsrp's own key exchange (RSA PUBLIC_KEY, ENCRYPTED_SESSION_KEY) and SecureString
    serializer against the peer: Get-SecretHash sees the text pypsrp encrypted, and the
    SecureStrings New-SecureSecret writes decrypt to the text in pypsrp."""
    from pypsrp.serializer import TaggedValue

    secret = "P\u00e4ssw0rd-\U0001f511 and a tail"
    with RunspacePool(connect(peer), configuration_name="Microsoft.PowerShell") as pool:
        pool.exchange_keys()
        assert _shell_session_key(peer, str(pool.id)) == {"exchanged": True, "requested_by_server": 0}
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-SecretHash").add_parameter("Secret", TaggedValue("SS", secret))
        ps.invoke()
        assert not ps.had_errors and ps.state == PSInvocationState.COMPLETED
        reported = ps.output[0].extended_properties
        assert reported["Sha256"] == hashlib.sha256(secret.encode("utf-8")).hexdigest()
        assert reported["Length"] == len(secret)

        ps = PowerShell(pool)
        ps.add_cmdlet("New-SecureSecret").add_parameter("Text", secret).add_parameter("Count", 2)
        ps.invoke()
        assert ps.output == [secret, secret]  # pypsrp decrypts SecureStrings with the session key
        assert _shell_session_key(peer, str(pool.id))["requested_by_server"] == 0


# ---- WS-Man faults and fault injection ----------------------------------------------------------


def test_unknown_shell_fault(peer: PeerProcess) -> None:
    with RunspacePool(connect(peer)) as pool:
        real_id = pool.shell.id
        pool.shell.id = str(uuid.uuid4()).upper()
        pool.shell._selector_set = None
        try:
            with pytest.raises(WSManFaultError) as e:
                pool.shell.wsman.receive(pool.shell.resource_uri, _receive_body(), selector_set=_selectors(pool.shell.id))
            assert e.value.code == SHELL_NOT_FOUND
            assert "shell was not found" in e.value.message
        finally:
            pool.shell.id = real_id
            pool.shell._selector_set = _selectors(real_id)


def _selectors(shell_id: str) -> typing.Any:
    from pypsrp.wsman import SelectorSet

    s = SelectorSet()
    s.add_option("ShellId", shell_id)
    return s


def _receive_body() -> typing.Any:
    import xml.etree.ElementTree as ET

    from pypsrp.wsman import NAMESPACES

    receive = ET.Element("{%s}Receive" % NAMESPACES["rsp"])
    ET.SubElement(receive, "{%s}DesiredStream" % NAMESPACES["rsp"]).text = "stdout"
    return receive


@pytest.mark.parametrize(
    "body,code",
    [
        (b"this is not xml", 2150858819),
        (b"<a/>", 2150858765),
        (b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>', 2150858817),
    ],
)
def test_malformed_envelopes_get_wsman_faults(peer: PeerProcess, body: bytes, code: int) -> None:
    import xml.etree.ElementTree as ET

    wsman = connect(peer, "basic", ssl=True)
    with pytest.raises(WinRMTransportError) as e:
        wsman.transport.send(body)  # the raw transport does not parse faults itself
    assert e.value.code == 500
    fault = ET.fromstring(e.value.response_text).find(".//{http://schemas.microsoft.com/wbem/wsman/1/wsmanfault}WSManFault")
    assert fault is not None and int(fault.get("Code")) == code


def test_create_without_protocolversion_fault(peer: PeerProcess) -> None:
    from pypsrp.powershell import RunspacePool as Pool

    wsman = connect(peer, "basic", ssl=True)
    pool = Pool(wsman)
    original = pool.shell.open

    def open_without_option(base_options: typing.Any = None, open_content: typing.Any = None) -> typing.Any:
        return original(None, open_content)

    pool.shell.open = open_without_option
    with pytest.raises(WSManFaultError) as e:
        pool.open()
    assert e.value.code == 2150858809


def test_injected_500_fault(private_peer: typing.Callable[..., PeerProcess]) -> None:
    p = private_peer()
    p.control("/faults", {"kind": "http_500", "action": "Command", "count": 1, "code": 2150858843})
    with RunspacePool(connect(p)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Date")
        with pytest.raises(WSManFaultError) as e:
            ps.invoke()
        assert e.value.code == 2150858843
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Date")
        assert len(ps.invoke()) == 1  # only the next Command was hit
    assert p.control("/faults") == []


def test_injected_connection_drop(private_peer: typing.Callable[..., PeerProcess]) -> None:
    p = private_peer()
    p.control("/faults", {"kind": "drop_connection", "action": "Create", "count": 1})
    with pytest.raises(requests.exceptions.ConnectionError):
        invoke(connect(p), lambda ps: ps.add_cmdlet("Get-Date"))
    dropped = [o for o in p.log() if o.get("injected_fault") == "drop_connection"]
    assert len(dropped) == 1 and p.open_shells() == 0
    # The rule is used up: the next client gets through.
    assert invoke(connect(p), lambda ps: ps.add_cmdlet("Get-Date")).state == PSInvocationState.COMPLETED


def test_injected_close_after_response(private_peer: typing.Callable[..., PeerProcess]) -> None:
    # The server closes the keep-alive connection after answering (Connection: close).
    # Basic over HTTPS carries credentials on every request, so pypsrp reconnects cleanly.
    p = private_peer()
    p.control("/faults", {"kind": "close_after_response", "action": "Receive", "count": 1})
    ps = invoke(connect(p, "basic", ssl=True), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    ops = p.log()
    closed = [o for o in ops if o.get("injected_fault") == "close_after_response"]
    assert len(closed) == 1 and closed[0]["status"] == 200
    assert len({o["connection"] for o in ops}) == 2


def test_injected_delay(private_peer: typing.Callable[..., PeerProcess]) -> None:
    p = private_peer()
    p.control("/faults", {"kind": "delay", "action": "Create", "delay_ms": 700})
    started = time.monotonic()
    ps = invoke(connect(p), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    assert time.monotonic() - started >= 0.7
    assert [o["action"] for o in p.log() if o.get("injected_fault") == "delay"] == ["Create"]


def test_injected_pipeline_failure(private_peer: typing.Callable[..., PeerProcess]) -> None:
    p = private_peer()
    p.control("/faults", {"kind": "fail_pipeline", "message": "Disk C: is full."})
    ps = invoke(connect(p), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.FAILED and ps.had_errors and ps.output == []
    assert [str(e) for e in ps.streams.error] == ["Disk C: is full."]
    assert [o["action"] for o in p.log() if o.get("injected_fault") == "fail_pipeline"] == ["Command"]
    ps = invoke(connect(p), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED and len(ps.output) == 1


def test_fleet_of_hosts(private_peer: typing.Callable[..., PeerProcess]) -> None:
    # One process, many listeners, each a host of its own: ok, slow, failing and refusing ones.
    p = private_peer("--listeners", "8", "--slow-listeners", "2", "--failing-listeners", "2",
                     "--refusing-listeners", "2", "--slow-ms", "200", "--listener-addresses", "127.0.0.2,127.0.0.3")
    hosts = p.info["fleet"]["hosts"]
    assert sorted(h["role"] for h in hosts) == ["failing"] * 2 + ["ok"] * 2 + ["refusing"] * 2 + ["slow"] * 2
    assert {h["address"] for h in hosts} == {"127.0.0.2", "127.0.0.3"}
    assert len({(h["address"], h["port"]) for h in hosts}) == 8
    info = p.info
    for h in hosts:
        wsman = WSMan(h["address"], port=h["port"], ssl=False, auth="ntlm", username=info["user"],
                      password=info["password"], connection_timeout=10, read_timeout=30)
        started = time.monotonic()
        if h["role"] == "refusing":
            with pytest.raises(requests.exceptions.ConnectionError, match="[Rr]efused"):
                invoke(wsman, lambda ps: ps.add_cmdlet("Get-Date"))
            continue
        ps = invoke(wsman, lambda ps: ps.add_cmdlet("Get-Date"))
        elapsed = time.monotonic() - started
        if h["role"] == "failing":
            assert ps.state == PSInvocationState.FAILED and ps.output == []
            assert "failing fleet host" in str(ps.streams.error[0])
        else:
            assert ps.state == PSInvocationState.COMPLETED and len(ps.output) == 1
        if h["role"] == "slow":
            # Create, two pool Receives, Command, Receive, Delete: 200 ms each at least.
            assert elapsed >= 1.2, elapsed
    # Kerberos too (the SPN is HTTP/localhost whatever the address).
    ok = next(h for h in hosts if h["role"] == "ok")
    wsman = WSMan(ok["address"], port=ok["port"], ssl=False, auth="kerberos", negotiate_service="HTTP",
                  negotiate_hostname_override="localhost", connection_timeout=10, read_timeout=30)
    assert invoke(wsman, lambda ps: ps.add_cmdlet("Get-Date")).state == PSInvocationState.COMPLETED
    fleet = p.control("/fleet")
    assert fleet["open_shells"] == 0
    for h in fleet["hosts"]:
        served = 0 if h["role"] == "refusing" else 2 if h["port"] == ok["port"] else 1
        assert (h["shells_created"], h["open_shells"]) == (served, 0), h
        assert (h["connections"] > 0) == (served > 0), h
    # Each host has a log of its own; the peer's main instance saw nothing.
    assert p.log() == []


def test_control_fault_validation(private_peer: typing.Callable[..., PeerProcess]) -> None:
    import urllib.error

    p = private_peer()
    with pytest.raises(urllib.error.HTTPError) as e:
        p.control("/faults", {"kind": "explode"})
    assert e.value.code == 400


# ---- process lifetime -------------------------------------------------------------------------


def test_peer_dies_with_its_parent() -> None:
    # A parent starts a peer (holding its stdin) and is then killed: peer and KDC must exit.
    code = (
        "import subprocess, sys, os; "
        f"p = subprocess.Popen([sys.executable, '-m', 'peer'], stdin=subprocess.PIPE, stdout=subprocess.PIPE, "
        f"env=dict(os.environ, PYTHONPATH={os.path.dirname(HERE)!r})); "
        "sys.stdout.write(p.stdout.readline().decode()); sys.stdout.flush(); "
        "import time; time.sleep(600)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        import json

        info = json.loads(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (_alive(info["pid"]) or _alive(info["kdc_pid"])):
        time.sleep(0.2)
    assert not _alive(info["pid"]) and not _alive(info["kdc_pid"])
    assert not os.path.exists(info["state_dir"])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False




# ---- psrpcore's client over pypsrp's WS-Man transport ----------------------------------------


def test_psrpcore_client_switch_and_int64_types(peer: PeerProcess) -> None:
    from peer.coreclient import CoreClient, outputs

    peer.control("/log/reset")
    with CoreClient(connect(peer)) as client:
        ps, events = client.invoke(
            lambda ps: ps.add_command("Invoke-Echo").add_parameter("Switch").add_parameter("Big", 2**40)
        )
        echo = outputs(events)[0]
        assert echo.Types["Switch"] == "B" and echo.Parameters["Switch"] is True
        assert echo.Types["Big"] == "I64" and echo.Parameters["Big"] == 2**40
        client.invoke(lambda ps: ps.add_command("Restart-Computer").add_parameter("Force"))
    (call,) = peer.control("/restarts")
    assert call["force"] is True and call["force_form"] == "true"


def test_read_host_error_answer_fails_pipeline(peer: PeerProcess) -> None:
    from psrpcore.types import ErrorCategoryInfo, ErrorRecord, NETException, PSInvocationState as State

    from peer.coreclient import CoreClient, state_event

    def answer_with_error(ps: typing.Any, call: typing.Any) -> None:
        ps.host_response(
            call.ci,
            error_record=ErrorRecord(
                Exception=NETException(Message="the console is gone"),
                CategoryInfo=ErrorCategoryInfo(),
                FullyQualifiedErrorId="HostGone",
            ),
        )

    with CoreClient(connect(peer)) as client:
        ps, events = client.invoke(lambda ps: ps.add_command("Read-Host"), on_host_call=answer_with_error)
        assert ps.state == State.Failed
        assert "the console is gone" in str(state_event(events).reason)

        ps, events = client.invoke(
            lambda ps: ps.add_command("Read-Host"), on_host_call=lambda ps, call: ps.host_response(call.ci, "typed")
        )
        assert ps.state == State.Completed


def test_psrpcore_client_fragmented_create_pipeline(peer: PeerProcess) -> None:
    from peer.coreclient import CoreClient, outputs

    peer.control("/log/reset")
    with CoreClient(connect(peer)) as client:
        client.max_fragment = 4000
        ps, events = client.invoke(lambda ps: ps.add_command("Invoke-Echo").add_parameter("Text", "y" * 20000))
        assert outputs(events)[0].Parameters["Text"] == "y" * 20000
    ops = peer.log()
    (command,) = [o for o in ops if o["action"] == "Command"]
    sends = [o for o in ops if o["action"] == "Send"]
    assert command["create_pipeline_fragments"] == {"command": 1}
    assert sum(o["create_pipeline_fragments"]["send"] for o in sends) >= 5


def test_psrpcore_client_decodes_large_output(peer: PeerProcess) -> None:
    from peer.coreclient import CoreClient, outputs

    with CoreClient(connect(peer)) as client:
        ps, events = client.invoke(lambda ps: ps.add_command("Get-LargeOutput").add_parameter("Count", 3000))
        items = outputs(events)
        assert [i.Name for i in items] == [f"item-{n:010d}.dat" for n in range(3000)]
        assert items[0].PSTypeNames[0] == "Deserialized.System.IO.FileInfo"


# ---- robustness ---------------------------------------------------------------------------------

_ENV = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header>'
    "<a:Action>{action}</a:Action><a:MessageID>uuid:{mid}</a:MessageID>"
    "<w:ResourceURI>http://schemas.microsoft.com/powershell/Microsoft.PowerShell</w:ResourceURI>"
    "{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
)
_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
_VERSION = '<w:OptionSet><w:Option Name="protocolversion" MustComply="true">2.3</w:Option></w:OptionSet>'


def _shell_body(creation: str) -> str:
    return (
        '<rsp:Shell ShellId="{id}"><rsp:InputStreams>stdin pr</rsp:InputStreams>'
        "<rsp:OutputStreams>stdout</rsp:OutputStreams>"
        '<creationXml xmlns="http://schemas.microsoft.com/powershell">' + creation + "</creationXml></rsp:Shell>"
    ).replace("{id}", str(uuid.uuid4()).upper())


def _selector(shell_id: str) -> str:
    return f'<w:SelectorSet><w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'


@pytest.mark.parametrize(
    "action,header,body,code",
    [
        (_CREATE, _VERSION, _shell_body("!!not base64!!"), 2150858817),
        (_CREATE, _VERSION, _shell_body(base64.b64encode(b"\x00" * 5).decode()), 2150858817),
        (_CREATE, _VERSION, _shell_body(base64.b64encode(os.urandom(300)).decode()), 2150858817),
        (_CREATE, _VERSION, "<rsp:Shell/>", 2150858817),
        (_CREATE, '<w:OptionSet><w:Option Name="protocolversion">3.0</w:Option></w:OptionSet>',
         _shell_body(""), 2150858835),
        (_SHELL + "Command", _selector("not-a-shell"), "<rsp:CommandLine/>", 2150858843),
        (_SHELL + "Receive", "<w:OperationTimeout>PTxS</w:OperationTimeout>", "", 2150858817),
        (_SHELL + "Receive", "<w:MaxEnvelopeSize>100</w:MaxEnvelopeSize>", "", 2150858805),
        (_SHELL + "Frobnicate", "", "", 2150858771),
        ("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get", "", "", 2150858771),
    ],
)
def test_malformed_requests_get_faults_and_the_peer_survives(
    private_peer: typing.Callable[..., PeerProcess], action: str, header: str, body: str, code: int
) -> None:
    import xml.etree.ElementTree as ET

    p = private_peer("--allow-unencrypted")
    envelope = _ENV.format(action=action, mid=str(uuid.uuid4()).upper(), header=header, body=body)
    url = p.info["http_url"]
    auth = (p.info["user"], p.info["password"])
    headers = {"Content-Type": "application/soap+xml;charset=UTF-8"}
    resp = requests.post(url, data=envelope.encode(), auth=auth, headers=headers, timeout=30)
    assert resp.status_code == 500, resp.text
    fault = ET.fromstring(resp.content).find(".//{http://schemas.microsoft.com/wbem/wsman/1/wsmanfault}WSManFault")
    assert fault is not None and int(fault.get("Code")) == code
    assert p.open_shells() == 0
    # Still serving.
    assert invoke(connect(p), lambda ps: ps.add_cmdlet("Get-Date")).state == PSInvocationState.COMPLETED


def test_pipeline_commands_against_a_deleted_shell(peer: PeerProcess) -> None:
    pool = RunspacePool(connect(peer))
    pool.open()
    pool.shell.wsman.delete(pool.shell.resource_uri, selector_set=_selectors(pool.shell.id))
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-Date")
    with pytest.raises(WSManFaultError) as e:
        ps.invoke()
    assert e.value.code == SHELL_NOT_FOUND


def test_remove_item_is_per_pool_and_needs_force_for_hidden(peer: PeerProcess) -> None:
    with RunspacePool(connect(peer)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Remove-Item").add_parameter("Path", "C:\\Temp\\report.txt")
        ps.add_statement().add_cmdlet("Remove-Item").add_parameter("Path", "C:\\Temp\\secret.txt")
        ps.add_statement().add_cmdlet("Get-ChildItem").add_parameter("Path", "C:\\Temp").add_parameter("Name")
        ps.invoke()
        assert "report.txt" not in ps.output and "data.csv" in ps.output
        assert ps.streams.error[0].fq_error.startswith("RemoveFileSystemItemUnAuthorizedAccess,")
    # A new pool sees the original file system.
    ps = invoke(connect(peer), lambda ps: ps.add_cmdlet("Get-Item").add_parameter("Path", "C:\\Temp\\report.txt"))
    assert len(ps.output) == 1


def test_concurrent_clients(peer: PeerProcess) -> None:
    import concurrent.futures

    def work(n: int) -> typing.List[int]:
        counts = []
        with RunspacePool(connect(peer, "ntlm" if n % 2 else "kerberos-ccache")) as pool:
            for size in (50, 300):
                ps = PowerShell(pool)
                ps.add_cmdlet("Get-LargeOutput").add_parameter("Count", size + n)
                counts.append(len(ps.invoke()))
        return counts

    with concurrent.futures.ThreadPoolExecutor(6) as executor:
        results = list(executor.map(work, range(6)))
    assert results == [[50 + n, 300 + n] for n in range(6)]


# ---- WinRS cmd shell (the plain WS-Man shell, no PSRP) ----------------------------------


def test_winrs_cmd_shell_with_pypsrp(peer: PeerProcess) -> None:
    from pypsrp.shell import Process, WinRS

    with WinRS(connect(peer, "ntlm")) as shell:
        process = Process(shell, "echo", ["hello", "winrs"])
        process.invoke()
        assert process.stdout == b"hello winrs\r\n"
        assert process.stderr == b""
        assert process.rc == 0
        failing = Process(shell, "nosuch")
        failing.invoke()
        assert failing.rc == 1
        assert b"'nosuch' is not recognized" in failing.stderr
        assert peer.control("/shells")["by_configuration"] == {"cmd": 1}
    actions = [e["action"] for e in peer.log() if e.get("configuration") == "cmd"]
    assert actions[0] == "Create" and actions[-1] == "Delete"


# ---- the hostile server (peer.hostile), checked by pypsrp ------------------------------------
#
# pypsrp is not hardened against these (it has no size limits, and read timeouts per socket
# read); where it cannot end an attack by itself the peer's own bound (max_seconds, max_bytes,
# one request only) ends it, and the test checks that pypsrp saw what the peer claims to send.


def _hostile_peer(private_peer: typing.Callable[..., PeerProcess], rule: typing.Dict[str, typing.Any]) -> PeerProcess:
    p = private_peer()
    p.control("/faults", rule)
    return p


def _attacked(p: PeerProcess, kind: str) -> typing.List[typing.Dict[str, typing.Any]]:
    return [o for o in p.log() if o.get("injected_fault") == kind]


def test_hostile_ansi_in_every_stream(private_peer: typing.Callable[..., PeerProcess]) -> None:
    from peer.hostile import ANSI_TEXT

    p = _hostile_peer(private_peer, {"kind": "ansi_streams"})
    ui = PSHostUserInterface()
    host = PSHost(None, None, False, "peer-test", None, ui, "1.0")
    with RunspacePool(connect(p, "kerberos-ccache"), host=host) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Date")
        ps.invoke()
    assert ps.state == PSInvocationState.FAILED
    assert ps.output[0] == f"output {ANSI_TEXT}"  # the controls survive the _x001B_ escaping
    assert len(ps.output) == 2  # and Get-Date still ran
    # The error record, then the terminating one of PIPELINE_STATE.
    assert [str(e) for e in ps.streams.error] == [f"error {ANSI_TEXT}", f"terminating error {ANSI_TEXT}"]
    assert ps.streams.error[0].target_object == f"target {ANSI_TEXT}"
    assert [w.message for w in ps.streams.warning] == [f"warning {ANSI_TEXT}"]
    assert [v.message for v in ps.streams.verbose] == [f"verbose {ANSI_TEXT}"]
    assert [d.message for d in ps.streams.debug] == [f"debug {ANSI_TEXT}"]
    (info,) = ps.streams.information
    assert info.message_data == f"information {ANSI_TEXT}" and info.tags == [f"tag {ANSI_TEXT}"]
    (progress,) = ps.streams.progress
    assert progress.activity == f"progress {ANSI_TEXT}" and progress.description == f"status {ANSI_TEXT}"
    assert ui.stdout == [
        f"host write {ANSI_TEXT}",
        f"host write colored {ANSI_TEXT}",
        f"host line {ANSI_TEXT}\r\n",
        f"host line colored {ANSI_TEXT}\r\n",
        f"WARNING: host warning {ANSI_TEXT}\r\n",
        f"VERBOSE: host verbose {ANSI_TEXT}\r\n",
        f"DEBUG: host debug {ANSI_TEXT}\r\n",
    ]
    assert ui.stderr == [f"host error {ANSI_TEXT}\r\n"]
    assert len(_attacked(p, "ansi_streams")) == 1


def test_hostile_ansi_in_fault_text_and_error_page(private_peer: typing.Callable[..., PeerProcess]) -> None:
    from peer.hostile import ANSI_TEXT

    p = _hostile_peer(private_peer, [
        {"kind": "http_500", "action": "Command", "code": SHELL_NOT_FOUND, "message": f"fault {ANSI_TEXT}"},
        {"kind": "http_status", "action": "Command", "skip": 1, "status": 502, "text": f"bad gateway {ANSI_TEXT}"},
    ])
    with RunspacePool(connect(p, "basic", ssl=True)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Date")
        # Raw in the XML, as a hostile server would write it: ESC is not valid XML 1.0, so
        # pypsrp cannot parse the fault and shows the body instead.
        with pytest.raises(WinRMTransportError) as fault:
            ps.invoke()
        assert fault.value.code == 500 and f"<f:Message>fault {ANSI_TEXT}</f:Message>" in fault.value.response_text
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Date")
        with pytest.raises(WinRMTransportError) as page:
            ps.invoke()
        assert page.value.code == 502 and page.value.response_text == f"bad gateway {ANSI_TEXT}"


@pytest.mark.parametrize(
    "tamper, length",
    [
        ("length", "18446744073709551615"),
        ("length", "9223372036854775808"),
        ("length", "-1"),
        ("no_length", None),
        ("boundary_in_data", None),
        ("truncate", None),
        ("signature_length", None),
        ("tiny_parts", None),
    ],
)
def test_hostile_tampered_encryption(
    private_peer: typing.Callable[..., PeerProcess], tamper: str, length: typing.Optional[str]
) -> None:
    rule: typing.Dict[str, typing.Any] = {"kind": "tamper_encryption", "action": "Receive", "scope": "command",
                                          "tamper": tamper, "parts": 1000}
    if length is not None:
        rule["length"] = length
    p = _hostile_peer(private_peer, rule)
    pool = RunspacePool(connect(p, "kerberos-ccache"))
    pool.open()
    try:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Date")
        with pytest.raises(Exception) as e:  # pypsrp has no single error type for these
            ps.invoke()
        if length is not None and length.isdigit():
            # pypsrp compares the decrypted size with the tampered Length.
            assert f"expected: {length}" in str(e.value)
    finally:
        # A reply pypsrp did not unwrap leaves a gap in the Kerberos sequence numbers,
        # so its connection cannot be used any more: delete the shell over a new one.
        connect(p, "kerberos-ccache").delete(pool.shell.resource_uri, selector_set=_selectors(pool.shell.id))
    (attacked,) = _attacked(p, "tamper_encryption")
    assert attacked["tamper"] == tamper and attacked["encrypted"]


@pytest.mark.parametrize("body", ["stall", "chunked", "flood"])
def test_hostile_endless_body(private_peer: typing.Callable[..., PeerProcess], body: str) -> None:
    # requests' read timeout is per socket read: the trickled bytes defeat it, so the
    # peer's own bound (max_seconds, max_bytes) ends the body by closing the connection.
    rule = {"kind": "endless_body", "action": "Receive", "scope": "command", "body": body,
            "interval_ms": 100, "max_seconds": 2, "max_bytes": 8 << 20}
    p = _hostile_peer(private_peer, rule)
    # Basic over HTTPS: no per-connection authentication, so pypsrp reconnects for Delete.
    with RunspacePool(connect(p, "basic", ssl=True, read_timeout=1)) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Date")
        with pytest.raises(requests.exceptions.RequestException):
            ps.invoke()
    assert len(_attacked(p, "endless_body")) == 1


def test_hostile_endless_receive(private_peer: typing.Callable[..., PeerProcess]) -> None:
    p = _hostile_peer(private_peer, {"kind": "endless_receive", "count": 1000, "objects": 3})
    with RunspacePool(connect(p, "kerberos-ccache")) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Start-Sleep").add_parameter("Seconds", 0)
        ps.begin_invoke()
        for polls in range(1, 6):
            ps.poll_invoke()
            assert len(ps.output) == 3 * polls and ps.state == PSInvocationState.RUNNING
        # The command finished long ago; the stream still says Running.
        assert all(o.startswith("endless output ") for o in ps.output)
        assert len(set(ps.output)) == len(ps.output)
    assert len(_attacked(p, "endless_receive")) == 5


@pytest.mark.parametrize("messages", [1, 3])
def test_hostile_endless_fragment(private_peer: typing.Callable[..., PeerProcess], messages: int) -> None:
    p = _hostile_peer(private_peer, {"kind": "endless_fragment", "count": 1000, "messages": messages})
    with RunspacePool(connect(p, "kerberos-ccache")) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Date")
        ps.begin_invoke()
        for _ in range(5):
            ps.poll_invoke()
        # pypsrp's defragmenter accepted five fragments in sequence of each message,
        # none ended (and keeps them all: it has no limit).
        partial = list(pool._fragmenter.incoming_buffer.values())
        assert len(partial) == messages and all(m["id"] == 5 for m in partial)
        assert sum(len(m["data"]) for m in partial) > 5 * 300_000
        assert ps.output == [] and ps.state == PSInvocationState.RUNNING
    assert len(_attacked(p, "endless_fragment")) == 5


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "oversized_envelope", "bytes": 2 << 20},
        {"kind": "deep_xml", "depth": 100_000},
        {"kind": "many_elements", "elements": 100_000},
    ],
)
def test_hostile_xml(private_peer: typing.Callable[..., PeerProcess], rule: typing.Dict[str, typing.Any]) -> None:
    p = _hostile_peer(private_peer, {**rule, "action": "Receive", "scope": "command"})
    with RunspacePool(connect(p, "kerberos-ccache")) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Date")
        output = ps.invoke()  # pypsrp takes each of these: it has no limits
    (attacked,) = _attacked(p, rule["kind"])
    if rule["kind"] == "oversized_envelope":
        # Valid streams: every object of the 2 MiB envelope (4 times pypsrp's own
        # MaxEnvelopeSize) came out.
        assert attacked["response_bytes"] >= 2 << 20
        oversized = [o for o in output if isinstance(o, str) and o.startswith("oversized ")]
        assert len(oversized) > 400 and len(output) == len(oversized) + 1
    else:
        # Well-formed XML without streams: pypsrp reads it and receives again.
        assert attacked["response_bytes"] > 400_000 and len(output) == 1


def test_hostile_rule_validation(private_peer: typing.Callable[..., PeerProcess]) -> None:
    import urllib.error

    p = private_peer()
    for bad in (
        {"kind": "tamper_encryption", "tamper": "explode"},
        {"kind": "endless_body", "body": "forever"},
        {"kind": "endless_receive", "action": "Create"},
        {"kind": "deep_xml", "depth": -1},
        {"kind": "endless_fragment", "messages": 0},
        {"kind": "http_status", "status": 1000},
        {"kind": "delay", "scope": "pipeline"},
    ):
        with pytest.raises(urllib.error.HTTPError) as e:
            p.control("/faults", bad)
        assert e.value.code == 400, bad
    assert p.control("/faults") == []


# ---- GET_COMMAND_METADATA (psrpcore's client message over pypsrp's WS-Man transport) ------


def _real_windows_dir() -> str:
    shared = os.environ.get("PSRP_SHARED_DIR")
    if shared:
        return os.path.join(shared, "real-windows")
    here = HERE
    while True:
        candidate = os.path.join(here, "shared", "real-windows")
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(here)
        assert parent != here, "no shared/real-windows folder found (set PSRP_SHARED_DIR)"
        here = parent


def _shape(element: typing.Any, refs: typing.Dict[str, typing.List[str]]) -> typing.Any:
    """The layout of a CLIXML element: tags, property names, type names (TNRef resolved), no values."""
    tag = element.tag
    if tag != "Obj":
        return tag
    names: typing.List[str] = []
    shape: typing.Dict[str, typing.Any] = {}
    for child in element:
        if child.tag == "TN":
            names = [t.text or "" for t in child]
            refs[child.get("RefId", "")] = names
        elif child.tag == "TNRef":
            names = refs[child.get("RefId", "")]
        elif child.tag in ("MS", "Props"):
            shape[child.tag] = [(p.get("N"), _shape(p, refs)) for p in child]
        elif child.tag in ("LST", "DCT"):
            shape[child.tag] = True
            if child.tag == "DCT" and len(child):
                entry = child[0]
                shape["entry"] = [(p.get("N"), _shape(p, refs)) for p in entry]
        elif child.tag == "ToString":
            shape["ToString"] = True
        else:
            shape["value"] = child.tag
    shape["types"] = names
    return shape


def test_command_metadata_has_the_layout_of_real_windows() -> None:
    """The peer's CommandMetadata serializes with the element layout of a real Windows reply."""
    from xml.etree import ElementTree

    from psrpcore._crypto import PSRemotingCrypto
    from psrpcore.types import serialize

    from peer import commands, metadata

    real_dir = os.path.join(_real_windows_dir(), "clixml")
    for capture, name in [("cmdlet_info_metadata", "Get-Item"), ("function_info_metadata", "Get-LargeOutput")]:
        with open(os.path.join(real_dir, capture + ".xml"), encoding="utf-8") as f:
            real = _shape(ElementTree.fromstring(f.read()), {})
        ours = _shape(serialize(metadata.command_metadata(commands.REGISTRY[name.lower()]), PSRemotingCrypto()), {})
        assert [p for p, _ in ours["MS"]] == [p for p, _ in real["MS"]]
        assert ours["types"] == real["types"]
        for (prop, mine), (_, theirs) in zip(ours["MS"], real["MS"]):
            if isinstance(theirs, dict):
                assert mine["types"] == theirs["types"], prop
                if "entry" in theirs:
                    assert mine["entry"] == theirs["entry"], prop
            else:
                assert mine == theirs or (theirs == "Nil") == (mine == "Nil"), prop
    with open(os.path.join(real_dir, "generic_measure_info.xml"), encoding="utf-8") as f:
        real = _shape(ElementTree.fromstring(f.read()), {})
    assert _shape(serialize(metadata.count_object(3), PSRemotingCrypto()), {}) == real


def test_command_metadata_jea_lists_only_visible_commands(peer: PeerProcess) -> None:
    from psrpcore.types import PSInvocationState as State

    from peer.coreclient import CoreClient, outputs
    from peer.runner import JEA_VISIBLE

    peer.control("/log/reset")
    with CoreClient(connect(peer), configuration="JEA.Maintenance") as client:
        pipeline, events = client.get_command_metadata(["*"])
        assert pipeline.state == State.Completed
        count, *found = outputs(events)
        assert count.Count == len(JEA_VISIBLE) == len(found)
        assert sorted(c.Name for c in found) == sorted(JEA_VISIBLE)
        item = next(c for c in found if c.Name == "Get-Item")
        assert item.PSTypeNames[0] == "Deserialized.Selected.System.Management.Automation.CmdletInfo"
        assert item.Namespace == "Microsoft.PowerShell.Management"
        path = item.Parameters["Path"]
        assert path.ParameterType == "System.String[]" and path.SwitchParameter is False
        assert item.Parameters["Force"].SwitchParameter is True
        assert list(item.Parameters["ErrorAction"].Aliases) == ["ea"]
        # A pattern filters; ConvertTo-Json exists in the peer but is not visible here.
        _, events = client.get_command_metadata(["write-*", "ConvertTo-Json"])
        count, *found = outputs(events)
        assert count.Count == 7 and all(c.Name.startswith("Write-") for c in found)
    (record,) = peer.log("command_metadata")[-1:]
    assert record["configuration"] == "JEA.Maintenance" and record["names"] == ["write-*", "ConvertTo-Json"]
    with CoreClient(connect(peer)) as client:
        _, events = client.get_command_metadata(["ConvertTo-Json"], namespaces=["Microsoft.PowerShell.Utility"])
        count, found = outputs(events)
        assert count.Count == 1 and found.Name == "ConvertTo-Json"


def test_pypsrp_get_command_metadata_jea(peer: PeerProcess) -> None:
    """pypsrp's own GET_COMMAND_METADATA (RunspacePool.get_command_metadata) reads the peer's answer."""
    from peer.runner import JEA_VISIBLE

    with RunspacePool(connect(peer, "kerberos-ccache"), configuration_name="JEA.Maintenance") as pool:
        found = pool.get_command_metadata("*")
        assert sorted(c.name for c in found) == sorted(JEA_VISIBLE)
        restart = next(c for c in found if c.name == "Restart-Computer")
        assert restart.namespace == "Microsoft.PowerShell.Management"
        assert restart.command_type.value == 8  # Cmdlet
        cn = restart.parameters["ComputerName"]
        assert cn.parameter_type == "System.String[]"
        assert cn.aliases == ["CN", "__SERVER", "Server", "IPAddress"]
        assert cn.switch_parameter is False and cn.dynamic is False
        assert restart.parameters["Force"].switch_parameter is True
        assert restart.parameters["Verbose"].aliases == ["vb"]
        assert [c.name for c in pool.get_command_metadata(["get-d*", "ConvertTo-Json"])] == ["Get-Date"]
        large = pool.get_command_metadata("Get-LargeOutput")[0]
        assert large.command_type.value == 2 and large.output_type == ["System.IO.FileInfo"]
# ---- misconfigured servers and clients (what `psrp doctor` diagnoses) ----------------------


def test_identify_unauthenticated(peer: PeerProcess) -> None:
    body = (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
        "<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"
    )
    r = requests.post(
        peer.info["http_url"],
        data=body,
        headers={"WSMANIDENTIFY": "unauthenticated", "Content-Type": "application/soap+xml;charset=UTF-8"},
        timeout=10,
    )
    assert r.status_code == 200
    assert "<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>" in r.text
    # Without the header the same request must authenticate first.
    assert requests.post(peer.info["http_url"], data=body, timeout=10).status_code == 401


def test_ntlm_only_server_and_user_not_in_jea_role(private_peer: typing.Callable[..., PeerProcess]) -> None:
    p = private_peer("--ntlm-only", "--jea-denied")
    with pytest.raises((AuthenticationError, WinRMTransportError)):
        invoke(connect(p, "kerberos-ccache"), lambda ps: ps.add_cmdlet("Get-Date"))
    refused = [a for a in p.log("auth") if a["result"] == "refused"]
    assert refused and "accepts only NTLM" in refused[-1]["reason"]
    ps = invoke(connect(p, "ntlm"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    with pytest.raises(WSManFaultError) as e:
        invoke(connect(p, "ntlm"), lambda ps: ps.add_cmdlet("Get-Date"), configuration="JEA.Maintenance")
    assert e.value.code == 5 and "Access is denied" in str(e.value)


def test_stale_keytab_and_tiny_max_envelope(private_peer: typing.Callable[..., PeerProcess]) -> None:
    p = private_peer("--stale-keytab", "--max-envelope-kb", "2")
    with pytest.raises((AuthenticationError, WinRMTransportError)):
        invoke(connect(p, "kerberos-ccache"), lambda ps: ps.add_cmdlet("Get-Date"))
    with pytest.raises(WSManFaultError) as e:
        invoke(connect(p, "ntlm"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert e.value.code == 2150858825


@pytest.mark.parametrize("variant,error", [("ccache_skewed", "Clock skew too great"),
                                           ("ccache_expired", "expired")])
def test_kerberos_client_variants(peer: PeerProcess, variant: str, error: str) -> None:
    path = peer.info["kerberos_variants"][variant]
    time.sleep(1.1)  # the expired cache lives one second
    old = os.environ["KRB5CCNAME"]
    os.environ["KRB5CCNAME"] = "FILE:" + path
    try:
        with pytest.raises(Exception) as e:
            invoke(connect(peer, "kerberos-ccache"), lambda ps: ps.add_cmdlet("Get-Date"))
    finally:
        os.environ["KRB5CCNAME"] = old
    assert error.lower() in str(e.value).lower(), str(e.value)


def test_language_mode_expression(peer: PeerProcess) -> None:
    ps = invoke(connect(peer, "ntlm"), lambda ps: ps.add_script("$ExecutionContext.SessionState.LanguageMode"))
    assert ps.state == PSInvocationState.COMPLETED and ps.output == ["FullLanguage"]
    ps = invoke(
        connect(peer, "ntlm"),
        lambda ps: ps.add_script("$ExecutionContext.SessionState.LanguageMode"),
        configuration="JEA.Maintenance",
    )
    assert ps.state == PSInvocationState.FAILED



# ---- robust Receive and dropped connections ------------------------------------------------------


def _sequenced_receive(command_id: str, sequence: int) -> typing.Any:
    import xml.etree.ElementTree as ET

    from pypsrp.wsman import NAMESPACES

    receive = ET.Element("{%s}Receive" % NAMESPACES["rsp"], SequenceId=str(sequence))
    stream = ET.SubElement(receive, "{%s}DesiredStream" % NAMESPACES["rsp"], CommandId=command_id)
    stream.text = "stdout"
    return receive


def _streams(response: typing.Any) -> typing.Tuple[typing.Optional[str], typing.List[str]]:
    """The SequenceId of a ReceiveResponse and the base64 text of its streams."""
    from pypsrp.wsman import NAMESPACES

    rr = response.find(".//{%s}ReceiveResponse" % NAMESPACES["rsp"])
    if rr is None and response.tag == "{%s}ReceiveResponse" % NAMESPACES["rsp"]:
        rr = response
    assert rr is not None, "no rsp:ReceiveResponse"
    return rr.get("SequenceId"), [s.text or "" for s in rr.findall("{%s}Stream" % NAMESPACES["rsp"])]


def test_robust_receive_sequencing_with_a_raw_pypsrp_receive(private_peer: typing.Callable[..., PeerProcess]) -> None:
    # pypsrp never sends a SequenceId itself (and does not resend a Receive whose answer
    # was cut), so its WSMan sends hand-made Receives: the same SequenceId again gets the
    # same response, the next one new output, and after the connection is killed between
    # processing a Receive and answering it, the resent Receive gets the output that was
    # taken from the queue for the lost answer.
    p = private_peer()
    wsman = connect(p, auth="basic", ssl=True)  # no per-connection state to rebuild
    with RunspacePool(wsman) as pool:
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-LargeOutput").add_parameter("Count", 3000)
        ps.begin_invoke()
        command_id = str(ps.id).upper()

        def receive(sequence: int) -> typing.Tuple[typing.Optional[str], typing.List[str]]:
            return _streams(
                pool.shell.wsman.receive(
                    pool.shell.resource_uri,
                    _sequenced_receive(command_id, sequence),
                    selector_set=_selectors(pool.shell.id),
                )
            )

        seq0, first = receive(0)
        assert seq0 == "0" and first
        assert receive(0) == (seq0, first)  # resent: the kept response again
        seq1, second = receive(1)  # acknowledges 0: new output
        assert seq1 == "1" and second and second != first

        p.control("/faults", {"kind": "kill", "at": "response", "action": "Receive", "scope": "command"})
        with pytest.raises(requests.exceptions.ConnectionError):
            receive(2)
        seq2, third = receive(2)  # a new connection; the same SequenceId
        assert seq2 == "2" and third and third != second
        receives = [o for o in p.log() if o.get("action") == "Receive" and o.get("command_id")]
        killed = [o for o in receives if o.get("killed_at")]
        replayed = [o for o in receives if o.get("replayed")]
        assert [o["sequence_id"] for o in killed] == [2]
        assert [o["sequence_id"] for o in replayed] == [0, 2]
        # The resent Receive carried exactly what the lost answer held.
        assert replayed[1]["fragments"] == killed[0]["fragments"] > 0
        ps.stop()


def test_pypsrp_reconnection_retries_ride_out_a_listener_restart(private_peer: typing.Callable[..., PeerProcess]) -> None:
    # pypsrp's own reconnection_retries (urllib3 retries of connection errors; never of a
    # request whose answer was cut) ride out the peer's listener restart: the kept-alive
    # connection is cut and new ones are refused for a while. The shell survives the
    # restart, so the same pool goes on.
    import threading

    p = private_peer()
    wsman = connect(p, auth="basic", ssl=True, reconnection_retries=6, reconnection_backoff=0.2)
    with RunspacePool(wsman) as pool:
        shell_id = pool.shell.id
        restart = threading.Thread(target=p.control, args=("/listeners/restart", {"down_ms": 1500}))
        restart.start()
        try:
            time.sleep(0.5)  # the listener is down now
            ps = PowerShell(pool)
            ps.add_cmdlet("Get-Date")
            ps.invoke()
        finally:
            restart.join()
        assert not ps.had_errors and len(ps.output) == 1
        assert pool.shell.id == shell_id
    events = [r["event"] for r in p.log("listener")]
    assert events == ["down", "up"]


# ---- disconnected shells (peer.disconnect): pypsrp's disconnect/connect paths -----------------
# pypsrp's get_runspace_pools() connects on the default configuration's resource URI whatever
# the shell's, so these use Microsoft.PowerShell.


def _shell_state(peer: PeerProcess, shell_id: str) -> typing.Dict[str, typing.Any]:
    shells = [s for s in peer.control("/shells")["shells"] if s["shell_id"].upper() == shell_id.upper()]
    assert len(shells) == 1, shells
    return shells[0]


def test_pypsrp_disconnect_then_connect_from_a_new_client_gets_all_output(peer: PeerProcess) -> None:
    first = RunspacePool(connect(peer))
    first.open()
    ps = PowerShell(first)
    ps.add_cmdlet("Get-LargeOutput").add_parameter("Count", 3000)
    ps.begin_invoke()
    first.disconnect()
    assert _shell_state(peer, str(first.id))["state"] == "Disconnected"
    # A second client (its own WS-Man SessionId) finds the shell and connects to it.
    pools = RunspacePool.get_runspace_pools(connect(peer))
    pool = [p for p in pools if str(p.id).upper() == str(first.id).upper()][0]
    pool.connect()
    assert _shell_state(peer, str(first.id))["state"] == "Connected"
    pipelines = pool.create_disconnected_power_shells()
    assert len(pipelines) == 1
    output = pipelines[0].connect()
    assert len(output) == 3000
    assert pipelines[0].state == PSInvocationState.COMPLETED
    pool.close()


def test_pypsrp_disconnect_and_reconnect_from_the_same_client(peer: PeerProcess) -> None:
    with RunspacePool(connect(peer)) as pool:
        pool.disconnect()
        assert _shell_state(peer, str(pool.id))["state"] == "Disconnected"
        pool.connect()  # the same client: WS-Man Reconnect
        ps = PowerShell(pool)
        ps.add_cmdlet("Get-Date")
        assert len(ps.invoke()) == 1
    ops = [r["action"] for r in peer.log() if r.get("action") in ("Disconnect", "Reconnect")]
    assert ops[-2:] == ["Disconnect", "Reconnect"]


def test_pypsrp_connect_to_a_connected_shell_is_refused(peer: PeerProcess) -> None:
    with RunspacePool(connect(peer)) as owner:
        pools = RunspacePool.get_runspace_pools(connect(peer))
        other = [p for p in pools if str(p.id).upper() == str(owner.id).upper()][0]
        with pytest.raises(WSManFaultError) as e:
            other.connect()
        assert e.value.code == 0x803381CD  # ERROR_WINRS_SHELL_CONNECTED_TO_DIFFERENT_CLIENT


def test_disconnected_shell_expires_after_its_idle_timeout(private_peer: typing.Callable[..., PeerProcess]) -> None:
    p = private_peer()
    p.control("/settings", {"max_idle_timeout": 1})
    pool = RunspacePool(connect(p))
    pool.open()
    pool.disconnect()
    deadline = time.monotonic() + 10
    while p.open_shells() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert p.open_shells() == 0
    assert [r for r in p.log("idle_timeout")], "the reaper did not log the expiry"
    with pytest.raises(WSManFaultError) as e:
        RunspacePool.get_runspace_pools(connect(p)) and pool.connect()
        pool.connect()
    assert e.value.code == SHELL_NOT_FOUND


@pytest.mark.parametrize("mode", ["Block", "Drop"])
def test_output_buffered_while_disconnected(private_peer: typing.Callable[..., PeerProcess], mode: str) -> None:
    p = private_peer()
    p.control("/settings", {"disconnected_buffer_bytes": 65536})
    first = RunspacePool(connect(p))
    first.open()
    ps = PowerShell(first)
    ps.add_cmdlet("Get-LargeOutput").add_parameter("Count", 2000)
    ps.begin_invoke()
    # pypsrp sends no BufferMode; set it as Disconnect-PSSession -OutputBufferingMode does.
    from pypsrp.wsman import SelectorSet
    import xml.etree.ElementTree as ET

    body = ET.Element("{http://schemas.microsoft.com/wbem/wsman/1/windows/shell}Disconnect")
    ET.SubElement(body, "{http://schemas.microsoft.com/wbem/wsman/1/windows/shell}BufferMode").text = mode
    selectors = SelectorSet()
    selectors.add_option("ShellId", first.shell.id)
    first.connection.disconnect(first.shell.resource_uri, body, selector_set=selectors)
    # Wait (bounded) until the output reached the disconnected buffer's limit: Drop has then
    # dropped the oldest, Block holds the producer. A fixed sleep was too short under load.
    deadline = time.monotonic() + 30
    while True:
        state = _shell_state(p, str(first.id))
        if mode == "Drop":
            full = state["dropped_messages"] > 0
        else:
            full = any(v > 65536 for v in state["queued_bytes"].values())
        if full or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert state["buffer_mode"] == mode
    pools = RunspacePool.get_runspace_pools(connect(p))
    pool = [x for x in pools if str(x.id).upper() == str(first.id).upper()][0]
    pool.connect()
    output = pool.create_disconnected_power_shells()[0].connect()
    if mode == "Block":
        # The pipeline waited for room: nothing lost.
        assert state["dropped_messages"] == 0
        assert len(output) == 2000
    else:
        # The oldest output made room for the rest; the newest objects are kept.
        assert state["dropped_messages"] > 0
        assert 0 < len(output) < 2000
    pool.close()


def test_hostile_tampered_session_key(private_peer: typing.Callable[..., PeerProcess]) -> None:
    """pypsrp's RSA decryption refuses the ENCRYPTED_SESSION_KEY the peer altered: the
    attack reaches a client we did not write as a decryption failure."""
    p = _hostile_peer(private_peer, {"kind": "tamper_session_key"})
    with RunspacePool(connect(p, "kerberos-ccache"), configuration_name="Microsoft.PowerShell") as pool:
        with pytest.raises(ValueError):  # pyca/cryptography: "Decryption failed"
            pool.exchange_keys()
    assert len(_attacked(p, "tamper_session_key")) == 1


# ---- client certificate authentication -------------------------------------------------------


def _certificate_wsman(peer: PeerProcess, label: str) -> WSMan:
    c = peer.info["client_certs"]
    return connect(peer, "certificate", ssl=True, username=None, password=None,
                   certificate_pem=c[f"{label}_cert"], certificate_key_pem=c[f"{label}_key"])


def test_certificate_auth_maps_the_upn_to_the_user(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    ps = invoke(_certificate_wsman(peer, "client"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED and len(ps.output) == 1
    ok = [a for a in peer.log("auth") if a["result"] == "ok"]
    assert ok and {(a["mechanism"], a["principal"], a["certificate_upn"]) for a in ok} == {
        ("certificate", peer.info["user"], peer.info["client_certs"]["upn"])}
    ops = peer.log()
    assert ops and all(o["transport"] == "https" and not o["encrypted"] for o in ops)
    assert {o["auth"]["mechanism"] for o in ops} == {"certificate"}


def test_certificate_auth_refuses_an_unmapped_certificate(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    with pytest.raises(AuthenticationError):
        invoke(_certificate_wsman(peer, "unmapped"), lambda ps: ps.add_cmdlet("Get-Date"))
    refused = [a for a in peer.log("auth") if a["result"] == "refused"]
    assert refused and "nobody@PEER.TEST" in refused[-1]["reason"]
    assert peer.log() == []


def test_certificate_auth_refuses_another_ca_in_the_tls_handshake(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    with pytest.raises(Exception) as e:
        invoke(_certificate_wsman(peer, "foreign"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert "ssl" in type(e.value).__name__.lower() or "ssl" in str(e.value).lower(), repr(e.value)
    tls = peer.wait_log("tls")
    assert tls and "certificate" in tls[-1]["reason"].lower(), tls
    assert peer.log() == []


def test_certificate_auth_needs_a_certificate(peer: PeerProcess) -> None:
    # The listener asks for a client certificate but does not require one: without one, the
    # certificate scheme is refused while the other schemes work on the same listener.
    ps = invoke(connect(peer, "ntlm", ssl=True), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    r = requests.post(peer.info["https_url"], data=b"x", verify=peer.info["ca_file"], timeout=10,
                      headers={"Authorization": "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual",
                               "Content-Type": "application/soap+xml;charset=UTF-8"})
    assert r.status_code == 401
    r = requests.post(peer.info["http_url"], data=b"x", timeout=10,
                      headers={"Authorization": "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual",
                               "Content-Type": "application/soap+xml;charset=UTF-8"})
    assert r.status_code == 401


# ---- file copy (peer.copyscripts) -----------------------------------------------------------


def _client(peer: PeerProcess) -> typing.Any:
    from pypsrp.client import Client

    info = peer.info
    return Client(
        "localhost", port=info["http_port"], ssl=False, auth="ntlm", username=info["user"],
        password=info["password"], connection_timeout=10, read_timeout=60,
    )


def test_pypsrp_client_copy_and_fetch_round_trip(peer: PeerProcess, tmp_path: typing.Any) -> None:
    # pypsrp's copy.ps1 (base64 input chunks, SHA-1 checked on the server) and fetch.ps1
    # (one base64 string and the SHA-1), on the file store that outlives the pool.
    data = os.urandom(700_000)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    client = _client(peer)
    peer.control("/log/reset")
    remote = client.copy(str(source), "C:\\Temp\\pypsrp.bin")
    assert remote == "C:\\Temp\\pypsrp.bin"
    sends = [o for o in peer.log() if o["action"] == "Send"]
    assert len(sends) > 2, "the input should span several envelopes"
    target = tmp_path / "back.bin"
    client.fetch("C:\\Temp\\pypsrp.bin", str(target))
    assert target.read_bytes() == data
    # Relative paths are the session's location, as GetUnresolvedProviderPathFromPSPath does.
    assert client.copy(str(source), "rel.bin") == "C:\\Users\\testuser\\Documents\\rel.bin"
    with pytest.raises(Exception, match="does not exist"):
        client.fetch("C:\\Temp\\nope.bin", str(tmp_path / "nope.bin"))


def test_psrp_copy_scripts_through_pypsrp(peer: PeerProcess, tmp_path: typing.Any) -> None:
    # psrp's scripts are told by their marker line and bound by parameter name; pypsrp sends
    # them here to check what the peer answers: open, a byte[] chunk written, read back with
    # its SHA-256, the whole file's SHA-256, and the chunk hashes for --resume.
    data = os.urandom(5000)
    wsman = connect(peer)
    path = "C:\\Temp\\psrp-scripts.bin"

    def script(step: str, **params: typing.Any) -> typing.List[typing.Any]:
        def build(ps: PowerShell) -> None:
            ps.add_script(f"# psrp:copy-{step}/1 (test)\nparam()")
            for name, value in params.items():
                ps.add_parameter(name, value)

        ps = invoke(wsman, build)
        assert not ps.had_errors, ps.streams.error
        return ps.output

    assert script("open", Path=path, Length=len(data), Keep=False) == [path]
    assert script("write", Path=path, Offset=0, Data=data[:3000]) == [hashlib.sha256(data[:3000]).hexdigest().upper()]
    assert script("write", Path=path, Offset=3000, Data=data[3000:]) == [hashlib.sha256(data[3000:]).hexdigest().upper()]
    digest, chunk = script("read", Path=path, Offset=1000, Count=2500)
    assert chunk == data[1000:3500] and digest == hashlib.sha256(chunk).hexdigest().upper()
    assert script("stat", Path=path) == [path, len(data)]
    assert script("hash", Path=path) == [hashlib.sha256(data).hexdigest().upper()]
    hashes = script("hashes", Path=path, ChunkSize=2048)
    assert hashes[0] == len(data)
    assert hashes[1:] == [hashlib.sha256(data[i : i + 2048]).hexdigest().upper() for i in range(0, len(data), 2048)]
    assert script("hashes", Path="C:\\Temp\\absent.bin", ChunkSize=2048) == [-1]


def test_pypsrp_copy_and_fetch_detect_a_corrupted_chunk(
    private_peer: typing.Callable[..., PeerProcess], tmp_path: typing.Any
) -> None:
    from pypsrp.exceptions import WinRMError

    p = private_peer()
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(300_000))
    client = _client(p)
    p.control("/faults", {"kind": "corrupt_chunk", "skip": 1, "count": 1})
    with pytest.raises(WinRMError, match="hash mismatch"):
        client.copy(str(source), "C:\\Temp\\c.bin")
    client.copy(str(source), "C:\\Temp\\c.bin")
    p.control("/faults", {"kind": "corrupt_chunk", "count": 1})
    with pytest.raises(WinRMError, match="hash mismatch"):
        client.fetch("C:\\Temp\\c.bin", str(tmp_path / "back.bin"))
    assert [o["kind"] for o in p.log("corrupt_chunk")] == ["corrupt_chunk"] * 2


def test_pypsrp_copy_refused_in_no_language(peer: PeerProcess, tmp_path: typing.Any) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 100)
    with pytest.raises(Exception, match="no-language mode"):
        _client(peer).copy(str(source), "C:\\Temp\\jea.bin", configuration_name="JEA.Maintenance")


# ---- CredSSP (pypsrp through requests-credssp, pyspnego's initiator) --------------------------


def _credssp_ok(p: PeerProcess) -> typing.Dict[str, typing.Any]:
    oks = [a for a in p.log("auth") if a["result"] == "ok" and a["scheme"] == "CredSSP"]
    assert oks, p.log("auth")
    return oks[-1]


@pytest.mark.parametrize("ssl,mechanism", [(False, "ntlm"), (True, "ntlm"), (False, "kerberos")])
def test_credssp_runs_a_command_and_delegates_the_password(peer: PeerProcess, ssl: bool, mechanism: str) -> None:
    """CredSSP as pypsrp does it: TLS inside the headers, NTLM inside TLS, the public key binding
    (version 6: nonce and hash), then the TSCredentials, which the peer checks against the realm's
    user. Over HTTP every message is sealed with the CredSSP TLS session, in 16 KiB parts."""
    peer.control("/log/reset")
    ps = invoke(
        connect(peer, "credssp", ssl=ssl, credssp_auth_mechanism=mechanism),
        lambda ps: ps.add_cmdlet("Write-Output").add_parameter("InputObject", "x" * 40_000),
    )
    assert ps.state == PSInvocationState.COMPLETED and ps.output == ["x" * 40_000]
    ok = _credssp_ok(peer)
    assert ok["mechanism"] == mechanism and ok["credssp_version"] == 6
    assert ok["delegated"].lower().endswith(peer.info["user"].lower())
    ops = peer.log("wsman")
    assert ops and all(o["auth"]["scheme"] == "CredSSP" for o in ops)
    assert all(o["encrypted"] is (not ssl) for o in ops)


def test_credssp_wrong_password_is_refused(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    with pytest.raises(Exception):
        invoke(connect(peer, "credssp", password="not-the-password", credssp_auth_mechanism="ntlm"),
               lambda ps: ps.add_cmdlet("Get-Date"))
    refused = [a for a in peer.log("auth") if a["result"] == "refused"]
    assert refused and refused[-1]["scheme"] == "CredSSP", refused
    assert not any(a["result"] == "ok" for a in peer.log("auth"))


@pytest.mark.parametrize("version", [2, 5])
def test_credssp_older_server_versions(private_peer: typing.Callable[..., PeerProcess], version: int) -> None:
    """An acceptor speaking an older CredSSP: 2 binds the raw public key (+1 on the way back),
    5 the nonce hash; pyspnego's initiator adapts as it should."""
    p = private_peer("--credssp-version", str(version), "--credssp-tls", "1.2")
    ps = invoke(connect(p, "credssp", credssp_auth_mechanism="ntlm"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert ps.state == PSInvocationState.COMPLETED
    assert _credssp_ok(p)["credssp_version"] == version


def test_credssp_refused_by_policy(private_peer: typing.Callable[..., PeerProcess]) -> None:
    """A server without CredSSP in its schemes (WinRM's default) does not offer it; requests-credssp
    sees that in the first 401 and gives up without sending a CredSSP token."""
    p = private_peer("--schemes", "Negotiate,Kerberos")
    with pytest.raises(Exception, match="CredSSP"):
        invoke(connect(p, "credssp"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert not [a for a in p.log("auth") if a["result"] == "ok"]
    assert p.log("wsman") == []


def test_credssp_bad_binding_is_detected_by_pypsrp(private_peer: typing.Callable[..., PeerProcess]) -> None:
    """The peer's man-in-the-middle simulation (a server binding that does not match its key) is
    caught by pyspnego's initiator too, before the credentials are sent."""
    p = private_peer("--credssp-bad-binding")
    with pytest.raises(Exception, match="[Pp]ublic key verification failed"):
        invoke(connect(p, "credssp", credssp_auth_mechanism="ntlm"), lambda ps: ps.add_cmdlet("Get-Date"))
    assert not [a for a in p.log("auth") if a["result"] == "ok"]
