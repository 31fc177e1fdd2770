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

from peer import disconnect, metadata, objects, runner, shells, soap

log = logging.getLogger("peer.instance")

MAX_LOG = 20000  # operation log entries kept (oldest dropped first)


class FaultRule:
    """One injected fault, or one attack of a hostile server (``peer.hostile``).

    Applies to WS-Man requests whose action matches ``action`` (None = any) and whose
    ``scope`` matches (``command``: the request names a CommandId; ``pool``: it does not;
    ``any``), after ``skip`` matching requests have passed, to the next ``count`` of them.

    Kinds and their parameters:

    - ``drop_connection``, ``close_after_response``, ``delay`` (``delay_ms``)
    - ``kill``: the TCP connection is cut (shutdown, no HTTP answer) at ``at``:
      ``request`` (the request was read but not processed), ``response`` (the
      request was processed, e.g. a Receive's output taken from the queue, and the
      answer never sent), ``mid_body`` (the headers and half of the body sent). With
      ``action`` (``Receive``, ``Send``, ``Signal``, ...) and ``skip`` it cuts "after N
      Receives", "on a Send", ...
    - ``http_500``: a WS-Man fault with ``code`` and ``message`` (sent as given: a
      hostile message may hold control characters)
    - ``http_status``: HTTP ``status`` with a plain ``text`` body and ``content_type``
      (no SOAP), like a proxy's or IIS's error page
    - ``tamper_encryption``: the encrypted reply is changed after the peer's real
      sealing, where someone on the path could (the MIME headers are outside the seal).
      ``tamper``: ``length`` (OriginalContent ``Length=`` becomes the text ``length``),
      ``no_length``, ``boundary_in_data`` (the boundary line written over the middle
      of the sealed bytes), ``truncate`` (body cut in the middle of the sealed bytes,
      Content-Length matching), ``signature_length`` (the 4-byte signature length set
      to 0xFFFFFFFF), ``tiny_parts`` (``parts`` one-byte parts before the real one)
    - ``endless_body``: the HTTP body never ends. ``body``: ``stall`` (Content-Length
      1 MiB more than sent, then one byte every ``interval_ms``), ``chunked`` (chunked,
      a one-byte chunk every ``interval_ms``, never the last chunk), ``flood`` (chunked,
      64 KiB chunks as fast as the client reads, up to ``max_bytes``). The peer gives
      up after ``max_seconds`` and closes the connection.
    - ``endless_receive`` (Receive of a command): every Receive returns ``objects`` new
      output objects (after ``delay_ms``) and the command never reports Done
    - ``endless_fragment`` (Receive of a command): every Receive returns more fragments
      of ``messages`` interleaved PSRP messages that never get their End flag
    - ``oversized_envelope``: a ReceiveResponse of ``bytes`` bytes (valid output
      streams), far above any MaxEnvelopeSize
    - ``deep_xml``: a response with ``depth`` nested elements
    - ``many_elements``: a response with ``elements`` empty elements
    - ``ansi_streams`` (Command): the pipeline writes text with terminal escape
      sequences (``peer.hostile.ANSI_TEXT``) to every stream and host Write* call,
      then fails with such an error record
    - ``fail_pipeline`` (Command): the pipeline fails at once with a terminating error
      record whose message is ``message`` (a host where the command fails, e.g. in a
      fleet of simulated hosts, ``peer.fleet``)
    - ``corrupt_chunk``: one byte of a file-copy chunk is flipped (``peer.copyscripts``);
      ``skip`` and ``count`` count chunks (psrp's write/read chunks, pypsrp's input chunks
      and fetched file)
    - ``tamper_session_key`` (pool Send): the ENCRYPTED_SESSION_KEY psrpcore writes in
      answer to the PUBLIC_KEY of that Send has one byte of its RSA ciphertext changed
    """

    KINDS = (
        "drop_connection",
        "kill",
        "close_after_response",
        "http_500",
        "delay",
        "http_status",
        "tamper_encryption",
        "endless_body",
        "endless_receive",
        "endless_fragment",
        "oversized_envelope",
        "deep_xml",
        "many_elements",
        "ansi_streams",
        "tamper_session_key",
        "corrupt_chunk",
        "fail_pipeline",
    )
    SCOPES = ("any", "pool", "command")
    TAMPERS = ("length", "no_length", "boundary_in_data", "truncate", "signature_length", "tiny_parts")
    BODIES = ("stall", "chunked", "flood")
    KILL_POINTS = ("request", "response", "mid_body")
    # Kinds that only make sense for one action (and scope): the defaults.
    FIXED_ACTION = {
        "endless_receive": ("Receive", "command"),
        "endless_fragment": ("Receive", "command"),
        "ansi_streams": ("Command", "any"),
        "tamper_session_key": ("Send", "pool"),
        "fail_pipeline": ("Command", "any"),
        # Not a WS-Man action: taken by the copy emulation for each chunk.
        "corrupt_chunk": ("CopyChunk", "any"),
    }

    def __init__(self, spec: typing.Dict[str, typing.Any]) -> None:
        kind = spec.get("kind")
        if kind not in self.KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(self.KINDS)}, not {kind!r}")
        self.kind = kind
        self.action = spec.get("action")
        self.scope = spec.get("scope") or "any"
        if kind in self.FIXED_ACTION:
            action, scope = self.FIXED_ACTION[kind]
            if self.action not in (None, action):
                raise ValueError(f"fault kind {kind} applies to {action} requests only, not {self.action!r}")
            self.action = action
            if self.scope == "any":
                self.scope = scope
        if self.scope not in self.SCOPES:
            raise ValueError(f"fault scope must be one of {', '.join(self.SCOPES)}, not {self.scope!r}")
        self.skip = int(spec.get("skip", 0))
        self.count = int(spec.get("count", 1))
        self.delay_ms = int(spec.get("delay_ms", 0))
        self.code = int(spec.get("code", soap.ERROR_INTERNAL_ERROR))
        self.message = str(spec.get("message", "Injected fault from the test peer."))
        self.status = int(spec.get("status", 503))
        self.text = str(spec.get("text", "Service Unavailable"))
        self.content_type = str(spec.get("content_type", "text/html; charset=utf-8"))
        self.tamper = spec.get("tamper", "length")
        self.length = str(spec.get("length", "18446744073709551615"))
        self.parts = int(spec.get("parts", 50000))
        self.body = spec.get("body", "stall")
        self.interval_ms = int(spec.get("interval_ms", 200))
        self.max_seconds = float(spec.get("max_seconds", 60))
        self.max_bytes = int(spec.get("max_bytes", 1 << 30))
        self.objects = int(spec.get("objects", 20))
        self.messages = int(spec.get("messages", 1))
        self.bytes = int(spec.get("bytes", 24 << 20))
        self.depth = int(spec.get("depth", 100000))
        self.elements = int(spec.get("elements", 2000000))
        self.at = spec.get("at", "response")
        self.fired = 0
        if self.at not in self.KILL_POINTS:
            raise ValueError(f"at must be one of {', '.join(self.KILL_POINTS)}, not {self.at!r}")
        if not 1 <= self.messages <= 64:
            raise ValueError(f"messages must be 1 to 64, not {self.messages}")
        if self.tamper not in self.TAMPERS:
            raise ValueError(f"tamper must be one of {', '.join(self.TAMPERS)}, not {self.tamper!r}")
        if self.body not in self.BODIES:
            raise ValueError(f"body must be one of {', '.join(self.BODIES)}, not {self.body!r}")
        numbers = (self.count, self.skip, self.delay_ms, self.parts, self.interval_ms, self.max_seconds,
                   self.max_bytes, self.objects, self.bytes, self.depth, self.elements)
        if any(n < 0 for n in numbers):
            raise ValueError("counts, sizes and times must not be negative")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status {self.status} is not an HTTP status")

    def matches(self, action: str, command_id: typing.Optional[str] = None) -> bool:
        if self.scope == "command" and not command_id or self.scope == "pool" and command_id:
            return False
        return self.action is None or self.action.lower() == action.lower()

    def describe(self) -> typing.Dict[str, typing.Any]:
        described = {
            "kind": self.kind,
            "action": self.action,
            "scope": self.scope,
            "skip": self.skip,
            "count": self.count,
            "fired": self.fired,
        }
        extra = {
            "delay": ("delay_ms",),
            "kill": ("at",),
            "http_500": ("code", "message"),
            "fail_pipeline": ("message",),
            "http_status": ("status", "text", "content_type"),
            "tamper_encryption": ("tamper", "length", "parts"),
            "endless_body": ("body", "interval_ms", "max_seconds", "max_bytes"),
            "endless_receive": ("objects", "delay_ms"),
            "endless_fragment": ("messages",),
            "oversized_envelope": ("bytes",),
            "deep_xml": ("depth",),
            "many_elements": ("elements",),
        }.get(self.kind, ())
        described.update({name: getattr(self, name) for name in extra})
        return described


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
        self.file_store: typing.Any = None  # set by main (peer.copyscripts.FileStore)
        # Robust Receive (SequenceId kept and echoed); off: as a server without it.
        self.robust_receive = True
        # Server settings tests change through the control endpoint (/settings).
        self.settings: typing.Dict[str, float] = dict(disconnect.DEFAULT_SETTINGS)
        self._reaper: typing.Optional[threading.Thread] = None
        self.stopping = threading.Event()

    def watch_idle(self) -> None:
        """Starts the idle-timeout reaper of disconnected shells (once)."""
        with self.lock:
            if self._reaper is None:
                self._reaper = threading.Thread(
                    target=disconnect.reap_idle_shells, args=(self, self.stopping), name="idle-reaper", daemon=True
                )
                self._reaper.start()

    def update_settings(self, values: typing.Dict[str, typing.Any]) -> None:
        for name, value in values.items():
            if name not in disconnect.DEFAULT_SETTINGS:
                raise ValueError(f"unknown setting {name!r}; known: {sorted(disconnect.DEFAULT_SETTINGS)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"setting {name} must be a positive number")
        with self.lock:
            self.settings.update({k: float(v) for k, v in values.items()})

    # ---- shells -----------------------------------------------------------------------

    @staticmethod
    def _key(shell_id: str) -> str:
        try:
            return str(uuid.UUID(shell_id))
        except ValueError:
            return shell_id.upper()

    def new_shell(self, shell_id: str, configuration: runner.Configuration, ctx: typing.Any, uri: str) -> shells.Shell:
        session = runner.SessionState(configuration)
        # Like the logon session of a WinRM shell: it holds the credentials delegated when it was created.
        session.delegated_principal = getattr(ctx, "delegated", None)
        shell = shells.Shell(self, shell_id, configuration, ctx.principal, ctx.client_ip, uri, session)
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
        # Answered at once (lock held): the count, then one CommandMetadata per visible command.
        request = command.pipeline.metadata
        names = metadata.answer(command.pipeline, shell.configuration)
        self.log_op({"kind": "command_metadata", "shell_id": shell.id, "configuration": shell.configuration.name,
                     "names": [str(n) for n in (request.name or [])], "answered": names})

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

    def take_fault(self, action: str, command_id: typing.Optional[str] = None) -> typing.Optional[FaultRule]:
        """The fault to apply to this request, if any (consumes skip/count)."""
        with self.lock:
            fired = None
            for rule in self.faults:
                if not rule.matches(action, command_id) or rule.count <= 0:
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
