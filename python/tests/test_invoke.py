"""psrp_client against the test peer: parameters, results, streams, errors."""

import datetime
import decimal
import os
import typing
import uuid

import pytest

from conftest import PeerProcess, https, kerberos, ntlm
from psrp_client import (
    AuthenticationError,
    Command,
    CommandNotFound,
    ConnectionFailed,
    ErrorRecord,
    InformationRecord,
    InvocationResult,
    PipelineFailed,
    ProgressRecord,
    Record,
    RunspacePool,
    TlsError,
    UsageError,
)


def echo(peer: PeerProcess, parameters: typing.Dict[str, typing.Any], arguments: typing.Sequence[typing.Any] = ()):
    with RunspacePool(**kerberos(peer)) as pool:
        result = pool.invoke("Invoke-Echo", parameters, arguments)
    result.raise_for_status()
    (value,) = result.output
    return value


def test_every_parameter_type_reaches_powershell_typed(peer: PeerProcess) -> None:
    when = datetime.datetime(2024, 5, 1, 10, 20, 30, 500000, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    value = echo(
        peer,
        {
            "Text": "hello <&> wörld",
            "Int": 42,
            "Long": 2**40,
            "Negative": -(2**31) - 1,
            "Unsigned": 2**64 - 1,
            "Huge": 2**70,
            "Real": 1.5,
            "Flag": True,
            "Off": False,
            "Switch": None,
            "List": ["a", 1, None],
            "Tuple": ("x", 2.5),
            "Table": {"k": "v", "n": 2},
            "Nested": {"inner": {"deep": [1, "x"]}},
            "When": when,
            "Utc": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
            "Naive": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "Day": datetime.date(2024, 2, 29),
            "Span": datetime.timedelta(hours=1, minutes=2, seconds=3, milliseconds=500),
            "Money": decimal.Decimal("12.3400"),
            "Id": uuid.UUID("792e5b37-4505-47ef-b7d2-8711bb7affa8"),
            "Raw": b"\x00\x01\xff",
        },
        ["positional", 7],
    )
    params, types = value["Parameters"], value["Types"]
    assert types == {
        "Text": "S",
        "Int": "I32",
        "Long": "I64",
        "Negative": "I64",
        "Unsigned": "U64",
        "Huge": "Db",
        "Real": "Db",
        "Flag": "B",
        "Off": "B",
        "Switch": "B",  # a switch goes as $true, as PowerShell's own client sends it
        "List": "Obj:System.Object[]",
        "Tuple": "Obj:System.Object[]",
        "Table": "Obj:System.Collections.Hashtable",
        "Nested": "Obj:System.Collections.Hashtable",
        "When": "DT",
        "Utc": "DT",
        "Naive": "DT",
        "Day": "DT",
        "Span": "TS",
        "Money": "D",
        "Id": "G",
        "Raw": "BA",
    }
    assert params["Text"] == "hello <&> wörld"
    assert params["Int"] == 42 and params["Long"] == 2**40 and params["Negative"] == -(2**31) - 1
    assert params["Unsigned"] == 2**64 - 1 and params["Huge"] == float(2**70)
    assert params["Real"] == 1.5 and params["Flag"] is True and params["Off"] is False
    assert params["Switch"] is True
    assert params["List"] == ["a", 1, None] and params["Tuple"] == ["x", 2.5]
    assert params["Table"] == {"k": "v", "n": 2}
    assert params["Nested"] == {"inner": {"deep": [1, "x"]}}
    assert params["When"] == "2024-05-01T10:20:30.5+02:00"
    assert params["Utc"] == "2024-01-02T03:04:05Z"
    assert params["Naive"] == "2024-01-02T03:04:05"
    assert params["Day"] == "2024-02-29T00:00:00"
    assert params["Span"] == "PT1H2M3.5S"
    assert params["Money"] == 12.34
    assert params["Id"] == "792e5b37-4505-47ef-b7d2-8711bb7affa8"
    assert params["Raw"] == "AAH/"
    assert value["Arguments"] == ["positional", 7] and value["ArgumentTypes"] == ["S", "I32"]


def test_command_object_and_merged_parameters(peer: PeerProcess) -> None:
    cmd = Command("Invoke-Echo", {"A": 1}, ["x"])
    with RunspacePool(**kerberos(peer)) as pool:
        (value,) = pool.invoke(cmd, {"B": "two"}, ["y"]).output
    assert value["Parameters"] == {"A": 1, "B": "two"} and value["Arguments"] == ["x", "y"]
    assert repr(cmd) == "Command('Invoke-Echo', {'A': 1}, arguments=['x'])"


def test_bad_parameter_values_are_usage_errors(peer: PeerProcess) -> None:
    with RunspacePool(**kerberos(peer)) as pool:
        with pytest.raises(UsageError, match="parameter Bad: a value of type object cannot be sent"):
            pool.invoke("Invoke-Echo", {"Bad": object()})
        with pytest.raises(UsageError, match="parameter name"):
            pool.invoke("Invoke-Echo", {"a b": 1})
        loop: typing.List[typing.Any] = []
        loop.append(loop)
        with pytest.raises(UsageError, match="nest deeper"):
            pool.invoke("Invoke-Echo", {"Loop": loop})
        # The pool is still usable.
        assert pool.invoke("Get-Date").succeeded


def test_every_stream_as_typed_records(peer: PeerProcess) -> None:
    with RunspacePool(**kerberos(peer)) as pool:
        result = pool.run_script(
            "Write-Output out; Write-Error -Message 'bad thing' -TargetObject C:\\x; "
            "Write-Warning -Message careful; Write-Verbose -Message chatty -Verbose; "
            "Write-Debug -Message details -Debug; Write-Information -MessageData fyi -Tags t1,t2; "
            "Write-Progress -Activity copying -Status half -PercentComplete 50"
        )
    assert isinstance(result, InvocationResult)
    assert result.state == "Completed" and result.succeeded and result.had_errors
    assert result.output == ["out"]
    (err,) = result.errors
    assert isinstance(err, ErrorRecord) and err.level == "error"
    assert err.message == "bad thing" and err.category == "NotSpecified"
    assert err.fully_qualified_error_id == "Microsoft.PowerShell.Commands.WriteErrorException"
    assert err.target == "C:\\x"
    assert err.category_info.startswith("NotSpecified") and "WriteErrorException" in err.category_info
    lines = err.formatted().splitlines()
    assert lines[0].endswith("bad thing")
    assert lines[1].startswith("    + CategoryInfo          : NotSpecified")
    assert lines[2] == "    + FullyQualifiedErrorId : Microsoft.PowerShell.Commands.WriteErrorException"
    assert lines[3] == "    + TargetObject          : C:\\x"
    assert [(w.level, w.message) for w in result.warnings] == [("warning", "careful")]
    assert all(type(r) is Record for r in result.warnings + result.verbose + result.debug)
    assert [(v.level, v.message) for v in result.verbose] == [("verbose", "chatty")]
    assert [(d.level, d.message) for d in result.debug] == [("debug", "details")]
    (info,) = result.information
    assert isinstance(info, InformationRecord) and info.message == "fyi" and info.data == "fyi"
    assert info.tags == ["t1", "t2"] and info.source == "Write-Information" and info.time_generated
    (progress,) = result.progress
    assert isinstance(progress, ProgressRecord)
    assert (progress.activity, progress.status, progress.percent_complete) == ("copying", "half", 50)
    assert progress.message == "copying: half (50%)" and not progress.completed
    assert result.exit_code is None and result.terminating_error is None
    result.raise_for_status()  # completed: no exception, even with error records


def test_session_init_trace_lines(peer: PeerProcess) -> None:
    init = [Command("Set-PSDebug", {"Trace": 1})]
    with RunspacePool(**kerberos(peer), configuration_name="JEA.Maintenance", session_init=init) as pool:
        result = pool.invoke("Restart-Computer", {"Force": None})
        assert [r.state for r in pool.session_init_results] == ["Completed"]
        shell_id = pool.shell_id
    assert result.succeeded and not result.had_errors
    assert [d.message for d in result.debug] == ["    1+  >>>> Restart-Computer -Force"]
    (restart,) = [c for c in peer.control("/restarts") if c["shell_id"].upper() == shell_id.upper()]
    assert restart["configuration"] == "JEA.Maintenance" and restart["force"] is True


def test_failed_session_init_raises_and_deletes_the_shell(peer: PeerProcess) -> None:
    pool = RunspacePool(**kerberos(peer), session_init=[Command("Set-PSDebug", {"Trace": 9})])
    with pytest.raises(PipelineFailed, match="session-init command 0 \\(Set-PSDebug -Trace\\)") as e:
        pool.open()
    assert e.value.error_record is not None
    assert e.value.error_record.fully_qualified_error_id.startswith("ParameterArgumentValidationError")
    assert not pool.is_open
    assert peer.open_shells() == 0


def test_command_not_found_in_jea(peer: PeerProcess) -> None:
    with RunspacePool(**kerberos(peer), configuration_name="JEA.Maintenance") as pool:
        result = pool.invoke("Get-Process")
    assert result.state == "Failed" and result.had_errors and not result.succeeded
    assert result.terminating_error is not None and result.terminating_error.is_command_not_found
    with pytest.raises(CommandNotFound, match="Get-Process") as e:
        result.raise_for_status()
    assert e.value.result is result and e.value.error_record is result.terminating_error
    assert isinstance(e.value, PipelineFailed)


def test_terminating_error_is_pipeline_failed(peer: PeerProcess) -> None:
    with RunspacePool(**kerberos(peer)) as pool:
        result = pool.invoke("Invoke-Throw", {"Message": "it broke"})
    assert result.state == "Failed"
    assert result.terminating_error is not None and result.terminating_error.message == "it broke"
    with pytest.raises(PipelineFailed, match="it broke") as e:
        result.raise_for_status()
    assert not isinstance(e.value, CommandNotFound)


def test_scripts_refused_in_jea(peer: PeerProcess) -> None:
    with RunspacePool(**kerberos(peer), configuration_name="JEA.Maintenance") as pool:
        result = pool.run_script("Get-Date")
    assert result.state == "Failed"
    with pytest.raises(PipelineFailed):
        result.raise_for_status()


def test_wrong_password_is_authentication_error(peer: PeerProcess) -> None:
    with pytest.raises(AuthenticationError) as e:
        RunspacePool(**ntlm(peer, password="not-the-password-Xy1")).open()
    assert isinstance(e.value, ConnectionFailed)
    assert "not-the-password-Xy1" not in str(e.value) and "not-the-password-Xy1" not in repr(e.value)


def test_no_ntlm_fallback_refuses_what_negotiate_would_do_with_ntlm(peer: PeerProcess) -> None:
    # PEER is a realm krb5.conf does not know: Kerberos cannot be used, and
    # Negotiate falls back to NTLM with the password unless that is forbidden.
    user = "PEER\\" + peer.info["user"]
    kwargs = dict(ntlm(peer, username=user), auth="negotiate")
    with RunspacePool(**kwargs) as pool:
        assert pool.invoke("Get-Date").succeeded
    with pytest.raises(AuthenticationError, match="(?i)kerberos") as e:
        RunspacePool(**kwargs, no_ntlm_fallback=True).open()
    assert peer.info["password"] not in str(e.value)


@pytest.mark.parametrize("listener", ["untrusted_port", "wrong_host_port"])
def test_bad_certificate_is_tls_error(peer: PeerProcess, listener: str) -> None:
    kwargs = https(peer, port=peer.info["bad_cert"][listener])
    with pytest.raises(TlsError, match="certificate"):
        RunspacePool(**kwargs).open()


def test_unknown_configuration_is_connection_failed(peer: PeerProcess) -> None:
    with pytest.raises(ConnectionFailed, match="configuration name"):
        RunspacePool(**kerberos(peer), configuration_name="No.Such.Endpoint").open()


def test_connection_refused(peer: PeerProcess) -> None:
    with pytest.raises(ConnectionFailed, match="check the host, port"):
        RunspacePool("127.0.0.1", port=1, auth="ntlm", username="u", password="p", connect_timeout=5).open()


def test_usage_errors_before_connecting() -> None:
    with pytest.raises(UsageError, match="Basic authentication over plain HTTP"):
        RunspacePool("h", auth="basic", username="u", password="p")
    with pytest.raises(UsageError, match="scheme"):
        RunspacePool("h", scheme="ftp")
    with pytest.raises(UsageError, match="port"):
        RunspacePool("h", port=70000)
    with pytest.raises(UsageError, match="timeout"):
        RunspacePool("h", connect_timeout=-1)
    with pytest.raises(UsageError, match="not open"):
        RunspacePool("h", auth="kerberos").invoke("Get-Date")
    assert issubclass(UsageError, ValueError)
    pool = RunspacePool("h", auth="ntlm", username="u", password="S3cret-pw")
    assert "S3cret-pw" not in repr(pool) and "S3cret-pw" not in repr(pool._settings)


def test_exit_code_set_by_the_remote(peer: PeerProcess) -> None:
    with RunspacePool(**kerberos(peer)) as pool:
        result = pool.run_script("Write-Output before; exit 7; Write-Output after")
        assert result.output == ["before"] and result.exit_code == 7
        assert result.state == "Completed" and not result.had_errors
        # Also when the events were iterated first.
        inv = pool.start("exit 3", script=True)
        assert list(inv) == []
        assert inv.result().exit_code == 3
        assert pool.invoke("Get-Date").exit_code is None


def test_installs_and_runs_beside_pypsrp_and_psrpcore(peer: PeerProcess) -> None:
    # One process, three packages: no module name clash, and both clients work.
    import psrpcore
    import pypsrp
    from pypsrp.powershell import PowerShell
    from pypsrp.powershell import RunspacePool as PypsrpPool
    from pypsrp.wsman import WSMan

    import psrp_client

    files = {m.__name__: m.__file__ for m in (psrp_client, pypsrp, psrpcore)}
    assert len({os.path.dirname(f or "") for f in files.values()}) == 3, files
    wsman = WSMan("localhost", port=peer.info["http_port"], ssl=False, auth="kerberos", negotiate_service="HTTP")
    with PypsrpPool(wsman) as theirs, RunspacePool(**kerberos(peer)) as ours:
        ps = PowerShell(theirs)
        ps.add_cmdlet("Get-Item").add_parameter("Path", "C:\\Windows\\win.ini")
        (their_item,) = ps.invoke()
        (our_item,) = ours.invoke("Get-Item", {"Path": "C:\\Windows\\win.ini"}).output
        assert peer.open_shells() == 2
    assert our_item["Name"] == their_item.adapted_properties["Name"] == "win.ini"
    assert our_item["Length"] == their_item.adapted_properties["Length"]


def test_kerberos_delegation(peer: PeerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # The peer's acceptor receives the forwarded TGT and Get-DelegatedIdentity returns its principal.
    with RunspacePool(**kerberos(peer), delegate=True) as pool:
        assert pool.invoke("Get-DelegatedIdentity").output == [peer.info["principal"]]
    with RunspacePool(**kerberos(peer)) as pool:
        assert pool.invoke("Get-DelegatedIdentity").output == []
    monkeypatch.setenv("KRB5CCNAME", "FILE:" + peer.info["kerberos_variants"]["ccache_not_forwardable"])
    with pytest.raises(AuthenticationError, match="kinit -f"):
        RunspacePool(**kerberos(peer), delegate=True).open()


def test_client_certificate(peer: PeerProcess) -> None:
    c = peer.info["client_certs"]
    kwargs = dict(https(peer, auth="certificate", username=None, password=c["key_password"]),
                  cert_file=c["client_cert"], key_file=c["client_key_encrypted"])
    with RunspacePool(**kwargs) as pool:
        assert pool.invoke("Get-Date").succeeded
    with pytest.raises(AuthenticationError, match="HTTP 401"):
        RunspacePool(**dict(kwargs, cert_file=c["unmapped_cert"], key_file=c["unmapped_key"], password=None)).open()


def test_credssp_over_http_is_encrypted_and_hands_over_the_password(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    credssp = dict(ntlm(peer), auth="credssp")
    with RunspacePool(**credssp) as pool:
        assert pool.invoke("Get-Date").succeeded
    auth = [a for a in peer.log("auth") if a.get("scheme", "").lower() == "credssp"]
    assert auth and auth[-1]["result"] == "ok" and auth[-1].get("delegated"), auth
    assert all(op["encrypted"] for op in peer.log()), peer.log()
    with pytest.raises(AuthenticationError):
        RunspacePool(**dict(credssp, password="wrong")).open()


def test_airflow_options_for_delegation_and_certificates() -> None:
    from psrp_client.airflow.connection import ConnectionConfigError, pool_arguments

    args = pool_arguments(host="h", port=5985, login=None, password=None, extra={},
                          wsman_options={"auth": "kerberos", "negotiate_delegate": True})
    assert args["delegate"] is True and args["auth"] == "kerberos"
    args = pool_arguments(host="h", port=5986, login=None, password="key-pw", extra={"auth": "certificate"},
                          wsman_options={"certificate_pem": "/c.pem", "certificate_key_pem": "/k.pem"})
    assert (args["auth"], args["cert_file"], args["key_file"], args["scheme"]) == (
        "certificate", "/c.pem", "/k.pem", "https")
    with pytest.raises(ConnectionConfigError, match="certificate_pem"):
        pool_arguments(host="h", port=5986, login=None, password=None, extra={"auth": "certificate"})
    args = pool_arguments(host="h", port=5985, login="u", password="p", extra={},
                          wsman_options={"auth": "credssp", "credssp_auth_mechanism": "auto"})
    assert (args["auth"], args["scheme"]) == ("credssp", "http")
    with pytest.raises(ConnectionConfigError, match="credssp_auth_mechanism"):
        pool_arguments(host="h", port=5985, login="u", password="p", extra={},
                       wsman_options={"auth": "credssp", "credssp_auth_mechanism": "ntlm"})
