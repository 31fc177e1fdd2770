#!/usr/bin/env python3
"""Large-output benchmark: psrp (release build, NDJSON and JSON) against pypsrp.

Starts one test peer (tests/peer), then runs the same invocation,
``Get-LargeOutput -Count N`` in the JEA.Maintenance endpoint over Kerberos and HTTP
(messages encrypted), through:

- ``psrp invoke ... -o ndjson`` and ``-o json`` (stdout read and counted by this script),
- pypsrp (RunspacePool + PowerShell.invoke in a child Python process, which holds
  every object it received; it does not render JSON, so it does less than psrp).

The peer serves the objects from CLIXML bytes serialized once per process (a warm-up
run triggers that before timing), so the peer's own work is small; its CPU time per
run (from its control endpoint) is printed beside each result. Wall time, CPU time
and peak RSS of each client process come from wait4(2).

Usage: tests/bench/large_output.py [--counts 10000,100000] [--no-build] [--skip-pypsrp-above N]
Run from any directory; needs the Debian packages and venv of tests/peer/setup.sh.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchlib import ROOT, TESTS, peer_cpu, start_peer, stop_peer, venv_python  # noqa: E402

PYPSRP_CHILD = r"""
import sys
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan
port, count = int(sys.argv[1]), int(sys.argv[2])
wsman = WSMan("localhost", port=port, ssl=False, auth="kerberos", negotiate_service="HTTP",
              operation_timeout=20, read_timeout=60)
with RunspacePool(wsman, configuration_name="JEA.Maintenance") as pool:
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-LargeOutput").add_parameter("Count", count)
    output = ps.invoke()
    names = [o.adapted_properties.get("Name") for o in output]
    assert ps.state == 4, ps.state
    assert len(output) == count and names[-1] == "item-%010d.dat" % (count - 1), (len(output), names[-1:])
    print(len(output))
"""


def measure(argv: "list[str]", env: dict, count_lines: bool) -> dict:
    """Runs argv; wall time, CPU and peak RSS from wait4, stdout lines counted."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = 0
    last = b""
    while True:
        chunk = proc.stdout.read(1 << 20)
        if not chunk:
            break
        if count_lines:
            lines += chunk.count(b"\n")
        last = (last + chunk)[-200:]
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {proc.returncode}: {stderr.decode(errors='replace')[-2000:]}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024.0,
        "lines": lines,
        "tail": last,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="10000,100000", help="object counts (default 10000,100000)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/psrp as it is")
    ap.add_argument("--skip-pypsrp-above", type=int, default=None,
                    help="do not run pypsrp for counts above this (it holds every object in memory)")
    args = ap.parse_args()
    counts = [int(c) for c in args.counts.split(",") if c]

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "psrp-cli"], cwd=ROOT, check=True)
    psrp = str(ROOT / "target" / "release" / "psrp")
    python = venv_python()
    peer, info = start_peer(python)
    try:
        env = dict(os.environ, KRB5_CONFIG=info["krb5_config"], KRB5CCNAME="FILE:" + info["ccache"])
        for k in [k for k in env if k.startswith("PSRP_")]:
            del env[k]
        port = str(info["http_port"])
        base = [psrp, "invoke", "Get-LargeOutput", "-H", "localhost", "--port", port, "-a", "kerberos",
                "-c", "JEA.Maintenance"]
        # Warm-up: the peer serializes its template object once.
        measure(base + ["--param-json", "Count=10", "-o", "ndjson"], env, True)

        rows = []
        for n in counts:
            runs = [
                ("psrp", "ndjson", base + ["--param-json", f"Count={n}", "-o", "ndjson"]),
                ("psrp", "json", base + ["--param-json", f"Count={n}", "-o", "json"]),
            ]
            if args.skip_pypsrp_above is None or n <= args.skip_pypsrp_above:
                runs.append(("pypsrp", "objects", [python, "-c", PYPSRP_CHILD, port, str(n)]))
            for tool, fmt, argv in runs:
                before = peer_cpu(info)
                m = measure(argv, env, True)
                m["peer_cpu"] = peer_cpu(info) - before
                if tool == "psrp":
                    expected = n if fmt == "ndjson" else n + 2
                    if m["lines"] != expected:
                        raise SystemExit(f"psrp -o {fmt}: {m['lines']} lines for {n} objects")
                else:
                    if m["tail"].strip() != str(n).encode():
                        raise SystemExit(f"pypsrp printed {m['tail']!r} for {n} objects")
                rows.append((tool, fmt, n, m))
                print(f"  {tool:7} {fmt:8} {n:>7}: {m['wall']:8.2f} s wall, {m['cpu']:7.2f} s CPU, "
                      f"{m['rss_mib']:8.1f} MiB peak RSS, peer CPU {m['peer_cpu']:6.2f} s", flush=True)

        print()
        print(f"Get-LargeOutput, JEA.Maintenance, Kerberos over HTTP (encrypted), peer on loopback, "
              f"{os.cpu_count()} CPUs")
        print(f"{'client':8} {'output':8} {'objects':>8} {'wall s':>8} {'CPU s':>7} {'peak RSS MiB':>13} "
              f"{'peer CPU s':>11} {'objects/s':>10}")
        for tool, fmt, n, m in rows:
            print(f"{tool:8} {fmt:8} {n:>8} {m['wall']:>8.2f} {m['cpu']:>7.2f} {m['rss_mib']:>13.1f} "
                  f"{m['peer_cpu']:>11.2f} {n / m['wall']:>10.0f}")
        print()
        for n in counts:
            by = {(t, f): m for t, f, c, m in rows if c == n}
            if ("pypsrp", "objects") in by:
                py = by[("pypsrp", "objects")]["wall"]
                for fmt in ("ndjson", "json"):
                    print(f"{n} objects: psrp -o {fmt} is {py / by[('psrp', fmt)]['wall']:.1f}x faster than pypsrp "
                          f"end to end")
        nd = [(n, m["rss_mib"]) for t, f, n, m in rows if (t, f) == ("psrp", "ndjson")]
        if len(nd) > 1:
            print("psrp -o ndjson peak RSS: " + ", ".join(f"{m:.1f} MiB for {n}" for n, m in nd))
        # Requests and responses alternate, so the peer's CPU time is on the
        # critical path: say how much of each psrp run it was.
        for tool, fmt, n, m in rows:
            if tool == "psrp":
                print(f"psrp -o {fmt} {n}: the peer's CPU time is {100 * m['peer_cpu'] / m['wall']:.0f}% "
                      f"of the wall time ({m['peer_cpu']:.2f} of {m['wall']:.2f} s)")
    finally:
        stop_peer(peer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
