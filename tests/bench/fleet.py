#!/usr/bin/env python3
"""Fleet benchmark: one command on 1,000 simulated hosts, psrp against pypsrp.

Starts --peers test peers (tests/peer) sharing one realm; each serves its share of
--hosts WinRM HTTP listeners as separate hosts (``--listeners``, ``peer.fleet``), spread
over four 127.x.y.z addresses of its own, with a mix of roles: ok, slow (every WS-Man
request waits --slow-ms), failing (the command fails with a terminating error) and
refusing (the port refuses connections). Then, for each throttle, it runs the same
command on every host through:

- ``psrp invoke <command> --hosts-file F --throttle T`` (release build), and
- a Python process driving pypsrp from a ``ThreadPoolExecutor`` of T threads, one
  RunspacePool + PowerShell per host,

and prints for each: wall time (process start to exit), the client's CPU time and
peak RSS (``wait4``), the peers' CPU time over the run (their ``/stats``), the
peak of open file descriptors and of sockets among them (``/proc/<pid>/fd`` sampled
every 10 ms), the hosts that ended ok, failed (the command failed) and unreachable
(connection refused), checked against the roles the peers gave the hosts, and the
shells left open on all hosts afterwards (the peers' ``/fleet``). A last psrp row runs
a quarter of the hosts at the first throttle: its peak RSS against the full fleet's
shows whether memory follows the throttle or the host count.

Usage: tests/bench/fleet.py [--hosts 1000] [--throttles 32,256] [--peers 4]
                            [--auth kerberos|ntlm] [--no-build] [--psrp PATH]
Run from any directory; needs the Debian packages and venv of tests/peer/setup.sh.
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchlib import ROOT, TESTS, control, stop_peer, venv_python  # noqa: E402

PYPSRP_CHILD = r"""
import json, sys
from concurrent.futures import ThreadPoolExecutor
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from pypsrp.wsman import WSMan
cfg = json.load(sys.stdin)

def run(host):
    kwargs = dict(port=host["port"], ssl=False, auth=cfg["auth"], operation_timeout=20,
                  read_timeout=60, connection_timeout=30, negotiate_service="HTTP")
    if cfg["auth"] == "ntlm":
        kwargs.update(username=cfg["user"], password=cfg["password"])
    else:
        kwargs.update(negotiate_hostname_override="localhost")
    try:
        # Closing the WSMan too closes its HTTP session (the pool's close does not).
        with WSMan(host["address"], **kwargs) as wsman, RunspacePool(wsman) as pool:
            ps = PowerShell(pool)
            ps.add_cmdlet(cfg["command"])
            output = ps.invoke()
            ok = ps.state == PSInvocationState.COMPLETED and not ps.had_errors
            return "ok" if ok else "failed", len(output)
    except Exception as e:  # refused, or anything else before the command ran
        return "unreachable", 0

with ThreadPoolExecutor(max_workers=cfg["throttle"]) as pool:
    results = list(pool.map(run, cfg["hosts"]))
counts = {"ok": 0, "failed": 0, "unreachable": 0}
for outcome, _ in results:
    counts[outcome] += 1
counts["objects"] = sum(n for _, n in results)
print(json.dumps(counts))
"""


def split(total: int, parts: int) -> "list[int]":
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def start_peers(python: str, args: argparse.Namespace) -> "tuple[list[subprocess.Popen], list[dict]]":
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    counts = {
        "listeners": split(args.hosts, args.peers),
        "slow-listeners": split(args.hosts * args.slow_pct // 100, args.peers),
        "failing-listeners": split(args.hosts * args.failing_pct // 100, args.peers),
        "refusing-listeners": split(args.hosts * args.refusing_pct // 100, args.peers),
    }
    procs, infos = [], []
    for k in range(args.peers):
        argv = [python, "-m", "peer", "--slow-ms", str(args.slow_ms),
                "--listener-addresses", ",".join(f"127.0.{k + 1}.{j}" for j in range(1, 5))]
        for option, per_peer in counts.items():
            argv += [f"--{option}", str(per_peer[k])]
        if infos:
            argv += ["--realm-from", infos[0]["info_file"]]
        proc = subprocess.Popen(argv, cwd=TESTS, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("a test peer did not start (see its stderr above)")
        infos.append(json.loads(line))
    return procs, infos


class FdSampler(threading.Thread):
    """The peak of open descriptors, and of sockets among them, of a process."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_fds = 0
        self.peak_sockets = 0
        self.done = threading.Event()

    def run(self) -> None:
        fd_dir = f"/proc/{self.pid}/fd"
        while not self.done.is_set():
            try:
                fds = os.listdir(fd_dir)
            except OSError:
                return
            sockets = 0
            for fd in fds:
                try:
                    sockets += os.readlink(os.path.join(fd_dir, fd)).startswith("socket:")
                except OSError:
                    pass
            self.peak_fds = max(self.peak_fds, len(fds))
            self.peak_sockets = max(self.peak_sockets, sockets)
            self.done.wait(0.01)


def timed(argv: "list[str]", env: dict, stdin: "str | None" = None) -> dict:
    """Runs argv; wall time, peak RSS (wait4), peak fds and sockets, exit code, output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=out, stderr=err, text=True)
        sampler = FdSampler(proc.pid)
        sampler.start()
        if stdin is not None:
            proc.stdin.write(stdin)
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024,
                "fds": sampler.peak_fds,
                "sockets": sampler.peak_sockets, "code": proc.returncode, "stdout": out.read(),
                "stderr": err.read()}


def psrp_counts(run: dict) -> dict:
    """ok / failed / unreachable from psrp's per-host summary lines (exit 0 / 1-2 / 3)."""
    counts = {"ok": 0, "failed": 0, "unreachable": 0, "other": 0}
    for code in re.findall(r"^psrp: summary: \S+: .* \(exit (\d+);", run["stderr"], re.M):
        key = {"0": "ok", "1": "failed", "2": "failed", "3": "unreachable"}.get(code, "other")
        counts[key] += 1
    counts["objects"] = len(run["stdout"].splitlines())
    return counts


def open_shells(infos: "list[dict]") -> int:
    return sum(control(info, "/fleet")["open_shells"] for info in infos)


def peer_cpu(infos: "list[dict]") -> float:
    return sum(control(info, "/stats")["cpu_seconds"] for info in infos)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=1000, help="simulated hosts (default 1000)")
    ap.add_argument("--throttles", default="32,256", help="throttles to run, comma separated (default 32,256)")
    ap.add_argument("--peers", type=int, default=4, help="peer processes serving the hosts (default 4)")
    ap.add_argument("--auth", choices=("kerberos", "ntlm"), default="kerberos", help="default kerberos")
    ap.add_argument("--command", default="Get-Date", help="the command (default Get-Date)")
    ap.add_argument("--slow-ms", type=int, default=500, help="slow hosts' delay per request (default 500)")
    ap.add_argument("--slow-pct", type=int, default=5, help="percent of slow hosts (default 5)")
    ap.add_argument("--failing-pct", type=int, default=5, help="percent of failing hosts (default 5)")
    ap.add_argument("--refusing-pct", type=int, default=5, help="percent of refusing hosts (default 5)")
    ap.add_argument("--clients", default="psrp,pypsrp", help="which clients (default psrp,pypsrp)")
    ap.add_argument("--no-build", action="store_true", help="use target/release/psrp as it is")
    ap.add_argument("--psrp", help="the psrp binary (default target/release/psrp)")
    args = ap.parse_args()
    throttles = [int(t) for t in args.throttles.split(",")]
    clients = args.clients.split(",")

    if not args.no_build and not args.psrp:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "psrp-cli"], cwd=ROOT, check=True)
    psrp = args.psrp or str(ROOT / "target" / "release" / "psrp")
    python = venv_python()
    peers, infos = start_peers(python, args)
    workdir = tempfile.mkdtemp(prefix="psrp-fleet-")
    try:
        hosts = [h for info in infos for h in info["fleet"]["hosts"]]
        roles = {r: sum(h["role"] == r for h in hosts) for r in ("ok", "slow", "failing", "refusing")}
        info = infos[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PSRP_")}
        env.update(KRB5_CONFIG=info["krb5_config"], KRB5CCNAME="FILE:" + info["ccache"])
        psrp_auth = ["-a", args.auth]
        psrp_env = dict(env)
        if args.auth == "kerberos":
            psrp_auth += ["--spn", "HTTP/localhost"]
        else:
            psrp_auth += ["-u", info["user"]]
            psrp_env["PSRP_PASSWORD"] = info["password"]

        def hosts_file(subset: "list[dict]") -> str:
            path = os.path.join(workdir, f"hosts-{len(subset)}.txt")
            with open(path, "w") as f:
                f.writelines(f"{h['address']}:{h['port']}\n" for h in subset)
            return path

        def expected(subset: "list[dict]") -> dict:
            return {"ok": sum(h["role"] in ("ok", "slow") for h in subset),
                    "failed": sum(h["role"] == "failing" for h in subset),
                    "unreachable": sum(h["role"] == "refusing" for h in subset)}

        runs = []
        plan = [(t, c, hosts) for t in throttles for c in clients]
        if "psrp" in clients:
            plan.append((throttles[0], "psrp", hosts[: len(hosts) // 4]))
        for throttle, client, subset in plan:
            cpu_before = peer_cpu(infos)
            if client == "psrp":
                argv = [psrp, "invoke", args.command, "--hosts-file", hosts_file(subset),
                        "--throttle", str(throttle), "-o", "ndjson", *psrp_auth]
                run = timed(argv, psrp_env)
                counts = psrp_counts(run)
            else:
                cfg = {"hosts": subset, "throttle": throttle, "auth": args.auth, "user": info["user"],
                       "password": info["password"], "command": args.command}
                run = timed([python, "-c", PYPSRP_CHILD], env, json.dumps(cfg))
                try:
                    counts = json.loads(run["stdout"].strip().splitlines()[-1])
                except (ValueError, IndexError):
                    raise SystemExit(f"the pypsrp driver failed ({run['code']}): {run['stderr'][-3000:]}")
            run["peer_cpu"] = peer_cpu(infos) - cpu_before
            left = open_shells(infos)
            want = expected(subset)
            right = all(counts[k] == v for k, v in want.items())
            runs.append((client, throttle, len(subset), run, counts, left, right))
            print(f"  {client} throttle {throttle} on {len(subset)} hosts: {run['wall']:.1f} s, exit {run['code']}, "
                  f"{counts}, expected {want}", file=sys.stderr, flush=True)
    finally:
        for proc in peers:
            proc.stdin.close()  # all at once: they end in parallel
        for proc in peers:
            stop_peer(proc, 10)
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)

    load = os.getloadavg()
    print(f"{args.command}, {len(hosts)} hosts on {args.peers} peers ({roles['ok']} ok, {roles['slow']} slow "
          f"at {args.slow_ms} ms per request, {roles['failing']} failing, {roles['refusing']} refusing), "
          f"{args.auth} over HTTP; {os.cpu_count()} CPUs, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"{'client':<7} {'throttle':>8} {'hosts':>6} {'wall s':>7} {'CPU s':>6} {'peer CPU s':>10} "
          f"{'peak RSS MiB':>12} {'peak fds':>8} "
          f"{'sockets':>7} {'exit':>4} {'ok':>5} {'failed':>6} {'unreach':>7} {'objects':>7} {'shells left':>11}")
    for client, throttle, n, run, counts, left, right in runs:
        print(f"{client:<7} {throttle:>8} {n:>6} {run['wall']:>7.1f} {run['cpu']:>6.1f} {run['peer_cpu']:>10.1f} "
              f"{run['rss_mib']:>12.1f} {run['fds']:>8} "
              f"{run['sockets']:>7} {run['code'] if client == 'psrp' else '-':>4} {counts['ok']:>5} "
              f"{counts['failed']:>6} {counts['unreachable']:>7} {counts['objects']:>7} {left:>11}"
              f"{'' if right else '  (counts differ from the roles)'}")
    return 0 if all(right and left == 0 for *_, left, right in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
