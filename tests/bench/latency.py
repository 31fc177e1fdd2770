#!/usr/bin/env python3
"""Latency benchmark: one small command over a slow network, psrp against pypsrp.

Starts one test peer (tests/peer) and a delay proxy of its own on loopback: a TCP
proxy that holds every byte for --delay-ms (default 25 ms) in each direction, so each
round trip costs 2 x delay (50 ms RTT by default), as on a WAN or VPN. Through it,
for each authentication method and transport, it runs ``Get-Date`` in
Microsoft.PowerShell through:

- ``psrp invoke Get-Date`` (release build), and
- a Python process running pypsrp's RunspacePool + PowerShell with Get-Date,

each timed from process start to exit (wall time; several runs, the median shown),
and counts the HTTP exchanges (authentication legs included) and TCP connections of
each run from the peer's operation log (one ``request`` record per HTTP request).
``min`` is the protocol minimum of exchanges for psrp's sequence (see the README's
Performance section); ``floor ms`` is the time the network alone takes: one round
trip per exchange, plus one per TCP connection for its handshake and, over HTTPS, one
more for TLS 1.3's.

Usage: tests/bench/latency.py [--runs 5] [--delay-ms 25] [--no-build] [--psrp PATH]
Run from any directory; needs the Debian packages and venv of tests/peer/setup.sh.
"""

import argparse
import asyncio
import os
import pathlib
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchlib import ROOT, TESTS, control, start_peer, stop_peer, venv_python  # noqa: E402

# (auth, transport, protocol minimum of HTTP exchanges for one invoke): the
# WS-Man operations Create, pool Receive, Command, Receive, Delete, plus the
# authentication legs that cannot carry them (README, "Round trips").
CASES = [
    ("kerberos", "http", 6),
    ("negotiate", "http", 6),
    ("ntlm", "http", 7),
    ("basic", "https", 5),
    ("kerberos", "https", 5),
    ("ntlm", "https", 6),
]

PYPSRP_CHILD = r"""
import sys
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan
port, scheme, auth, user, password, ca = sys.argv[1:7]
kwargs = dict(port=int(port), ssl=scheme == "https", auth=auth, cert_validation=ca,
              negotiate_service="HTTP", operation_timeout=20, read_timeout=60)
if auth in ("basic", "ntlm"):
    kwargs.update(username=user, password=password)
wsman = WSMan("localhost", **kwargs)
with RunspacePool(wsman) as pool:
    ps = PowerShell(pool)
    ps.add_cmdlet("Get-Date")
    output = ps.invoke()
    assert ps.state == 4 and len(output) == 1, (ps.state, output)
print(output[0])
"""


class DelayProxy:
    """A loopback TCP proxy that delivers every chunk `delay` seconds after it was read,
    in each direction (a delay line: bandwidth is not limited, order is kept). The
    client's connect() completes at once on loopback, so the first bytes of each
    connection towards the server wait one round trip more: the TCP handshake a real
    network makes the client wait for before it can send."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.port = 0

        async def start() -> None:
            server = await asyncio.start_server(self._client, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(start())
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer, handshake=2 * self.delay), self._pipe(up_reader, writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handshake: float = 0.0
                    ) -> None:
        queue: "asyncio.Queue[tuple[float, bytes]]" = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
            try:
                writer.write_eof()
            except OSError:
                pass

        task = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(65536)
                await queue.put((self.loop.time() + self.delay + handshake, data))
                handshake = 0.0
                if not data:
                    break
            await task
        except (OSError, asyncio.IncompleteReadError):
            task.cancel()
        finally:
            writer.close()


def run_once(argv: "list[str]", env: dict, info: dict) -> "tuple[float, int, int]":
    """Wall time (process start to exit), HTTP exchanges and TCP connections of one run."""
    control(info, "/log/reset", b"{}")
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0 or not proc.stdout.strip():
        raise SystemExit(f"{argv[0]} exited {proc.returncode}: {proc.stderr[-2000:]}")
    requests = [r for r in control(info, "/log") if r["kind"] == "request"]
    return wall, len(requests), len({r["connection"] for r in requests})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs per client and case (default 5)")
    ap.add_argument("--delay-ms", type=float, default=25.0, help="delay each way in ms (default 25)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/psrp as it is")
    ap.add_argument("--psrp", help="the psrp binary to time (default target/release/psrp)")
    args = ap.parse_args()

    if not args.no_build and not args.psrp:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "psrp-cli"], cwd=ROOT, check=True)
    psrp = args.psrp or str(ROOT / "target" / "release" / "psrp")
    python = venv_python()
    peer, info = start_peer(python)
    rtt_ms = 2 * args.delay_ms
    try:
        proxies = {
            "http": DelayProxy(info["http_port"], args.delay_ms / 1000.0),
            "https": DelayProxy(info["https_port"], args.delay_ms / 1000.0),
        }
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PSRP_")}
        base_env.update(KRB5_CONFIG=info["krb5_config"], KRB5CCNAME="FILE:" + info["ccache"])
        rows = []
        for auth, transport, minimum in CASES:
            port = str(proxies[transport].port)
            env = dict(base_env)
            psrp_argv = [psrp, "invoke", "Get-Date", "-H", "localhost", "--port", port, "--scheme", transport,
                         "-a", auth, "--ca-file", info["ca_file"], "-o", "ndjson"]
            if auth in ("basic", "ntlm"):
                psrp_argv += ["-u", info["user"]]
                env["PSRP_PASSWORD"] = info["password"]
            pypsrp_argv = [python, "-c", PYPSRP_CHILD, port, transport, auth, info["user"], info["password"],
                           info["ca_file"]]
            for client, argv in (("psrp", psrp_argv), ("pypsrp", pypsrp_argv)):
                run_once(argv, env, info)  # warm-up: page cache, Python bytecode, KDC service ticket
                runs = [run_once(argv, env, info) for _ in range(args.runs)]
                walls = sorted(r[0] for r in runs)
                exchanges = {r[1] for r in runs}
                connections = {r[2] for r in runs}
                row = (client, auth, transport, minimum, statistics.median(walls), walls[0], walls[-1],
                       exchanges, connections)
                rows.append(row)
                print(f"  {client:7} {auth:9} {transport:5}: median {row[4] * 1000:7.0f} ms "
                      f"({walls[0] * 1000:.0f}-{walls[-1] * 1000:.0f}), exchanges {sorted(exchanges)}, "
                      f"connections {sorted(connections)}", flush=True)

        print()
        print(f"Get-Date, Microsoft.PowerShell, through a delay proxy: {args.delay_ms:g} ms each way "
              f"({rtt_ms:g} ms RTT); {args.runs} runs each, process start to exit; {os.cpu_count()} CPUs")
        print(f"{'client':7} {'auth':9} {'over':5} {'exchanges':>9} {'min':>4} {'conns':>5} "
              f"{'median ms':>10} {'min-max ms':>12} {'floor ms':>9}")
        for client, auth, transport, minimum, median, lo, hi, exchanges, connections in rows:
            ex = "/".join(str(e) for e in sorted(exchanges))
            conns = "/".join(str(c) for c in sorted(connections))
            print(f"{client:7} {auth:9} {transport:5} {ex:>9} {minimum if client == 'psrp' else '':>4} "
                  f"{conns:>5} {median * 1000:>10.0f} {f'{lo * 1000:.0f}-{hi * 1000:.0f}':>12} "
                  f"{(max(exchanges) + max(connections) * (1 + (transport == 'https'))) * rtt_ms:>9.0f}")
        print()
        by = {}
        for client, auth, transport, minimum, median, lo, hi, exchanges, connections in rows:
            by[(client, auth, transport)] = (median, max(exchanges), minimum)
        for auth, transport, minimum in CASES:
            p_median, p_ex, _ = by[("psrp", auth, transport)]
            y_median, y_ex, _ = by[("pypsrp", auth, transport)]
            over = p_ex - minimum
            print(f"{auth}/{transport}: psrp {y_median / p_median:.1f}x faster than pypsrp "
                  f"({p_ex} exchanges against {y_ex}); psrp is {over} exchange(s) above the minimum of {minimum}")
    finally:
        stop_peer(peer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
