"""What the benchmark scripts share: where things are, the peer's venv, starting the test peer and asking it."""

import json
import os
import pathlib
import subprocess
import typing
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def venv_python() -> str:
    """The Python of the peer's venv (PSRP_VENV, else target/venv, made by tests/venv.sh if missing)."""
    venv = os.environ.get("PSRP_VENV") or str(ROOT / "target" / "venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        venv = subprocess.check_output([str(TESTS / "venv.sh")], text=True).strip()
        python = os.path.join(venv, "bin", "python")
    return python


def start_peer(python: str, *args: str) -> "tuple[subprocess.Popen, dict]":
    """Starts a test peer (`python -m peer ARGS`); it exits when its stdin is closed. Returns it and its info."""
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    proc = subprocess.Popen([python, "-m", "peer", *args], cwd=TESTS, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("the test peer did not start (see its stderr above)")
    return proc, json.loads(line)


def control(info: dict, path: str, body: "bytes | None" = None, timeout: float = 30) -> typing.Any:
    """A request to the peer's control endpoint (POST when there is a body), its JSON answer."""
    req = urllib.request.Request(info["control_url"] + path, data=body, method="POST" if body else "GET")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def peer_cpu(info: dict) -> float:
    """CPU seconds the peer process has used so far."""
    return float(control(info, "/stats")["cpu_seconds"])


def stop_peer(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stops a peer from start_peer: closing its stdin ends it; killed if it has not ended within `timeout`."""
    if proc.stdin and not proc.stdin.closed:
        proc.stdin.close()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
