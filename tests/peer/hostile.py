"""A hostile server: the attacks of the ``/faults`` kinds a real WinRM host would never
send, for testing that a client survives them (bounded time and memory, typed errors,
no raw terminal escapes). ``peer.instance.FaultRule`` documents the kinds.

Wire attacks work on the bytes a man in the middle could change: an encrypted reply is
sealed by the peer's real security context first and only its MIME framing (which is
outside the seal) or its HTTP framing is tampered with afterwards.
"""

import base64
import logging
import re
import socket
import time
import typing
import uuid
from xml.etree import ElementTree

from psrpcore._payload import create_fragment, create_message
from psrpcore.types import ConsoleColor, ErrorCategory, HostMethodIdentifier, PSRPMessageType, serialize
from psrpcore._crypto import PSRemotingCrypto

from peer import encryption, objects, soap

log = logging.getLogger("peer.hostile")

# Kinds handled on the HTTP bytes after the response is built (and sealed).
WIRE_KINDS = ("tamper_encryption", "endless_body")
# Kinds whose response replaces the real one (the request is not dispatched).
REPLACING_KINDS = ("oversized_envelope", "deep_xml", "many_elements")
# Kinds the WS-Man handlers act on (they get the rule in their Context).
HANDLER_KINDS = ("endless_receive", "endless_fragment", "ansi_streams", "tamper_session_key")

# Text that rewrites a terminal when written to it raw: clear screen and home (CSI as
# ESC [), an OSC window title ended by BEL, an OSC 8 hyperlink ended by ST, C1 CSI and
# C1 OSC ... ST (U+009B, U+009D, U+009C), backspaces and a carriage return. psrpcore
# sends the controls as _x001B_ style escapes, which the client decodes back.
ANSI_TEXT = (
    "hostile\x1b[2J\x1b[H\x1b]0;pwned-title\x07\x1b]8;;http://evil.invalid/\x1b\\link\x1b]8;;\x1b\\"
    "\x9b31mc1-red\x9b0m\x9d0;c1-title\x9c\x08\x08\rend"
)

FRAGMENT_HEADER = 21
_RECEIVE_ENVELOPE_RESERVE = 2048
_STREAM_ELEMENT_OVERHEAD = 100

# ---- SecureString session key -----------------------------------------------------------------

ENCRYPTED_SESSION_KEY = 0x00010006


def tamper_session_key(message: bytes) -> bytes:
    """A PSRP ENCRYPTED_SESSION_KEY message (header + CLIXML) with one byte of the RSA
    ciphertext in its SIMPLEBLOB flipped, as someone on the path could (without message
    encryption or TLS)."""
    match = re.search(rb'(<S N="EncryptedSessionKey">)([^<]*)(</S>)', message)
    if match is None:
        return message
    blob = bytearray(base64.b64decode(match.group(2)))
    blob[12 + len(blob[12:]) // 2] ^= 0x5A  # after the 12-byte SIMPLEBLOB header
    return message[: match.start(2)] + base64.b64encode(bytes(blob)) + message[match.end(2) :]


# ---- encrypted framing --------------------------------------------------------------------


def tamper(body: bytes, rule: typing.Any) -> bytes:
    """The sealed multipart/encrypted ``body`` as someone on the path changes it."""
    headers_end = body.index(b"application/octet-stream\r\n") + len(b"application/octet-stream\r\n")
    signature_len = int.from_bytes(body[headers_end : headers_end + 4], "little")
    data_start = headers_end + 4 + signature_len
    data_end = body.rindex(encryption.BOUNDARY + b"--")
    middle = (data_start + data_end) // 2
    if rule.tamper == "length":
        return re.sub(rb"Length=\d+", b"Length=" + rule.length.encode(), body, count=1)
    if rule.tamper == "no_length":
        return re.sub(rb";Length=\d+", b"", body, count=1)
    if rule.tamper == "boundary_in_data":
        line = encryption.BOUNDARY + b"\r\n"
        if data_end - data_start < len(line):
            raise ValueError("sealed data too short to hold a boundary")
        at = max(data_start, middle - len(line) // 2)
        return body[:at] + line + body[at + len(line) :]
    if rule.tamper == "truncate":
        return body[:middle]
    if rule.tamper == "signature_length":
        return body[:headers_end] + b"\xff\xff\xff\xff" + body[headers_end + 4 :]
    if rule.tamper == "tiny_parts":
        # Parts of one byte copied from the real framing, before the real part.
        first_headers = body[: body.index(encryption.BOUNDARY + b"\r\n", len(encryption.BOUNDARY))]
        tiny = re.sub(rb"Length=\d+", b"Length=1", first_headers, count=1)
        tiny += body[len(first_headers) : headers_end] + b"\x01\x00\x00\x00" + b"S" + b"D"
        return tiny * rule.parts + body
    raise ValueError(f"unknown tamper {rule.tamper!r}")


# ---- HTTP bodies that never end -------------------------------------------------------------


def send_endless_body(
    handler: typing.Any,
    status: int,
    body: typing.List[bytes],
    content_type: str,
    headers: typing.List[typing.Tuple[str, str]],
    rule: typing.Any,
) -> None:
    """Sends a response whose body never completes, until the client goes away or
    ``rule.max_seconds`` have passed; then closes the connection."""
    data = b"".join(body)
    handler.close_connection = True
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Type", content_type)
    if rule.body == "stall":
        handler.send_header("Content-Length", str(len(data) + (1 << 20)))
    else:
        handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    deadline = time.monotonic() + rule.max_seconds
    sent = 0
    try:
        if rule.body == "stall":
            handler.wfile.write(data)
            while time.monotonic() < deadline:
                time.sleep(rule.interval_ms / 1000.0)
                handler.wfile.write(b" ")
                sent += 1
        elif rule.body == "chunked":
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            while time.monotonic() < deadline:
                time.sleep(rule.interval_ms / 1000.0)
                handler.wfile.write(b"1\r\n \r\n")
                sent += 1
        else:  # flood
            chunk = b"%x\r\n%s\r\n" % (65536, b"A" * 65536)
            while sent < rule.max_bytes and time.monotonic() < deadline:
                handler.wfile.write(chunk)
                sent += 65536
    except OSError as e:
        log.info("endless %s body: the client went away after %d more bytes (%s)", rule.body, sent, e)
    else:
        log.info("endless %s body: giving up after %d more bytes", rule.body, sent)
    try:
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# ---- WS-Man responses ------------------------------------------------------------------------


def _stream_room(max_envelope: int) -> int:
    """Data bytes of one fragment that fill a Receive of ``max_envelope`` (as peer.shells)."""
    room = max_envelope - _RECEIVE_ENVELOPE_RESERVE - _STREAM_ELEMENT_OVERHEAD
    return (room // 4) * 3 - FRAGMENT_HEADER


def _clixml(value: typing.Any) -> bytes:
    return ElementTree.tostring(serialize(value, PSRemotingCrypto()), encoding="utf-8", method="xml")


def endless_output(rule: typing.Any, shell: typing.Any, command_id: str) -> typing.List[bytes]:
    """``rule.objects`` new, complete PIPELINE_OUTPUT messages (one fragment each). Lock held."""
    pid = uuid.UUID(command_id)
    fragments = []
    for _ in range(rule.objects):
        object_id = shell.pool.next_object_id()
        message = create_message(
            False, PSRPMessageType.PipelineOutput, _clixml(f"endless output {object_id}"),
            shell.pool.runspace_pool_id, pid,
        )
        fragments.append(create_fragment(object_id, 0, message, True))
    return fragments


def endless_fragments(rule: typing.Any, shell: typing.Any, command_id: str, max_envelope: int) -> typing.List[bytes]:
    """The next fragments of the ``rule.messages`` PIPELINE_OUTPUT messages of this
    command that never end: a start fragment of each first, then middle fragments,
    together filling the envelope. Lock held."""
    state = shell.hostile_fragments.get(command_id)
    if state is None:
        state = [(shell.pool.next_object_id(), 0) for _ in range(rule.messages)]
    room = (_stream_room(max_envelope) - _STREAM_ELEMENT_OVERHEAD * rule.messages) // rule.messages
    fragments = []
    for index, (object_id, fragment_id) in enumerate(state):
        data = b"A" * room
        if fragment_id == 0:
            head = create_message(
                False, PSRPMessageType.PipelineOutput, b"<S>", shell.pool.runspace_pool_id, uuid.UUID(command_id)
            )
            data = head + data[len(head) :]
        fragments.append(create_fragment(object_id, fragment_id, data, False))
        state[index] = (object_id, fragment_id + 1)
    shell.hostile_fragments[command_id] = state
    return fragments


def replacement(rule: typing.Any, req: soap.Request, shell: typing.Any) -> typing.List[bytes]:
    """The response of an ``oversized_envelope``, ``deep_xml`` or ``many_elements`` rule."""
    action = soap.SHELL_ACTION_PREFIX + "ReceiveResponse"
    command_id = req.command_id
    if rule.kind == "deep_xml":
        body = [b"<rsp:ReceiveResponse>", b"<a>" * rule.depth, b"</a>" * rule.depth, b"</rsp:ReceiveResponse>"]
    elif rule.kind == "many_elements":
        body = [b"<rsp:ReceiveResponse>", b"<a/>" * rule.elements, b"</rsp:ReceiveResponse>"]
    else:
        # Valid output streams, many of them: if the client took this, it would print them.
        cid = f' CommandId="{command_id}"' if command_id else ""
        open_stream = f'<rsp:Stream Name="stdout"{cid}>'.encode()
        rpid = shell.pool.runspace_pool_id if shell is not None else uuid.UUID(int=0)
        pid = uuid.UUID(command_id) if command_id else None
        payload = _clixml("oversized " + "x" * 3000)
        body = [b"<rsp:ReceiveResponse>"]
        size = 0
        object_id = 1 << 40  # far from the ids psrpcore hands out
        while size < rule.bytes:
            message = create_message(False, PSRPMessageType.PipelineOutput, payload, rpid, pid)
            element = open_stream + base64.b64encode(create_fragment(object_id, 0, message, True)) + b"</rsp:Stream>"
            body.append(element)
            size += len(element)
            object_id += 1
        body.append(b"</rsp:ReceiveResponse>")
    return soap.envelope_parts(action, req.message_id, body)


# ---- terminal escapes in every stream ----------------------------------------------------


def write_ansi_streams(inv: typing.Any) -> None:
    """Writes ANSI_TEXT to every PSRP stream and host Write* call of the pipeline ``inv``."""
    text = ANSI_TEXT
    inv.write(lambda p: p.write_output(f"output {text}"))
    inv.write_error(ansi_error_record("error"))
    inv.write(lambda p: p.write_warning(f"warning {text}"))
    inv.write(lambda p: p.write_verbose(f"verbose {text}"))
    inv.write(lambda p: p.write_debug(f"debug {text}"))
    inv.write_information(f"information {text}", [f"tag {text}"], f"source {text}")
    inv.write(
        lambda p: p.write_progress(
            activity=f"progress {text}",
            activity_id=1,
            status_description=f"status {text}",
            current_operation=f"operation {text}",
            percent_complete=50,
        )
    )
    colors = [ConsoleColor.Red, ConsoleColor.Black]
    for method, params in (
        (HostMethodIdentifier.Write1, [f"host write {text}"]),
        (HostMethodIdentifier.Write2, [*colors, f"host write colored {text}"]),
        (HostMethodIdentifier.WriteLine2, [f"host line {text}"]),
        (HostMethodIdentifier.WriteLine3, [*colors, f"host line colored {text}"]),
        (HostMethodIdentifier.WriteErrorLine, [f"host error {text}"]),
        (HostMethodIdentifier.WriteWarningLine, [f"host warning {text}"]),
        (HostMethodIdentifier.WriteVerboseLine, [f"host verbose {text}"]),
        (HostMethodIdentifier.WriteDebugLine, [f"host debug {text}"]),
    ):
        inv.host_call(method, params)


def ansi_error_record(what: str) -> typing.Any:
    text = ANSI_TEXT
    return objects.error_record(
        f"{what} {text}",
        ["System.Management.Automation.RuntimeException", "System.SystemException"],
        f"Hostile{text},Invoke-Hostile",
        ErrorCategory.InvalidData,
        f"activity {text}",
        f"target {text}",
    )
