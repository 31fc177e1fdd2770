"""One peer instance: its shells, operation log, injected faults and counters.

Faults and logs are per instance, so tests that inject faults start their own instance
and never disturb tests running in parallel against another one.
"""

import logging
import resource
import threading
import time
import typing
import uuid

from psrpcore.types import PSInvocationState

from peer import objects, runner, shells, soap

log = logging.getLogger("peer.instance")

MAX_LOG = 20000  # operation log entries kept (oldest dropped first)


class FaultRule:
    """One injected fault: ``kind`` drop_connection | close_after_response | http_500 | delay.

    Applies to WS-Man requests whose action matches ``action`` (None = any), after
    ``skip`` matching requests have passed, to the next ``count`` of them.
    """

    KINDS = ("drop_connection", "close_after_response", "http_500", "delay")

    def __init__(self, spec: typing.Dict[str, typing.Any]) -> None:
        kind = spec.get("kind")
        if kind not in self.KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(self.KINDS)}, not {kind!r}")
        self.kind = kind
        self.action = spec.get("action")
        self.skip = int(spec.get("skip", 0))
        self.count = int(spec.get("count", 1))
        self.delay_ms = int(spec.get("delay_ms", 0))
        self.code = int(spec.get("code", soap.ERROR_INTERNAL_ERROR))
        self.message = str(spec.get("message", "Injected fault from the test peer."))
        self.fired = 0
        if self.count < 0 or self.skip < 0 or self.delay_ms < 0:
            raise ValueError("skip, count and delay_ms must not be negative")

    def matches(self, action: str) -> bool:
        return self.action is None or self.action.lower() == action.lower()

    def describe(self) -> typing.Dict[str, typing.Any]:
        return {
            "kind": self.kind,
            "action": self.action,
            "skip": self.skip,
            "count": self.count,
            "delay_ms": self.delay_ms,
            "code": self.code,
            "fired": self.fired,
        }


class Instance:
    def __init__(self, realm: typing.Any, options: typing.Any) -> None:
        self.realm = realm
        self.options = options
        self.lock = threading.Lock()
        self.shells: typing.Dict[str, shells.Shell] = {}
        self.oplog: typing.List[typing.Dict[str, typing.Any]] = []
        self.seq = 0
        self.restarts: typing.List[typing.Dict[str, typing.Any]] = []
        self.faults: typing.List[FaultRule] = []
        self.connections = 0
        self.requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.shells_created = 0
        self.started = time.time()
        self.handlers: typing.Any = None  # set by main (peer.wsman.Handlers)

    # ---- shells -----------------------------------------------------------------------

    @staticmethod
    def _key(shell_id: str) -> str:
        try:
            return str(uuid.UUID(shell_id))
        except ValueError:
            return shell_id.upper()

    def new_shell(self, shell_id: str, configuration: runner.Configuration, ctx: typing.Any, uri: str) -> shells.Shell:
        shell = shells.Shell(
            self, shell_id, configuration, ctx.principal, ctx.client_ip, uri, runner.SessionState(configuration)
        )
        return self.add_shell(shell)

    def add_shell(self, shell: typing.Any) -> typing.Any:
        """Registers a shell (PowerShell or WinRS cmd) under its id; faults if the id is taken."""
        shell_id = shell.id
        with self.lock:
            key = self._key(shell_id)
            if key in self.shells:
                raise soap.WSManFault(
                    2150858803,  # ERROR_WSMAN_ALREADY_EXISTS
                    f"The WS-Management service cannot process the request: a shell with ShellId {shell_id} already "
                    "exists.",
                    subcode="w:AlreadyExists",
                    soap_code="s:Sender",
                )
            self.shells[key] = shell
            self.shells_created += 1
        return shell

    def get_shell(self, shell_id: str) -> typing.Optional[shells.Shell]:
        with self.lock:
            return self.shells.get(self._key(shell_id))

    def remove_shell(self, shell: shells.Shell) -> None:
        with self.lock:
            self.shells.pop(self._key(shell.id), None)
        with shell.cond:
            shell.close()

    def shell_count(self) -> int:
        with self.lock:
            return len(self.shells)

    def describe_shells(self) -> typing.Dict[str, typing.Any]:
        with self.lock:
            items = list(self.shells.values())
        by_config: typing.Dict[str, int] = {}
        described = []
        for shell in items:
            by_config[shell.configuration.name] = by_config.get(shell.configuration.name, 0) + 1
            with shell.cond:
                described.append(shell.describe())
        return {"open": len(items), "by_configuration": by_config, "shells": described}

    # ---- pipelines ----------------------------------------------------------------------

    def start_pipeline(self, shell: shells.Shell, command: shells.Command) -> None:
        invocation = runner.Invocation(self, shell, command)
        command.thread = threading.Thread(
            target=invocation.run, name=f"pipeline-{command.id_text[:8]}", daemon=True
        )
        command.thread.start()

    def start_metadata(self, shell: shells.Shell, command: shells.Command) -> None:
        # GET_COMMAND_METADATA is not emulated: fail the pipeline like an unsupported call.
        command.pipeline._change_state(PSInvocationState.Running, emit=False)
        command.pipeline._change_state(
            PSInvocationState.Failed,
            objects.error_record(
                "The test peer does not emulate GET_COMMAND_METADATA.",
                ["System.NotSupportedException", "System.SystemException"],
                "NotSupported",
                objects.ErrorCategory.NotImplemented,
                None,
                None,
            ),
        )

    def record_restart(self, call: typing.Dict[str, typing.Any]) -> None:
        with self.lock:
            call["seq"] = len(self.restarts) + 1
            self.restarts.append(call)
        self.log_op({"kind": "restart", **call})

    # ---- log, faults, stats -------------------------------------------------------------

    def log_op(self, record: typing.Dict[str, typing.Any]) -> None:
        with self.lock:
            self.seq += 1
            record["seq"] = self.seq
            record.setdefault("time", time.time())
            self.oplog.append(record)
            if len(self.oplog) > MAX_LOG:
                del self.oplog[: len(self.oplog) - MAX_LOG]

    def get_log(self, since: int = 0) -> typing.List[typing.Dict[str, typing.Any]]:
        with self.lock:
            return [r for r in self.oplog if r["seq"] > since]

    def reset_log(self) -> None:
        with self.lock:
            self.oplog = []
            self.restarts = []

    def set_faults(self, specs: typing.List[typing.Dict[str, typing.Any]]) -> None:
        rules = [FaultRule(s) for s in specs]
        with self.lock:
            self.faults.extend(rules)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults = []

    def take_fault(self, action: str) -> typing.Optional[FaultRule]:
        """The fault to apply to this request, if any (consumes skip/count)."""
        with self.lock:
            fired = None
            for rule in self.faults:
                if not rule.matches(action) or rule.count <= 0:
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                if fired is None:
                    rule.count -= 1
                    rule.fired += 1
                    fired = rule
            self.faults = [r for r in self.faults if r.count > 0]
            return fired

    def stats(self) -> typing.Dict[str, typing.Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with self.lock:
            return {
                "cpu_user_seconds": usage.ru_utime,
                "cpu_system_seconds": usage.ru_stime,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "max_rss_kib": usage.ru_maxrss,
                "connections": self.connections,
                "requests": self.requests,
                "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out,
                "shells_created": self.shells_created,
                "uptime_seconds": time.time() - self.started,
            }
