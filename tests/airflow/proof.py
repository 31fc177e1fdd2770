#!/usr/bin/env python3
"""Real Airflow against the test peer: our provider and Airflow's PSRP provider side by side.

Run by tests/airflow/run.sh inside the Airflow venv (tests/airflow/venv.sh) with our wheel
installed. One process: it starts a test peer (tests/peer, with the peer venv's Python),
points Kerberos and two Airflow connections at it, runs ``airflow db migrate`` on SQLite in a
temporary AIRFLOW_HOME, then runs the DAGs of tests/airflow/dags with ``dag.test()`` (what
``airflow dags test`` runs, without its ~5 s start-up per DAG) and asserts task states, XCom
values, task log lines and what the peer recorded:

1. Restart-Computer {"Force": None} in JEA.Maintenance over Kerberos/HTTP with Set-PSDebug
   -Trace 1 (a pypsrp Command) as session init: the trace line in the task log, success,
   the peer's /restarts; the original provider's same DAG fails (it appends ConvertTo-Json,
   not visible in JEA) and Restart-Computer never runs.
2. Get-ChildItem to XCom: equal to `psrp invoke ... -o json`.
3. An error record: the task fails, the record in the log and in the exception.
4. The original provider: fails in JEA.Maintenance, works in Microsoft.PowerShell with the
   peer's ConvertTo-Json (its XCom shape and \\/Date()\\/ dates).
5. Deferrable: the same XCom through the trigger; then the trigger's restart safety: a
   re-run of the same trigger refuses without connecting, and a cancelled trigger stops its
   pipeline and deletes its shell.
6. The triggerer killed (SIGKILL) while a deferred job runs, then restarted: the new trigger
   connects to the recorded shell and command, the task ends with the complete output, the
   peer saw one Command for the job and no shell is left.

Environment: PSRP_VENV (the peer's venv), PSRP_BIN (the psrp binary).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import typing
import urllib.request
import uuid

HERE = pathlib.Path(__file__).resolve().parent
TESTS = HERE.parent
ROOT = TESTS.parent

failures: list[str] = []


def check(ok: bool, what: str, detail: str = "") -> None:
    print(("  ok    " if ok else "  FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)
        if detail:
            print(detail, flush=True)


# ---- the peer ----------------------------------------------------------------------------------


def start_peer() -> tuple[subprocess.Popen, dict[str, typing.Any]]:
    venv = os.environ.get("PSRP_VENV") or str(ROOT / "target" / "venv")
    env = dict(os.environ, PYTHONPATH=str(TESTS))
    proc = subprocess.Popen([os.path.join(venv, "bin", "python"), "-m", "peer"], cwd=TESTS, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        raise SystemExit("the test peer did not start")
    return proc, json.loads(line)


class Peer:
    def __init__(self, info: dict[str, typing.Any]) -> None:
        self.info = info

    def control(self, path: str, body: typing.Any = None) -> typing.Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.info["control_url"] + path, data=data,
                                     method="GET" if body is None else "POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def wsman_log(self) -> list[dict[str, typing.Any]]:
        return [r for r in self.control("/log") if r.get("kind") == "wsman"]


proc, info = start_peer()
peer = Peer(info)
port = info["http_port"]
home = tempfile.mkdtemp(prefix="psrp-airflow-")
os.environ.update(
    {
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__DAGS_FOLDER": str(HERE / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "KRB5_CONFIG": info["krb5_config"],
        "KRB5CCNAME": "FILE:" + info["ccache"],
        "PSRP_PORT": str(port),
        # One connection serves both providers: its extras are the original's, the port field is ours.
        "AIRFLOW_CONN_PSRP_PEER_JEA": json.dumps({
            "conn_type": "psrp_client", "host": "localhost", "port": port,
            "extra": {"auth": "kerberos", "ssl": False, "configuration_name": "JEA.Maintenance"},
        }),
        # Connection mapping cases (section 0): a URI of our type, and one of the original's type.
        "AIRFLOW_CONN_MAP_URI": "psrp-client://alice%40EXAMPLE.COM:secret@win01:5986/?auth=ntlm&cert_validation=false",
        "AIRFLOW_CONN_MAP_ORIGINAL": json.dumps({
            "conn_type": "psrp", "host": "win01", "login": "bob", "password": "secret",
            "extra": {"auth": "kerberos", "ssl": False, "negotiate_service": "WSMAN", "read_timeout": 90,
                      "reconnection_retries": 3, "reconnection_backoff": 0.5},
        }),
        "AIRFLOW_CONN_MAP_BAD": json.dumps({"conn_type": "psrp", "host": "win01", "extra": {"port": 5985}}),
        "AIRFLOW_CONN_PSRP_PEER_FULL": json.dumps({
            "conn_type": "psrp_client", "host": "localhost", "port": port,
            "extra": {"auth": "kerberos", "ssl": False, "configuration_name": "Microsoft.PowerShell"},
        }),
    }
)

try:
    started = time.monotonic()
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "airflow"), "db", "migrate"], check=True,
                   stdout=subprocess.DEVNULL)
    print(f"airflow db migrate: {time.monotonic() - started:.1f} s", flush=True)

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bag = DagBag(dag_folder=str(HERE / "dags"))
    check(not bag.import_errors, "the DAG file imports (both providers)", json.dumps(bag.import_errors, indent=1))

    class Run(typing.NamedTuple):
        state: str
        log: str
        xcom: dict[tuple[str, str], typing.Any]
        run_id: str

    # ---- 0. the provider is discovered; connection mapping: Airflow parses, the hook maps ---------
    import warnings

    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    providers = ProvidersManagerTaskRuntime()  # what a task's runtime discovers
    hook_info = providers.hooks.get("psrp_client")
    check("psrp-client" in providers.providers and hook_info is not None
          and hook_info.hook_class_name == "psrp_client.airflow.hooks.PsrpHook",
          "provider: Airflow finds psrp-client (entry point) and its psrp_client connection type",
          repr(sorted(providers.providers)))

    from psrp_client.airflow.hooks import PsrpHook

    def mapped(conn_id: str, **options: typing.Any) -> typing.Any:
        """The hook's RunspacePool arguments, or the exception (the hook's log line goes nowhere)."""
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                return PsrpHook(conn_id, **options).pool_arguments()
            except Exception as e:
                return e

    def shown(value: typing.Any) -> str:
        return repr({k: v for k, v in value.items() if k != "password"} if isinstance(value, dict) else value)

    got = mapped("map_uri")
    check(got == {"host": "win01", "port": 5986, "scheme": "https", "auth": "ntlm", "username": "alice@EXAMPLE.COM",
                  "password": "secret", "insecure_skip_tls_verify": True},
          "connection: a psrp-client:// URI; port 5986 means HTTPS; cert_validation false is the loud opt-out",
          shown(got))
    got = mapped("map_original", wsman_options={"port": 15985, "auth": "ntlm"})
    check(got == {"host": "win01", "port": 15985, "scheme": "http", "auth": "kerberos", "username": "bob",
                  "password": "secret", "spn": "WSMAN/win01", "read_timeout": 90.0, "reconnection_retries": 3,
                  "reconnection_backoff": 0.5},
          "connection: an original `psrp` connection; extras beat wsman_options; negotiate_service makes the SPN; "
          "reconnection_retries/backoff are used",
          shown(got))
    got = mapped("map_bad")
    check(isinstance(got, Exception) and "Unexpected extra configuration keys: port" in str(got)
          and "Port field" in str(got), "connection: an unknown extra is refused, with the allowed keys", shown(got))

    def run_dag(dag_id: str) -> Run:
        dag = bag.get_dag(dag_id)
        out = io.StringIO()
        t0 = time.monotonic()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            dr = dag.test()
        with create_session() as session:
            rows = session.scalars(
                select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == dr.run_id)
            ).all()
            xcom = {(x.task_id, x.key): x.value for x in rows}
        state = str(getattr(dr.state, "value", dr.state))
        print(f"{dag_id}: {state} ({time.monotonic() - t0:.1f} s)", flush=True)
        if os.environ.get("PSRP_AIRFLOW_SHOW_LOGS"):
            print(out.getvalue(), flush=True)
        return Run(state, out.getvalue(), xcom, dr.run_id)

    # ---- 1. the classic example: Restart-Computer -Force with Set-PSDebug -Trace 1, in JEA -------
    restarts = len(peer.control("/restarts"))
    peer.control("/log/reset", {})
    r = run_dag("ours_restart_jea")
    ops = peer.wsman_log()
    check(bool(ops) and all(o.get("encrypted") and (o.get("auth") or {}).get("mechanism") == "kerberos" for o in ops),
          "ours: Kerberos over HTTP, every message encrypted", json.dumps(ops[:3]))
    check(r.state == "success", "ours: Restart-Computer in JEA.Maintenance succeeds", r.log)
    check("DEBUG:     1+  >>>> Restart-Computer -Force" in r.log, "ours: the Set-PSDebug trace line is in the task log")
    calls = peer.control("/restarts")
    check(len(calls) == restarts + 1 and calls[-1]["configuration"] == "JEA.Maintenance" and calls[-1]["force"],
          "ours: the peer recorded Restart-Computer -Force in JEA.Maintenance", json.dumps(calls[-1:]))
    check(r.xcom.get(("restart", "return_value")) == [], "ours: XCom of a command without output is []")
    check(peer.control("/shells")["open"] == 0, "ours: the shell was deleted")

    restarts = len(peer.control("/restarts"))
    r = run_dag("original_restart_jea")
    check(r.state == "failed", "original: the same DAG fails in JEA.Maintenance (do_xcom_push appends ConvertTo-Json)")
    check("The term 'ConvertTo-Json' is not recognized" in r.log, "original: ConvertTo-Json is not found", r.log)
    check(len(peer.control("/restarts")) == restarts, "original: Restart-Computer did not run")

    # ---- 2. Get-ChildItem to XCom, compared with the CLI's JSON -------------------------------------
    cli = subprocess.run(
        [os.environ.get("PSRP_BIN") or str(ROOT / "target" / "debug" / "psrp"), "invoke", "Get-ChildItem", "-p",
         "Path=C:\\Temp", "-H", "localhost", "--port", str(port), "-a", "kerberos", "-c", "JEA.Maintenance",
         "-o", "json"],
        check=True, capture_output=True, text=True,
    )
    cli_json = json.loads(cli.stdout)
    r = run_dag("ours_files_jea")
    files_xcom = r.xcom.get(("files", "return_value"))
    check(r.state == "success", "ours: Get-ChildItem in JEA.Maintenance succeeds", r.log)
    check(files_xcom == cli_json, "ours: the XCom value equals `psrp invoke Get-ChildItem ... -o json`",
          json.dumps(files_xcom)[:2000])
    check([o["Name"] for o in files_xcom or []] == ["Logs", "data.csv", "readonly.log", "report.txt"],
          "ours: one XCom item per file-system object")

    # ---- 3. an error record fails the task, with the record in the log and the exception ------------
    r = run_dag("ours_error_jea")
    check(r.state == "failed", "ours: Get-Item C:\\nope fails the task")
    check("ERROR: Get-Item : Cannot find path 'C:\\nope' because it does not exist." in r.log,
          "ours: the error record is in the task log", r.log)
    check("PathNotFound,Microsoft.PowerShell.Commands.GetItemCommand" in r.log,
          "ours: with its FullyQualifiedErrorId")
    check("AirflowException: Get-Item: the PowerShell pipeline completed with 1 error record" in r.log,
          "ours: the exception message carries the error", r.log)

    r = run_dag("ours_exit_code_full")
    check(r.state == "failed" and "the PowerShell pipeline completed with exit code 3" in r.log,
          "ours: a non-zero exit code (exit 3) fails the task", r.log)
    r = run_dag("ours_log_output_jea")
    check(r.state == "success" and '{"Name": "data.csv", "Length": 4096' in r.log
          and ("files", "return_value") not in r.xcom,
          "ours: without XCom, each output object is logged as JSON", r.log)

    # ---- 4. the original provider side by side --------------------------------------------------------
    r = run_dag("original_files_jea")
    check(r.state == "failed" and "The term 'ConvertTo-Json' is not recognized" in r.log,
          "original: Get-ChildItem with XCom fails in JEA.Maintenance (ConvertTo-Json not visible)", r.log)
    r = run_dag("original_files_full")
    original = r.xcom.get(("files", "return_value"))
    check(r.state == "success", "original: works in Microsoft.PowerShell with the peer's ConvertTo-Json", r.log)
    check(isinstance(original, list) and len(original) == 1
          and [o["Name"] for o in original[0]] == [o["Name"] for o in cli_json],
          "original: XCom is [<the one array ConvertTo-Json printed>], same objects", json.dumps(original)[:2000])
    check(str(original[0][1]["LastWriteTime"]).startswith("/Date(") if original else False,
          "original: dates as ConvertTo-Json 5.1 writes them (\\/Date(ms)\\/)")

    # ---- 5. deferrable --------------------------------------------------------------------------------
    r = run_dag("ours_files_jea_deferrable")
    check(r.state == "success", "ours deferrable: succeeds", r.log)
    check(r.xcom.get(("files", "return_value")) == cli_json, "ours deferrable: the same XCom value as the CLI")
    claim = r.xcom.get(("files", "psrp_job"))
    job = claim.get("job_id") if isinstance(claim, dict) else None
    check(f"Deferring to the triggerer: job {job}" in r.log and f"Job {job}: running Get-ChildItem" in r.log
          and f"Job {job}: invocation state Completed" in r.log,
          "ours deferrable: the task deferred, the trigger ran the job, the task resumed", r.log)
    check(isinstance(claim, dict) and uuid.UUID(claim["job_id"]) is not None
          and uuid.UUID(claim.get("shell_id", "")) and uuid.UUID(claim.get("command_id", ""))
          and claim.get("phase") == "finished" and claim.get("idle_timeout") == 7200,
          "ours deferrable: the trigger recorded its claim (XCom psrp_job: job, shell and command ids)",
          json.dumps(claim))
    check(not any(k in json.dumps(claim).lower() for k in ("password", "secret", "ccache", "token")),
          "ours deferrable: the claim holds no secret", json.dumps(claim))

    deferred_run_id = r.run_id
    r = run_dag("ours_error_jea_deferrable")
    check(r.state == "failed" and "ERROR: Get-Item : Cannot find path 'C:\\nope' because it does not exist." in r.log
          and "AirflowException: Get-Item: the PowerShell pipeline completed with 1 error record" in r.log,
          "ours deferrable: an error record is logged by execute_complete and fails the task", r.log)

    # Restart safety, on the same task instance: Airflow would run the trigger's run() again.
    import psutil
    import structlog
    from airflow.sdk.api.datamodels._generated import TaskInstance as TaskInstanceSDK
    from airflow.sdk.execution_time.supervisor import (
        InProcessSupervisorComms,
        InProcessTestSupervisor,
        set_supervisor_comms,
    )

    from psrp_client.airflow.triggers import PsrpTrigger

    dag = bag.get_dag("ours_files_jea_deferrable")
    with create_session() as session:
        ti = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id,
                                                        TaskInstance.run_id == deferred_run_id)).one()
        sdk_ti = TaskInstanceSDK(id=ti.id, task_id=ti.task_id, dag_id=ti.dag_id, run_id=ti.run_id,
                                 try_number=ti.try_number, map_index=ti.map_index, dag_version_id=ti.dag_version_id)

    def trigger_for(job_id: str, invocation: dict[str, typing.Any]) -> PsrpTrigger:
        return PsrpTrigger(psrp_conn_id="psrp_peer_jea", job_id=job_id, invocation=invocation,
                           wsman_options={"port": port, "negotiate_service": "HTTP"},
                           task={"dag_id": sdk_ti.dag_id, "task_id": sdk_ti.task_id, "run_id": sdk_ti.run_id,
                                 "map_index": sdk_ti.map_index, "try_number": sdk_ti.try_number})

    def in_triggerer(body: typing.Callable[[], typing.Awaitable[typing.Any]]) -> typing.Any:
        """Runs a coroutine with the supervisor comms a trigger has (as dag.test() runs triggers)."""
        supervisor = InProcessTestSupervisor(id=sdk_ti.id, pid=os.getpid(), process=psutil.Process(),
                                             process_log=structlog.get_logger(logger_name="task").bind(),
                                             client=InProcessTestSupervisor._api_client())
        supervisor.comms = InProcessSupervisorComms(supervisor=supervisor)
        with set_supervisor_comms(supervisor.comms):
            return asyncio.run(body())

    files_spec = dag.get_task("files").invocation_spec()
    creates = sum(1 for o in peer.wsman_log() if o["action"] == "Create")
    event = in_triggerer(lambda: anext(trigger_for(claim["job_id"], files_spec).run()))
    check(event.payload["status"] == "refused" and "was started by an earlier run of this trigger"
          in event.payload["message"], "restart: a re-run of the same trigger refuses", json.dumps(event.payload))
    check(sum(1 for o in peer.wsman_log() if o["action"] == "Create") == creates,
          "restart: the refusing re-run did not connect")

    def claim_of(job_id: str) -> typing.Any:
        with create_session() as session:
            row = session.scalars(select(XComModel).where(
                XComModel.dag_id == sdk_ti.dag_id, XComModel.run_id == sdk_ti.run_id,
                XComModel.task_id == sdk_ti.task_id, XComModel.key == "psrp_job")).first()
            value = None if row is None else row.value
        return value if isinstance(value, dict) and value.get("job_id") == job_id else None

    sleep_job = str(uuid.uuid4())
    sleep_spec = {"name": "Start-Sleep", "parameters": {"Seconds": 60}, "arguments": [], "script": False}

    async def cancel_when_running() -> float:
        task = asyncio.ensure_future(anext(trigger_for(sleep_job, sleep_spec).run()))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # streaming: the command runs and the trigger is connected to it
            shells = await asyncio.to_thread(peer.control, "/shells")
            if any(s.get("commands") and s["state"] == "Connected" for s in shells["shells"]) and (
                    (await asyncio.to_thread(claim_of, sleep_job) or {}).get("phase") == "running"):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        task.cancel()  # what a triggerer shutdown does to its triggers
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return time.monotonic() - t0

    peer.control("/log/reset", {})
    took = in_triggerer(cancel_when_running)
    ops = [o["action"] for o in peer.wsman_log()]
    check("Signal" in ops and ops[-1] == "Delete", f"restart: a cancelled trigger stopped its pipeline and deleted "
          f"its shell ({took:.2f} s after the cancel)", json.dumps(ops))
    check(peer.control("/shells")["open"] == 0, "restart: no shell left on the peer")
    event = in_triggerer(lambda: anext(trigger_for(sleep_job, sleep_spec).run()))
    check(event.payload["status"] == "refused" and "while its command ran, and stopped it" in event.payload["message"],
          "restart: its re-run refuses and says the earlier run was stopped", json.dumps(event.payload))

    # Cancelled while connecting (a slow Create): the command was never sent, so the re-run runs it.
    connect_job = str(uuid.uuid4())
    date_spec = {"name": "Get-Date", "parameters": {}, "arguments": [], "script": False}
    peer.control("/faults", {"kind": "delay", "action": "Create", "delay_ms": 2500, "count": 1})

    async def cancel_while_connecting() -> None:
        task = asyncio.ensure_future(anext(trigger_for(connect_job, date_spec).run()))
        await asyncio.sleep(1.0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    in_triggerer(cancel_while_connecting)
    stopped = claim_of(connect_job) or {}
    check(stopped.get("phase") == "connecting" and bool(stopped.get("stopped_at")),
          "restart: a trigger cancelled while connecting records that its command was not sent", json.dumps(stopped))
    deadline = time.monotonic() + 15
    while peer.control("/shells")["open"] and time.monotonic() < deadline:
        time.sleep(0.2)  # the delayed Create completes on the peer after the cancel; its shell must go
    check(peer.control("/shells")["open"] == 0, "restart: the shell of the cancelled Create was deleted")
    event = in_triggerer(lambda: anext(trigger_for(connect_job, date_spec).run()))
    result = event.payload.get("result") or {}
    check(event.payload["status"] == "finished" and result.get("state") == "Completed"
          and result.get("output_count") == 1, "restart: its re-run runs the command once", json.dumps(event.payload))

    # ---- 6. the triggerer killed (SIGKILL) while the job runs, then restarted ---------------------------
    # A child process runs the deferrable DAG with dag.test(), which runs the trigger in line: that
    # process is the triggerer. It is killed once the command runs and the trigger is connected to
    # it; a new trigger built from the Trigger row (as a restarted triggerer does) picks the job up,
    # and the task resumes with its event (dag.test()'s own resume path).
    from airflow.models.dagrun import DagRun
    from airflow.models.trigger import Trigger
    from airflow.sdk._shared.module_loading import import_string
    from airflow.sdk.definitions.dag import _run_task
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor
    from airflow.sdk.serde import serialize
    from airflow.utils.state import TaskInstanceState

    killed_dag = "ours_killed_triggerer_full"
    peer.control("/log/reset", {})
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom airflow.dag_processing.dagbag import DagBag\n"
         f"DagBag(dag_folder={str(HERE / 'dags')!r}).get_dag({killed_dag!r}).test()"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    t0 = time.monotonic()

    def killed_claim() -> typing.Any:
        with create_session() as session:
            row = session.scalars(select(XComModel).where(
                XComModel.dag_id == killed_dag, XComModel.key == "psrp_job")).first()
            return None if row is None else row.value

    claim = None
    while time.monotonic() - t0 < 60 and child.poll() is None:
        claim = killed_claim()
        if isinstance(claim, dict) and claim.get("phase") == "running":
            shells = peer.control("/shells")["shells"]
            if any(s["shell_id"].lower() == claim["shell_id"].lower() and s["state"] == "Connected" for s in shells):
                break  # the trigger is connected to its command
        time.sleep(0.1)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    killed_at = time.monotonic() - t0
    shells = peer.control("/shells")["shells"]
    check(isinstance(claim, dict) and claim.get("phase") == "running"
          and [s["state"] for s in shells if s["shell_id"].lower() == claim["shell_id"].lower()] == ["Connected"],
          f"killed triggerer: SIGKILL while the command ran ({killed_at:.1f} s), its shell left connected",
          json.dumps([claim, shells]))
    with create_session() as session:
        dr = session.scalars(select(DagRun).where(DagRun.dag_id == killed_dag)).one()
        ti = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == killed_dag)).one()
        row = session.get(Trigger, ti.trigger_id) if ti.trigger_id else None
        classpath, kwargs = (row.classpath, row.kwargs) if row else (None, None)
        session.expunge(ti)
    check(row is not None, "killed triggerer: the task's Trigger row is in the database", repr(ti))
    if row is not None:
        restarted = import_string(classpath)(**kwargs)
        ti_sdk = TaskInstanceSDK(id=ti.id, task_id=ti.task_id, dag_id=ti.dag_id, run_id=ti.run_id,
                                 try_number=ti.try_number, map_index=ti.map_index, dag_version_id=ti.dag_version_id)
        t1 = time.monotonic()
        event = InProcessTestSupervisor.run_trigger_in_process(trigger=restarted, ti=ti_sdk)
        payload = event.payload if event else {}
        check(payload.get("status") == "finished" and payload.get("job_id") == claim["job_id"],
              f"killed triggerer: the restarted trigger picked the job up ({time.monotonic() - t1:.1f} s)",
              json.dumps(payload)[:2000])
        task = bag.get_dag(killed_dag).get_task("job")
        ti.next_method = "execute_complete"
        ti.next_kwargs = {"event": serialize(payload)}
        with create_session() as session:
            ti.state = TaskInstanceState.SCHEDULED
            session.add(ti)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            _run_task(ti=ti, task=task)
        with create_session() as session:
            state = session.scalars(select(TaskInstance.state).where(TaskInstance.dag_id == killed_dag)).one()
            value = session.scalars(select(XComModel.value).where(
                XComModel.dag_id == killed_dag, XComModel.key == "return_value")).first()
        check(str(getattr(state, "value", state)) == "success" and value == cli_json,
              "killed triggerer: the task ends with the complete output (XCom equal to the CLI's Get-ChildItem)",
              f"{state} {json.dumps(value)[:1000]} {out.getvalue()[-3000:]}")
        ops = [o for o in peer.wsman_log() if (o.get("shell_id") or "").lower() == claim["shell_id"].lower()]
        actions = [o["action"] for o in ops]
        check(actions.count("Command") == 1 and actions.count("Connect") >= 4 and "Disconnect" in actions,
              "killed triggerer: one Command for the job (no second run); Connect and Disconnect picked it up",
              json.dumps(actions))
        check(peer.control("/shells")["open"] == 0, "killed triggerer: no shell left on the peer")
    del dr
finally:
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(home, ignore_errors=True)  # the SQLite database and airflow.cfg

if failures:
    print(f"\n{len(failures)} check(s) failed: " + "; ".join(failures))
    sys.exit(1)
print("\nAll Airflow checks passed.")
