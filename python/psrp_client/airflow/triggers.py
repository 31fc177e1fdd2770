"""``PsrpTrigger``: the deferrable operator's pipeline, run in the triggerer on ``AsyncRunspacePool``.

The trigger opens the runspace pool, runs the session-init commands and the command, reads
every event asynchronously (no worker slot held, no thread per job), then fires one event
with the records, the output (when it goes to XCom), the final state and the exit code.
``PsrpOperator.execute_complete`` logs the records and fails or pushes XCom.

Triggerer restarts. Airflow runs a trigger's ``run()`` again from the start, possibly on
another triggerer, when the one running it stops or dies. The trigger therefore leaves the
pipeline to the server and keeps, in a claim, what a new run needs to pick it up:

- Before it connects, the trigger records the claim, the XCom ``psrp_job`` of its task
  instance: ``job_id`` (a UUID the operator drew when it deferred, in the trigger's
  kwargs), ``claimed_at``, ``triggerer``, ``pid``, ``phase``; then ``shell_id`` once the pool
  is open, and ``command_id``, ``idle_timeout`` and ``expires_at`` once the command runs. No
  secret: the connection stays in Airflow. If it cannot write the claim, it runs nothing.
- It starts the command detached (WS-Man Command, then Disconnect with the operator's
  ``idle_timeout`` and Block buffering), then connects to it (WS-Man Connect) and streams
  its output. A re-run that finds ``command_id`` in the claim connects to the same shell and
  command and streams the rest: the command runs once. A killed client leaves the shell
  connected (MS-WSMV treats it as idle), so a Connect refused with ``connected_elsewhere``
  is followed by a Disconnect from the new client and a second Connect.
- The shell is deleted once the result is read, and when the trigger is cancelled
  (triggerer shutdown, the task's timeout, the task marked failed or cleared: the pipeline
  is stopped first, ``stopped_at`` added to the claim; its re-run refuses).
- A re-run that finds a ``shell_id`` but no ``command_id`` (killed between the two: the
  command may or may not have been sent) deletes the shell and refuses: nothing runs twice.
  One that finds neither (killed while connecting) runs the command.
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

from psrp_client import AsyncRunspacePool, PipelineFailed, PsrpError, ShellConnectFailed
from psrp_client.airflow import commands
from psrp_client.airflow.hooks import PsrpHook
from psrp_client.airflow.results import RunResult, output_json, record_entry, result_entries

CLAIM_KEY = "psrp_job"
# How long the server keeps the job's shell while no triggerer is connected (as `psrp --detach`).
DEFAULT_IDLE_TIMEOUT = 7200.0


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
    :param idle_timeout: seconds the server keeps the job while no triggerer is connected
        (capped by WinRM's MaxIdleTimeoutms); past it the shell and its output are deleted.
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
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
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
        self.idle_timeout = float(idle_timeout)
        self._session_init_commands: list[Any] = []

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
                "idle_timeout": self.idle_timeout,
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

    async def _update_claim(self, claim: dict[str, Any], **changes: Any) -> dict[str, Any]:
        claim.update(changes)
        await self._write_claim(claim)
        return claim

    def _refusal(self, earlier: dict[str, Any]) -> str:
        if earlier.get("phase") == "finished":
            how = (f"finished at {earlier.get('finished_at')} and read its result (shell deleted), but that run's "
                   "event did not reach the task")
        elif earlier.get("stopped_at"):
            how = (f"was cancelled at {earlier['stopped_at']} while its command was being started, and stopped it "
                   "(pipeline stopped, shell deleted)" if earlier.get("phase") == "starting" else
                   f"was cancelled at {earlier['stopped_at']} while its command ran, and stopped it (pipeline "
                   "stopped, shell deleted)")
        else:
            how = ("was killed or lost while it started the command, before it could record the command id; the "
                   "shell was deleted, which stops the command if it had started")
        return (
            f"job {self.job_id} ({commands.describe(self.invocation)}) was started by an earlier run of this trigger "
            f"(claimed at {earlier.get('claimed_at')} by triggerer {earlier.get('triggerer')} pid "
            f"{earlier.get('pid')}), which {how}. The command may have run, partly or fully, so it is not run a "
            "second time. Check the host, then clear the task to run it again."
        )

    # ---- run -------------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        base = {"job_id": self.job_id, "invocation": self.invocation}
        try:
            earlier = await self._read_claim()
        except Exception as e:
            yield TriggerEvent({**base, "status": "error", "message": (
                f"job {self.job_id}: cannot read the job's claim (XCom {CLAIM_KEY!r}), so the command was not run "
                f"(it could otherwise run twice after a triggerer restart): {type(e).__name__}: {e}")})
            return
        mine = isinstance(earlier, dict) and earlier.get("job_id") == self.job_id
        result = RunResult(output=[] if self.collect_output else None)
        try:
            if mine and (earlier.get("phase") == "finished"
                         or earlier.get("stopped_at") and earlier.get("phase") != "connecting"):
                self.log.error("Refusing to run job %s again: an earlier run finished or stopped it", self.job_id)
                yield TriggerEvent({**base, "status": "refused", "message": self._refusal(earlier)})
                return
            arguments = await self._pool_arguments()
            if mine and earlier.get("shell_id") and earlier.get("command_id"):
                claim = dict(earlier)
                self.log.info("Job %s: picking up command %s in shell %s, started by an earlier run (%s, pid %s)",
                              self.job_id, claim["command_id"], claim["shell_id"], claim.get("triggerer"),
                              claim.get("pid"))
                try:
                    claim = await self._update_claim(claim, picked_up_at=_now(), triggerer=socket.gethostname(),
                                                     pid=os.getpid())
                except Exception as e:  # the ids are known: picking the job up matters more
                    self.log.warning("Job %s: cannot record the pick-up in the claim: %s", self.job_id, e)
            elif mine and earlier.get("shell_id"):
                self.log.error("Refusing to run job %s again: its command may have been sent", self.job_id)
                await self._remove_shell(arguments, earlier["shell_id"])
                yield TriggerEvent({**base, "status": "refused", "message": self._refusal(earlier)})
                return
            else:
                claim = {"job_id": self.job_id, "claimed_at": _now(), "triggerer": socket.gethostname(),
                         "pid": os.getpid(), "phase": "connecting"}
                if mine:
                    claim["previous_run"] = {k: earlier.get(k) for k in ("claimed_at", "triggerer", "pid", "stopped_at")}
                    self.log.info("Job %s: the earlier run stopped before its command was sent; running it", self.job_id)
                try:
                    await self._write_claim(claim)
                except Exception as e:
                    yield TriggerEvent({**base, "status": "error", "message": (
                        f"job {self.job_id}: cannot record the job's claim (XCom {CLAIM_KEY!r}), so the command was "
                        f"not run (it could otherwise run twice after a triggerer restart): {type(e).__name__}: {e}")})
                    return
                self.log.info("Job %s: running %s", self.job_id, commands.describe(self.invocation))
                claim = await self._start(arguments, claim, result)
            await self._stream(arguments, claim, result)
        except ShellConnectFailed as e:
            # The command ran (or runs) but its result cannot be read: not retried.
            yield TriggerEvent({**base, "status": "refused", "result": result.to_payload(), "message": (
                f"job {self.job_id}: {commands.describe(self.invocation)} was started, but its shell cannot be "
                f"connected to ({e.reason}): {e}. Its outcome is unknown, so it is not run a second time. Check the "
                "host, then clear the task to run it again.")})
            return
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

    async def _pool_arguments(self) -> dict[str, Any]:
        hook = PsrpHook(
            self.psrp_conn_id,
            runspace_options=self.runspace_options,
            wsman_options=self.wsman_options,
            session_init=self.session_init,
        )
        arguments = await hook.apool_arguments()
        self._session_init_commands = hook.session_init_commands()
        return arguments

    async def _start(self, arguments: dict[str, Any], claim: dict[str, Any], result: RunResult) -> dict[str, Any]:
        """Opens the pool, records its shell, starts the command detached and records it."""
        phase = "connecting"  # until the command is sent: a re-run may then run it
        try:
            pool = AsyncRunspacePool(**arguments, session_init=self._session_init_commands)
            async with pool:
                for init in pool.session_init_results:
                    result.records.extend(result_entries(init))
                claim = await self._update_claim(claim, phase="starting", shell_id=pool.shell_id)
                phase = "starting"
                args, kwargs = commands.start_arguments(self.invocation)
                # Leaves the pool without deleting the shell; an error deletes it on leaving `async with`.
                job = await pool.start_detached(*args, **kwargs, idle_timeout=self.idle_timeout, buffer_mode="block")
        except asyncio.CancelledError:
            await self._mark_stopped(phase)  # after leaving the pool: the shell is gone
            raise
        changes = {"phase": "running", "command_id": job.command_id, "idle_timeout": self.idle_timeout,
                   "expires_at": job.expires_at}
        try:
            return await self._update_claim(claim, **changes)
        except asyncio.CancelledError:
            await self._remove_shell(arguments, job.shell_id)
            await self._mark_stopped("running")
            raise
        except Exception as e:  # a re-run will delete the shell and refuse; this run goes on
            self.log.warning("Job %s: cannot record the command id in the claim: %s", self.job_id, e)
            claim.update(changes)
            return claim

    async def _connect(self, arguments: dict[str, Any], claim: dict[str, Any]) -> AsyncRunspacePool:
        shell_id, expires_at = claim["shell_id"], claim.get("expires_at")
        try:
            return await AsyncRunspacePool.connect(shell_id=shell_id, expires_at=expires_at, **arguments)
        except ShellConnectFailed as e:
            if e.reason != "connected_elsewhere":
                raise
        # The earlier run's client died connected: disconnect it from here, then connect.
        self.log.warning("Job %s: shell %s is still connected to the earlier run's client; disconnecting it",
                         self.job_id, shell_id)
        await AsyncRunspacePool.disconnect_shell(shell_id=shell_id, idle_timeout=claim.get("idle_timeout"),
                                                 buffer_mode="block", **arguments)
        return await AsyncRunspacePool.connect(shell_id=shell_id, expires_at=expires_at, **arguments)

    async def _stream(self, arguments: dict[str, Any], claim: dict[str, Any], result: RunResult) -> None:
        """Connects to the job's shell and command, reads every event, deletes the shell."""
        try:
            try:
                pool = await self._connect(arguments, claim)
            except BaseException:
                # Cancelled, refused or unreachable: the job must not run on unread (a retry would
                # run it again). Deleting an unknown or expired shell is a no-op.
                await self._remove_shell(arguments, claim["shell_id"])
                raise
            async with pool:  # leaving it deletes the shell
                invocation = await pool.connect_command(claim["command_id"])
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
                        # Reads it to its end: its command is released before the shell is deleted.
                        await asyncio.wait_for(invocation.cancel(), 30)
                    except Exception as e:  # the shell is deleted next, which ends the pipeline too
                        self.log.warning("Job %s: stopping the pipeline failed: %s", self.job_id, e)
                    raise
            result.finish(final)
        except asyncio.CancelledError:
            await self._mark_stopped("running")
            raise
        try:  # a re-run now has nothing to pick up (the shell is gone): it refuses without connecting
            await self._update_claim(claim, phase="finished", finished_at=_now())
        except Exception as e:  # a re-run then finds no shell and refuses as well
            self.log.warning("Job %s: cannot mark the claim finished: %s", self.job_id, e)

    async def _remove_shell(self, arguments: dict[str, Any], shell_id: str) -> None:
        """Best effort, bounded: deletes a shell left by this job (stops its command)."""
        try:
            await asyncio.wait_for(asyncio.shield(AsyncRunspacePool.remove_shell(shell_id=shell_id, **arguments)), 30)
        except ShellConnectFailed as e:
            if e.reason not in ("unknown_shell", "idle_timeout_expired"):
                self.log.warning("Job %s: cannot delete shell %s: %s", self.job_id, shell_id, e)
        except Exception as e:  # the shell expires on the server after its idle timeout
            self.log.warning("Job %s: cannot delete shell %s: %s", self.job_id, shell_id, e)

    async def _mark_stopped(self, phase: str) -> None:
        """Best effort: record in the claim that this run was cancelled, and in which phase."""
        try:
            earlier = await asyncio.wait_for(self._read_claim(), 10)
            if isinstance(earlier, dict) and earlier.get("job_id") == self.job_id:
                await asyncio.wait_for(self._write_claim({**earlier, "stopped_at": _now(), "phase": phase}), 10)
        except Exception as e:  # the triggerer may be going away; the claim itself is already there
            self.log.log(logging.WARNING, "Job %s: cannot mark the claim stopped: %s", self.job_id, e)
