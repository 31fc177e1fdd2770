"""A second real client for tests: psrpcore's client state machine (ClientRunspacePool,
ClientPowerShell) carried over pypsrp's WS-Man transport (WinRS).

pypsrp's own PowerShell layer cannot send a host-call error and sends switches as Nil;
psrpcore sends switches as ``true`` like PowerShell and can answer host calls with an
error record, so these paths are validated with it.
"""

import base64
import typing
import xml.etree.ElementTree as ET

import psrpcore
from psrpcore.types import PSInvocationState, RunspacePoolState
from pypsrp.exceptions import WSManFaultError
from pypsrp.shell import WinRS
from pypsrp.wsman import NAMESPACES, OptionSet, WSMan

TIMEOUT_CODE = 2150858793


class CoreClient:
    def __init__(self, wsman: WSMan, configuration: str = "Microsoft.PowerShell") -> None:
        self.pool = psrpcore.ClientRunspacePool()
        self.shell = WinRS(
            wsman,
            resource_uri=f"http://schemas.microsoft.com/powershell/{configuration}",
            id=str(self.pool.runspace_pool_id).upper(),
            input_streams="stdin pr",
            output_streams="stdout",
        )
        self.max_fragment = 100_000

    def __enter__(self) -> "CoreClient":
        self.open()
        return self

    def __exit__(self, *exc: typing.Any) -> None:
        self.shell.close()

    def open(self) -> None:
        self.pool.open()
        payload = self.pool.data_to_send()
        assert payload is not None
        creation = ET.Element("creationXml", xmlns="http://schemas.microsoft.com/powershell")
        creation.text = base64.b64encode(payload.data).decode()
        options = OptionSet()
        options.add_option("protocolversion", "2.3", {"MustComply": "true"})
        self.shell.open(options, creation)
        while self.pool.state != RunspacePoolState.Opened:
            self._receive(None)

    def _receive(self, command_id: typing.Optional[str]) -> typing.List[typing.Any]:
        try:
            _state, _rc, buffers = self.shell.receive("stdout", command_id=command_id)
        except WSManFaultError as e:
            if e.code == TIMEOUT_CODE:
                return []
            raise
        self.pool.receive_data(psrpcore.PSRPPayload(buffers["stdout"], psrpcore.StreamType.default, None))
        events = []
        while (event := self.pool.next_event()) is not None:
            events.append(event)
        return events

    def _flush(self, command_id: typing.Optional[str]) -> None:
        while (payload := self.pool.data_to_send(self.max_fragment)) is not None:
            stream = "pr" if payload.stream_type == psrpcore.StreamType.prompt_response else "stdin"
            target = command_id if payload.pipeline_id is not None else None
            self.shell.send(stream, payload.data, command_id=target)

    def invoke(
        self,
        build: typing.Callable[[psrpcore.ClientPowerShell], typing.Any],
        on_host_call: typing.Optional[typing.Callable[[psrpcore.ClientPowerShell, typing.Any], None]] = None,
    ) -> typing.Tuple[psrpcore.ClientPowerShell, typing.List[typing.Any]]:
        ps = psrpcore.ClientPowerShell(self.pool)
        build(ps)
        return ps, self._run(ps, on_host_call)

    def get_command_metadata(
        self, names: typing.List[str], namespaces: typing.Optional[typing.List[str]] = None
    ) -> typing.Tuple[psrpcore.ClientGetCommandMetadata, typing.List[typing.Any]]:
        """Sends GET_COMMAND_METADATA (psrpcore's own message) and collects the reply events."""
        pipeline = psrpcore.ClientGetCommandMetadata(self.pool, names, namespace=namespaces)
        return pipeline, self._run(pipeline, None)

    def _run(self, ps: typing.Any, on_host_call: typing.Optional[typing.Callable[[typing.Any, typing.Any], None]]
             ) -> typing.List[typing.Any]:
        ps.start()
        command_id = str(ps.pipeline_id).upper()
        first = self.pool.data_to_send(self.max_fragment)
        assert first is not None
        # Only the first fragment goes in Command (MS-PSRP 3.1.5.3.3); the rest by Send.
        frag_len = 21 + int.from_bytes(first.data[17:21], "big")
        rsp = NAMESPACES["rsp"]
        cmd = ET.Element("{%s}CommandLine" % rsp, CommandId=command_id)
        ET.SubElement(cmd, "{%s}Command" % rsp)
        ET.SubElement(cmd, "{%s}Arguments" % rsp).text = base64.b64encode(first.data[:frag_len]).decode()
        self.shell.wsman.command(self.shell.resource_uri, cmd, selector_set=self.shell._selector_set)
        if len(first.data) > frag_len:
            self.shell.send("stdin", first.data[frag_len:], command_id=command_id)
        self._flush(command_id)
        events: typing.List[typing.Any] = []
        while ps.state not in (PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped):
            for event in self._receive(command_id):
                events.append(event)
                if type(event).__name__ == "PipelineHostCallEvent" and on_host_call is not None:
                    on_host_call(ps, event)
                    self._flush(command_id)
        self.shell.signal("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate", command_id)
        return events


def outputs(events: typing.List[typing.Any]) -> typing.List[typing.Any]:
    return [e.data for e in events if type(e).__name__ == "PipelineOutputEvent"]


def state_event(events: typing.List[typing.Any]) -> typing.Any:
    return [e for e in events if type(e).__name__ == "PipelineStateEvent"][-1]
