"""pytest fixtures: a shared peer instance, private instances, and the leak check."""

import json
import os
import subprocess
import sys
import time
import typing
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


class PeerProcess:
    """A running peer started as a child process (dies when our stdin pipe closes)."""

    def __init__(self, proc: subprocess.Popen, info: typing.Dict[str, typing.Any]) -> None:
        self.proc = proc
        self.info = info

    @classmethod
    def start(cls, *args: str) -> "PeerProcess":
        env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
        proc = subprocess.Popen(
            [sys.executable, "-m", "peer", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        line = proc.stdout.readline() if proc.stdout else b""
        if not line:
            proc.wait(timeout=10)
            raise RuntimeError(f"the peer did not start (exit code {proc.returncode})")
        return cls(proc, json.loads(line))

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def control(self, path: str, body: typing.Any = None) -> typing.Any:
        data = None if body is None else json.dumps(body).encode()
        method = "GET" if body is None and not path.endswith(("/reset", "/clear", "/shutdown")) else "POST"
        req = urllib.request.Request(self.info["control_url"] + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def log(self, kind: str = "wsman") -> typing.List[typing.Dict[str, typing.Any]]:
        return [r for r in self.control("/log") if r.get("kind") == kind]

    def wait_log(self, kind: str, timeout: float = 5.0) -> typing.List[typing.Dict[str, typing.Any]]:
        """The log entries of `kind`, waiting (bounded) for the first: the peer may log an event just
        after the client already saw its effect (a TLS alert goes out before the peer records why)."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self.log(kind)
            if entries or time.monotonic() > deadline:
                return entries
            time.sleep(0.05)

    def open_shells(self) -> int:
        return self.control("/shells")["open"]


@pytest.fixture(scope="session")
def peer() -> typing.Iterator[PeerProcess]:
    p = PeerProcess.start("--bad-cert")
    # Kerberos clients in this process (pypsrp through pyspnego/GSSAPI) use the peer's realm.
    os.environ["KRB5_CONFIG"] = p.info["krb5_config"]
    os.environ["KRB5CCNAME"] = "FILE:" + p.info["ccache"]
    yield p
    p.stop()


@pytest.fixture
def private_peer(peer: PeerProcess) -> typing.Iterator[typing.Callable[..., PeerProcess]]:
    """Starts instances with their own options, sharing the shared peer's realm."""
    started: typing.List[PeerProcess] = []

    def start(*args: str) -> PeerProcess:
        p = PeerProcess.start("--realm-from", peer.info["info_file"], *args)
        started.append(p)
        return p

    yield start
    for p in started:
        leaked = p.open_shells()
        p.stop()
        assert leaked == 0, f"{leaked} shell(s) left open on a private peer"


@pytest.fixture(autouse=True)
def no_shell_left_open(request: pytest.FixtureRequest) -> typing.Iterator[None]:
    yield
    if "peer" in request.fixturenames:
        p = request.getfixturevalue("peer")
        assert p.open_shells() == 0, "the test left a shell open on the shared peer"
