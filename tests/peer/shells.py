"""WinRM shells backed by psrpcore's ServerRunspacePool / ServerPipeline.

One ``Shell`` per WS-Man shell (= one runspace pool), guarded by one condition variable.
Everything psrpcore queues for the client is moved at once into per-target queues (the
pool, or one pipeline), so that a pool-level Receive only ever gets pool messages and a
pipeline Receive only that pipeline's messages. Receive then cuts fragments to fit the
request's MaxEnvelopeSize.
"""

import collections
import logging
import threading
import time
import typing
import uuid

import psrpcore
from psrpcore._payload import create_fragment, create_message
from psrpcore.types import (
    PSInvocationState,
    PSRPMessageType,
    PSVersion,
    RunspacePoolState,
)

from peer import hostile, soap

log = logging.getLogger("peer.shells")

TERMINAL_STATES = (PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped)

# A producing command stops when this much output is queued for its pipeline,
# and goes on once Receives have taken it down to the low-water mark (so that
# it is not woken for every Receive).
QUEUE_HIGH_WATER = 8 * 1024 * 1024
QUEUE_LOW_WATER = 4 * 1024 * 1024

# Fixed cost of a ReceiveResponse envelope without streams, and per rsp:Stream element.
_RECEIVE_ENVELOPE_RESERVE = 2048
_STREAM_ELEMENT_OVERHEAD = 100
FRAGMENT_HEADER = 21


class PeerRunspacePool(psrpcore.ServerRunspacePool):
    """psrpcore's server pool, also keeping the raw CLIXML of each CREATE_PIPELINE.

    Invoke-Echo reports the CLIXML element each argument arrived as; psrpcore still does
    all the parsing, this only keeps the bytes it parsed.
    """

    def __init__(self, **kwargs: typing.Any) -> None:
        super().__init__(**kwargs)
        self.raw_create_pipeline: typing.Dict[uuid.UUID, bytes] = {}

    def _process_message(self, message: typing.Any) -> typing.Any:
        if message.message_type == PSRPMessageType.CreatePipeline and message.pipeline_id:
            self.raw_create_pipeline[message.pipeline_id] = bytes(message.data)
        return super()._process_message(message)

    def next_object_id(self) -> int:
        """An object id from psrpcore's own counter, for messages the peer frames itself."""
        return self._fragment_counter


# MS-PSRP 2.2.1 message type of RUNSPACEPOOL_STATE.
RUNSPACEPOOL_STATE_TYPE = 0x00021005


class OutMessage:
    """A whole PSRP message waiting to be sent, possibly already partly fragmented."""

    __slots__ = ("object_id", "data", "offset", "fragment_id")

    def __init__(self, object_id: int, data: bytes) -> None:
        self.object_id = object_id
        self.data = data
        self.offset = 0
        self.fragment_id = 0


def count_fragments(data: bytes) -> int:
    """Number of PSRP fragments in a byte string (for the operation log)."""
    n = 0
    pos = 0
    while pos + FRAGMENT_HEADER <= len(data):
        length = int.from_bytes(data[pos + 17 : pos + 21], "big")
        pos += FRAGMENT_HEADER + length
        n += 1
    return n


def first_fragment_object(data: bytes) -> typing.Optional[typing.Tuple[int, int, bool, bool]]:
    """(object_id, fragment_id, start, end) of the first fragment in data."""
    if len(data) < FRAGMENT_HEADER:
        return None
    flags = data[16]
    return int.from_bytes(data[0:8], "big"), int.from_bytes(data[8:16], "big"), bool(flags & 1), bool(flags & 2)


class Command:
    """A WS-Man command = one PSRP pipeline."""

    def __init__(self, shell: "Shell", pipeline_id: uuid.UUID, id_text: str) -> None:
        self.shell = shell
        self.id = pipeline_id
        self.id_text = id_text
        self.pipeline = psrpcore.ServerPipeline(shell.pool, pipeline_id)
        self.stop_requested = False
        self.closed = False
        self.thread: typing.Optional[threading.Thread] = None
        self.host_responses: typing.Dict[int, typing.Any] = {}
        self.input: typing.List[typing.Any] = []
        self.input_done = False
        self.fragments_in_command = 0
        self.fragments_in_send = 0
        self.created = False  # CreatePipelineEvent seen
        self.hostile: typing.Any = None  # an ansi_streams FaultRule (peer.hostile)
        self.failure: typing.Optional[str] = None  # a fail_pipeline fault's message

    @property
    def terminal(self) -> bool:
        return self.pipeline.state in TERMINAL_STATES

    def describe(self) -> typing.Dict[str, typing.Any]:
        md = self.pipeline.metadata
        return {
            "command_id": self.id_text,
            "state": self.pipeline.state.name,
            "commands": [c.command_text for c in md.commands] if md is not None else [],
            "create_pipeline_fragments": {"command": self.fragments_in_command, "send": self.fragments_in_send},
        }


class Shell:
    """One WS-Man shell: a runspace pool, its commands and the output queues."""

    def __init__(
        self,
        instance: typing.Any,
        shell_id: str,
        configuration: typing.Any,
        owner: str,
        client_ip: str,
        resource_uri: str,
        session: typing.Any,
    ) -> None:
        self.instance = instance
        self.id = shell_id
        self.configuration = configuration
        self.owner = owner
        self.client_ip = client_ip
        self.resource_uri = resource_uri
        self.created = time.time()
        self.cond = threading.Condition()
        self.pool = PeerRunspacePool(application_private_data=_application_private_data())
        self.queues: typing.Dict[typing.Optional[uuid.UUID], typing.Deque[OutMessage]] = {None: collections.deque()}
        self.queued_bytes: typing.Dict[typing.Optional[uuid.UUID], int] = {None: 0}
        self.commands: typing.Dict[uuid.UUID, Command] = {}
        self.closed = False
        # Robust Receive: the last ReceiveResponse body of the pool (None) and of
        # each command (str of its UUID), with its SequenceId, until the next
        # SequenceId acknowledges it (peer.wsman.Handlers.receive).
        self.last_receive: typing.Dict[typing.Optional[str], typing.Any] = {}
        self.session = session
        # Disconnected operation (peer.disconnect): the client's WS-Man SessionId, whether nobody
        # is connected (and since when), the buffer mode and the requested idle timeout.
        self.name = "Runspace"
        self.session_id: typing.Optional[str] = None
        self.disconnected = False
        self.disconnected_at = 0.0
        self.buffer_mode = "Block"
        self.idle_timeout = 7200.0
        self.dropped_messages = 0
        # SecureString session key: the client's PUBLIC_KEY arrived (psrpcore answered it with
        # ENCRYPTED_SESSION_KEY), and how many PUBLIC_KEY_REQUESTs the peer sent.
        self.key_exchanged = False
        self.key_requests = 0
        self.tamper_session_key = False  # peer.hostile tamper_session_key armed for this shell
        # peer.hostile endless_fragment: command id -> [(object id, next fragment id)]
        self.hostile_fragments: typing.Dict[str, typing.List[typing.Tuple[int, int]]] = {}

    # ---- feeding psrpcore -------------------------------------------------------------

    def feed(self, data: bytes, stream: str, pipeline_id: typing.Optional[uuid.UUID]) -> None:
        """Hands received PSRP fragments to psrpcore and reacts to its events. Lock held."""
        stream_type = psrpcore.StreamType.prompt_response if stream == "pr" else psrpcore.StreamType.default
        try:
            self.pool.receive_data(psrpcore.PSRPPayload(data, stream_type, pipeline_id))
            while True:
                event = self.pool.next_event()
                if event is None:
                    break
                self._on_event(event)
        except soap.WSManFault:
            raise
        except Exception as e:
            log.warning("shell %s: PSRP data refused: %s: %s", self.id, type(e).__name__, e)
            raise soap.WSManFault(
                soap.ERROR_SCHEMA_VALIDATION,
                f"The PowerShell remoting data received is not valid: {type(e).__name__}: {e}",
                subcode="w:SchemaValidationError",
                soap_code="s:Sender",
            ) from None
        finally:
            self.drain()

    def _on_event(self, event: typing.Any) -> None:
        name = type(event).__name__
        pid = getattr(event, "pipeline_id", None)
        command = self.commands.get(pid) if pid else None
        if name == "CreatePipelineEvent":
            if command is None:
                raise soap.schema_fault(f"CREATE_PIPELINE for unknown pipeline {pid}.")
            command.created = True
            self.instance.start_pipeline(self, command)
        elif name == "PipelineInputEvent" and command is not None:
            command.input.append(event.data)
            self.cond.notify_all()
        elif name == "EndOfPipelineInputEvent" and command is not None:
            command.input_done = True
            self.cond.notify_all()
        elif name == "PipelineHostResponseEvent" and command is not None:
            command.host_responses[event.ci] = event
            self.cond.notify_all()
        elif name in ("SetMaxRunspacesEvent", "SetMinRunspacesEvent", "ResetRunspaceStateEvent"):
            self.pool.runspace_availability_response(event.ci, True)
        elif name == "GetAvailableRunspacesEvent":
            running = sum(1 for c in self.commands.values() if not c.terminal)
            self.pool.runspace_availability_response(event.ci, max(self.pool.max_runspaces - running, 0))
        elif name == "PublicKeyEvent":
            log.info("shell %s: session key exchanged (PUBLIC_KEY answered)", self.id)
            self.key_exchanged = True
            self.cond.notify_all()
        elif name == "GetCommandMetadataEvent" and command is not None:
            self.instance.start_metadata(self, command)
        else:
            log.debug("shell %s: event %s", self.id, name)

    # ---- output queues ----------------------------------------------------------------

    def drain(self) -> None:
        """Moves every message psrpcore queued into the per-target queues. Lock held."""
        buffered = self.pool._send_buffer
        if not buffered:
            return
        self.pool._send_buffer = []
        for message in buffered:
            data = message.data
            if self.tamper_session_key and int.from_bytes(data[4:8], "little") == hostile.ENCRYPTED_SESSION_KEY:
                self.tamper_session_key = False
                data = hostile.tamper_session_key(bytes(data))
            self._enqueue(message.pipeline_id, OutMessage(message.object_id, data))
        self.cond.notify_all()

    def _enqueue(self, target: typing.Optional[uuid.UUID], message: OutMessage) -> None:
        if target is not None:
            command = self.commands.get(target)
            if command is None or command.closed:
                return  # the client released this command; nobody will receive it
        self.queues.setdefault(target, collections.deque()).append(message)
        self.queued_bytes[target] = self.queued_bytes.get(target, 0) + len(message.data)

    def inject_output(self, command: Command, clixml: typing.Iterable[bytes]) -> None:
        """Queues PIPELINE_OUTPUT messages serialized elsewhere, with ids from psrpcore's
        own object-id counter (so they never clash with messages psrpcore frames). Lock held."""
        self.drain()  # keep order with anything psrpcore queued before
        # The 40-byte message header is the same for every object of the command.
        header = create_message(False, PSRPMessageType.PipelineOutput, b"", self.pool.runspace_pool_id, command.id)
        for data in clixml:
            self._enqueue(command.id, OutMessage(self.pool.next_object_id(), header + data))
        self.cond.notify_all()

    def effective_idle_timeout(self) -> float:
        """The shell's idle timeout, at most the server's maximum (MaxIdleTimeoutms)."""
        return min(self.idle_timeout, float(self.instance.settings["max_idle_timeout"]))

    def set_connected(self, session_id: typing.Optional[str]) -> None:
        """A client (re)connected: Receives work again, blocked producers go on. Lock held."""
        self.session_id = session_id
        self.disconnected = False
        self.cond.notify_all()

    def _disconnected_limit(self) -> int:
        return int(self.instance.settings["disconnected_buffer_bytes"])

    def _drop_oldest(self, command: Command) -> None:
        """Drop mode while disconnected: the oldest whole messages make room. Lock held."""
        queue = self.queues.get(command.id)
        limit = self._disconnected_limit()
        while queue and len(queue) > 1 and queue[0].offset == 0 and self.queued_bytes[command.id] > limit:
            self.queued_bytes[command.id] -= len(queue.popleft().data)
            self.dropped_messages += 1

    def wait_for_room(self, command: Command) -> None:
        """Back-pressure for producers: waits while the client is far behind, or, while
        nobody is connected, when the disconnected buffer is full (Block mode; Drop mode
        drops the oldest output instead). Lock held."""
        if self.disconnected and self.buffer_mode == "Drop":
            self._drop_oldest(command)
            return
        threshold = self._disconnected_limit() if self.disconnected else QUEUE_HIGH_WATER
        if self.queued_bytes.get(command.id, 0) <= threshold:
            return
        while (
            self.queued_bytes.get(command.id, 0) > (self._disconnected_limit() if self.disconnected else QUEUE_LOW_WATER)
            and not command.stop_requested
            and not command.closed
            and not self.closed
        ):
            self.cond.wait(1.0)

    def receive(
        self, command: typing.Optional[Command], timeout: float, max_envelope: int
    ) -> typing.Tuple[typing.List[bytes], bool]:
        """Waits for output of the pool (command None) or a pipeline. Lock held.

        Returns (fragment byte strings, done). Raises the OperationTimeout fault when
        nothing is ready within ``timeout`` (never for the pool while it is opening).
        """
        target = command.id if command else None
        deadline = time.monotonic() + timeout
        while True:
            if self.closed:
                raise soap.shell_not_found_fault(self.id)
            if command is not None and command.closed:
                raise soap.command_not_found_fault(self.id, command.id_text)
            if self.disconnected:
                from peer.disconnect import shell_disconnected_fault

                raise shell_disconnected_fault(self.id)
            queue = self.queues.get(target)
            if queue:
                break
            if command is not None and command.terminal:
                return [], True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if command is None and self.pool.state != RunspacePoolState.Opened:
                    return [], False  # pypsrp's open() does not expect the timeout fault
                raise soap.timeout_fault()
            self.cond.wait(remaining)

        budget = max_envelope - _RECEIVE_ENVELOPE_RESERVE
        fragments: typing.List[bytes] = []
        used = 0
        taken = 0
        while queue:
            message = queue[0]
            if (
                command is None
                and fragments
                and message.offset == 0
                and int.from_bytes(message.data[4:8], "little") == RUNSPACEPOOL_STATE_TYPE
            ):
                # As Windows does (the pool opening in the real recordings): the
                # pool's state comes in a ReceiveResponse of its own, after the one
                # with SESSION_CAPABILITY and APPLICATION_PRIVATE_DATA.
                break
            room = budget - used - _STREAM_ELEMENT_OVERHEAD
            # base64 turns 3 bytes into 4 characters.
            room_bytes = (room // 4) * 3 - FRAGMENT_HEADER
            if room_bytes <= 0:
                break
            data = message.data
            if message.offset == 0 and len(data) <= room_bytes:
                chunk = data  # the whole message in one fragment (no slice copy)
            else:
                chunk = data[message.offset : message.offset + room_bytes]
            message.offset += len(chunk)
            end = message.offset >= len(data)
            # Fragments come from psrpcore, not from our own reading of the format.
            fragments.append(create_fragment(message.object_id, message.fragment_id, chunk, end))
            message.fragment_id += 1
            used += _STREAM_ELEMENT_OVERHEAD + ((FRAGMENT_HEADER + len(chunk) + 2) // 3) * 4
            taken += len(chunk)
            if end:
                queue.popleft()
        self.queued_bytes[target] -= taken
        if self.queued_bytes[target] <= QUEUE_LOW_WATER:
            self.cond.notify_all()  # producers waiting for room
        done = command is not None and not queue and command.terminal
        return fragments, done

    # ---- commands -----------------------------------------------------------------------

    def wait_for_session_key(self, check: typing.Callable[[], None], timeout: float) -> bool:
        """Makes sure the client's session key is known before a SecureString goes out:
        sends PUBLIC_KEY_REQUEST (psrpcore's request_key, targeted to the pool) if the client
        has not exchanged keys, then waits for its PUBLIC_KEY. Lock held."""
        if self.key_exchanged:
            return True
        if not self.pool._key_requested:
            self.pool.request_key()
            self.key_requests += 1
            self.drain()
        deadline = time.monotonic() + timeout
        while not self.key_exchanged:
            check()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.cond.wait(min(remaining, 1.0))
        return True

    def check_open(self) -> None:
        """Faults like WinRM when the shell was deleted meanwhile. Lock held."""
        if self.closed:
            raise soap.shell_not_found_fault(self.id)
        if self.disconnected:
            from peer.disconnect import shell_disconnected_fault

            raise shell_disconnected_fault(self.id)

    def new_command(self, pipeline_id: uuid.UUID, id_text: str) -> Command:
        if pipeline_id in self.commands:
            raise soap.WSManFault(
                2150858803,  # ERROR_WSMAN_ALREADY_EXISTS
                f"The WS-Management service cannot process the request: a command with CommandId {id_text} "
                "already exists in this shell.",
                subcode="w:AlreadyExists",
                soap_code="s:Sender",
            )
        command = Command(self, pipeline_id, id_text)
        self.commands[pipeline_id] = command
        self.queues[pipeline_id] = collections.deque()
        self.queued_bytes[pipeline_id] = 0
        return command

    def stop_command(self, command: Command) -> None:
        """Stops a running pipeline (PowerShell's crtl_c signal). Lock held."""
        command.stop_requested = True
        pipeline = command.pipeline
        if pipeline.state == PSInvocationState.NotStarted:
            pipeline._change_state(PSInvocationState.Running, emit=False)
        if pipeline.state in (PSInvocationState.Running, PSInvocationState.Stopping):
            pipeline.stop()
        self.drain()
        self.cond.notify_all()

    def close_command(self, command: Command) -> None:
        """Releases a command (terminate or any other signal code). Lock held."""
        if not command.terminal:
            self.stop_command(command)
        command.closed = True
        command.pipeline.close()
        self.pool.raw_create_pipeline.pop(command.id, None)
        self.commands.pop(command.id, None)
        self.queues.pop(command.id, None)
        self.queued_bytes.pop(command.id, None)
        self.last_receive.pop(str(command.id), None)
        self.cond.notify_all()

    def close(self) -> None:
        """Deletes the shell: stops and releases every command, closes the pool. Lock held."""
        for command in list(self.commands.values()):
            self.close_command(command)
        if self.pool.state in (RunspacePoolState.Opened, RunspacePoolState.Closing, RunspacePoolState.Closed):
            self.pool.close()
        self.pool._send_buffer = []
        self.closed = True
        self.cond.notify_all()

    def describe(self) -> typing.Dict[str, typing.Any]:
        return {
            "shell_id": self.id,
            "configuration": self.configuration.name,
            "owner": self.owner,
            "pool_state": self.pool.state.name,
            "state": "Disconnected" if self.disconnected else "Connected",
            "buffer_mode": self.buffer_mode,
            "idle_timeout": self.effective_idle_timeout(),
            "dropped_messages": self.dropped_messages,
            "queued_bytes": dict((str(k) if k else "pool", v) for k, v in self.queued_bytes.items()),
            "commands": [c.describe() for c in self.commands.values()],
            "session_key": {"exchanged": self.key_exchanged, "requested_by_server": self.key_requests},
        }


def _application_private_data() -> typing.Dict[str, typing.Any]:
    # What Windows PowerShell 5.1 reports in APPLICATION_PRIVATE_DATA (subset).
    return {
        "DebugMode": 1,
        "DebugStop": False,
        "DebugBreakpointCount": 0,
        "PSVersionTable": {
            "PSVersion": PSVersion("5.1.17763.1"),
            "PSEdition": "Desktop",
            "PSCompatibleVersions": [PSVersion(v) for v in ("1.0", "2.0", "3.0", "4.0", "5.0", "5.1.17763.1")],
            "BuildVersion": PSVersion("10.0.17763.1"),
            "CLRVersion": PSVersion("4.0.30319.42000"),
            "WSManStackVersion": PSVersion("3.0"),
            "PSRemotingProtocolVersion": PSVersion("2.3"),
            "SerializationVersion": PSVersion("1.1.0.1"),
        },
    }

