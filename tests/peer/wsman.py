"""WinRM shell operations for PowerShell resource URIs: Create, Command, Send, Receive,
Signal, Delete (MS-WSMV 3.1.4.x, MS-PSRP 3.1.5.3.x). WinRS cmd shells go to peer.winrs."""

import base64
import binascii
import time
import typing
import uuid
from xml.sax.saxutils import escape

from peer import disconnect, hostile, runner, shells, soap, winrs
from peer.soap import NS, Request, WSManFault

CTRL_C_POWERSHELL = "powershell/signal/crtl_c"  # sic: PowerShell's stop signal (WSManPlugin.cs)
STATE_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
STATE_RUNNING = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"


def _sequence_id(text: typing.Optional[str]) -> typing.Optional[int]:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        raise soap.schema_fault(f"Receive SequenceId {text[:40]!r} is not a number.") from None
    if not 0 <= value < 1 << 64:
        raise soap.schema_fault("Receive SequenceId is not an unsigned 64-bit number.")
    return value


class Context(typing.NamedTuple):
    """Who sent the request, for the shell owner and the operation log."""

    principal: str
    client_ip: str
    endpoint: str  # http(s)://localhost:port/wsman
    hostile: typing.Any = None  # a peer.instance.FaultRule of hostile.HANDLER_KINDS for this request
    delegated: typing.Optional[str] = None  # principal of credentials the client delegated (Kerberos)
    failure: typing.Optional[str] = None  # a fail_pipeline fault's message: the command fails


def _b64(text: typing.Optional[str], what: str) -> bytes:
    try:
        return base64.b64decode((text or "").strip(), validate=True)
    except binascii.Error:
        raise soap.schema_fault(f"{what} is not valid base64.") from None


def _uuid(text: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise soap.schema_fault(f"{what} {text!r} is not a GUID.") from None


def _pipeline_id_of(fragment_data: bytes) -> typing.Optional[uuid.UUID]:
    """The PID in the PSRP message header carried by a start fragment (MS-PSRP 2.2.1)."""
    head = shells.first_fragment_object(fragment_data)
    if head is None or not head[2] or len(fragment_data) < shells.FRAGMENT_HEADER + 40:
        return None
    pid = uuid.UUID(bytes_le=fragment_data[shells.FRAGMENT_HEADER + 24 : shells.FRAGMENT_HEADER + 40])
    return pid if pid.int else None


class Handlers:
    def __init__(self, instance: typing.Any) -> None:
        self.instance = instance
        self.winrs = winrs.Handlers(instance)
        self.disconnected = disconnect.Handlers(instance)

    def dispatch(self, req: Request, ctx: Context, record: typing.Dict[str, typing.Any]) -> bytes:
        action = req.action or ""
        record["action"] = req.short_action
        # A WinRS cmd shell (no PSRP) has its own handlers for everything but Delete.
        ops: typing.Any = self.winrs if (req.resource_uri or "").lower() == winrs.CMD_RESOURCE_URI else self
        if action == soap.ACTION_CREATE:
            return ops.create(req, ctx, record)
        if action == disconnect.ENUMERATION_PREFIX + "Enumerate":
            return self.disconnected.enumerate(req, ctx, record)
        if action == disconnect.ENUMERATION_PREFIX + "Pull":
            return self.disconnected.pull(req, ctx, record)
        handler = None
        if action == soap.ACTION_DELETE:
            handler = self.delete
        elif action.startswith(soap.SHELL_ACTION_PREFIX):
            handler = {
                "Command": ops.command,
                "Send": ops.send,
                "Receive": ops.receive,
                "Signal": ops.signal,
                "Disconnect": self.disconnected.disconnect if ops is self else None,
                "Reconnect": self.disconnected.reconnect if ops is self else None,
                "Connect": self.disconnected.connect if ops is self else None,
            }.get(action[len(soap.SHELL_ACTION_PREFIX) :])
        if handler is None:
            raise WSManFault(
                soap.ERROR_ACTION_NOT_SUPPORTED,
                f"The WS-Management service cannot process the request. The action {action} is not supported by "
                "the test peer.",
                subcode="a:ActionNotSupported",
                soap_code="s:Sender",
                action="http://schemas.xmlsoap.org/ws/2004/08/addressing/fault",
            )
        shell = self._shell(req, record)
        if ops is self:
            disconnect.check_owner(shell, ctx)  # a PowerShell shell belongs to its user
        return handler(req, shell, ctx, record)

    # ---- helpers ----------------------------------------------------------------------

    def _shell(self, req: Request, record: typing.Dict[str, typing.Any]) -> shells.Shell:
        shell_id = req.selectors.get("ShellId")
        record["shell_id"] = shell_id
        if not shell_id:
            raise WSManFault(
                2150858842,  # ERROR_WSMAN_INSUFFCIENT_SELECTORS
                "The WS-Management service cannot process the request because the ShellId selector is missing.",
                subcode="w:InvalidSelectors",
                soap_code="s:Sender",
            )
        shell = self.instance.get_shell(shell_id)
        if shell is None:
            raise soap.shell_not_found_fault(shell_id)
        record["configuration"] = shell.configuration.name
        if (req.resource_uri or "").lower() != shell.resource_uri.lower():
            raise WSManFault(
                soap.ERROR_INVALID_RESOURCE_URI,
                f"The WS-Management service cannot process the request. The resource URI {req.resource_uri} does "
                f"not match the shell's resource URI {shell.resource_uri}.",
                subcode="w:InvalidResourceURI",
                soap_code="s:Sender",
            )
        return shell

    @staticmethod
    def _command(shell: shells.Shell, command_id: str) -> shells.Command:
        command = shell.commands.get(_uuid(command_id, "CommandId"))
        if command is None:
            raise soap.command_not_found_fault(shell.id, command_id)
        return command

    # ---- operations -------------------------------------------------------------------

    def create(self, req: Request, ctx: Context, record: typing.Dict[str, typing.Any]) -> bytes:
        name = req.configuration_name
        record["configuration"] = name
        record["options"] = dict(req.options)
        configuration = runner.CONFIGURATIONS.get((name or "").lower())
        if configuration is None:
            raise WSManFault(
                soap.ERROR_INVALID_RESOURCE_URI,
                f"The WS-Management service cannot process the request. Cannot find the {name or req.resource_uri} "
                "session configuration in the WSMan: drive on the localhost computer.",
                subcode="w:InvalidResourceURI",
                soap_code="s:Sender",
            )
        if configuration.no_language and self.instance.options.jea_denied:
            # The user is in no role of the JEA configuration (its RoleDefinitions), as WinRM reports it.
            raise WSManFault(5, "Access is denied.", subcode="w:AccessDenied", soap_code="s:Sender")
        version = req.options.get("protocolversion")
        if version is None:
            raise WSManFault(
                soap.ERROR_INVALID_OPTIONS,
                "The WS-Management service cannot process the request. The protocolversion option is required "
                "to create a PowerShell shell.",
                subcode="w:InvalidOptions",
                soap_code="s:Sender",
            )
        if version.split(".")[0] != "2":
            raise WSManFault(
                soap.ERROR_OPTIONS_INVALID_VALUE,
                f"The WS-Management service cannot process the request. The protocolversion {version} is not "
                "supported; the server supports 2.3.",
                subcode="w:InvalidOptions",
                soap_code="s:Sender",
            )
        shell_el = req.body.find("rsp:Shell", NS)
        if shell_el is None:
            raise soap.schema_fault("The Create body must contain rsp:Shell.")
        creation = shell_el.find("ps:creationXml", NS)
        if creation is None:
            raise soap.schema_fault("rsp:Shell must contain creationXml (namespace http://schemas.microsoft.com/"
                                    "powershell).")
        data = _b64(creation.text, "creationXml")
        shell_id = shell_el.get("ShellId") or str(uuid.uuid4()).upper()
        record["shell_id"] = shell_id
        shell = self.instance.new_shell(shell_id, configuration, ctx, req.resource_uri or "")
        shell.session_id = req.session_id
        shell.name = f"Runspace{self.instance.shell_count()}"
        idle = shell_el.find("rsp:IdleTimeOut", NS)
        if idle is not None and (idle.text or "").strip():
            shell.idle_timeout = soap.parse_duration(idle.text)
        with shell.cond:
            try:
                shell.feed(data, "stdin", None)
            except WSManFault:
                self.instance.remove_shell(shell)
                raise
        uri = escape(req.resource_uri or "")
        sid = escape(shell_id)
        body = (
            f"<x:ResourceCreated><a:Address>{escape(ctx.endpoint)}</a:Address><a:ReferenceParameters>"
            f"<w:ResourceURI>{uri}</w:ResourceURI><w:SelectorSet><w:Selector Name=\"ShellId\">{sid}</w:Selector>"
            f"</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"
            f"<rsp:Shell><rsp:ShellId>{sid}</rsp:ShellId><rsp:Name>{escape(shell.name)}</rsp:Name>"
            f"<rsp:ResourceUri>{uri}</rsp:ResourceUri><rsp:Owner>{escape(ctx.principal)}</rsp:Owner>"
            f"<rsp:ClientIP>{escape(ctx.client_ip)}</rsp:ClientIP><rsp:IdleTimeOut>PT{shell.effective_idle_timeout():.3f}S</rsp:IdleTimeOut>"
            f"<rsp:InputStreams>stdin pr</rsp:InputStreams><rsp:OutputStreams>stdout</rsp:OutputStreams>"
            f"<rsp:MaxIdleTimeOut>PT2147483.647S</rsp:MaxIdleTimeOut><rsp:Locale>en-US</rsp:Locale>"
            f"<rsp:DataLocale>en-US</rsp:DataLocale><rsp:ProfileLoaded>Yes</rsp:ProfileLoaded>"
            f"<rsp:Encoding>UTF8</rsp:Encoding><rsp:BufferMode>Block</rsp:BufferMode><rsp:State>Connected</rsp:State>"
            f"<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity>"
            f"</rsp:Shell>"
        )
        return soap.envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", req.message_id, body)

    def command(self, req: Request, shell: shells.Shell, ctx: Context, record: typing.Dict[str, typing.Any]) -> bytes:
        line = req.body.find("rsp:CommandLine", NS)
        if line is None:
            raise soap.schema_fault("The Command body must contain rsp:CommandLine.")
        args = line.findall("rsp:Arguments", NS)
        if len(args) != 1:
            raise soap.schema_fault("rsp:CommandLine must contain exactly one rsp:Arguments (CREATE_PIPELINE).")
        data = _b64(args[0].text, "rsp:Arguments")
        fragments = shells.count_fragments(data)
        record["create_pipeline_fragments"] = {"command": fragments}
        if fragments != 1:
            raise soap.schema_fault(
                f"rsp:Arguments carries {fragments} PSRP fragments; it must carry only the first fragment of "
                "CREATE_PIPELINE, the rest go by Send (MS-PSRP 3.1.5.3.3)."
            )
        id_text = line.get("CommandId")
        if id_text:
            pipeline_id = _uuid(id_text, "CommandId")
        else:
            # Servers without WSManRunShellCommandEx pick the id; use the PSRP pipeline id.
            pipeline_id = _pipeline_id_of(data) or uuid.uuid4()
            id_text = str(pipeline_id).upper()
        record["command_id"] = id_text
        with shell.cond:
            shell.check_open()
            command = shell.new_command(pipeline_id, id_text)
            command.fragments_in_command = fragments
            if ctx.hostile is not None and ctx.hostile.kind == "ansi_streams":
                command.hostile = ctx.hostile  # before feed: the pipeline may start in it
            command.failure = ctx.failure
            try:
                shell.feed(data, "stdin", pipeline_id)
            except WSManFault:
                shell.close_command(command)
                raise
        body = f"<rsp:CommandResponse><rsp:CommandId>{escape(id_text)}</rsp:CommandId></rsp:CommandResponse>"
        return soap.envelope(soap.SHELL_ACTION_PREFIX + "CommandResponse", req.message_id, body)

    def send(self, req: Request, shell: shells.Shell, ctx: Context, record: typing.Dict[str, typing.Any]) -> bytes:
        streams = req.body.findall("rsp:Send/rsp:Stream", NS)
        if not streams:
            raise soap.schema_fault("The Send body must contain rsp:Send/rsp:Stream.")
        record["streams"] = [s.get("Name") for s in streams]
        with shell.cond:
            shell.check_open()
            for stream in streams:
                name = stream.get("Name") or ""
                if name not in ("stdin", "pr"):
                    raise soap.schema_fault(f"Stream {name!r} is not an input stream of this shell (stdin pr).")
                data = _b64(stream.text, "rsp:Stream")
                command_id = stream.get("CommandId")
                command = None
                if command_id:
                    command = self._command(shell, command_id)
                    record["command_id"] = command_id
                    if not command.created:
                        command.fragments_in_send += shells.count_fragments(data)
                        record["create_pipeline_fragments"] = {"send": shells.count_fragments(data)}
                if command is None and ctx.hostile is not None and ctx.hostile.kind == "tamper_session_key":
                    shell.tamper_session_key = True  # the answer to a PUBLIC_KEY in this Send
                shell.feed(data, name, command.id if command else None)
        return soap.envelope(soap.SHELL_ACTION_PREFIX + "SendResponse", req.message_id, "<rsp:SendResponse/>")

    def receive(self, req: Request, shell: shells.Shell, ctx: Context, record: typing.Dict[str, typing.Any]) -> bytes:
        desired = req.body.find("rsp:Receive/rsp:DesiredStream", NS)
        if desired is None:
            raise soap.schema_fault("The Receive body must contain rsp:Receive/rsp:DesiredStream.")
        record["streams"] = (desired.text or "").split()
        command_id = desired.get("CommandId")
        record["command_id"] = command_id
        record["operation_timeout"] = req.operation_timeout
        record["max_envelope_size"] = req.max_envelope_size
        # Robust Receive (MS-WSMV Receive examples: rsp:Receive/@SequenceId): the
        # last response of each shell or command is kept until the next
        # SequenceId acknowledges it; the same SequenceId again (a Receive resent
        # after a broken connection) gets that response again, not new output.
        receive_el = req.body.find("rsp:Receive", NS)
        sequence = _sequence_id(receive_el.get("SequenceId") if receive_el is not None else None)
        if not self.instance.robust_receive:
            # A server without robust Receive: SequenceId ignored, not echoed, nothing kept.
            record["sequence_ignored"] = sequence
            sequence = None
        record["sequence_id"] = sequence
        cache_key = str(_uuid(command_id, "CommandId")) if command_id else None
        if sequence is not None:
            with shell.cond:
                cached = shell.last_receive.get(cache_key)
                if cached is not None and cached[0] == sequence:
                    record["replayed"] = True
                    record["fragments"] = cached[2]
                    record["done"] = cached[3]
                    return soap.envelope_parts(soap.SHELL_ACTION_PREFIX + "ReceiveResponse", req.message_id, cached[1])
                expected = 0 if cached is None else cached[0] + 1
                if sequence != expected and not (cached is None and sequence > 0):
                    raise soap.schema_fault(
                        f"Receive SequenceId {sequence} is neither the last one answered ({cached[0] if cached else '-'}) "
                        f"nor the next ({expected})."
                    )
                # This SequenceId acknowledges the kept response.
                shell.last_receive.pop(cache_key, None)
        rule = ctx.hostile
        if rule is not None and command_id and rule.kind in ("endless_receive", "endless_fragment"):
            # A hostile server: more data for every Receive, never Done (whatever the
            # command's state, even after a stop).
            if rule.delay_ms:
                time.sleep(rule.delay_ms / 1000.0)
            with shell.cond:
                if rule.kind == "endless_receive":
                    fragments = hostile.endless_output(rule, shell, command_id)
                else:
                    fragments = hostile.endless_fragments(rule, shell, command_id, req.max_envelope_size)
            done = False
        else:
            with shell.cond:
                command = self._command(shell, command_id) if command_id else None
                fragments, done = shell.receive(command, req.operation_timeout, req.max_envelope_size)
        cid = f' CommandId="{escape(command_id)}"' if command_id else ""
        # Bytes throughout: the streams are most of a response of up to
        # MaxEnvelopeSize, and each str/bytes conversion would copy them.
        open_stream = f'<rsp:Stream Name="stdout"{cid}>'.encode()
        open_last = f'<rsp:Stream Name="stdout"{cid} End="true">'.encode()
        seq_attr = f' SequenceId="{sequence}"'.encode() if sequence is not None else b""
        parts = [b"<rsp:ReceiveResponse" + seq_attr + b">"]
        for index, fragment in enumerate(fragments):
            last = done and index == len(fragments) - 1
            parts += [open_last if last else open_stream, base64.b64encode(fragment), b"</rsp:Stream>"]
        if command_id:
            parts.append(f'<rsp:CommandState{cid} State="{STATE_DONE if done else STATE_RUNNING}"/>'.encode())
        parts.append(b"</rsp:ReceiveResponse>")
        record["fragments"] = len(fragments)
        record["done"] = done
        if sequence is not None:
            with shell.cond:
                shell.last_receive[cache_key] = (sequence, parts, len(fragments), done)
        return soap.envelope_parts(soap.SHELL_ACTION_PREFIX + "ReceiveResponse", req.message_id, parts)

    def signal(self, req: Request, shell: shells.Shell, ctx: Context, record: typing.Dict[str, typing.Any]) -> bytes:
        sig = req.body.find("rsp:Signal", NS)
        code_el = sig.find("rsp:Code", NS) if sig is not None else None
        if sig is None or code_el is None or not (code_el.text or "").strip():
            raise soap.schema_fault("The Signal body must contain rsp:Signal/rsp:Code.")
        code = code_el.text.strip()
        command_id = sig.get("CommandId")
        record["command_id"] = command_id
        record["signal_code"] = code
        with shell.cond:
            shell.check_open()
            if not command_id:
                raise soap.schema_fault("rsp:Signal needs a CommandId for a PowerShell shell.")
            command = self._command(shell, command_id)
            if code == CTRL_C_POWERSHELL:
                shell.stop_command(command)
            else:
                # WSManPlugin.cs: any other code closes the command.
                shell.close_command(command)
        return soap.envelope(soap.SHELL_ACTION_PREFIX + "SignalResponse", req.message_id, "<rsp:SignalResponse/>")

    def delete(self, req: Request, shell: shells.Shell, ctx: Context, record: typing.Dict[str, typing.Any]) -> bytes:
        self.instance.remove_shell(shell)
        return soap.envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", req.message_id, "")

