"""WS-Management SOAP envelopes: request parsing, response and fault building.

Namespaces and fault codes follow MS-WSMV and the WinRM error table (ERROR_WSMAN_*).
"""

import re
import typing
import uuid
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "ps": "http://schemas.microsoft.com/powershell",
}

ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACTION_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
SHELL_ACTION_PREFIX = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
ACTION_FAULT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
POWERSHELL_URI_PREFIX = "http://schemas.microsoft.com/powershell/"

# WinRM error codes (ERROR_WSMAN_*), as carried in f:WSManFault/@Code.
ERROR_ACTION_NOT_SUPPORTED = 2150858771
ERROR_MESSAGE_INFORMATION_HEADER_REQUIRED = 2150858769
ERROR_INVALID_SOAP_BODY = 2150858791
ERROR_OPERATION_TIMEDOUT = 2150858793
ERROR_ENCODING_LIMIT = 2150858805
ERROR_INVALID_OPTIONS = 2150858809
ERROR_INVALID_RESOURCE_URI = 2150858811
ERROR_SCHEMA_VALIDATION = 2150858817
ERROR_INVALID_XML = 2150858819
ERROR_SERVER_ENVELOPE_LIMIT = 2150858825
ERROR_OPTIONS_INVALID_VALUE = 2150858835
ERROR_UNEXPECTED_SELECTORS = 2150858843  # the shell (or command) is not found
ERROR_INTERNAL_ERROR = 2147500037  # E_FAIL (0x80004005)

# Server envelope limit: MaxEnvelopeSizekb = 500 (Windows default since WinRM 3.0).
SERVER_MAX_ENVELOPE = 512000
MIN_ENVELOPE = 8192
# OperationTimeout above MaxTimeoutms (60 s default) is clamped.
MAX_OPERATION_TIMEOUT = 60.0
DEFAULT_OPERATION_TIMEOUT = 60.0

MACHINE = "localhost"


IDENTITY_NS = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"


def identify_response() -> bytes:
    """The IdentifyResponse of an unauthenticated Identify (DSP0226 11; WinRM hides the OS version then)."""
    return (
        f'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsmid="{IDENTITY_NS}">'
        "<s:Header/><s:Body><wsmid:IdentifyResponse>"
        "<wsmid:ProtocolVersion>http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd</wsmid:ProtocolVersion>"
        "<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>"
        "<wsmid:ProductVersion>OS: 0.0.0 SP: 0.0 Stack: 3.0</wsmid:ProductVersion>"
        "<wsmid:SecurityProfiles>"
        "<wsmid:SecurityProfileName>http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/http/spnego-kerberos"
        "</wsmid:SecurityProfileName>"
        "<wsmid:SecurityProfileName>http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/spnego-kerberos"
        "</wsmid:SecurityProfileName>"
        "</wsmid:SecurityProfiles></wsmid:IdentifyResponse></s:Body></s:Envelope>"
    ).encode()


class WSManFault(Exception):
    """A fault to send back as HTTP 500 with s:Fault + f:WSManFault."""

    def __init__(
        self,
        code: int,
        message: str,
        subcode: str = "w:InternalError",
        soap_code: str = "s:Receiver",
        action: str = ACTION_FAULT,
        provider_fault: typing.Optional[str] = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.subcode = subcode
        self.soap_code = soap_code
        self.action = action
        self.provider_fault = provider_fault


def timeout_fault() -> WSManFault:
    return WSManFault(
        ERROR_OPERATION_TIMEDOUT,
        "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
        subcode="w:TimedOut",
        soap_code="s:Receiver",
    )


def shell_not_found_fault(shell_id: str) -> WSManFault:
    return WSManFault(
        ERROR_UNEXPECTED_SELECTORS,
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not found "
        "on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on "
        "the server. Provide the correct ShellId or create a new shell and retry the operation.",
        subcode="w:InvalidSelectors",
        soap_code="s:Sender",
    )


def command_not_found_fault(shell_id: str, command_id: str) -> WSManFault:
    return WSManFault(
        ERROR_UNEXPECTED_SELECTORS,
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the command with "
        f"CommandId {command_id} was not found on the server.",
        subcode="w:InvalidSelectors",
        soap_code="s:Sender",
    )


def schema_fault(message: str) -> WSManFault:
    return WSManFault(
        ERROR_SCHEMA_VALIDATION,
        "The WS-Management service cannot process the request because the XML is invalid. " + message,
        subcode="w:SchemaValidationError",
        soap_code="s:Sender",
    )


_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> float:
    """xs:duration (days/hours/minutes/seconds forms) to seconds."""
    m = _DURATION.match(text.strip())
    if not m or text.strip() in ("P", "PT"):
        raise schema_fault(f"OperationTimeout {text!r} is not an xs:duration.")
    parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


class Request:
    """The parts of a WS-Man request the peer uses."""

    def __init__(self, root: ET.Element):
        self.root = root
        header = root.find("s:Header", NS)
        body = root.find("s:Body", NS)
        if header is None or body is None:
            raise schema_fault("The SOAP envelope must contain s:Header and s:Body.")
        self.header = header
        self.body = body

        def text(path: str) -> typing.Optional[str]:
            el = header.find(path, NS)
            return el.text.strip() if el is not None and el.text is not None else None

        self.message_id = text("a:MessageID")
        self.action = text("a:Action")
        if not self.message_id:
            raise WSManFault(
                ERROR_MESSAGE_INFORMATION_HEADER_REQUIRED,
                "The WS-Management service cannot process the request. A required header (MessageID) is missing.",
                subcode="a:MessageInformationHeaderRequired",
                soap_code="s:Sender",
            )
        if not self.action:
            raise WSManFault(
                ERROR_MESSAGE_INFORMATION_HEADER_REQUIRED,
                "The WS-Management service cannot process the request. A required header (Action) is missing.",
                subcode="a:MessageInformationHeaderRequired",
                soap_code="s:Sender",
                action="http://schemas.xmlsoap.org/ws/2004/08/addressing/fault",
            )
        self.resource_uri = text("w:ResourceURI")
        self.session_id = text("p:SessionId")
        self.selectors = {
            s.get("Name", ""): (s.text or "").strip() for s in header.findall("w:SelectorSet/w:Selector", NS)
        }
        self.options = {o.get("Name", ""): (o.text or "").strip() for o in header.findall("w:OptionSet/w:Option", NS)}
        timeout = text("w:OperationTimeout")
        self.operation_timeout = min(
            parse_duration(timeout) if timeout else DEFAULT_OPERATION_TIMEOUT, MAX_OPERATION_TIMEOUT
        )
        size = text("w:MaxEnvelopeSize")
        if size is None:
            self.max_envelope_size = SERVER_MAX_ENVELOPE
        else:
            try:
                requested = int(size)
            except ValueError:
                raise schema_fault(f"MaxEnvelopeSize {size!r} is not a number.") from None
            if requested < MIN_ENVELOPE:
                raise WSManFault(
                    ERROR_ENCODING_LIMIT,
                    f"The WS-Management service cannot process the request because the MaxEnvelopeSize "
                    f"{requested} is less than the minimum of {MIN_ENVELOPE} bytes.",
                    subcode="w:EncodingLimit",
                    soap_code="s:Sender",
                )
            self.max_envelope_size = min(requested, SERVER_MAX_ENVELOPE)

    @property
    def command_id(self) -> typing.Optional[str]:
        """The CommandId a Receive, Signal or Send names (None for the pool / shell)."""
        for path in ("rsp:Receive/rsp:DesiredStream", "rsp:Signal", "rsp:Send/rsp:Stream", "rsp:CommandLine"):
            el = self.body.find(path, NS)
            if el is not None and el.get("CommandId"):
                return el.get("CommandId")
        return None

    @property
    def short_action(self) -> str:
        """Create/Delete/Command/Send/Receive/Signal/... (last path segment)."""
        return (self.action or "").rsplit("/", 1)[-1]

    @property
    def configuration_name(self) -> typing.Optional[str]:
        uri = self.resource_uri or ""
        if uri.lower().startswith(POWERSHELL_URI_PREFIX.lower()):
            return uri[len(POWERSHELL_URI_PREFIX) :]
        return None


def parse_request(data: bytes) -> Request:
    if not data.strip():
        raise WSManFault(
            ERROR_INVALID_SOAP_BODY,
            "The WS-Management service cannot process the request because the request body is empty.",
            subcode="w:SchemaValidationError",
            soap_code="s:Sender",
        )
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise WSManFault(
            ERROR_INVALID_XML,
            f"The WS-Management service cannot process the request because the XML is not well formed: {e}.",
            subcode="w:SchemaValidationError",
            soap_code="s:Sender",
        ) from None
    if root.tag != "{%s}Envelope" % NS["s"]:
        raise WSManFault(
            2150858765,  # ERROR_WSMAN_SOAP_VERSION_MISMATCH
            "The WS-Management service cannot process the request because the root element is not a SOAP 1.2 "
            "s:Envelope.",
            subcode="s:VersionMismatch",
            soap_code="s:VersionMismatch",
        )
    return Request(root)


_ENVELOPE_OPEN = (
    '<s:Envelope xml:lang="en-US" xmlns:s="{s}" xmlns:a="{a}" xmlns:x="{x}" xmlns:w="{w}" xmlns:rsp="{rsp}" '
    'xmlns:p="{p}">'
).format(**NS)


def envelope(action: str, relates_to: typing.Optional[str], body: str, extra_header: str = "") -> bytes:
    relates = f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>" if relates_to else ""
    return (
        f"{_ENVELOPE_OPEN}<s:Header><a:Action>{escape(action)}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID><a:To>{ANONYMOUS}</a:To>{relates}"
        f"{extra_header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode("utf-8")


def envelope_parts(action: str, relates_to: typing.Optional[str], body: typing.List[bytes]) -> typing.List[bytes]:
    """``envelope`` for a large body given as byte strings: the parts of the
    document, to be joined once by whoever sends it."""
    relates = f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>" if relates_to else ""
    head = (
        f"{_ENVELOPE_OPEN}<s:Header><a:Action>{escape(action)}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID><a:To>{ANONYMOUS}</a:To>{relates}"
        f"</s:Header><s:Body>"
    ).encode("utf-8")
    return [head, *body, b"</s:Body></s:Envelope>"]


def fault_envelope(fault: WSManFault, relates_to: typing.Optional[str]) -> bytes:
    message = escape(fault.message)
    provider = ""
    if fault.provider_fault:
        provider = f"<f:ProviderFault>{escape(fault.provider_fault)}</f:ProviderFault>"
    body = (
        f"<s:Fault><s:Code><s:Value>{fault.soap_code}</s:Value><s:Subcode><s:Value>{fault.subcode}</s:Value>"
        f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{message} </s:Text></s:Reason><s:Detail>'
        f'<f:WSManFault xmlns:f="{NS["f"]}" Code="{fault.code}" Machine={quoteattr(MACHINE)}>'
        f"<f:Message>{provider or message}</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )
    return envelope(fault.action, relates_to, body)
