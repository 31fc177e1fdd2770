#!/usr/bin/env python3
"""Airflow benchmark: 10,000 file-system objects to XCom, our provider against Airflow's PSRP provider.

One run, one test peer (tests/peer), Kerberos over HTTP with message encryption, each case
an ``airflow dags test`` process (Airflow 3 runs the task inside that process, so its peak
RSS is the task process's; an empty task gives Airflow's own share), in the Airflow venv of
tests/airflow/venv.sh with our wheel built in release mode:

- ours, XCom: ``PsrpOperator(cmdlet="Get-LargeOutput")`` in JEA.Maintenance; the objects
  are converted to JSON on the worker.
- original, XCom: the PSRP provider's ``PsrpOperator``, same cmdlet, in Microsoft.PowerShell
  (it appends ``ConvertTo-Json``, which JEA.Maintenance does not expose): the peer
  serializes all objects into one JSON string (as Windows would), pypsrp receives it.
- Airflow alone returning the same XCom: an ``@task`` that reads our case's XCom value (saved
  to a file by this script) in its execute and returns it, so its time after execute is Airflow storing
  that XCom, with no PSRP at all.
- ours without XCom at 10,000 and 50,000 objects (objects decoded and dropped as they
  arrive: memory stays flat), and the original without XCom at 10,000 (pypsrp keeps them).

Printed per case: the task's duration (from the execution API's "Task started" to dag.test()'s
"end task" in its log: templates, execute, XCom push, final state) and its execute part
(up to the XCom push, which is Airflow's work and the same for both), the process's
wall and CPU time and peak RSS (wait4), the peer's own CPU time (its control endpoint; for
the original this includes the emulated ConvertTo-Json, work a Windows host would do), and
the XCom size. Needs the Debian packages and venv of tests/peer/setup.sh.

Usage: tests/bench/airflow_xcom.py [--xcom-counts 10000] [--stream-counts 10000,50000]
       [--original-stream-counts 10000] [--wheel PATH | --no-build]
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def airflow_venv() -> pathlib.Path:
    return pathlib.Path(subprocess.check_output([str(TESTS / "airflow" / "venv.sh")], text=True).strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--xcom-counts", default="10000")
    parser.add_argument("--stream-counts", default="10000,50000")
    parser.add_argument("--original-stream-counts", default="10000")
    parser.add_argument("--wheel", help="our wheel (default: built here with maturin --release)")
    parser.add_argument("--no-build", action="store_true", help="use the psrp_client installed in the venv")
    args = parser.parse_args()

    venv = airflow_venv()
    python = venv / "bin" / "python"
    if not args.no_build:
        wheel = args.wheel
        if not wheel:
            out = ROOT / "target" / "airflow-wheel-release"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            subprocess.run([str(venv / "bin" / "maturin"), "build", "--quiet", "-m",
                            str(ROOT / "python" / "Cargo.toml"), "--release", "--locked", "--compatibility", "linux",
                            "--out", str(out), "-i", str(python)], check=True)
            wheel = str(next(out.glob("psrp_client-*.whl")))
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "--force-reinstall",
                        "--no-deps", wheel], check=True)

    peer_venv = os.environ.get("PSRP_VENV") or subprocess.check_output([str(TESTS / "venv.sh")], text=True).strip()
    peer = subprocess.Popen([os.path.join(peer_venv, "bin", "python"), "-m", "peer"], cwd=TESTS,
                            env=dict(os.environ, PYTHONPATH=str(TESTS)), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    line = peer.stdout.readline() if peer.stdout else ""
    if not line:
        raise SystemExit("the test peer did not start")
    info = json.loads(line)
    home = tempfile.mkdtemp(prefix="psrp-airflow-bench-")
    port = info["http_port"]
    env = dict(
        os.environ,
        AIRFLOW_HOME=home,
        AIRFLOW__CORE__DAGS_FOLDER=str(pathlib.Path(__file__).resolve().parent / "airflow_dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        KRB5_CONFIG=info["krb5_config"],
        KRB5CCNAME="FILE:" + info["ccache"],
        PSRP_PORT=str(port),
        PSRP_BENCH_XCOM_COUNTS=args.xcom_counts,
        PSRP_BENCH_STREAM_COUNTS=args.stream_counts,
        PSRP_BENCH_ORIGINAL_STREAM_COUNTS=args.original_stream_counts,
        AIRFLOW_CONN_PSRP_BENCH_JEA=json.dumps({"conn_type": "psrp_client", "host": "localhost", "port": port,
                                                "extra": {"auth": "kerberos", "ssl": False,
                                                          "configuration_name": "JEA.Maintenance"}}),
        AIRFLOW_CONN_PSRP_BENCH_FULL=json.dumps({"conn_type": "psrp_client", "host": "localhost", "port": port,
                                                 "extra": {"auth": "kerberos", "ssl": False,
                                                           "configuration_name": "Microsoft.PowerShell"}}),
    )
    try:
        subprocess.run([str(venv / "bin" / "airflow"), "db", "migrate"], env=env, check=True,
                       stdout=subprocess.DEVNULL)

        def peer_cpu() -> float:
            with urllib.request.urlopen(info["control_url"] + "/stats", timeout=10) as r:
                return float(json.load(r)["cpu_seconds"])

        cases = [("bench_noop", "Airflow alone (an empty @task)", None)]
        for c in args.xcom_counts.split(","):
            cases.append((f"bench_ours_xcom_{c}", "ours, XCom (JEA.Maintenance)", int(c)))
            cases.append((f"bench_original_xcom_{c}", "original, XCom via ConvertTo-Json", int(c)))
            # After ours: returns the same XCom value with no PSRP (Airflow's own share of the task).
            cases.append((f"bench_airflow_xcom_{c}", "Airflow alone, the same XCom", int(c)))
        for c in [c for c in args.stream_counts.split(",") if c]:
            cases.append((f"bench_ours_stream_{c}", "ours, no XCom", int(c)))
        for c in [c for c in args.original_stream_counts.split(",") if c]:
            cases.append((f"bench_original_stream_{c}", "original, no XCom", int(c)))

        # Warm-up: the peer serializes Get-LargeOutput's template once per process.
        subprocess.run([str(venv / "bin" / "airflow"), "dags", "test", cases[0][0]], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        rows = []
        for dag_id, label, count in cases:
            log_path = os.path.join(home, f"{dag_id}.log")
            cpu0 = peer_cpu()
            start = time.monotonic()
            with open(log_path, "w") as log:
                proc = subprocess.Popen([str(venv / "bin" / "airflow"), "dags", "test", dag_id], env=env,
                                        stdout=log, stderr=subprocess.STDOUT)
                _, status, usage = os.wait4(proc.pid, 0)
            wall = time.monotonic() - start
            facts = json.loads(subprocess.check_output([str(python), "-c", FACTS, dag_id], env=env, text=True))
            task_s, execute_s = task_seconds(log_path)
            row = {
                "case": label, "dag_id": dag_id, "objects": count, "state": facts["state"],
                "task_s": task_s, "execute_s": execute_s, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                "rss_mib": usage.ru_maxrss / 1024, "peer_cpu_s": peer_cpu() - cpu0,
                "xcom_mb": facts["xcom_bytes"] / 1e6 if facts["xcom_bytes"] else None,
                "xcom_items": facts["xcom_items"],
            }
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            if facts["state"] != "success" or os.waitstatus_to_exitcode(status) != 0:
                print(f"{dag_id} did not succeed; its log: {log_path}", file=sys.stderr)
    finally:
        if peer.stdin:
            peer.stdin.close()
        peer.wait(timeout=30)
    if all(r["state"] == "success" for r in rows):
        shutil.rmtree(home, ignore_errors=True)  # the database, logs and the saved 18 MB XCom value

    header = f"{'case':<34} {'objects':>7} {'task s':>6} {'execute s':>9} {'process wall s':>14} {'CPU s':>6} " \
             f"{'peak RSS MiB':>12} {'peer CPU s':>10} {'XCom MB':>7}"
    print(header)
    for r in rows:
        xcom = "-" if r["xcom_mb"] is None else f"{r['xcom_mb']:.1f}"
        print(f"{r['case']:<34} {r['objects'] or '-':>7} {r['task_s']:>6.2f} {r['execute_s']:>9.2f} "
              f"{r['wall_s']:>14.2f} {r['cpu_s']:>6.2f} {r['rss_mib']:>12.1f} {r['peer_cpu_s']:>10.2f} {xcom:>7}")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")


def task_seconds(log_path: str) -> "tuple[float, float]":
    """(task, execute) seconds from the task log's timestamps: the task from the execution API's
    "Task started" to dag.test()'s "end task" (templates, execute, XCom push, final state), without
    Airflow's start-up; execute up to the "Post Execute" group (before the XCom push)."""
    import datetime

    marks: "dict[str, str]" = {}
    with open(log_path, errors="replace") as log:
        for line in log:
            for key, text in (("start", "Task started"), ("post", "::group::Post Execute"),
                              ("end", "[DAG TEST] end task")):
                if text in line and key not in marks:
                    marks[key] = line.split(" ", 1)[0]
    if len(marks) < 3:
        return float("nan"), float("nan")
    at = {k: datetime.datetime.fromisoformat(v.replace("Z", "+00:00")) for k, v in marks.items()}
    return (at["end"] - at["start"]).total_seconds(), (at["post"] - at["start"]).total_seconds()


# Run in the Airflow venv: the task's state, and the size of its return_value XCom.
FACTS = r"""
import json, sys
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from sqlalchemy import select
dag_id = sys.argv[1]
with create_session() as s:
    ti = s.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag_id)
                   .order_by(TaskInstance.start_date.desc())).first()
    x = s.scalars(select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == ti.run_id,
                                          XComModel.key == "return_value")).first()
    value = None if x is None else x.value
    if value is not None and dag_id.startswith("bench_ours_xcom_"):
        import os  # the value for the "Airflow alone, the same XCom" case
        with open(os.path.join(os.environ["AIRFLOW_HOME"], dag_id + ".xcom.json"), "w") as f:
            json.dump(value, f)
    items = None
    if isinstance(value, list):
        items = len(value[0]) if len(value) == 1 and isinstance(value[0], list) else len(value)
    print(json.dumps({"state": str(getattr(ti.state, "value", ti.state)),
                      "xcom_bytes": None if value is None else len(json.dumps(value)), "xcom_items": items}))
"""

if __name__ == "__main__":
    main()
