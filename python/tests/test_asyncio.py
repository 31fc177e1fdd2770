"""The asyncio API (what Airflow triggers use)."""

import asyncio
import time

import pytest

from conftest import PeerProcess, kerberos, ntlm
from psrp_client import (
    AsyncInvocation,
    AsyncRunspacePool,
    AuthenticationError,
    Command,
    CommandNotFound,
    Event,
    PsrpTimeout,
)


def test_invoke_and_stream(peer: PeerProcess) -> None:
    async def main() -> None:
        init = [Command("Set-PSDebug", {"Trace": 1})]
        async with AsyncRunspacePool(**kerberos(peer), configuration_name="JEA.Maintenance", session_init=init) as pool:
            result = await pool.invoke("Get-Item", {"Path": "C:\\Windows\\win.ini"})
            assert result.succeeded and result.output[0]["Name"] == "win.ini"
            assert [d.message for d in result.debug] == ["    1+  >>>> Get-Item -Path 'C:\\Windows\\win.ini'"]
            inv = await pool.start("Get-LargeOutput", {"Count": 500})
            assert isinstance(inv, AsyncInvocation)
            events = [e async for e in inv]
            assert all(isinstance(e, Event) for e in events)
            assert events[0].kind == "debug" and events[0].record.message.endswith("Get-LargeOutput -Count 500")
            names = [e.value["Name"] for e in events[1:]]
            assert len(names) == 500 and names[0] == "item-0000000000.dat"
            final = await inv.result()
            assert final.state == "Completed" and final.output == []
            missing = await pool.invoke("Get-Process")
            with pytest.raises(CommandNotFound):
                missing.raise_for_status()
        assert not pool.is_open

    asyncio.run(main())
    assert peer.open_shells() == 0


def test_stop_and_timeout(peer: PeerProcess) -> None:
    async def main() -> None:
        async with AsyncRunspacePool(**kerberos(peer)) as pool:
            inv = await pool.start("Start-Sleep", {"Seconds": 60})
            await inv.stop()
            assert (await inv.result()).state == "Stopped"
            with pytest.raises(PsrpTimeout):
                await pool.invoke("Start-Sleep", {"Seconds": 60}, timeout=0.5)

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 30
    assert peer.open_shells() == 0


def test_the_event_loop_keeps_running(peer: PeerProcess) -> None:
    async def main() -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.ensure_future(tick())
        async with AsyncRunspacePool(**kerberos(peer)) as pool:
            await pool.invoke("Start-Sleep", {"Milliseconds": 500})
        ticker.cancel()
        return ticks

    assert asyncio.run(main()) > 20


def test_pools_run_concurrently(peer: PeerProcess) -> None:
    async def one(n: int) -> int:
        async with AsyncRunspacePool(**kerberos(peer)) as pool:
            result = await pool.invoke("Invoke-Echo", {"N": n})
            await pool.invoke("Start-Sleep", {"Milliseconds": 500})
            return result.output[0]["Parameters"]["N"]

    async def main() -> list:
        return await asyncio.gather(*(one(n) for n in range(4)))

    started = time.monotonic()
    assert asyncio.run(main()) == [0, 1, 2, 3]
    # Four half-second sleeps at once, not one after another (with ample margin).
    assert time.monotonic() - started < 10
    assert peer.open_shells() == 0


def test_cancelled_task_deletes_the_shell(peer: PeerProcess) -> None:
    async def work(opened: asyncio.Event) -> None:
        async with AsyncRunspacePool(**kerberos(peer)) as pool:
            inv = await pool.start("Start-Sleep", {"Seconds": 60})
            opened.set()
            async for _ in inv:
                pass

    async def main() -> None:
        opened = asyncio.Event()
        task = asyncio.ensure_future(work(opened))
        await opened.wait()
        assert peer.open_shells() == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert peer.open_shells() == 0


def test_errors_are_typed(peer: PeerProcess) -> None:
    async def main() -> None:
        with pytest.raises(AuthenticationError):
            async with AsyncRunspacePool(**ntlm(peer, password="wrong-one-Zz9")):
                pass

    asyncio.run(main())
