"""Streaming with back-pressure, stop, shells deleted on exceptions and Ctrl-C,
the GIL released while waiting, and the authentication paths."""

import _thread
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import typing

import pytest

from conftest import PeerProcess, https, kerberos, ntlm
from psrp_client import (
    Command,
    ConnectionFailed,
    Event,
    InsecureSettingWarning,
    PsrpTimeout,
    RunspacePool,
    UsageError,
)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_events_arrive_in_order_with_their_kinds(peer: PeerProcess) -> None:
    with RunspacePool(**kerberos(peer)) as pool:
        inv = pool.start(
            "Write-Output one; Write-Warning -Message w; Write-Output two; Write-Error -Message e",
            script=True,
        )
        events = list(inv)
        result = inv.result()
    assert all(isinstance(e, Event) for e in events)
    assert [(e.kind, e.value if e.kind == "output" else e.record.message) for e in events] == [
        ("output", "one"),
        ("warning", "w"),
        ("output", "two"),
        ("error", "e"),
    ]
    assert events[0].record is None and events[1].value is None
    assert repr(events[0]) == "Event(output, 'one')"
    # Iterated events are not collected again; the state covers the whole run.
    assert result.output == [] and result.errors == []
    assert result.state == "Completed" and result.had_errors
    assert inv.done


def test_large_output_streams_with_flat_memory(peer: PeerProcess) -> None:
    count = 20_000
    with RunspacePool(**kerberos(peer), configuration_name="JEA.Maintenance") as pool:
        # Iterated one by one: Python holds one object at a time.
        tracemalloc.start()
        seen = 0
        rss_after_warmup = 0
        for event in pool.start("Get-LargeOutput", {"Count": count}):
            assert event.kind == "output"
            seen += 1
            if seen == 2_000:
                gc.collect()
                rss_after_warmup = rss_bytes()
                tracemalloc.reset_peak()
            if seen == count // 2:
                assert event.value["Name"] == f"item-{seen - 1:010d}.dat"
        _, iter_peak = tracemalloc.get_traced_memory()
        rss_growth = rss_bytes() - rss_after_warmup
        # Collected: every object is held at once.
        tracemalloc.reset_peak()
        result = pool.invoke("Get-LargeOutput", {"Count": count})
        _, collect_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert seen == count and len(result.output) == count
    assert result.output[-1]["Name"] == f"item-{count - 1:010d}.dat"
    # Streaming: Python allocations stay at a few objects (bounded buffer in Rust);
    # collecting 20,000 FileInfo dicts takes tens of MB.
    assert iter_peak < 2 * 1024 * 1024, iter_peak
    assert collect_peak > 20 * iter_peak, (collect_peak, iter_peak)
    assert rss_growth < 16 * 1024 * 1024, rss_growth


def test_stop_ends_a_long_pipeline_and_releases_it(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    with RunspacePool(**kerberos(peer)) as pool:
        started = time.monotonic()
        inv = pool.start("Start-Sleep", {"Seconds": 60})
        inv.stop()
        result = inv.result()
        assert result.state == "Stopped" and result.had_errors and not result.succeeded
        assert result.terminating_error is not None
        assert result.terminating_error.fully_qualified_error_id == "PipelineStopped"
        assert inv.done
        (shell,) = peer.control("/shells")["shells"]
        assert shell["commands"] == []
    assert time.monotonic() - started < 20
    signals = [o for o in peer.log() if o["action"] == "Signal"]
    assert signals and signals[0]["signal_code"] == "powershell/signal/crtl_c"
    assert peer.open_shells() == 0


def test_stop_from_another_thread_while_iterating(peer: PeerProcess) -> None:
    with RunspacePool(**kerberos(peer)) as pool:
        inv = pool.start("Start-Sleep", {"Seconds": 60})
        timer = threading.Timer(0.5, inv.stop)
        started = time.monotonic()
        timer.start()
        events = list(inv)
        timer.join()
        assert time.monotonic() - started < 20
        assert inv.result().state == "Stopped"
        assert events == []


def test_timeout_stops_the_pipeline(peer: PeerProcess) -> None:
    with RunspacePool(**kerberos(peer)) as pool:
        started = time.monotonic()
        with pytest.raises(PsrpTimeout, match="did not finish within 1s") as e:
            pool.invoke("Start-Sleep", {"Seconds": 60}, timeout=1)
        assert isinstance(e.value, TimeoutError)
        assert e.value.result is not None and e.value.result.state == "Stopped"
        assert time.monotonic() - started < 20
        assert pool.invoke("Get-Date").succeeded  # the pool is still usable
        with pytest.raises(UsageError):
            pool.invoke("Get-Date", timeout=-1)


def test_leaving_an_invocation_early_stops_it(peer: PeerProcess) -> None:
    with RunspacePool(**kerberos(peer)) as pool:
        with pool.start("Get-LargeOutput", {"Count": 100_000}) as inv:
            for n, _ in enumerate(inv):
                if n == 10:
                    break
        assert inv.done
        assert peer.control("/shells")["shells"][0]["commands"] == []


def test_exception_inside_with_deletes_the_shell(peer: PeerProcess) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with RunspacePool(**kerberos(peer)) as pool:
            pool.start("Start-Sleep", {"Seconds": 60})
            assert peer.open_shells() == 1
            raise RuntimeError("boom")
    assert not pool.is_open
    assert peer.open_shells() == 0
    pool.close()  # idempotent


def interrupt_soon(delay: float) -> threading.Timer:
    # What Ctrl-C does: Python's signal flag is set while the main thread waits in Rust.
    timer = threading.Timer(delay, _thread.interrupt_main)
    timer.start()
    return timer


def test_keyboard_interrupt_while_iterating_deletes_the_shell(peer: PeerProcess) -> None:
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with RunspacePool(**kerberos(peer)) as pool:
            inv = pool.start("Start-Sleep", {"Seconds": 60})
            interrupt_soon(0.5)
            for _ in inv:
                pass
    assert time.monotonic() - started < 10
    assert peer.open_shells() == 0


def test_keyboard_interrupt_during_invoke_deletes_the_shell(peer: PeerProcess) -> None:
    with pytest.raises(KeyboardInterrupt):
        with RunspacePool(**kerberos(peer)) as pool:
            interrupt_soon(0.5)
            pool.invoke("Start-Sleep", {"Seconds": 60})
    assert peer.open_shells() == 0


def test_sigint_to_a_process_deletes_the_shell(peer: PeerProcess) -> None:
    # A real SIGINT to a separate process blocked in the pipeline.
    script = textwrap.dedent(
        """
        import sys
        from psrp_client import RunspacePool
        with RunspacePool("localhost", port=int(sys.argv[1]), auth="kerberos") as pool:
            inv = pool.start("Start-Sleep", {"Seconds": 60})
            print("started", flush=True)
            for _ in inv:
                pass
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(peer.info["http_port"])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "started\n"
        assert peer.open_shells() == 1
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode != 0 and "KeyboardInterrupt" in err
    assert peer.open_shells() == 0


def test_gil_is_released_while_waiting(peer: PeerProcess) -> None:
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    with RunspacePool(**kerberos(peer)) as pool:
        counter = threading.Thread(target=count)
        counter.start()
        before = ticks
        pool.invoke("Start-Sleep", {"Milliseconds": 600})
        during = ticks - before
        stop.set()
        counter.join()
    # About 600 ticks if the thread ran throughout; none if the GIL was held.
    assert during > 100, during


def test_kerberos_over_http_is_encrypted(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    with RunspacePool(**kerberos(peer)) as pool:
        assert pool.invoke("Get-Date").succeeded
        assert pool.protocol_version == "2.3"
    ops = peer.log()
    assert [o["action"] for o in ops][0] == "Create" and ops[-1]["action"] == "Delete"
    assert all(o["encrypted"] for o in ops)
    assert {o["auth"]["mechanism"] for o in ops} == {"kerberos"}
    assert {o["auth"]["principal"] for o in ops} == {peer.info["principal"]}


def test_ntlm_over_http_is_encrypted(peer: PeerProcess) -> None:
    peer.control("/log/reset")
    with RunspacePool(**ntlm(peer)) as pool:
        assert pool.invoke("Get-Date").succeeded
    ops = peer.log()
    assert all(o["encrypted"] for o in ops)
    assert {o["auth"]["mechanism"] for o in ops} == {"ntlm"}


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_https_with_ca_file(peer: PeerProcess, auth: str) -> None:
    peer.control("/log/reset")
    with RunspacePool(**https(peer, auth)) as pool:
        assert pool.invoke("Get-Date").succeeded
    ops = peer.log()
    assert {o["transport"] for o in ops} == {"https"}


def test_insecure_options_warn(peer: PeerProcess) -> None:
    with pytest.warns(InsecureSettingWarning, match="NOT checked"):
        pool = RunspacePool(**https(peer, ca_file=None, insecure_skip_tls_verify=True))
    with pool:
        assert pool.invoke("Get-Date").succeeded
    with pytest.warns(InsecureSettingWarning, match="clear text"):
        RunspacePool("h", auth="basic", username="u", password="p", allow_unencrypted=True)


def test_jea_configuration_name(peer: PeerProcess) -> None:
    with RunspacePool(**kerberos(peer), configuration_name="JEA.Maintenance") as pool:
        assert pool.configuration_name == "JEA.Maintenance"
        assert peer.control("/shells")["by_configuration"] == {"JEA.Maintenance": 1}
        (item,) = pool.invoke("Get-Item", {"Path": "C:\\Windows\\win.ini"}).output
    assert item["Name"] == "win.ini" and item["Length"] == 92


def test_calls_after_close_fail_cleanly(peer: PeerProcess) -> None:
    pool = RunspacePool(**kerberos(peer))
    pool.open()
    native = pool._native
    pool.close()
    assert native is not None
    with pytest.raises(ConnectionFailed, match="closed"):
        native.invoke(Command("Get-Date"))
    with pytest.raises(UsageError, match="not open"):
        pool.invoke("Get-Date")
