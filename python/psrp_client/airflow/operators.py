"""``PsrpOperator``: runs a cmdlet, a script or a command line on a Windows host, on psrp.

A DAG written for ``airflow.providers.microsoft.psrp.operators.psrp.PsrpOperator`` switches
by changing the import: the parameters, templated fields, connection and the
``securestring`` template filter are the same. What differs:

- XCom: the output objects are converted to JSON on the worker (psrp's CLIXML to JSON
  mapping), not by appending ``ConvertTo-Json`` on the server, so it also works on JEA
  (NoLanguage) endpoints that do not expose ConvertTo-Json. The XCom value is the list of
  output objects, one item per object (the original's is a list of whatever ConvertTo-Json
  printed: one array for several objects); dates are ISO 8601 strings, not ``\\/Date(ms)\\/``.
- Every stream goes to the task log at its level as it arrives (errors with their category,
  FullyQualifiedErrorId and target), output objects as JSON when not pushed to XCom.
- The task fails when the pipeline wrote an error record, failed or was stopped, or when
  the remote host set a non-zero exit code; the exception message holds the error records.
- ``deferrable=True`` runs the pipeline in the triggerer (``PsrpTrigger``) and frees the
  worker slot; see the trigger for what happens when a triggerer restarts.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from psrp_client.airflow import commands
from psrp_client.airflow.hooks import PsrpHook, logger_at_level
from psrp_client.airflow.results import RunResult, log_entry

try:
    from airflow.sdk.configuration import conf
except ImportError:  # pragma: no cover - older task SDKs
    from airflow.configuration import conf


def _default_deferrable() -> bool:
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


class PsrpOperator(BaseOperator):
    """PowerShell Remoting Protocol operator, on psrp.

    Use one of ``command`` (a ``cmd.exe`` command line), ``cmdlet`` or ``powershell`` (a script).

    :param psrp_conn_id: connection id (type ``psrp_client``; an existing ``psrp`` one works too)
    :param command: command line to run with ``cmd.exe /c`` (templated; needs a FullLanguage endpoint)
    :param powershell: PowerShell script to run (templated; needs a FullLanguage endpoint)
    :param cmdlet: cmdlet to run (templated); works on JEA endpoints
    :param arguments: positional arguments for ``cmdlet`` or ``powershell`` (templated)
    :param parameters: named parameters for ``cmdlet`` or ``powershell`` (templated); a value of
        None is a switch
    :param logging_level: lowest level of stream records written to the task log (default DEBUG)
    :param runspace_options: ``configuration_name`` (others accepted for compatibility)
    :param wsman_options: pypsrp ``WSMan`` keywords (``port``, ``ssl``, ``auth``, ``negotiate_service`` ...)
    :param psrp_session_init: command(s) run first in the same runspace, e.g. ``Set-PSDebug -Trace 1``:
        our ``Command``, a command name, a pypsrp ``Command``, or a list of them
    :param deferrable: run the pipeline in the triggerer and free the worker slot
    :param idle_timeout: deferrable mode: seconds the server keeps the job's shell while no
        triggerer is connected (default 7200; capped by WinRM's MaxIdleTimeoutms)
    :param log_output: log each output object as JSON (default: when not pushing to XCom, as the
        original logs output only then)
    """

    template_fields: Sequence[str] = ("cmdlet", "command", "arguments", "parameters", "powershell")
    template_fields_renderers = {"command": "powershell", "powershell": "powershell"}
    ui_color = "#c2e2ff"

    def __init__(
        self,
        *,
        psrp_conn_id: str,
        command: str | None = None,
        powershell: str | None = None,
        cmdlet: str | None = None,
        arguments: list[str] | None = None,
        parameters: dict[str, Any] | None = None,
        logging_level: int = logging.DEBUG,
        runspace_options: dict[str, Any] | None = None,
        wsman_options: dict[str, Any] | None = None,
        psrp_session_init: Any = None,
        deferrable: bool | None = None,
        log_output: bool | None = None,
        idle_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        if [command is not None, powershell is not None, cmdlet is not None].count(True) != 1:
            raise ValueError("Must provide exactly one of 'command', 'powershell', or 'cmdlet'")
        if arguments is not None and powershell is None and cmdlet is None:
            raise ValueError("Arguments only allowed with 'powershell' or 'cmdlet'")
        if parameters is not None and powershell is None and cmdlet is None:
            raise ValueError("Parameters only allowed with 'powershell' or 'cmdlet'")
        super().__init__(**kwargs)
        self.conn_id = psrp_conn_id
        self.command = command
        self.powershell = powershell
        self.cmdlet = cmdlet
        self.arguments = arguments
        self.parameters = parameters
        self.logging_level = logging_level
        self.runspace_options = runspace_options
        self.wsman_options = wsman_options
        self.psrp_session_init = psrp_session_init
        self.deferrable = _default_deferrable() if deferrable is None else deferrable
        self.log_output = log_output
        self.idle_timeout = idle_timeout
        self._hook: PsrpHook | None = None

    # ---- what runs ---------------------------------------------------------------------------

    def invocation_spec(self) -> dict[str, Any]:
        """The command as a JSON spec (after templating)."""
        if self.command is not None:
            # As the original: the command line goes to cmd.exe through a here-string.
            return commands.spec(f"cmd.exe /c @'\n{self.command}\n'@", script=True)
        if self.cmdlet is not None:
            return commands.spec(self.cmdlet, self.parameters, self.arguments)
        assert self.powershell is not None
        return commands.spec(self.powershell, self.parameters, self.arguments, script=True)

    def _log_output(self) -> bool:
        return (not self.do_xcom_push) if self.log_output is None else self.log_output

    def _hook_for(self) -> PsrpHook:
        return PsrpHook(
            self.conn_id,
            logging_level=self.logging_level,
            runspace_options=self.runspace_options,
            wsman_options=self.wsman_options,
            session_init=self.psrp_session_init,
        )

    def execute(self, context: Any) -> list[Any] | None:
        spec = self.invocation_spec()
        if self.deferrable:
            self._defer(context, spec)
        self._hook = self._hook_for()
        try:
            with self._hook as hook:
                result = hook.run(spec, collect_output=self.do_xcom_push, log_output=self._log_output())
        finally:
            self._hook = None
        return self._finish(result, spec)

    def _finish(self, result: RunResult, spec: dict[str, Any]) -> list[Any] | None:
        if result.failed:
            raise AirflowException(result.failure_message(commands.describe(spec)))
        if not self.do_xcom_push:
            return None
        return result.output

    def on_kill(self) -> None:
        """Stops the remote pipeline; leaving the hook's ``with`` block then deletes the shell."""
        hook = self._hook
        if hook is not None:
            hook.stop()

    # ---- deferrable --------------------------------------------------------------------------

    def _defer(self, context: Any, spec: dict[str, Any]) -> None:
        from psrp_client.airflow.triggers import PsrpTrigger

        ti = context["ti"]
        job_id = str(uuid.uuid4())
        trigger = PsrpTrigger(
            psrp_conn_id=self.conn_id,
            job_id=job_id,
            invocation=spec,
            session_init=commands.session_init_specs(self.psrp_session_init),
            wsman_options=_json_options(self.wsman_options),
            runspace_options=_json_options(self.runspace_options),
            collect_output=self.do_xcom_push,
            log_output=self._log_output(),
            **({} if self.idle_timeout is None else {"idle_timeout": float(self.idle_timeout)}),
            task={
                "dag_id": ti.dag_id,
                "task_id": ti.task_id,
                "run_id": ti.run_id,
                "map_index": ti.map_index,
                "try_number": ti.try_number,
            },
        )
        self.log.info("Deferring to the triggerer: job %s runs %s there", job_id, commands.describe(spec))
        self.defer(trigger=trigger, method_name="execute_complete", timeout=self.execution_timeout)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> list[Any] | None:
        """Resumes after the trigger: logs the streams, fails on errors, returns the output for XCom."""
        status = event.get("status")
        spec = event.get("invocation") or self.invocation_spec()
        payload = event.get("result")
        result = RunResult.from_payload(payload) if payload else None
        if result is not None:
            logger = logger_at_level(self.log, self.logging_level)
            for entry in result.records:
                log_entry(logger, entry, self.logging_level)
            self.log.info(
                "Job %s: invocation state %s (%d output objects, %d error records%s)",
                event.get("job_id"),
                result.state,
                result.output_count,
                len(result.errors),
                "" if result.exit_code is None else f", exit code {result.exit_code}",
            )
        if status == "refused":
            # Not retried: the command may have run; running it again is the user's call.
            raise AirflowFailException(event.get("message") or "the trigger refused to run the command again")
        if status != "finished" or result is None:
            raise AirflowException(event.get("message") or f"the trigger ended with status {status!r}")
        return self._finish(result, spec)

    def get_template_env(self, dag: Any = None) -> Any:
        """The DAG's template environment plus the ``securestring`` filter (native environments only)."""
        from jinja2.nativetypes import NativeEnvironment

        env = super().get_template_env(dag).overlay()
        native = isinstance(env, NativeEnvironment)

        def securestring(value: str) -> Any:
            if not native:
                raise AirflowException("Filter 'securestring' not applicable to non-native templating environment")
            return commands.secure_string(value)

        env.filters["securestring"] = securestring
        return env


def _json_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """Options that can travel in trigger kwargs (a pypsrp PSHost object cannot, and is ignored anyway)."""
    return {k: v for k, v in (options or {}).items() if isinstance(v, (str, int, float, bool)) or v is None}
