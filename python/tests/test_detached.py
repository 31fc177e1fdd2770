"""Detached jobs from Python (what the Airflow trigger uses to survive a triggerer restart):
start_detached, connect by shell id from a new client, connect_command, disconnect_shell after
a client was killed while connected, typed refusals."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import PeerProcess, kerberos
from psrp_client import AsyncRunspacePool, DetachedJob, RunspacePool, ShellConnectFailed, UsageError

COUNT = 2000


def shell_state(peer: PeerProcess, shell_id: str) -> dict:
    shells = peer.control("/shells")["shells"]
    return next(s for s in shells if s["shell_id"].lower() == shell_id.lower())


def commands_logged(peer: PeerProcess, shell_id: str) -> list:
    return [o["action"] for o in peer.log() if (o.get("shell_id") or "").lower() == shell_id.lower()]


def test_detached_job_is_picked_up_by_a_new_client(peer: PeerProcess) -> None:
    async def main() -> None:
        async with AsyncRunspacePool(**kerberos(peer), configuration_name="JEA.Maintenance") as pool:
            job = await pool.start_detached("Get-LargeOutput", {"Count": COUNT}, idle_timeout=600)
            assert not pool.is_open  # left to the server, not deleted
        assert isinstance(job, DetachedJob) and job.expires_at is not None
        assert abs(job.expires_at - (time.time() + 600)) < 30
        assert peer.open_shells() == 1
        assert shell_state(peer, job.shell_id)["state"] == "Disconnected"
        # A new client (a new pool object, its own WS-Man session) connects by id.
        async with await AsyncRunspacePool.connect(
            shell_id=job.shell_id, expires_at=job.expires_at, **kerberos(peer), configuration_name="JEA.Maintenance"
        ) as pool:
            assert pool.shell_id.lower() == job.shell_id.lower()
            inv = await pool.connect_command(job.command_id)
            names = [e.value["Name"] async for e in inv if e.kind == "output"]
            result = await inv.result()
        assert len(names) == COUNT and names[0] == "item-0000000000.dat" and len(set(names)) == COUNT
        assert result.state == "Completed"
        assert peer.open_shells() == 0  # leaving `async with` deleted the shell
        ops = commands_logged(peer, job.shell_id)
        assert ops.count("Command") == 1 and "Disconnect" in ops and ops[-1] == "Delete"

    asyncio.run(main())


def test_blocking_twins(peer: PeerProcess) -> None:
    with RunspacePool(**kerberos(peer), configuration_name="JEA.Maintenance") as pool:
        job = pool.start_detached("Get-Item", {"Path": "C:\\Windows\\win.ini"}, buffer_mode="drop")
    assert job.expires_at is None  # the shell's own idle timeout
    with RunspacePool.connect(shell_id=job.shell_id, **kerberos(peer), configuration_name="JEA.Maintenance") as pool:
        result = pool.connect_command(job.command_id).result()
    assert result.state == "Completed" and [o["Name"] for o in result.output] == ["win.ini"]
    assert peer.open_shells() == 0


# A client that connects to the shell and is killed (SIGKILL) while connected.
CONNECT_AND_HANG = """
import asyncio, json, sys, time
from psrp_client import AsyncRunspacePool
args = json.loads(sys.argv[1])
async def main():
    pool = await AsyncRunspacePool.connect(**args)
    print("connected", flush=True)
    time.sleep(120)
asyncio.run(main())
"""


def test_shell_left_connected_by_a_killed_client(peer: PeerProcess) -> None:
    settings = {**kerberos(peer), "configuration_name": "JEA.Maintenance"}

    async def start() -> DetachedJob:
        async with AsyncRunspacePool(**settings) as pool:
            return await pool.start_detached("Get-LargeOutput", {"Count": COUNT}, idle_timeout=600)

    job = asyncio.run(start())
    child = subprocess.Popen(
        [sys.executable, "-c", CONNECT_AND_HANG, json.dumps({**settings, "shell_id": job.shell_id})],
        stdout=subprocess.PIPE, text=True, env=os.environ,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "connected"
        assert shell_state(peer, job.shell_id)["state"] == "Connected"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)

    async def pick_up() -> list:
        with pytest.raises(ShellConnectFailed) as refused:
            await AsyncRunspacePool.connect(shell_id=job.shell_id, **settings)
        assert refused.value.reason == "connected_elsewhere"
        await AsyncRunspacePool.disconnect_shell(shell_id=job.shell_id, idle_timeout=600, **settings)
        async with await AsyncRunspacePool.connect(shell_id=job.shell_id, **settings) as pool:
            inv = await pool.connect_command(job.command_id)
            return [e.value["Name"] async for e in inv if e.kind == "output"]

    names = asyncio.run(pick_up())
    assert len(names) == COUNT and len(set(names)) == COUNT  # nothing was read by the killed client
    assert peer.open_shells() == 0
    assert commands_logged(peer, job.shell_id).count("Command") == 1


def test_refusals_are_typed(peer: PeerProcess) -> None:
    settings = {**kerberos(peer), "configuration_name": "JEA.Maintenance"}

    async def main() -> None:
        with pytest.raises(ShellConnectFailed) as unknown:
            await AsyncRunspacePool.connect(shell_id="6a0f2b9e-3f57-4c55-9d6c-000000000000", **settings)
        assert unknown.value.reason == "unknown_shell" and "does not exist" in str(unknown.value)
        with pytest.raises(ShellConnectFailed) as expired:
            await AsyncRunspacePool.connect(shell_id="6a0f2b9e-3f57-4c55-9d6c-000000000000",
                                            expires_at=time.time() - 1, **settings)
        assert expired.value.reason == "idle_timeout_expired"
        with pytest.raises(ShellConnectFailed) as removed:
            await AsyncRunspacePool.remove_shell(shell_id="6a0f2b9e-3f57-4c55-9d6c-000000000000", **settings)
        assert removed.value.reason == "unknown_shell"
        async with AsyncRunspacePool(**settings) as pool:
            with pytest.raises(UsageError):
                await pool.start_detached("Get-Date", buffer_mode="sometimes")
            with pytest.raises(UsageError):
                await pool.start_detached("Get-Date", idle_timeout=0)
            assert pool.is_open  # refused before anything was sent

    asyncio.run(main())
