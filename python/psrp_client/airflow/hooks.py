"""``PsrpHook``: a runspace pool from an Airflow connection, and pipelines whose streams go to the task log.

A drop-in for ``airflow.providers.microsoft.psrp.hooks.psrp.PsrpHook`` (same constructor,
``with hook:`` reuses one pool for several invocations, ``invoke()``, ``invoke_cmdlet()``,
``invoke_powershell()``, ``test_connection()``), on ``psrp_client`` instead of pypsrp.
Results are ``RunResult`` objects (output as JSON-ready Python values, records, state,
exit code) rather than pypsrp ``PowerShell`` objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException

from psrp_client import PipelineFailed, PsrpError, RunspacePool
from psrp_client.airflow import commands
from psrp_client.airflow.connection import ConnectionConfigError, pool_arguments
from psrp_client.airflow.results import RunResult, log_entry, output_json, record_entry, result_entries

OutputCallback = Callable[[Any], None]


def logger_at_level(logger: Any, level: int) -> Any:
    """A logger that emits records at ``level`` and above even when the task logger is at INFO.

    Airflow 3's task loggers are structlog loggers filtered at ``[logging] logging_level``;
    the PSRP provider shows debug records (``Set-PSDebug -Trace``) by wrapping its logger
    at its ``logging_level``, and so does this hook.
    """
    if hasattr(logger, "setLevel"):  # a standard library logger
        logger.setLevel(level)
        return logger
    is_enabled_for = getattr(logger, "is_enabled_for", None)
    if callable(is_enabled_for) and is_enabled_for(level):
        return logger
    name = getattr(logger, "name", None) or "airflow.task.hooks.psrp_client"
    try:
        import structlog
        from airflow.sdk._shared.logging.structlog import LEVEL_TO_FILTERING_LOGGER

        usable = max((lvl for lvl in LEVEL_TO_FILTERING_LOGGER if lvl <= level), default=min(LEVEL_TO_FILTERING_LOGGER))
        return structlog.wrap_logger(None, wrapper_class=LEVEL_TO_FILTERING_LOGGER[usable], logger_factory_args=(name,))
    except (ImportError, KeyError, ValueError):
        from airflow.sdk.log import logger_at_level as airflow_logger_at_level

        return airflow_logger_at_level(name, level)


class PipelineBuilder:
    """What ``PsrpHook.invoke()`` yields: the pypsrp ``PowerShell`` methods DAGs call to build a pipeline.

    Each statement holds one command (a cmdlet with its parameters and arguments, or a
    script); ``add_statement()`` or ``add_command()`` ends it. Statements run one after the
    other in the same runspace. After the ``with`` block: ``output`` (all statements'),
    ``had_errors``, ``results`` (one ``RunResult`` per statement).
    """

    def __init__(self) -> None:
        self.specs: list[dict[str, Any]] = []
        self._pending: dict[str, Any] | None = None
        self.results: list[RunResult] = []

    def _start(self, name: str, script: bool) -> "PipelineBuilder":
        if self._pending is not None:
            raise AirflowException(
                "a pipeline of several commands is not supported by psrp yet: end the statement with "
                "add_statement(), or give one script"
            )
        self._pending = {"name": name, "parameters": {}, "arguments": [], "script": script}
        return self

    def add_cmdlet(self, cmdlet: str, use_local_scope: bool | None = None) -> "PipelineBuilder":
        return self._start(cmdlet, False)

    def add_script(self, script: str, use_local_scope: bool | None = None) -> "PipelineBuilder":
        return self._start(script, True)

    def add_argument(self, value: Any) -> "PipelineBuilder":
        self._require().setdefault("arguments", []).append(value)
        return self

    def add_parameter(self, parameter_name: str, value: Any = None) -> "PipelineBuilder":
        self._require()["parameters"][parameter_name] = value
        return self

    def add_parameters(self, parameters: Mapping[str, Any]) -> "PipelineBuilder":
        for name, value in parameters.items():
            self.add_parameter(name, value)
        return self

    def add_command(self, command: Any) -> "PipelineBuilder":
        self.add_statement()
        self.specs.append(commands.spec_of(command))
        return self

    def add_statement(self) -> "PipelineBuilder":
        if self._pending is not None:
            p = self._pending
            self.specs.append(commands.spec(p["name"], p["parameters"], p["arguments"], p["script"]))
            self._pending = None
        return self

    def _require(self) -> dict[str, Any]:
        if self._pending is None:
            raise AirflowException("add a cmdlet or a script first")
        return self._pending

    @property
    def output(self) -> list[Any]:
        return [o for r in self.results for o in (r.output or [])]

    @property
    def had_errors(self) -> bool:
        return any(r.failed for r in self.results)


class PsrpHook(BaseHook):
    """Hook for PowerShell Remoting Protocol execution, on psrp.

    When used as a context manager, one runspace pool serves every invocation in the block.

    :param psrp_conn_id: the connection (type ``psrp_client``, or an existing ``psrp`` one).
    :param logging_level: the lowest level at which stream records go to the task log
        (default DEBUG: every record, including ``Set-PSDebug -Trace`` lines).
    :param operation_timeout: WS-Man OperationTimeout in seconds (a connection extra wins).
    :param runspace_options: ``configuration_name``; pypsrp's other keys are accepted and ignored.
    :param wsman_options: pypsrp ``WSMan`` keywords (``port``, ``ssl``, ``auth``, ``path``,
        ``negotiate_service``, ...); the connection's extras win for the same key.
    :param on_output_callback: called with each output object (a Python value) as it arrives.
    :param exchange_keys: accepted for compatibility; psrp exchanges keys only when needed.
    :param host: accepted for compatibility (a pypsrp PSHost); psrp uses its own host.
    :param session_init: commands run first in each new runspace pool (our ``Command``, a
        command name, or a pypsrp ``Command``).
    """

    conn_name_attr = "psrp_conn_id"
    default_conn_name = "psrp_default"
    conn_type = "psrp_client"
    hook_name = "PowerShell Remoting Protocol (psrp)"

    def __init__(
        self,
        psrp_conn_id: str = default_conn_name,
        logging_level: int = logging.DEBUG,
        operation_timeout: float | None = None,
        runspace_options: dict[str, Any] | None = None,
        wsman_options: dict[str, Any] | None = None,
        on_output_callback: OutputCallback | None = None,
        exchange_keys: bool = True,
        host: Any = None,
        session_init: Any = None,
    ) -> None:
        super().__init__()
        self.conn_id = psrp_conn_id
        self._logging_level = logging_level
        self._operation_timeout = operation_timeout
        self._runspace_options = dict(runspace_options or {})
        self._wsman_options = dict(wsman_options or {})
        self._on_output_callback = on_output_callback
        self._session_init = commands.session_init_specs(session_init)
        self._pool: RunspacePool | None = None
        self._current: Any = None  # the running Invocation, for stop()

    # ---- the connection ----------------------------------------------------------------------

    def _arguments(self, conn: Any) -> dict[str, Any]:
        try:
            return pool_arguments(
                host=conn.host,
                port=conn.port,
                login=conn.login,
                password=conn.password,
                extra=conn.extra_dejson,
                wsman_options=self._wsman_options,
                runspace_options=self._runspace_options,
                operation_timeout=self._operation_timeout,
            )
        except ConnectionConfigError as e:
            raise AirflowException(f"connection {self.conn_id!r}: {e}") from None

    def pool_arguments(self) -> dict[str, Any]:
        """``RunspacePool`` keyword arguments from the connection and the options (password included)."""
        conn = self.get_connection(self.conn_id)
        self.log.info("Establishing a WinRM connection %s to host: %s", self.conn_id, conn.host)
        return self._arguments(conn)

    async def apool_arguments(self) -> dict[str, Any]:
        """The same, reading the connection without blocking the event loop (triggers)."""
        conn = await self.aget_connection(self.conn_id)
        self.log.info("Establishing a WinRM connection %s to host: %s", self.conn_id, conn.host)
        return self._arguments(conn)

    def session_init_commands(self) -> list[Any]:
        return [commands.command_of(s) for s in self._session_init]

    def get_conn(self) -> RunspacePool:
        """A runspace pool (not opened): use it as a context manager."""
        return RunspacePool(**self.pool_arguments(), session_init=self.session_init_commands())

    def __enter__(self) -> "PsrpHook":
        try:
            pool = self.get_conn()
            pool.open()
        except PsrpError as e:
            raise AirflowException(f"cannot open a runspace pool on {self.conn_id!r}: {type(e).__name__}: {e}") from e
        self._pool = pool
        logger = self.stream_logger
        for result in pool.session_init_results:
            for entry in result_entries(result):
                log_entry(logger, entry, self._logging_level)
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @contextmanager
    def _pool_context(self) -> Iterator[RunspacePool]:
        if self._pool is not None:
            yield self._pool
            return
        with self:
            assert self._pool is not None
            yield self._pool

    # ---- running -----------------------------------------------------------------------------

    @property
    def stream_logger(self) -> Any:
        return logger_at_level(self.log, self._logging_level)

    def run(
        self,
        spec: Mapping[str, Any],
        *,
        collect_output: bool = True,
        log_output: bool = False,
    ) -> RunResult:
        """Runs one command (a spec, see ``psrp_client.airflow.commands``), logging every record as it arrives.

        Output objects are kept when ``collect_output`` (for XCom), logged as JSON when
        ``log_output``, and passed to ``on_output_callback``. Raises AirflowException when
        the connection fails; a failed pipeline is reported in the result (``failed``).
        """
        logger = self.stream_logger
        result = RunResult(output=[] if collect_output else None)
        args, kwargs = commands.start_arguments(spec)
        try:
            with self._pool_context() as pool:
                invocation = pool.start(*args, **kwargs)
                self._current = invocation
                try:
                    for event in invocation:
                        self._on_event(event, result, logger, log_output)
                    final = invocation.result()
                except PipelineFailed as e:
                    if e.result is None:
                        raise
                    final = e.result
                finally:
                    self._current = None
                for entry in result.finish(final):
                    log_entry(logger, entry, self._logging_level)
        except PsrpError as e:
            raise AirflowException(f"{commands.describe(spec)} on {self.conn_id!r}: {type(e).__name__}: {e}") from e
        self.log.info(
            "Invocation state: %s (%d output objects, %d error records%s)",
            result.state,
            result.output_count,
            len(result.errors),
            "" if result.exit_code is None else f", exit code {result.exit_code}",
        )
        return result

    def _on_event(self, event: Any, result: RunResult, logger: Any, log_output: bool) -> None:
        if event.kind == "output":
            result.output_count += 1
            if result.output is not None:
                result.output.append(event.value)
            if log_output:
                logger.log(logging.INFO, "%s", output_json(event.value))
            if self._on_output_callback is not None:
                self._on_output_callback(event.value)
            return
        entry = record_entry(event.kind, event.record)
        result.records.append(entry)
        log_entry(logger, entry, self._logging_level)

    def stop(self) -> None:
        """Stops the running pipeline (from another thread, e.g. the operator's on_kill)."""
        current = self._current
        if current is not None:
            current.stop()

    @contextmanager
    def invoke(self) -> Iterator[PipelineBuilder]:
        """Yields a builder to add commands to; on exit they run. Raises AirflowException on errors."""
        builder = PipelineBuilder()
        yield builder
        builder.add_statement()
        with self._pool_context():
            for spec in builder.specs:
                builder.results.append(self.run(spec))
        failed = [r for r in builder.results if r.failed]
        if failed:
            raise AirflowException(failed[0].failure_message("Process had one or more errors"))

    def invoke_cmdlet(
        self,
        name: str,
        use_local_scope: bool | None = None,
        arguments: Sequence[Any] | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> PipelineBuilder:
        """Runs a cmdlet; returns the builder (``output``, ``had_errors``, ``results``)."""
        with self.invoke() as ps:
            ps.add_cmdlet(name, use_local_scope=use_local_scope)
            for argument in arguments or ():
                ps.add_argument(argument)
            if parameters:
                ps.add_parameters(parameters)
        return ps

    def invoke_powershell(self, script: str) -> PipelineBuilder:
        """Runs a script (endpoints that allow the language)."""
        with self.invoke() as ps:
            ps.add_script(script)
        return ps

    def test_connection(self) -> tuple[bool, str]:
        """Opens and closes a runspace pool (the connection form's Test button)."""
        try:
            with PsrpHook(psrp_conn_id=self.conn_id, wsman_options=self._wsman_options,
                          runspace_options=self._runspace_options):
                pass
        except Exception as e:  # the UI shows the message
            return False, str(e)
        return True, "Connection successfully tested: a runspace pool was opened and closed"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema"],
            "relabeling": {"login": "Username", "port": "Port (5985 http, 5986 https)"},
            "placeholders": {
                "host": "win01.example.com",
                "login": "svc_airflow@EXAMPLE.COM (empty: Kerberos ticket cache)",
                "extra": '{"auth": "kerberos", "ssl": false, "configuration_name": "JEA.Maintenance"}',
            },
        }
