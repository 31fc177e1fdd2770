"""Disconnected shells: Disconnect, Reconnect and Connect of a PowerShell shell and its
commands, WS-Enumeration of shells and commands, and the idle-timeout reaper (MS-WSMV
3.1.4.8-9 and 3.1.4.15-17, MS-PSRP 3.1.4.10 and 3.1.5.3.14-19).

A disconnected shell keeps its psrpcore pool and its running pipelines; their output stays
in the shell's queues. While nobody is connected a queue holds at most
``Instance.settings["disconnected_buffer_bytes"]``: in Block mode the pipeline waits for room
(``Shell.wait_for_room``), in Drop mode the oldest whole messages are dropped. Past its idle
timeout (the shell's IdleTimeOut, at most ``settings["max_idle_timeout"]``) the shell is
deleted, as WinRM does.

Fault codes are WinRM's (winerror.h ERROR_WINRS_*): 0x803381C4 shell disconnected,
0x803381C6 Reconnect from another client session, 0x803381CD connected to a different
client, 0x803381CF already disconnected, 0x803381D0 Reconnect of a connected shell, 5 access
denied (another user's shell).
"""

import base64
import binascii
import itertools
import logging
import threading
import time
import typing
import uuid
from xml.sax.saxutils import escape

from psrpcore._payload import create_fragment
from psrpcore.types import RunspacePoolState

from peer import soap
from peer.soap import NS, WSManFault

log = logging.getLogger("peer.disconnect")

ERROR_SHELL_DISCONNECTED = 0x803381C4
ERROR_CLIENTSESSIONID_MISMATCH = 0x803381C6
ERROR_CONNECTED_TO_DIFFERENT_CLIENT = 0x803381CD
ERROR_DISCONNECT_NOT_VALID = 0x803381CF
ERROR_RECONNECT_NOT_VALID = 0x803381D0
ERROR_ACCESS_DENIED = 5

WSEN = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
ENUMERATION_PREFIX = WSEN + "/"
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
COMMAND_URI = SHELL_URI + "/Command"
DEFAULT_IDLE_TIMEOUT = 7200.0

DEFAULT_SETTINGS: typing.Dict[str, float] = {
    # WinRM's MaxIdleTimeoutms (default 43200000 ms); tests lower it.
    "max_idle_timeout": 43200.0,
    # Output kept per command while nobody is connected.
    "disconnected_buffer_bytes": 8 * 1024 * 1024,
}


def user_of(principal: str) -> str:
    """The account a principal names, whatever the spelling: ``testuser``,
    ``PEER\\testuser``, ``testuser@PEER.TEST`` are one user."""
    name = principal.rsplit("\\", 1)[-1].split("@", 1)[0]
    return name.lower()


def shell_disconnected_fault(shell_id: str) -> WSManFault:
    return WSManFault(
        ERROR_SHELL_DISCONNECTED,
        f"The WinRM service cannot process the request because the WinRS shell instance {shell_id} is currently "
        "disconnected.",
        subcode="w:InternalError",
        soap_code="s:Receiver",
    )


def access_denied_fault() -> WSManFault:
    return WSManFault(ERROR_ACCESS_DENIED, "Access is denied.", subcode="w:AccessDenied", soap_code="s:Sender")


def _duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


def _span(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"P{s // 86400}DT{s % 86400 // 3600}H{s % 3600 // 60}M{s % 60}S"


def check_owner(shell: typing.Any, ctx: typing.Any) -> None:
    if user_of(shell.owner) != user_of(ctx.principal):
        raise access_denied_fault()


class Handlers:
    """Disconnect, Reconnect, Connect, Enumerate and Pull (wired in by peer.wsman)."""

    def __init__(self, instance: typing.Any) -> None:
        self.instance = instance
        self.enumerations: typing.Dict[str, typing.List[str]] = {}
        self.lock = threading.Lock()
        self.counter = itertools.count(1)

    # ---- Disconnect / Reconnect -------------------------------------------------------

    def disconnect(self, req: soap.Request, shell: typing.Any, ctx: typing.Any, record: typing.Dict[str, typing.Any]) -> bytes:
        el = req.body.find("rsp:Disconnect", NS)
        if el is None:
            raise soap.schema_fault("The Disconnect body must contain rsp:Disconnect.")
        idle = el.find("rsp:IdleTimeOut", NS)
        mode = el.find("rsp:BufferMode", NS)
        with shell.cond:
            _check_exists(shell)
            if shell.disconnected:
                raise WSManFault(
                    ERROR_DISCONNECT_NOT_VALID,
                    "The WinRM client cannot process the request. A disconnect operation cannot be performed on a "
                    "WinRS shell instance that is already disconnected.",
                    subcode="w:InternalError",
                    soap_code="s:Sender",
                )
            if idle is not None and (idle.text or "").strip():
                shell.idle_timeout = soap.parse_duration(idle.text)
            if mode is not None and (mode.text or "").strip():
                value = mode.text.strip().capitalize()
                if value not in ("Block", "Drop"):
                    raise soap.schema_fault(f"BufferMode {mode.text!r} is neither Block nor Drop.")
                shell.buffer_mode = value
            shell.disconnected = True
            shell.disconnected_at = time.monotonic()
            record["idle_timeout"] = shell.effective_idle_timeout()
            record["buffer_mode"] = shell.buffer_mode
            shell.cond.notify_all()  # pending Receives answer with the disconnected fault
        self.instance.watch_idle()
        return soap.envelope(soap.SHELL_ACTION_PREFIX + "DisconnectResponse", req.message_id, "<rsp:DisconnectResponse/>")

    def reconnect(self, req: soap.Request, shell: typing.Any, ctx: typing.Any, record: typing.Dict[str, typing.Any]) -> bytes:
        with shell.cond:
            _check_exists(shell)
            if not shell.disconnected:
                raise WSManFault(
                    ERROR_RECONNECT_NOT_VALID,
                    "The WinRM client cannot process the request. A reconnect operation cannot be performed on a "
                    "WinRS shell instance that is currently connected.",
                    soap_code="s:Sender",
                )
            if (req.session_id or "").upper() != (shell.session_id or "").upper():
                raise WSManFault(
                    ERROR_CLIENTSESSIONID_MISMATCH,
                    "The WinRM service cannot process the request because the WinRS shell instance is connected to a "
                    "different client (the SessionId differs); use Connect from a new client.",
                    soap_code="s:Sender",
                )
            shell.set_connected(req.session_id)
        return soap.envelope(soap.SHELL_ACTION_PREFIX + "ReconnectResponse", req.message_id, "<rsp:ReconnectResponse/>")

    # ---- Connect ------------------------------------------------------------------------

    def connect(self, req: soap.Request, shell: typing.Any, ctx: typing.Any, record: typing.Dict[str, typing.Any]) -> bytes:
        el = req.body.find("rsp:Connect", NS)
        if el is None:
            raise soap.schema_fault("The Connect body must contain rsp:Connect.")
        command_id = el.get("CommandId")
        record["command_id"] = command_id
        if command_id:
            with shell.cond:
                _check_exists(shell)
                if shell.disconnected or (req.session_id or "").upper() != (shell.session_id or "").upper():
                    raise WSManFault(
                        ERROR_CONNECTED_TO_DIFFERENT_CLIENT,
                        "The WinRM service cannot process the request. Connect to the shell before its commands.",
                        soap_code="s:Sender",
                    )
                command = shell.commands.get(_uuid(command_id))
                if command is None:
                    raise soap.command_not_found_fault(shell.id, command_id)
            return soap.envelope(soap.SHELL_ACTION_PREFIX + "ConnectResponse", req.message_id,
                                 "<rsp:ConnectResponse/>")
        version = req.options.get("protocolversion")
        if version is None or version.split(".")[0] != "2":
            raise WSManFault(
                soap.ERROR_INVALID_OPTIONS,
                "The WS-Management service cannot process the request. Connect needs the protocolversion option "
                "(2.2 or later).",
                subcode="w:InvalidOptions",
                soap_code="s:Sender",
            )
        connect_xml = el.find("ps:connectXml", NS)
        if connect_xml is None:
            raise soap.schema_fault("rsp:Connect must contain connectXml (namespace http://schemas.microsoft.com/"
                                    "powershell).")
        try:
            data = base64.b64decode((connect_xml.text or "").strip(), validate=True)
        except binascii.Error:
            raise soap.schema_fault("connectXml is not valid base64.") from None
        with shell.cond:
            _check_exists(shell)
            if not shell.disconnected:
                raise WSManFault(
                    ERROR_CONNECTED_TO_DIFFERENT_CLIENT,
                    f"The WinRM service cannot process the request. The WinRS shell instance {shell.id} is currently "
                    "connected to a different client.",
                    soap_code="s:Sender",
                )
            pool = shell.pool
            # The old client's unread pool messages are not the new client's.
            shell.queues[None].clear()
            shell.queued_bytes[None] = 0
            # A message partly sent to the old client starts over for the new one.
            for queue in shell.queues.values():
                if queue:
                    queue[0].offset = 0
                    queue[0].fragment_id = 0
            counter = pool._fragment_count
            pool._change_state(RunspacePoolState.Disconnected, emit=False)
            pool.connect()  # Disconnected -> Connecting (psrpcore)
            pool._fragment_count = counter  # object ids stay unique among queued messages
            pool.prepare_message(pool.our_capability)
            shell.feed(data, "stdin", None)  # SESSION_CAPABILITY + CONNECT_RUNSPACEPOOL
            if pool.state != RunspacePoolState.Opened:
                raise soap.schema_fault("connectXml must carry SESSION_CAPABILITY and CONNECT_RUNSPACEPOOL.")
            # SESSION_CAPABILITY and RUNSPACEPOOL_INIT_DATA answer in connectResponseXml; the rest
            # (APPLICATION_PRIVATE_DATA, the state) waits for a pool Receive.
            queue = shell.queues[None]
            fragments = []
            for _ in range(2):
                message = queue.popleft()
                shell.queued_bytes[None] -= len(message.data)
                fragments.append(create_fragment(message.object_id, 0, message.data, True))
            shell.set_connected(req.session_id)
            shell.client_ip = ctx.client_ip
        body = (
            "<rsp:ConnectResponse><pwsh:connectResponseXml xmlns:pwsh=\"http://schemas.microsoft.com/powershell\">"
            f"{base64.b64encode(b''.join(fragments)).decode()}</pwsh:connectResponseXml></rsp:ConnectResponse>"
        )
        return soap.envelope(soap.SHELL_ACTION_PREFIX + "ConnectResponse", req.message_id, body)

    # ---- Enumerate / Pull ---------------------------------------------------------------

    def enumerate(self, req: soap.Request, ctx: typing.Any, record: typing.Dict[str, typing.Any]) -> bytes:
        el = req.body.find(f"{{{WSEN}}}Enumerate")
        if el is None:
            raise soap.schema_fault("The Enumerate body must contain wsen:Enumerate.")
        max_elements = _max_elements(el.find("w:MaxElements", NS))
        uri = (req.resource_uri or "").rstrip("/").lower()
        user = user_of(ctx.principal)
        if uri == COMMAND_URI.lower():
            items = self._commands(el, user)
        elif uri == SHELL_URI.lower() or uri.startswith(soap.POWERSHELL_URI_PREFIX.rstrip("/").lower()):
            items = self._shells(user, uri if uri.startswith(soap.POWERSHELL_URI_PREFIX.lower()) else None)
        else:
            raise WSManFault(
                soap.ERROR_INVALID_RESOURCE_URI,
                f"The WS-Management service cannot process the request. The resource URI {req.resource_uri} does "
                "not support Enumerate on the test peer.",
                subcode="w:InvalidResourceURI",
                soap_code="s:Sender",
            )
        record["items"] = len(items)
        first, rest = items[:max_elements], items[max_elements:]
        context = f"uuid:{str(uuid.uuid4()).upper()}"
        if rest:
            with self.lock:
                self.enumerations[context] = rest
            tail = ""
        else:
            tail = "<w:EndOfSequence/>"
        body = (
            f'<n:EnumerateResponse xmlns:n="{WSEN}"><n:EnumerationContext>{context}</n:EnumerationContext>'
            f"<w:Items>{''.join(first)}</w:Items>{tail}</n:EnumerateResponse>"
        )
        return soap.envelope(ENUMERATION_PREFIX + "EnumerateResponse", req.message_id, body)

    def pull(self, req: soap.Request, ctx: typing.Any, record: typing.Dict[str, typing.Any]) -> bytes:
        el = req.body.find(f"{{{WSEN}}}Pull")
        context_el = el.find(f"{{{WSEN}}}EnumerationContext") if el is not None else None
        if context_el is None:
            raise soap.schema_fault("The Pull body must contain wsen:Pull/wsen:EnumerationContext.")
        context = (context_el.text or "").strip()
        max_elements = _max_elements(el.find(f"{{{WSEN}}}MaxElements"))
        with self.lock:
            items = self.enumerations.pop(context, None)
            if items is None:
                raise WSManFault(
                    2150858776,  # ERROR_WSMAN_INVALID_ENUMERATION_CONTEXT
                    "The WS-Management service cannot process the request because the enumeration context is not "
                    "valid.",
                    subcode="n:InvalidEnumerationContext",
                    soap_code="s:Receiver",
                )
            first, rest = items[:max_elements], items[max_elements:]
            if rest:
                self.enumerations[context] = rest
        tail = f"<n:EnumerationContext>{context}</n:EnumerationContext>" if rest else "<n:EndOfSequence/>"
        body = f'<n:PullResponse xmlns:n="{WSEN}">{tail if rest else ""}<n:Items>{"".join(first)}</n:Items>' \
               f'{"" if rest else tail}</n:PullResponse>'
        return soap.envelope(ENUMERATION_PREFIX + "PullResponse", req.message_id, body)

    def _shells(self, user: str, uri: typing.Optional[str]) -> typing.List[str]:
        with self.instance.lock:
            shells = list(self.instance.shells.values())
        items = []
        now = time.monotonic()
        for shell in shells:
            if not hasattr(shell, "disconnected") or user_of(shell.owner) != user:
                continue  # WinRS cmd shells and other users' shells are not listed
            if uri is not None and shell.resource_uri.lower() != uri:
                continue
            with shell.cond:
                if shell.closed:
                    continue
                inactive = now - shell.disconnected_at if shell.disconnected else 0.0
                items.append(
                    f"<rsp:Shell><rsp:ShellId>{escape(shell.id)}</rsp:ShellId><rsp:Name>{escape(shell.name)}</rsp:Name>"
                    f"<rsp:ResourceUri>{escape(shell.resource_uri)}</rsp:ResourceUri>"
                    f"<rsp:Owner>{escape(shell.owner)}</rsp:Owner><rsp:ClientIP>{escape(shell.client_ip)}</rsp:ClientIP>"
                    f"<rsp:IdleTimeOut>{_duration(shell.effective_idle_timeout())}</rsp:IdleTimeOut>"
                    f"<rsp:InputStreams>stdin pr</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams>"
                    f"<rsp:MaxIdleTimeOut>{_duration(self.instance.settings['max_idle_timeout'])}</rsp:MaxIdleTimeOut>"
                    f"<rsp:Locale>en-US</rsp:Locale><rsp:DataLocale>en-US</rsp:DataLocale>"
                    f"<rsp:CompressionMode>NoCompression</rsp:CompressionMode><rsp:ProfileLoaded>Yes</rsp:ProfileLoaded>"
                    f"<rsp:Encoding>UTF8</rsp:Encoding><rsp:BufferMode>{shell.buffer_mode}</rsp:BufferMode>"
                    f"<rsp:State>{'Disconnected' if shell.disconnected else 'Connected'}</rsp:State>"
                    f"<rsp:ShellRunTime>{_span(time.time() - shell.created)}</rsp:ShellRunTime>"
                    f"<rsp:ShellInactivity>{_span(inactive)}</rsp:ShellInactivity></rsp:Shell>"
                )
        return items

    def _commands(self, el: typing.Any, user: str) -> typing.List[str]:
        selector = el.find("w:Filter/w:SelectorSet/w:Selector", NS)
        if selector is None or selector.get("Name") != "ShellId":
            raise WSManFault(
                0x803381C0,  # ERROR_WSMAN_ENUMERATE_SHELLCOMAMNDS_FILTER_EXPECTED
                "The WinRM service cannot process the request. The enumeration request expects a selector based "
                "filter to specify the shell identifier.",
                subcode="w:InternalError",
                soap_code="s:Sender",
            )
        shell = self.instance.get_shell((selector.text or "").strip())
        if shell is None or not hasattr(shell, "disconnected"):
            raise soap.shell_not_found_fault((selector.text or "").strip())
        if user_of(shell.owner) != user:
            raise access_denied_fault()
        with shell.cond:
            return [
                f"<rsp:Command><rsp:CommandId>{escape(c.id_text)}</rsp:CommandId></rsp:Command>"
                for c in shell.commands.values()
            ]


def _max_elements(el: typing.Any) -> int:
    if el is None or not (el.text or "").strip():
        return 1
    try:
        return max(1, min(int(el.text.strip()), 32000))
    except ValueError:
        raise soap.schema_fault(f"MaxElements {el.text!r} is not a number.") from None


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise soap.schema_fault(f"CommandId {text!r} is not a GUID.") from None


def reap_idle_shells(instance: typing.Any, stop: threading.Event) -> None:
    """Deletes disconnected shells past their idle timeout, as WinRM does."""
    while not stop.wait(0.2):
        with instance.lock:
            shells = list(instance.shells.values())
        now = time.monotonic()
        for shell in shells:
            if not getattr(shell, "disconnected", False):
                continue
            with shell.cond:
                expired = shell.disconnected and now - shell.disconnected_at >= shell.effective_idle_timeout()
            if expired:
                log.info("shell %s: idle timeout expired while disconnected; deleted", shell.id)
                instance.log_op({"kind": "idle_timeout", "shell_id": shell.id})
                instance.remove_shell(shell)


def _check_exists(shell: typing.Any) -> None:
    """Like Shell.check_open, without refusing a disconnected shell. Lock held."""
    if shell.closed:
        raise soap.shell_not_found_fault(shell.id)
