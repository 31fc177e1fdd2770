#!/usr/bin/env python3
"""Captures the seed corpus of the wsman fuzz targets from the test peer.

Drives pypsrp (an independent client) against a fresh tests/peer instance and
records what a client receives: encrypted HTTP bodies (NTLM/SPNEGO and
Kerberos), the SOAP envelopes inside them (Create, Command, Receive, Signal,
Delete responses, WS-Man faults), the NTLM CHALLENGE messages from pyspnego's
acceptor, the WWW-Authenticate headers of its 401 replies, its TLS certificate,
and tinyproxy's replies to CONNECT. Writes them under
wsman/fuzz/seeds/<target>/ (replacing what was there), plus the PSRP
fragment streams of the Receive responses under psrp-core/fuzz/seeds/.

Run from anywhere, with the peer's virtualenv:

    "$PSRP_VENV/bin/python" wsman/fuzz/capture_seeds.py

Only our peer's bytes: real Windows captures stay outside the repository.
"""

import base64
import warnings
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import typing
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import requests  # noqa: E402
from pypsrp.exceptions import WinRMTransportError, WSManFaultError  # noqa: E402
from pypsrp.powershell import PowerShell, RunspacePool  # noqa: E402
from pypsrp.wsman import WSMan  # noqa: E402

from peer.conftest import PeerProcess  # noqa: E402

WSMAN_SEEDS = os.path.join(ROOT, "wsman", "fuzz", "seeds")
CORE_SEEDS = os.path.join(ROOT, "psrp-core", "fuzz", "seeds")
# Small seeds keep the fuzzers fast; the peer's large outputs add nothing new.
MAX_SEED = 16 * 1024
# A handful per kind is enough variety; more only slows the smoke run.
MAX_PER_KIND = 6

RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
SOAP = "http://www.w3.org/2003/05/soap-envelope"


class Recorder:
    """Everything pypsrp received, recorded at the requests level."""

    def __init__(self) -> None:
        self.encrypted: typing.List[typing.Tuple[str, bytes]] = []
        self.soap: typing.List[bytes] = []
        self.challenges: typing.List[bytes] = []
        self.www_authenticate: typing.List[bytes] = []

    def response(self, resp: requests.Response) -> None:
        if resp.status_code == 401:
            raw = getattr(resp.raw, "headers", None)
            values = raw.getlist("www-authenticate") if raw is not None else []
            self.www_authenticate.append("\n".join(values).encode())
        ct = resp.headers.get("content-type", "")
        if ct.startswith("multipart/"):
            self.encrypted.append((ct, resp.content))
        elif resp.content.lstrip().startswith(b"<"):
            self.soap.append(resp.content)
        for value in resp.headers.get("www-authenticate", "").split(","):
            parts = value.strip().split(" ", 1)
            if len(parts) == 2:
                try:
                    token = base64.b64decode(parts[1])
                except ValueError:
                    continue
                if token.startswith(b"NTLMSSP\0\x02\0\0\0"):
                    self.challenges.append(token)


def record(rec: Recorder) -> None:
    # At the adapter: authentication legs (the 401 with the CHALLENGE) are
    # sent from pypsrp's auth hook straight through the adapter.
    send = requests.adapters.HTTPAdapter.send

    def recording_send(self: typing.Any, *args: typing.Any, **kwargs: typing.Any) -> requests.Response:
        resp = send(self, *args, **kwargs)
        rec.response(resp)
        return resp

    requests.adapters.HTTPAdapter.send = recording_send  # type: ignore[method-assign]

    # The SOAP inside encrypted bodies, as pypsrp decrypts it.
    from pypsrp.encryption import WinRMEncryption

    unwrap = WinRMEncryption.unwrap_message

    def recording_unwrap(self: typing.Any, *args: typing.Any, **kwargs: typing.Any) -> bytes:
        plain = unwrap(self, *args, **kwargs)
        rec.soap.append(plain)
        return plain

    WinRMEncryption.unwrap_message = recording_unwrap  # type: ignore[method-assign]


def connect(peer: PeerProcess, auth: str, ssl: bool = False, **kwargs: typing.Any) -> WSMan:
    info = peer.info
    if auth != "kerberos":
        kwargs.setdefault("username", info["user"])
        kwargs.setdefault("password", info["password"])
    else:
        kwargs.setdefault("negotiate_service", "HTTP")
    if ssl:
        kwargs.setdefault("cert_validation", info["ca_file"])
    return WSMan(
        "localhost",
        port=info["https_port" if ssl else "http_port"],
        ssl=ssl,
        auth=auth,
        connection_timeout=10,
        read_timeout=30,
        **kwargs,
    )


def exercise(peer: PeerProcess, kerberos_peer: PeerProcess) -> None:
    """Every kind of response the peer gives, through pypsrp: NTLM under
    Negotiate (SPNEGO-session-encrypted bodies), and the Kerberos HTTP scheme
    (Kerberos-session-encrypted bodies) on an instance offering only that."""
    for p, auth in ((peer, "ntlm"), (kerberos_peer, "kerberos")):
        with RunspacePool(connect(p, auth, operation_timeout=1)) as pool:
            for build in (
                lambda ps: ps.add_cmdlet("Get-Date"),
                lambda ps: ps.add_cmdlet("Get-Item").add_parameter("Path", "C:\\Windows\\win.ini"),
                lambda ps: ps.add_cmdlet("Get-Item").add_parameter("Path", "C:\\nope"),
                lambda ps: ps.add_cmdlet("Write-Warning").add_parameter("Message", "careful \x1b[31m"),
                lambda ps: ps.add_cmdlet("Get-LargeOutput").add_parameter("Count", 3),
                # Longer than OperationTimeout: Receive timeout faults.
                lambda ps: ps.add_cmdlet("Start-Sleep").add_parameter("Seconds", 2),
            ):
                ps = PowerShell(pool)
                build(ps)
                ps.invoke()
            ps = PowerShell(pool)
            ps.add_cmdlet("Start-Sleep").add_parameter("Seconds", 60)
            ps.begin_invoke()
            ps.stop()
    try:
        with RunspacePool(connect(peer, "ntlm"), configuration_name="No.Such.Config"):
            pass
    except WSManFaultError:
        pass
    # Plain SOAP faults (Basic over HTTPS, no message encryption).
    wsman = connect(peer, "basic", ssl=True)
    for body in (b"this is not xml", b"<a/>", b'<s:Envelope xmlns:s="%s"><s:Body/></s:Envelope>' % SOAP.encode()):
        try:
            wsman.transport.send(body)
        except WinRMTransportError as e:
            rec_text = e.response_text
            if isinstance(rec_text, str) and rec_text:
                RECORDER.soap.append(rec_text.encode())


def tinyproxy_replies(target_port: int) -> typing.List[bytes]:
    """Reply heads of a real proxy (tinyproxy) to CONNECT: one tunnel, one refusal."""
    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    if not os.path.exists(binary):
        print("tinyproxy not installed: no proxy_reply seeds", file=sys.stderr)
        return []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    heads = []
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "tinyproxy.conf")
        with open(conf, "w") as f:
            f.write(f"Port {port}\nListen 127.0.0.1\nTimeout 10\nLogFile \"{d}/log\"\nAllow 127.0.0.1\n")
        proc = subprocess.Popen([binary, "-d", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            for authority in (f"localhost:{target_port}", f"127.0.0.1:{closed_port}"):
                with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                    c.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        b = c.recv(1)
                        if not b:
                            break
                        head += b
                    heads.append(head)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return heads


def receive_streams(soap: bytes) -> typing.List[bytes]:
    """The PSRP fragment bytes of one Receive response."""
    try:
        root = ET.fromstring(soap)
    except ET.ParseError:
        return []
    return [base64.b64decode(s.text or "") for s in root.iter("{%s}Stream" % RSP) if s.text]


def kind_of(soap: bytes) -> str:
    try:
        root = ET.fromstring(soap)
    except ET.ParseError:
        return "other"
    body = root.find("{%s}Body" % SOAP)
    if body is None or len(body) == 0:
        return "other"
    return body[0].tag.rsplit("}", 1)[-1]


def write(folder: str, name: str, data: bytes) -> None:
    os.makedirs(folder, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:12]
    with open(os.path.join(folder, f"{name}-{digest}"), "wb") as f:
        f.write(data)


def pick(items: typing.Iterable[bytes], limit: int = MAX_PER_KIND) -> typing.List[bytes]:
    """Distinct items of at most MAX_SEED bytes, smallest first, at most `limit`."""
    seen = set()
    out = []
    for item in sorted(items, key=len):
        if len(item) <= MAX_SEED and item not in seen:
            seen.add(item)
            out.append(item)
    # Spread over the sizes rather than taking only the smallest.
    if len(out) > limit:
        step = len(out) / limit
        out = [out[int(i * step)] for i in range(limit)]
    return out


RECORDER = Recorder()


def main() -> None:
    # pypsrp warns that Basic over HTTPS sends no channel binding: expected here.
    warnings.simplefilter("ignore")
    record(RECORDER)
    peer = PeerProcess.start()
    os.environ["KRB5_CONFIG"] = peer.info["krb5_config"]
    os.environ["KRB5CCNAME"] = "FILE:" + peer.info["ccache"]
    kerberos_peer = None
    try:
        kerberos_peer = PeerProcess.start("--realm-from", peer.info["info_file"], "--schemes", "Kerberos,Basic")
        exercise(peer, kerberos_peer)
        proxy = tinyproxy_replies(peer.info["https_port"])
        cert = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("localhost", peer.info["https_port"])))
    finally:
        if kerberos_peer:
            kerberos_peer.stop()
        peer.stop()

    targets = [
        "encrypted_body",
        "soap_envelope",
        "wsman_fault",
        "receive_response",
        "ntlm_challenge",
        "proxy_reply",
        "www_authenticate",
        "channel_bindings",
    ]
    for t in targets:
        shutil.rmtree(os.path.join(WSMAN_SEEDS, t), ignore_errors=True)
    for t in ("defragment", "pool_receive"):
        shutil.rmtree(os.path.join(CORE_SEEDS, t), ignore_errors=True)

    # encrypted_body inputs are "<Content-Type>\n<body>".
    by_protocol: typing.Dict[str, typing.List[bytes]] = {}
    for ct, body in RECORDER.encrypted:
        proto = "kerberos" if "Kerberos" in ct else "spnego"
        by_protocol.setdefault(proto, []).append(ct.encode() + b"\n" + body)
    for proto, items in by_protocol.items():
        for item in pick(items):
            write(os.path.join(WSMAN_SEEDS, "encrypted_body"), proto, item)

    by_kind: typing.Dict[str, typing.List[bytes]] = {}
    for soap in RECORDER.soap:
        by_kind.setdefault(kind_of(soap), []).append(soap)
    for kind, items in sorted(by_kind.items()):
        chosen = pick(items, 3)
        for item in chosen:
            write(os.path.join(WSMAN_SEEDS, "soap_envelope"), kind, item)
        if kind == "Fault":
            for item in pick(items):
                write(os.path.join(WSMAN_SEEDS, "wsman_fault"), kind, item)
        if kind == "ReceiveResponse":
            for item in pick(items, 10):
                write(os.path.join(WSMAN_SEEDS, "receive_response"), kind, item)
                for stream in receive_streams(item):
                    write(os.path.join(CORE_SEEDS, "defragment"), "receive", stream)
                    write(os.path.join(CORE_SEEDS, "pool_receive"), "receive", stream)

    for ch in pick(RECORDER.challenges, 3):
        write(os.path.join(WSMAN_SEEDS, "ntlm_challenge"), "pyspnego", ch)
    for values in pick(RECORDER.www_authenticate, 4):
        write(os.path.join(WSMAN_SEEDS, "www_authenticate"), "peer-401", values)
    write(os.path.join(WSMAN_SEEDS, "channel_bindings"), "peer-cert", cert)
    for head in proxy:
        status = head.split(b" ")[1].decode() if head.count(b" ") else "none"
        write(os.path.join(WSMAN_SEEDS, "proxy_reply"), "tinyproxy-" + status, head)

    for base in (WSMAN_SEEDS, CORE_SEEDS):
        for t in sorted(os.listdir(base)):
            files = os.listdir(os.path.join(base, t))
            size = sum(os.path.getsize(os.path.join(base, t, f)) for f in files)
            print(f"{os.path.relpath(os.path.join(base, t), ROOT)}: {len(files)} files, {size} bytes")


if __name__ == "__main__":
    main()
