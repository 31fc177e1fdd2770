"""A WinRS cmd shell (resource URI .../windows/shell/cmd): the plain WS-Man shell that runs
native commands, without PSRP. Only here so that WS-Man clients can be exercised on their
own (the wsman crate's example); the commands are emulated:

- ``echo ARGS``: prints the arguments joined by spaces (like cmd's echo).
- ``hostname``: prints the peer's host name (``localhost``).
- ``whoami``: prints the authenticated principal.
- ``exit N``: no output, exit code N.
- anything else: cmd's "is not recognized" message on stderr, exit code 1.

Output is ready as soon as the command is created; Receive returns stdout and stderr with
End="true" and CommandState Done with the exit code, as WinRM does for a finished command.
"""

import base64
import threading
import time
import typing
import uuid
from xml.sax.saxutils import escape

from peer import soap
from peer.soap import NS, Request

CMD_RESOURCE_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
STATE_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"


class CmdConfiguration:
    """Stands in for a session configuration in the peer's shell registry and counts."""

    name = "cmd"


class CmdCommand:
    def __init__(self, id_text: str, stdout: bytes, stderr: bytes, exit_code: int) -> None:
        self.id_text = id_text
        self.stdout = stdout
        self.stderr = stderr
        self.exit_code = exit_code
        self.delivered = False


def run(command: str, arguments: typing.List[str], principal: str) -> typing.Tuple[bytes, bytes, int]:
    """(stdout, stderr, exit code) of one emulated native command."""
    name = command.strip().lower()
    if name == "echo":
        return (" ".join(arguments) + "\r\n").encode(), b"", 0
    if name == "hostname":
        return b"localhost\r\n", b"", 0
    if name == "whoami":
        return (principal + "\r\n").encode(), b"", 0
    if name == "exit":
        try:
            return b"", b"", int(arguments[0]) if arguments else 0
        except ValueError:
            return b"", b"", 1
    message = (
        f"'{command}' is not recognized as an internal or external command,\r\n"
        "operable program or batch file.\r\n"
    )
    return b"", message.encode(), 1


class CmdShell:
    """One WinRS shell; duck-types the parts of peer.shells.Shell the instance uses."""

    configuration = CmdConfiguration()

    def __init__(self, shell_id: str, owner: str, resource_uri: str) -> None:
        self.id = shell_id
        self.owner = owner
        self.resource_uri = resource_uri
        self.created = time.time()
        self.cond = threading.Condition()
        self.commands: typing.Dict[str, CmdCommand] = {}
        self.closed = False

    def close(self) -> None:
        self.commands.clear()
        self.closed = True
        self.cond.notify_all()

    def describe(self) -> typing.Dict[str, typing.Any]:
        return {
            "shell_id": self.id,
            "configuration": self.configuration.name,
            "owner": self.owner,
            "pool_state": None,
            "commands": [{"command_id": c.id_text} for c in self.commands.values()],
        }


class Handlers:
    """Create, Command, Receive, Signal and Delete for cmd shells."""

    def __init__(self, instance: typing.Any) -> None:
        self.instance = instance

    def create(self, req: Request, ctx: typing.Any, record: typing.Dict[str, typing.Any]) -> bytes:
        record["configuration"] = CmdConfiguration.name
        shell_el = req.body.find("rsp:Shell", NS)
        if shell_el is None:
            raise soap.schema_fault("The Create body must contain rsp:Shell.")
        shell_id = str(uuid.uuid4()).upper()
        record["shell_id"] = shell_id
        self.instance.add_shell(CmdShell(shell_id, ctx.principal, req.resource_uri or ""))
        uri = escape(req.resource_uri or "")
        sid = escape(shell_id)
        body = (
            f"<x:ResourceCreated><a:Address>{escape(ctx.endpoint)}</a:Address><a:ReferenceParameters>"
            f"<w:ResourceURI>{uri}</w:ResourceURI><w:SelectorSet><w:Selector Name=\"ShellId\">{sid}</w:Selector>"
            f"</w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"
            f"<rsp:Shell><rsp:ShellId>{sid}</rsp:ShellId><rsp:ResourceUri>{uri}</rsp:ResourceUri>"
            f"<rsp:Owner>{escape(ctx.principal)}</rsp:Owner><rsp:InputStreams>stdin</rsp:InputStreams>"
            f"<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>"
        )
        return soap.envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", req.message_id, body)

    def command(self, req: Request, shell: CmdShell, ctx: typing.Any, record: typing.Dict[str, typing.Any]) -> bytes:
        line = req.body.find("rsp:CommandLine", NS)
        command_el = line.find("rsp:Command", NS) if line is not None else None
        if command_el is None or not (command_el.text or "").strip():
            raise soap.schema_fault("rsp:CommandLine must contain a non-empty rsp:Command for a cmd shell.")
        arguments = [a.text or "" for a in line.findall("rsp:Arguments", NS)]
        id_text = line.get("CommandId") or str(uuid.uuid4()).upper()
        record["command_id"] = id_text
        record["commands"] = [command_el.text.strip()]
        stdout, stderr, exit_code = run(command_el.text, arguments, ctx.principal)
        with shell.cond:
            shell.commands[id_text.upper()] = CmdCommand(id_text, stdout, stderr, exit_code)
        body = f"<rsp:CommandResponse><rsp:CommandId>{escape(id_text)}</rsp:CommandId></rsp:CommandResponse>"
        return soap.envelope(soap.SHELL_ACTION_PREFIX + "CommandResponse", req.message_id, body)

    @staticmethod
    def _command(shell: CmdShell, command_id: typing.Optional[str]) -> CmdCommand:
        command = shell.commands.get((command_id or "").upper())
        if command is None:
            raise soap.command_not_found_fault(shell.id, command_id or "")
        return command

    def receive(self, req: Request, shell: CmdShell, ctx: typing.Any, record: typing.Dict[str, typing.Any]) -> bytes:
        desired = req.body.find("rsp:Receive/rsp:DesiredStream", NS)
        if desired is None:
            raise soap.schema_fault("The Receive body must contain rsp:Receive/rsp:DesiredStream.")
        command_id = desired.get("CommandId")
        record["command_id"] = command_id
        record["streams"] = (desired.text or "").split()
        with shell.cond:
            command = self._command(shell, command_id)
            cid = escape(command.id_text)
            parts = ["<rsp:ReceiveResponse>"]
            for name in record["streams"]:
                data = {"stdout": command.stdout, "stderr": command.stderr}.get(name)
                if data is None:
                    raise soap.schema_fault(f"Stream {name!r} is not an output stream of this shell.")
                if data and not command.delivered:
                    parts.append(
                        f'<rsp:Stream Name="{name}" CommandId="{cid}">{base64.b64encode(data).decode()}</rsp:Stream>'
                    )
                parts.append(f'<rsp:Stream Name="{name}" CommandId="{cid}" End="true"></rsp:Stream>')
            command.delivered = True
            parts.append(
                f'<rsp:CommandState CommandId="{cid}" State="{STATE_DONE}">'
                f"<rsp:ExitCode>{command.exit_code}</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>"
            )
        return soap.envelope(soap.SHELL_ACTION_PREFIX + "ReceiveResponse", req.message_id, "".join(parts))

    def signal(self, req: Request, shell: CmdShell, ctx: typing.Any, record: typing.Dict[str, typing.Any]) -> bytes:
        sig = req.body.find("rsp:Signal", NS)
        if sig is None:
            raise soap.schema_fault("The Signal body must contain rsp:Signal.")
        command_id = sig.get("CommandId")
        code = sig.find("rsp:Code", NS)
        record["command_id"] = command_id
        record["signal_code"] = (code.text or "").strip() if code is not None else None
        with shell.cond:
            self._command(shell, command_id)
            shell.commands.pop((command_id or "").upper(), None)
        return soap.envelope(soap.SHELL_ACTION_PREFIX + "SignalResponse", req.message_id, "<rsp:SignalResponse/>")

    def send(self, req: Request, shell: CmdShell, ctx: typing.Any, record: typing.Dict[str, typing.Any]) -> bytes:
        # The emulated commands read no input; accept and drop it as a finished process would.
        return soap.envelope(soap.SHELL_ACTION_PREFIX + "SendResponse", req.message_id, "<rsp:SendResponse/>")
