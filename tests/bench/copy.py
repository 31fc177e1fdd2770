#!/usr/bin/env python3
"""File copy benchmark: `psrp copy`/`psrp fetch` (release build) against pypsrp's
Client.copy/Client.fetch, in one run, on one test peer.

Writes a file of --size bytes (1 GiB by default; random data, streamed to disk), then
copies it to the peer (``C:\\Temp\\bench.bin``) and fetches it back with each client,
over Kerberos and HTTP (every message encrypted), in ``Microsoft.PowerShell``. Each
fetched file is compared with the source (SHA-256). Printed per run: wall time, MiB/s,
the client's CPU time and peak RSS (from wait4), and the peer's CPU time (its control
endpoint): the peer is Python and emulates the remote side, so its CPU time bounds what
either client can reach here; on a real Windows host the remote side is .NET.

pypsrp's fetch.ps1 returns the whole file as one base64 string, so pypsrp's fetch holds
the file several times over in memory (and so does the peer answering it): use
--skip-pypsrp-fetch-above to leave it out for large sizes.

Usage: tests/bench/copy.py [--size 1G] [--parallel 4] [--no-build] [--no-pypsrp]
                           [--skip-pypsrp-fetch-above SIZE] [--dir DIR]
Run from any directory; needs the Debian packages and venv of tests/peer/setup.sh.
The files go to --dir (default: a temporary directory under /tmp), deleted at the end.
"""

import argparse
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchlib import ROOT, TESTS, peer_cpu, start_peer, stop_peer, venv_python  # noqa: E402
REMOTE = "C:\\Temp\\bench.bin"

PYPSRP_CHILD = r"""
import sys
from pypsrp.client import Client
port, op, a, b = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
client = Client("localhost", port=port, ssl=False, auth="kerberos", negotiate_service="HTTP",
                operation_timeout=20, read_timeout=600)
if op == "copy":
    client.copy(a, b)
else:
    client.fetch(a, b)
"""


def parse_size(text: str) -> int:
    t = text.strip().upper()
    for suffix in ("IB", "B"):
        if t.endswith(suffix) and len(t) > len(suffix):
            t = t[: -len(suffix)]
            break
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def measure(argv: "list[str]", env: dict) -> dict:
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{argv[0]} exited {code}: {stderr.decode(errors='replace')[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024.0}


def write_source(path: str, size: int) -> str:
    digest = hashlib.sha256()
    block = 1 << 20
    with open(path, "wb") as f:
        left = size
        while left > 0:
            data = os.urandom(min(block, left))
            digest.update(data)
            f.write(data)
            left -= len(data)
    return digest.hexdigest()


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1G", help="file size: bytes or with K, M, G (default 1G)")
    ap.add_argument("--parallel", type=int, default=4, help="psrp --parallel (default 4)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/psrp as it is")
    ap.add_argument("--no-pypsrp", action="store_true", help="run psrp only")
    ap.add_argument("--skip-pypsrp-fetch-above", default=None,
                    help="leave out pypsrp's fetch above this size (it holds the whole file in memory)")
    ap.add_argument("--dir", default=None, help="where the files go (default: a new temporary directory)")
    args = ap.parse_args()
    size = parse_size(args.size)
    skip_fetch_above = parse_size(args.skip_pypsrp_fetch_above) if args.skip_pypsrp_fetch_above else None

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "psrp-cli"], cwd=ROOT, check=True)
    psrp = str(ROOT / "target" / "release" / "psrp")
    python = venv_python()
    work = tempfile.mkdtemp(prefix="psrp-copy-bench-", dir=args.dir)
    peer = None
    try:
        source = os.path.join(work, "source.bin")
        print(f"writing {size} bytes of random data to {source}", flush=True)
        want = write_source(source, size)
        peer, info = start_peer(python, "--state-dir", os.path.join(work, "peer"))
        env = dict(os.environ, KRB5_CONFIG=info["krb5_config"], KRB5CCNAME="FILE:" + info["ccache"])
        for k in [k for k in env if k.startswith("PSRP_")]:
            del env[k]
        port = str(info["http_port"])
        # pypsrp takes the server's MaxEnvelopeSizekb (the peer's is 500, Windows' default);
        # psrp's default is 150 KiB: give psrp the same envelope.
        conn = ["-H", "localhost", "--port", port, "-a", "kerberos", "-q", "--max-envelope-size", "512000"]
        runs = [
            ("psrp", "copy", [psrp, "copy", source, REMOTE, "--parallel", str(args.parallel)] + conn, None),
            ("psrp", "fetch", [psrp, "fetch", REMOTE, os.path.join(work, "psrp.bin"),
                               "--parallel", str(args.parallel)] + conn, os.path.join(work, "psrp.bin")),
        ]
        if not args.no_pypsrp:
            runs.append(("pypsrp", "copy", [python, "-c", PYPSRP_CHILD, port, "copy", source, REMOTE], None))
            if skip_fetch_above is None or size <= skip_fetch_above:
                target = os.path.join(work, "pypsrp.bin")
                runs.append(("pypsrp", "fetch", [python, "-c", PYPSRP_CHILD, port, "fetch", REMOTE, target], target))
        rows = []
        for tool, op, argv, fetched in runs:
            before = peer_cpu(info)
            m = measure(argv, env)
            m["peer_cpu"] = peer_cpu(info) - before
            if fetched is not None:
                got = sha256_file(fetched)
                if got != want:
                    raise SystemExit(f"{tool} fetch: SHA-256 {got}, source {want}")
                os.remove(fetched)
            rows.append((tool, op, m))
            print(f"  {tool:7} {op:6}: {m['wall']:8.2f} s wall, {size / m['wall'] / (1 << 20):7.2f} MiB/s, "
                  f"{m['cpu']:7.2f} s CPU, {m['rss_mib']:8.1f} MiB peak RSS, peer CPU {m['peer_cpu']:7.2f} s",
                  flush=True)
        print()
        print(f"{size} bytes ({size / (1 << 20):.0f} MiB), Microsoft.PowerShell, Kerberos over HTTP (encrypted), "
              f"peer on loopback, {os.cpu_count()} CPUs, psrp --parallel {args.parallel}, 500 KiB envelopes")
        print(f"{'client':8} {'op':6} {'wall s':>8} {'MiB/s':>8} {'CPU s':>7} {'peak RSS MiB':>13} {'peer CPU s':>11}")
        for tool, op, m in rows:
            print(f"{tool:8} {op:6} {m['wall']:>8.2f} {size / m['wall'] / (1 << 20):>8.2f} {m['cpu']:>7.2f} "
                  f"{m['rss_mib']:>13.1f} {m['peer_cpu']:>11.2f}")
        by = {(t, o): m for t, o, m in rows}
        for op in ("copy", "fetch"):
            if ("pypsrp", op) in by:
                print(f"{op}: psrp is {by[('pypsrp', op)]['wall'] / by[('psrp', op)]['wall']:.1f}x "
                      f"as fast as pypsrp's Client.{op}")
    finally:
        if peer is not None:
            stop_peer(peer)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
