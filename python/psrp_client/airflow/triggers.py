"""``PsrpTrigger``: the deferrable operator's pipeline, run in the triggerer on ``AsyncRunspacePool``.

The trigger opens the runspace pool, runs the session-init commands and the command, reads
every event asynchronously (no worker slot held, no thread per job), then fires one event
with the records, the output (when it goes to XCom), the final state and the exit code.
``PsrpOperator.execute_complete`` logs the records and fails or pushes XCom.

Triggerer restarts. Airflow runs a trigger's ``run()`` again from the start on another
triggerer when the one running it stops or dies. psrp cannot yet disconnect from a
WinRM shell and reconnect to it later (WS-Man Disconnect/Reconnect), so a restarted
trigger cannot pick up the running pipeline; running the command a second time could
repeat a non-idempotent action (Restart-Computer, a payment run). So:

- Before it connects, the trigger records a claim, the XCom ``psrp_job`` of its task
  instance: ``{"job_id", "claimed_at", "triggerer", "pid"}``, where ``job_id`` is a UUID the
  operator drew when it deferred and that is in the trigger's kwargs. If it cannot write
  the claim, it does not run the command.
- A ``run()`` that finds a claim with its own ``job_id`` is a re-run: it does not connect
  and fires a ``refused`` event; the task fails (without retries) saying when and where
  the earlier run started and whether it was stopped cleanly. A human checks the host and
  clears the task. XComs are cleared when a new try starts, not when a deferred task
  resumes, so a retry or a cleared task runs the command again, as it would without
  deferral.
- When the trigger is cancelled (triggerer shutdown or rebalancing, task timeout, the task
  marked failed or cleared), it stops the pipeline (WS-Man Signal) and deletes the shell
  before it exits, and adds ``stopped_at`` and ``phase`` to the claim. If it was still
  connecting (opening the pool, running the session-init commands), the command was never
  sent, and the re-run runs it.
- When the triggerer process is killed outright (SIGKILL, OOM, host lost), nothing runs on
  the client side: the command keeps running on the Windows host until it ends or the
  shell's idle timeout (WinRM ``IdleTimeout``, 2 hours by default) deletes it; the re-run
  refuses as above, so the command still runs at most once per try.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from psrp_client import AsyncRunspacePool, PipelineFailed, PsrpError
from psrp_client.airflow import commands
from psrp_client.airflow.hooks import PsrpHook
from psrp_client.airflow.results import RunResult, output_json, record_entry, result_entries

CLAIM_KEY = "psrp_job"


class ClaimUnavailable(RuntimeError):
    """The claim XCom cannot be read or written (no Airflow execution context)."""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class PsrpTrigger(BaseTrigger):
    """Runs one PSRP pipeline in the triggerer and fires one event with its result.

    :param psrp_conn_id: the connection, read in the triggerer.
    :param job_id: a UUID drawn by the operator when it deferred: the claim's key.
    :param invocation: the command spec (``psrp_client.airflow.commands.spec``).
    :param session_init: specs of the session-init commands.
    :param wsman_options: / :param runspace_options: as for ``PsrpHook``.
    :param collect_output: carry the output objects in the event (for XCom).
    :param log_output: log each output object as JSON in the trigger's log.
    :param task: ``dag_id``, ``task_id``, ``run_id``, ``map_index``, ``try_number`` of the
        deferred task instance (where the claim XCom goes).
    """

    def __init__(
        self,
        *,
        psrp_conn_id: str,
        job_id: str,
        invocation: dict[str, Any],
        session_init: list[dict[str, Any]] | None = None,
        wsman_options: dict[str, Any] | None = None,
        runspace_options: dict[str, Any] | None = None,
        collect_output: bool = True,
        log_output: bool = False,
        task: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.psrp_conn_id = psrp_conn_id
        self.job_id = job_id
        self.invocation = invocation
        self.session_init = list(session_init or [])
        self.wsman_options = dict(wsman_options or {})
        self.runspace_options = dict(runspace_options or {})
        self.collect_output = collect_output
        self.log_output = log_output
        self.task_key = dict(task or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "psrp_conn_id": self.psrp_conn_id,
                "job_id": self.job_id,
                "invocation": self.invocation,
                "session_init": self.session_init,
                "wsman_options": self.wsman_options,
                "runspace_options": self.runspace_options,
                "collect_output": self.collect_output,
                "log_output": self.log_output,
                "task": self.task_key,
            },
        )

    # ---- the claim (an XCom of the deferred task instance) -------------------------------------

    def _xcom_target(self) -> dict[str, Any]:
        missing = [k for k in ("dag_id", "task_id", "run_id") if not self.task_key.get(k)]
        if missing:
            raise ClaimUnavailable(f"the trigger was created without the task instance ({', '.join(missing)})")
        return {
            "dag_id": self.task_key["dag_id"],
            "task_id": self.task_key["task_id"],
            "run_id": self.task_key["run_id"],
            "map_index": int(self.task_key.get("map_index", -1)),
        }

    async def _read_claim(self) -> Any:
        from airflow.sdk.execution_time.xcom import XCom

        # The SDK's sync calls work from a thread in the triggerer and in dag.test() alike.
        return await asyncio.to_thread(lambda: XCom.get_one(key=CLAIM_KEY, **self._xcom_target()))

    async def _write_claim(self, claim: dict[str, Any]) -> None:
        from airflow.sdk.execution_time.xcom import XCom

        await asyncio.to_thread(lambda: XCom.set(CLAIM_KEY, claim, **self._xcom_target()))

    async def claim(self) -> dict[str, Any] | None:
        """Records this job's claim; returns the earlier claim when this is a re-run that must not run.

        A re-run may run when the earlier run was cancelled while it was still connecting (opening
        the pool and running the session-init commands): its command was never sent.
        """
        earlier = await self._read_claim()
        mine = isinstance(earlier, dict) and earlier.get("job_id") == self.job_id
        if mine and not (earlier.get("stopped_at") and earlier.get("phase") == "connecting"):
            return dict(earlier)
        claim = {"job_id": self.job_id, "claimed_at": _now(), "triggerer": socket.gethostname(), "pid": os.getpid()}
        if mine:
            claim["previous_run"] = {k: earlier.get(k) for k in ("claimed_at", "triggerer", "pid", "stopped_at")}
            self.log.info("Job %s: the earlier run was cancelled before its command was sent; running it", self.job_id)
        await self._write_claim(claim)
        return None

    def _refusal(self, earlier: dict[str, Any]) -> str:
        if earlier.get("stopped_at"):
            how = (f"was cancelled at {earlier['stopped_at']} while its command was being started, and stopped it "
                   "(pipeline stopped, shell deleted)" if earlier.get("phase") == "starting" else
                   f"was cancelled at {earlier['stopped_at']} while its command ran, and stopped it (pipeline "
                   "stopped, shell deleted)")
        else:
            how = ("did not finish: its triggerer was killed or lost, and the command may still be running on the "
                   "host until WinRM deletes the idle shell")
        return (
            f"job {self.job_id} ({commands.describe(self.invocation)}) was started by an earlier run of this trigger "
            f"(claimed at {earlier.get('claimed_at')} by triggerer {earlier.get('triggerer')} pid "
            f"{earlier.get('pid')}), which {how}. The command may have run, partly or fully, and psrp cannot "
            "reconnect to its shell to read the result, so it is not run a second time. Check the host, then clear "
            "the task to run it again."
        )

    # ---- run -------------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        base = {"job_id": self.job_id, "invocation": self.invocation}
        try:
            earlier = await self.claim()
        except Exception as e:
            yield TriggerEvent({**base, "status": "error", "message": (
                f"job {self.job_id}: cannot record the job's claim (XCom {CLAIM_KEY!r}), so the command was not run "
                f"(it could otherwise run twice after a triggerer restart): {type(e).__name__}: {e}")})
            return
        if earlier is not None:
            self.log.error("Refusing to run job %s again: an earlier run of this trigger claimed it", self.job_id)
            yield TriggerEvent({**base, "status": "refused", "message": self._refusal(earlier)})
            return

        result = RunResult(output=[] if self.collect_output else None)
        self.log.info("Job %s: running %s", self.job_id, commands.describe(self.invocation))
        try:
            await self._run_pipeline(result)
        except PsrpError as e:
            yield TriggerEvent({**base, "status": "error", "result": result.to_payload(),
                                "message": f"job {self.job_id}: {commands.describe(self.invocation)} on "
                                           f"{self.psrp_conn_id!r}: {type(e).__name__}: {e}"})
            return
        except Exception as e:  # the connection, the options: the task must learn why
            yield TriggerEvent({**base, "status": "error", "result": result.to_payload(),
                                "message": f"job {self.job_id}: {type(e).__name__}: {e}"})
            return
        self.log.info("Job %s finished: %s, %d output objects", self.job_id, result.state, result.output_count)
        yield TriggerEvent({**base, "status": "finished", "result": result.to_payload()})

    async def _run_pipeline(self, result: RunResult) -> None:
        phase = "connecting"  # until the command is sent: a re-run may then run it
        try:
            hook = PsrpHook(
                self.psrp_conn_id,
                runspace_options=self.runspace_options,
                wsman_options=self.wsman_options,
                session_init=self.session_init,
            )
            arguments = await hook.apool_arguments()
            args, kwargs = commands.start_arguments(self.invocation)
            async with AsyncRunspacePool(**arguments, session_init=hook.session_init_commands()) as pool:
                for init in pool.session_init_results:
                    result.records.extend(result_entries(init))
                phase = "starting"
                invocation = await pool.start(*args, **kwargs)
                phase = "running"
                try:
                    async for event in invocation:
                        if event.kind == "output":
                            result.output_count += 1
                            if result.output is not None:
                                result.output.append(event.value)
                            if self.log_output:
                                self.log.info("%s", output_json(event.value))
                        else:
                            result.records.append(record_entry(event.kind, event.record))
                    final = await invocation.result()
                except PipelineFailed as e:
                    if e.result is None:
                        raise
                    final = e.result
                except asyncio.CancelledError:
                    # Triggerer shutdown, timeout, task killed: stop the pipeline; leaving the pool deletes the shell.
                    self.log.warning("Job %s cancelled: stopping the pipeline and deleting the shell", self.job_id)
                    try:
                        await asyncio.wait_for(invocation.stop(), 30)
                    except Exception as e:  # the shell is deleted next, which ends the pipeline too
                        self.log.warning("Job %s: stopping the pipeline failed: %s", self.job_id, e)
                    raise
            result.finish(final)
        except asyncio.CancelledError:
            await self._mark_stopped(phase)  # after leaving the pool: the shell is gone
            raise

    async def _mark_stopped(self, phase: str) -> None:
        """Best effort: record in the claim that this run was cancelled, and in which phase."""
        try:
            earlier = await asyncio.wait_for(self._read_claim(), 10)
            if isinstance(earlier, dict) and earlier.get("job_id") == self.job_id:
                await asyncio.wait_for(self._write_claim({**earlier, "stopped_at": _now(), "phase": phase}), 10)
        except Exception as e:  # the triggerer may be going away; the claim itself is already there
            self.log.log(logging.WARNING, "Job %s: cannot mark the claim stopped: %s", self.job_id, e)
