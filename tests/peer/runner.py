"""Running a PSRP pipeline: statements, pipelines, scripts, JEA visibility, streams.

A pipeline runs in its own thread. Every write to psrpcore happens under the shell's
lock and is moved to the output queues right away (``Shell.drain``). A stop (Signal) is
seen at the next write, sleep or host call, which then unwinds with ``PipelineStopped``.
"""

import logging
import time
import traceback
import typing

from psrpcore.types import (
    ErrorRecord,
    HostMethodIdentifier,
    PSInvocationState,
    PSRPMessageType,
)

from peer import binding, copyscripts, hostile, objects, script, wiretypes
from peer.fakefs import FakeFileSystem

log = logging.getLogger("peer.runner")


class PipelineStopped(Exception):
    """The pipeline was stopped or released by the client."""


class TerminatingError(Exception):
    def __init__(self, record: ErrorRecord) -> None:
        super().__init__(str(record.Exception.Message))
        self.record = record


class Configuration:
    """A session configuration: which commands are visible and the language mode."""

    def __init__(self, name: str, visible: typing.Optional[typing.Iterable[str]], no_language: bool) -> None:
        self.name = name
        self.visible = {v.lower() for v in visible} if visible is not None else None
        self.no_language = no_language

    def is_visible(self, command: str) -> bool:
        return self.visible is None or command.lower() in self.visible


JEA_VISIBLE = [
    "Get-Date",
    "Get-Item",
    "Get-ChildItem",
    "Restart-Computer",
    "Invoke-Echo",
    "Set-PSDebug",
    "Write-Output",
    "Write-Error",
    "Write-Warning",
    "Write-Verbose",
    "Write-Debug",
    "Write-Information",
    "Write-Progress",
    "Get-LargeOutput",
    "Start-Sleep",
    "Read-Host",
]

CONFIGURATIONS = {
    c.name.lower(): c
    for c in [
        Configuration("Microsoft.PowerShell", None, no_language=False),
        Configuration("JEA.Maintenance", JEA_VISIBLE, no_language=True),
    ]
}


class SessionState:
    """Per runspace pool state: file system copy, preference variables, Set-PSDebug."""

    def __init__(self, configuration: Configuration) -> None:
        self.configuration = configuration
        self.fs = FakeFileSystem()
        self.trace_level = 0
        # The principal of Kerberos credentials the client delegated when the pool was created.
        self.delegated_principal: typing.Optional[str] = None
        self.preferences = {
            "VerbosePreference": "SilentlyContinue",
            "DebugPreference": "SilentlyContinue",
            "WarningPreference": "Continue",
            "InformationPreference": "SilentlyContinue",
            "ErrorActionPreference": "Continue",
            "ProgressPreference": "Continue",
        }


class Call:
    """One command invocation: bound parameters, pipeline input and where output goes."""

    def __init__(
        self,
        inv: "Invocation",
        name: str,
        bound: binding.Bound,
        raw_params: typing.List[typing.Tuple[typing.Optional[str], typing.Any]],
        wire_types: typing.Optional[typing.List[str]],
        input_objects: typing.List[typing.Any],
        collect: bool,
    ) -> None:
        self.inv = inv
        self.name = name
        self.bound = bound
        self.raw_params = raw_params
        self.wire_types = wire_types
        self.input = input_objects
        self.collected: typing.Optional[typing.List[typing.Any]] = [] if collect else None

    @property
    def last_in_pipeline(self) -> bool:
        return self.collected is None

    def output(self, value: typing.Any) -> None:
        if self.collected is not None:
            self.collected.append(value)
        else:
            self.inv.write(lambda p: p.write_output(value))

    def _preference(self, action_param: str, preference: str) -> str:
        value = self.bound.get(action_param)
        if value is not None:
            return str(value)
        return self.inv.session.preferences[preference]

    def error(self, record: ErrorRecord) -> None:
        """A non-terminating error, subject to -ErrorAction / $ErrorActionPreference."""
        action = self._preference("ErrorAction", "ErrorActionPreference").lower()
        if action == "stop":
            raise TerminatingError(record)
        if action in ("silentlycontinue", "ignore"):
            return
        self.inv.write_error(record)

    def warning(self, message: str) -> None:
        action = self._preference("WarningAction", "WarningPreference").lower()
        if action in ("silentlycontinue", "ignore"):
            return
        self.inv.write(lambda p: p.write_warning(message))
        if action == "stop":
            raise TerminatingError(
                objects.error_record(
                    "The running command stopped because the preference variable \"WarningPreference\" or common "
                    f"parameter is set to Stop: {message}",
                    ["System.Management.Automation.ActionPreferenceStopException",
                     "System.Management.Automation.RuntimeException", "System.SystemException"],
                    "ActionPreferenceStop",
                    objects.ErrorCategory.OperationStopped,
                    self.name,
                    None,
                )
            )

    def _enabled(self, switch: str, preference: str) -> bool:
        if self.bound.has(switch):
            return self.bound.switch(switch)
        return self.inv.session.preferences[preference].lower() in ("continue", "inquire", "stop")

    def verbose(self, message: str) -> None:
        if self._enabled("Verbose", "VerbosePreference"):
            self.inv.write(lambda p: p.write_verbose(message))

    def debug(self, message: str) -> None:
        if self._enabled("Debug", "DebugPreference"):
            self.inv.write(lambda p: p.write_debug(message))


class Invocation:
    """The running pipeline of one WS-Man command."""

    def __init__(self, instance: typing.Any, shell: typing.Any, command: typing.Any) -> None:
        self.instance = instance
        self.shell = shell
        self.command = command
        self.pipeline = command.pipeline
        self.session: SessionState = shell.session

    # ---- writes (all under the shell lock) --------------------------------------------

    def _check(self) -> None:
        if (
            self.command.stop_requested
            or self.command.closed
            or self.shell.closed
            or self.pipeline.state != PSInvocationState.Running
        ):
            raise PipelineStopped()

    def write(self, fn: typing.Callable[[typing.Any], None]) -> None:
        with self.shell.cond:
            self._check()
            fn(self.pipeline)
            self.shell.drain()
            self.shell.wait_for_room(self.command)

    def write_error(self, record: ErrorRecord) -> None:
        record.serialize_extended_info = False
        self.write(lambda p: p.prepare_message(record, message_type=PSRPMessageType.ErrorRecord))

    def write_information(self, data: typing.Any, tags: typing.List[str], source: str) -> None:
        self.write(lambda p: p.write_information(data, source, tags=tags, user="PEER\\testuser", computer="localhost"))

    def trace(self, text: str, line: int = 1) -> None:
        # Set-PSDebug -Trace: PowerShell writes these as debug records whatever $DebugPreference is.
        if self.session.trace_level >= 1:
            self.write(lambda p: p.write_debug(f"{line:5}+  >>>> {text}"))

    def trace_call(self) -> None:
        # -Trace 2 also reports entering each script block.
        if self.session.trace_level >= 2:
            self.write(lambda p: p.write_debug("     ! CALL function '<ScriptBlock>'"))

    def inject_output(self, payloads: typing.Iterable[bytes]) -> None:
        with self.shell.cond:
            self._check()
            self.shell.inject_output(self.command, payloads)
            self.shell.wait_for_room(self.command)

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + max(seconds, 0)
        with self.shell.cond:
            while True:
                self._check()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self.shell.cond.wait(remaining)

    def host_call(self, method: HostMethodIdentifier, params: typing.List[typing.Any]) -> typing.Any:
        """Makes a PIPELINE_HOST_CALL and waits for the client's answer (None for void calls)."""
        with self.shell.cond:
            self._check()
            ci = self.pipeline.host_call(method, params)
            self.shell.drain()
            if method.is_void():
                return None
            while ci not in self.command.host_responses:
                self._check()
                self.shell.cond.wait(1.0)
            response = self.command.host_responses.pop(ci)
        if response.error is not None:
            raise TerminatingError(objects.host_call_failed(str(response.error)))
        return response.result

    def wait_for_input(self) -> None:
        with self.shell.cond:
            while not self.command.input_done:
                self._check()
                self.shell.cond.wait(1.0)

    def finish(self, record: typing.Optional[ErrorRecord] = None) -> None:
        with self.shell.cond:
            if self.pipeline.state == PSInvocationState.Running and not self.command.closed:
                if record is None:
                    self.pipeline.complete()
                else:
                    self.pipeline._change_state(PSInvocationState.Failed, record)
                self.shell.drain()

    # ---- running ----------------------------------------------------------------------

    def run(self) -> None:
        from peer import commands

        with self.shell.cond:
            if self.command.stop_requested or self.command.closed:
                return
            # Windows does not send PIPELINE_STATE Running; only the final state.
            self.pipeline._change_state(PSInvocationState.Running, emit=False)
        try:
            metadata = self.pipeline.metadata
            streaming = any(c.is_script and copyscripts.streams_input(c.command_text) for c in metadata.commands)
            if not metadata.no_input and not streaming:
                self.wait_for_input()
            if not any(c.is_script for c in metadata.commands):
                self.trace_call()  # scripts report their own script block
            raw = self.shell.pool.raw_create_pipeline.get(self.command.id)
            try:
                wire = wiretypes.argument_types(raw) if raw else []
            except Exception:  # the labels are a convenience; psrpcore already parsed the data
                log.warning("cannot read argument types of %s: %s", self.command.id_text, traceback.format_exc())
                wire = []
            if self.command.failure is not None:
                raise TerminatingError(objects.injected_failure(self.command.failure))
            if self.command.hostile is not None:
                hostile.write_ansi_streams(self)
            statement: typing.List[typing.Tuple[typing.Any, typing.Optional[typing.List[str]]]] = []
            for index, cmd in enumerate(metadata.commands):
                statement.append((cmd, wire[index] if index < len(wire) else None))
                if cmd.end_of_statement:
                    self._run_api_statement(commands, statement)
                    statement = []
            if statement:
                self._run_api_statement(commands, statement)
            if self.command.hostile is not None:
                raise TerminatingError(hostile.ansi_error_record("terminating error"))
            self.finish()
        except PipelineStopped:
            pass
        except TerminatingError as e:
            self.finish(e.record)
        except Exception as e:
            log.error("pipeline %s failed in the peer: %s", self.command.id_text, traceback.format_exc())
            self.finish(objects.internal_error(f"{type(e).__name__}: {e}"))

    def _run_api_statement(self, commands: typing.Any, statement: typing.List[typing.Any]) -> None:
        config = self.session.configuration
        # Command discovery happens before anything in the statement runs.
        for cmd, _wire in statement:
            if cmd.is_script:
                if config.no_language:
                    raise TerminatingError(objects.scripts_not_allowed(cmd.command_text))
            elif commands.lookup(cmd.command_text, config) is None:
                raise TerminatingError(objects.command_not_found(cmd.command_text))
        data: typing.List[typing.Any] = list(self.command.input)
        for position, (cmd, wire) in enumerate(statement):
            last = position == len(statement) - 1
            copy_kind = copyscripts.recognize(cmd.command_text) if cmd.is_script else None
            if copy_kind is not None:
                # File copy scripts (psrp's and pypsrp's), emulated on the peer's file store.
                call = Call(self, copy_kind, binding.Bound(), list(cmd.parameters), wire, data, collect=not last)
                copyscripts.run(self, call, copy_kind, list(cmd.parameters))
                data = call.collected or []
            elif cmd.is_script:
                data = self.run_script(cmd.command_text, data, collect=not last) or []
            else:
                spec = commands.lookup(cmd.command_text, config)
                call = self.bind_call(spec, cmd.command_text, list(cmd.parameters), wire, data, collect=not last)
                self.trace(_render(cmd.command_text, cmd.parameters))
                spec.func(call)
                data = call.collected or []

    def bind_call(
        self,
        spec: typing.Any,
        name: str,
        params: typing.List[typing.Tuple[typing.Optional[str], typing.Any]],
        wire: typing.Optional[typing.List[str]],
        input_objects: typing.List[typing.Any],
        collect: bool,
    ) -> Call:
        if spec.params is None:  # accepts anything (Invoke-Echo)
            bound = binding.Bound()
        else:
            try:
                bound = binding.bind(spec.name, spec.cmdlet_class, spec.params, params)
            except binding.BindingError as e:
                raise TerminatingError(e.record) from None
        return Call(self, spec.name, bound, params, wire, input_objects, collect)

    def run_script(
        self, text: str, input_objects: typing.List[typing.Any], collect: bool
    ) -> typing.Optional[typing.List[typing.Any]]:
        """Runs the emulated script subset (see peer.script)."""
        from peer import commands

        config = self.session.configuration
        try:
            statements = script.parse(text)
        except script.ScriptError as e:
            raise TerminatingError(
                objects.error_record(
                    str(e),
                    ["System.Management.Automation.ParseException", "System.Management.Automation.RuntimeException",
                     "System.SystemException"],
                    "ParseException",
                    objects.ErrorCategory.ParserError,
                    None,
                    text,
                )
            ) from None
        collected: typing.List[typing.Any] = []
        self.trace_call()
        for stmt in statements:
            if stmt.assign is not None:
                name, value = stmt.assign
                self.trace(stmt.text, stmt.line)
                if self.session.trace_level >= 2:
                    self.write(lambda p: p.write_debug(f"     ! SET ${name} = '{value}'."))
                self.session.preferences[name] = str(value)
                continue
            self.trace(stmt.text, stmt.line)
            if stmt.expression == "languagemode":
                # Scripts run only in FullLanguage configurations (NoLanguage refuses them above).
                if collect:
                    collected.append("FullLanguage")
                else:
                    self.write(lambda p: p.write_output("FullLanguage"))
                continue
            if len(stmt.pipeline) == 1 and stmt.pipeline[0].name.lower() == "exit":
                # `exit N` in a remote script: the server's host passes SetShouldExit(N) to
                # the client's host, and the script ends there (the pipeline completes).
                tokens = stmt.pipeline[0].tokens
                if len(tokens) > 1 or (tokens and (isinstance(tokens[0], bool) or not isinstance(tokens[0], int))):
                    raise TerminatingError(objects.thrown(f"exit takes one integer, not {stmt.text!r}"))
                self.host_call(HostMethodIdentifier.SetShouldExit, [int(tokens[0]) if tokens else 0])
                break
            data = list(input_objects)
            failed = False
            for position, call_tokens in enumerate(stmt.pipeline):
                spec = commands.lookup(call_tokens.name, config)
                if spec is None:
                    # In a script an unknown command is an error for that statement only.
                    self.write_error(objects.command_not_found(call_tokens.name))
                    failed = True
                    break
                last = position == len(stmt.pipeline) - 1
                params = script.bind_tokens(call_tokens.tokens, spec.is_switch)
                call = self.bind_call(spec, spec.name, params, None, data, collect=(not last) or collect)
                spec.func(call)
                data = call.collected or []
            if collect and not failed:
                collected.extend(data)
        return collected if collect else None


def _render(name: str, params: typing.List[typing.Tuple[typing.Optional[str], typing.Any]]) -> str:
    parts = [name]
    for pname, value in params:
        if pname is not None:
            parts.append(f"-{pname}")
            if value is None or value is True:
                continue
        parts.append(f"'{value}'" if isinstance(value, str) else str(value))
    return " ".join(parts)

