"""Reconnection after a broken connection, from Python: the options reach the client,
output survives kills (NTLM over HTTP: every new connection authenticates and encrypts
anew), and retries used up are a ConnectionFailed that says so."""

import pytest

from conftest import PeerProcess, ntlm
from psrp_client import ConnectionFailed, RunspacePool, UsageError


def test_output_survives_kills_with_reconnection(private_peer) -> None:  # type: ignore[no-untyped-def]
    p: PeerProcess = private_peer()
    kills = [
        {"kind": "kill", "at": at, "action": "Receive", "scope": "command", "skip": skip}
        for skip, at in ((3, "response"), (10, "mid_body"), (20, "request"))
    ]
    p.control("/faults", kills)
    with RunspacePool(**ntlm(p, reconnection_retries=3, reconnection_backoff=0.05)) as pool:
        result = pool.invoke("Get-LargeOutput", {"Count": 2000})
    names = [o["Name"] for o in result.output]
    assert names == [f"item-{i:010}.dat" for i in range(2000)]
    log = p.control("/log")
    assert len([r for r in log if r.get("killed_at")]) == 3
    assert len([r for r in log if r.get("replayed")]) == 2  # the kills after processing
    assert p.open_shells() == 0


def test_retries_used_up_is_connection_failed(private_peer) -> None:  # type: ignore[no-untyped-def]
    p: PeerProcess = private_peer()
    p.control("/faults", {"kind": "kill", "at": "response", "action": "Receive", "scope": "command", "count": 50})
    with RunspacePool(**ntlm(p, reconnection_retries=1, reconnection_backoff=0.05)) as pool:
        with pytest.raises(ConnectionFailed) as e:
            pool.invoke("Get-Date")
    assert "failed after 1 reconnection attempt(s)" in str(e.value)
    assert p.open_shells() == 0


def test_reconnection_options_are_checked() -> None:
    with pytest.raises(UsageError):
        RunspacePool("localhost", reconnection_retries=-1)
    with pytest.raises(UsageError):
        RunspacePool("localhost", reconnection_backoff=-1.0)
