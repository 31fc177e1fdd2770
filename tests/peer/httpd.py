"""The WinRM HTTP(S) listener: keep-alive connections, authentication, message
encryption, fault injection (and the hostile server of peer.hostile), then WS-Man
dispatch."""

import base64
import http.server
import logging
import os
import socket
import socketserver
import ssl
import struct
import threading
import time
import typing

from peer import auth, encryption, hostile, soap
from peer.wsman import Context

log = logging.getLogger("peer.http")

SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"
MAX_BODY = 64 * 1024 * 1024


class Listener(http.server.ThreadingHTTPServer):
    """A threaded HTTP/1.1 server on one loopback address; optionally TLS."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(
        self,
        address: typing.Tuple[str, int],
        instance: typing.Any,
        transport: str,
        tls: typing.Optional[ssl.SSLContext] = None,
        cbt: typing.Optional[bytes] = None,
        name: str = "",
        reuse_address: bool = True,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        # SO_REUSEADDR, so that a restart (control /listeners/restart) can bind the same
        # port again: Linux refuses it while connections accepted from a listener without
        # it linger in TIME_WAIT. (It never lets two listeners share a port.)
        self.allow_reuse_address = reuse_address
        # Open connections, so that a restart can cut them.
        self.active: typing.Set[socket.socket] = set()
        self.active_lock = threading.Lock()
        self.instance = instance
        self.transport = transport
        self.tls = tls
        self.cbt = cbt
        self.name = name or transport
        super().__init__(address, WinRMHandler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socketserver.TCPServer.server_bind(self)
        self.server_name = "localhost"
        self.server_port = self.server_address[1]

    def get_request(self) -> typing.Tuple[socket.socket, typing.Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            # The handshake runs in the connection's thread, on its first read.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.active_lock:
            self.active.add(sock)
        return sock, addr

    def shutdown_request(self, request: typing.Any) -> None:
        with self.active_lock:
            self.active.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> int:
        """Cuts every open connection (as a listener going away does); returns how many."""
        with self.active_lock:
            active = list(self.active)
        for sock in active:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(active)

    def wait_closed(self, timeout: float) -> bool:
        """Waits until every connection's thread has closed its socket."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.active_lock:
                if not self.active:
                    return True
            time.sleep(0.02)
        return False

    def handle_error(self, request: typing.Any, client_address: typing.Any) -> None:
        log.info("%s: connection from %s ended with an error", self.name, client_address, exc_info=True)


def _send_all(sock: socket.socket, parts: typing.List[typing.Any]) -> None:
    """sendmsg until every byte of ``parts`` is sent."""
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]


class WinRMHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = 300  # idle keep-alive connections end after this
    server: Listener

    def setup(self) -> None:
        super().setup()
        inst = self.server.instance
        with inst.lock:
            inst.connections += 1
            self.conn_id = inst.connections
        opts = inst.options
        self.auth = auth.ConnectionAuth(inst.realm.data, self.server.cbt, strict_cbt=opts.cbt in ("strict", "proxy"),
                                       ntlm_only=opts.ntlm_only, credssp_tls=opts.credssp_tls)
        if self.server.tls is not None:
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError) as e:
                log.info("%s: TLS handshake with %s failed: %s", self.server.name, self.client_address, e)
                inst.log_op({"kind": "tls", "result": "handshake_failed", "reason": str(e),
                             "listener": self.server.name, "connection": self.conn_id})
                self.close_connection = True
                _drain_before_close(self.connection)
                raise

    def version_string(self) -> str:
        return self.server_version

    _date_cache: typing.Tuple[int, str] = (0, "")

    def date_time_string(self, timestamp: typing.Optional[float] = None) -> str:
        # The Date header changes once a second; formatting it is not free.
        if timestamp is not None:
            return super().date_time_string(timestamp)
        now = int(time.time())
        second, text = WinRMHandler._date_cache
        if second != now:
            text = super().date_time_string(now)
            WinRMHandler._date_cache = (now, text)
        return text

    def log_message(self, format: str, *args: typing.Any) -> None:
        log.debug("%s conn %d: " + format, self.server.name, self.conn_id, *args)

    # ---- helpers --------------------------------------------------------------------

    def _read_body(self) -> typing.Optional[bytes]:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        n = int(length)
        if n < 0 or n > MAX_BODY:
            return None
        return self.rfile.read(n)

    def _challenges(self) -> typing.List[str]:
        offered = []
        for scheme in self.server.instance.options.schemes:
            if scheme.lower() == "basic":
                if self.server.transport == "https" or self.server.instance.options.allow_unencrypted:
                    offered.append('Basic realm="WSMAN"')
            else:
                offered.append(scheme)
        return offered

    def _send(
        self,
        status: int,
        body: typing.Union[bytes, typing.List[bytes]] = b"",
        content_type: typing.Optional[str] = None,
        headers: typing.Optional[typing.List[typing.Tuple[str, str]]] = None,
    ) -> None:
        self.send_response(status)
        for name, value in headers or []:
            self.send_header(name, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        parts = [body] if isinstance(body, bytes) else body
        length = sum(len(p) for p in parts)
        self.send_header("Content-Length", str(length))
        # Headers and body in one write: a separate small header segment
        # would wait for the client's delayed ACK (Nagle), about 40 ms per
        # response, which HTTP.sys does not do.
        self._headers_buffer.append(b"\r\n")
        if isinstance(self.connection, ssl.SSLSocket):
            self._headers_buffer.extend(parts)
            self.flush_headers()
        else:
            # One gathering write, without joining a large body into a copy.
            _send_all(self.connection, [b"".join(self._headers_buffer), *parts])
            self._headers_buffer = []
        self.wfile.flush()
        with self.server.instance.lock:
            self.server.instance.bytes_out += length

    def _send_half(
        self, status: int, parts: typing.List[bytes], content_type: str, headers: typing.List[typing.Tuple[str, str]]
    ) -> None:
        """The status line, the headers (with the whole body's Content-Length) and half of the body."""
        body = b"".join(parts)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()

    def _kill(self) -> None:
        """Cuts the TCP connection at once (a reset: no orderly close)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _unauthorized(self, token: typing.Optional[bytes] = None, scheme: str = "", reason: str = "") -> None:
        if token is not None:
            headers = [("WWW-Authenticate", f"{scheme} {base64.b64encode(token).decode()}")]
        else:
            headers = [("WWW-Authenticate", c) for c in self._challenges()]
        if reason:
            self.server.instance.log_op(
                {"kind": "auth", "result": "refused", "reason": reason, "transport": self.server.transport,
                 "connection": self.conn_id}
            )
            log.info("%s conn %d: 401: %s", self.server.name, self.conn_id, reason)
        self._send(401, headers=headers)

    # ---- methods --------------------------------------------------------------------

    def do_GET(self) -> None:
        self._read_body()
        self._send(405, headers=[("Allow", "POST")])

    def do_POST(self) -> None:
        inst = self.server.instance
        body = self._read_body()
        with inst.lock:
            inst.requests += 1
            inst.bytes_in += len(body or b"")
        # One record per HTTP exchange (authentication legs and the empty handshake
        # POST included), so round trips can be counted from the log.
        inst.log_op({"kind": "request", "transport": self.server.transport, "connection": self.conn_id,
                     "authorization": (self.headers.get("Authorization") or "").partition(" ")[0] or None,
                     "body_bytes": len(body or b"")})
        if body is None:
            self.close_connection = True
            self._send(413)
            return
        if self.path.split("?")[0].lower() != "/wsman":
            self._send(404)
            return
        opts = inst.options
        transport = self.server.transport
        if self.headers.get("WSMANIDENTIFY", "").lower() == "unauthenticated" and b"Identify" in body:
            # WS-Man Identify without authentication, as WinRM answers it (the OS version hidden).
            inst.log_op({"kind": "identify", "transport": transport, "connection": self.conn_id})
            self._send(200, soap.identify_response(), SOAP_CONTENT_TYPE)
            return
        final_token: typing.Optional[typing.Tuple[str, bytes]] = None
        header = self.headers.get("Authorization")
        enabled = {s.lower() for s in opts.schemes}
        if header and header.strip().lower() == auth.CERTIFICATE_SCHEME:
            # Certificate authentication: no handshake over HTTP, the TLS client certificate is
            # the credential; mapped to an account by its UPN. Only over HTTPS, as WinRM.
            if transport != "https":
                self._unauthorized(reason="certificate authentication needs HTTPS")
                return
            try:
                user, upn = auth.map_certificate(self.connection.getpeercert(binary_form=True), inst.realm.data)
            except auth.AuthFailed as e:
                self._unauthorized(reason=str(e))
                return
            inst.log_op({"kind": "auth", "result": "ok", "scheme": "Certificate", "mechanism": "certificate",
                         "principal": user, "certificate_upn": upn, "transport": transport,
                         "connection": self.conn_id, "delegated": None})
            auth_desc = {"scheme": "Certificate", "mechanism": "certificate", "principal": user}
            session_auth = False
        elif header:
            scheme, _, value = header.strip().partition(" ")
            lowered = scheme.lower()
            if lowered not in enabled:
                self._unauthorized(reason=f"authentication scheme {scheme!r} is not enabled")
                return
            if lowered == "basic":
                if transport == "http" and not opts.allow_unencrypted:
                    self._unauthorized(reason="Basic over HTTP needs AllowUnencrypted (--allow-unencrypted)")
                    return
                try:
                    user = self.auth.check_basic(value.strip())
                except auth.AuthFailed as e:
                    self._unauthorized(reason=str(e))
                    return
                auth_desc = {"scheme": "Basic", "mechanism": "basic", "principal": user}
                session_auth = False
            else:
                try:
                    out = self.auth.step(scheme, value.strip())
                except auth.AuthFailed as e:
                    self._unauthorized(reason=str(e))
                    return
                if self.auth.credssp_error:
                    # The CredSSP acceptor refused and put its errorCode in the token it returns.
                    reason = self.auth.credssp_error
                    self.auth.reset()
                    inst.log_op({"kind": "auth", "result": "refused", "scheme": scheme, "reason": reason,
                                 "transport": transport, "connection": self.conn_id})
                    self._unauthorized(token=out or b"", scheme=scheme)
                    return
                if not self.auth.complete:
                    inst.log_op({"kind": "auth", "result": "challenge", "scheme": scheme,
                                 "transport": transport, "connection": self.conn_id})
                    self._unauthorized(token=out or b"", scheme=scheme)
                    return
                inst.log_op({"kind": "auth", "result": "ok", "scheme": scheme, "mechanism": self.auth.negotiated,
                             "principal": self.auth.principal, "transport": transport, "connection": self.conn_id,
                             "delegated": self.auth.delegated, "credssp_version": self.auth.credssp_version,
                             "ntlm_cbt": None if self.auth.ntlm_cbt_hash is None else self.auth.ntlm_cbt_hash.hex()})
                if out:
                    final_token = (scheme, out)
                auth_desc = {"scheme": scheme, "mechanism": self.auth.negotiated, "principal": self.auth.principal}
                session_auth = True
        elif self.auth.complete:
            auth_desc = {"scheme": self.auth.scheme, "mechanism": self.auth.negotiated, "principal": self.auth.principal}
            session_auth = True
        else:
            self._unauthorized()
            return
        extra_headers = []
        if final_token is not None:
            extra_headers.append(("WWW-Authenticate", f"{final_token[0]} {base64.b64encode(final_token[1]).decode()}"))

        content_type = self.headers.get("Content-Type", "")
        encrypted = encryption.is_encrypted(content_type)
        if encrypted:
            if not session_auth:
                self._send(400, headers=extra_headers)
                return
            protocol = self.auth.encryption_protocol
            try:
                if encryption.protocol_of(content_type) != protocol:
                    raise encryption.EncryptionError(
                        f"Content-Type protocol {encryption.protocol_of(content_type)!r}, expected {protocol!r}"
                    )
                plain = encryption.unwrap(body, protocol, self.auth.unwrap)
            except encryption.EncryptionError as e:
                log.info("%s conn %d: bad encrypted body: %s", self.server.name, self.conn_id, e)
                inst.log_op({"kind": "http", "result": "bad_encryption", "reason": str(e), "connection": self.conn_id})
                self._send(400, headers=extra_headers)
                return
        else:
            plain = body
            if not body:
                # The empty POST that completes the handshake before encrypted traffic.
                self._send(200, headers=extra_headers)
                return
            if session_auth and transport == "http" and not opts.allow_unencrypted:
                self._unauthorized(reason="unencrypted body after Negotiate/Kerberos over HTTP (AllowUnencrypted=false)")
                return

        record: typing.Dict[str, typing.Any] = {
            "kind": "wsman",
            "transport": transport,
            "connection": self.conn_id,
            "encrypted": encrypted,
            "auth": auth_desc,
            "request_bytes": len(plain),
        }
        relates_to = None
        status = 200
        rule = None
        try:
            server_max = opts.max_envelope_kb * 1024 if opts.max_envelope_kb else soap.SERVER_MAX_ENVELOPE
            if len(plain) > server_max:
                raise soap.WSManFault(
                    soap.ERROR_SERVER_ENVELOPE_LIMIT,
                    f"The WS-Management service cannot process the request because the request envelope of "
                    f"{len(plain)} bytes exceeds the server limit of {server_max} bytes "
                    "(MaxEnvelopeSizekb).",
                    subcode="w:EncodingLimit",
                    soap_code="s:Sender",
                )
            req = soap.parse_request(plain)
            relates_to = req.message_id
            record["message_id"] = req.message_id
            rule = inst.take_fault(req.short_action, req.command_id)
            hostile_rule = None
            failure = None
            if rule is not None:
                record["injected_fault"] = rule.kind
                if rule.kind == "delay":
                    time.sleep(rule.delay_ms / 1000.0)
                elif rule.kind == "drop_connection" or rule.kind == "kill" and rule.at == "request":
                    record["action"] = req.short_action
                    if rule.kind == "kill":
                        record["killed_at"] = "request"
                    inst.log_op(record)
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                elif rule.kind == "close_after_response":
                    self.close_connection = True
                elif rule.kind == "http_status":
                    # An error page instead of a SOAP answer (a proxy, IIS, a hostile server).
                    record.update(action=req.short_action, status=rule.status)
                    inst.log_op(record)
                    self._send(rule.status, rule.text.encode("utf-8"), rule.content_type, extra_headers)
                    return
                elif rule.kind == "http_500":
                    raise soap.WSManFault(rule.code, rule.message)
                elif rule.kind in hostile.HANDLER_KINDS:
                    hostile_rule = rule
                elif rule.kind == "fail_pipeline":
                    failure = rule.message
            ctx = Context(
                principal=auth_desc["principal"] or "",
                client_ip=self.client_address[0],
                delegated=self.auth.delegated if session_auth else None,
                endpoint=f"{transport}://localhost:{self.server.server_port}/wsman",
                hostile=hostile_rule,
                failure=failure,
            )
            if rule is not None and rule.kind in hostile.REPLACING_KINDS:
                record["action"] = req.short_action
                shell_id = req.selectors.get("ShellId")
                response = hostile.replacement(rule, req, inst.get_shell(shell_id) if shell_id else None)
            else:
                response = inst.handlers.dispatch(req, ctx, record)
            if not isinstance(response, bytes):  # large responses come in parts
                response = b"".join(response)
        except soap.WSManFault as fault:
            status = 500
            record["fault_code"] = fault.code
            record["fault_message"] = fault.message
            response = soap.fault_envelope(fault, relates_to)
        except Exception as e:  # never let a request kill the connection thread
            log.exception("%s conn %d: internal error", self.server.name, self.conn_id)
            status = 500
            fault = soap.WSManFault(soap.ERROR_INTERNAL_ERROR, f"Internal error in the test peer: {type(e).__name__}")
            record["fault_code"] = fault.code
            response = soap.fault_envelope(fault, relates_to)
        record["status"] = status
        record["response_bytes"] = len(response)
        if self.close_connection:
            extra_headers.append(("Connection", "close"))
        out: typing.List[bytes] = [response]
        content_type = SOAP_CONTENT_TYPE
        if encrypted:
            protocol = self.auth.encryption_protocol
            out = encryption.wrap(response, protocol, self.auth.wrap)
            content_type = encryption.content_type(protocol, len(response))
        if rule is not None and rule.kind == "tamper_encryption":
            if encrypted:
                # After the real sealing: only what is outside the seal changes.
                try:
                    out = [hostile.tamper(b"".join(out), rule)]
                    record["tamper"] = rule.tamper
                except ValueError as e:
                    record["tamper"] = f"skipped: {e}"
            else:
                record["tamper"] = "skipped: the response is not encrypted"
        if rule is not None and rule.kind == "kill":
            # The network dies: after the request was processed, before (or in
            # the middle of) its answer.
            record.setdefault("action", req.short_action)
            record["killed_at"] = rule.at
            inst.log_op(record)
            if rule.at == "mid_body":
                self._send_half(status, out, content_type, extra_headers)
            self._kill()
            return
        inst.log_op(record)
        if rule is not None and rule.kind == "endless_body":
            hostile.send_endless_body(self, status, out, content_type, extra_headers, rule)
            return
        self._send(status, out, content_type, extra_headers)


def _drain_before_close(sock: socket.socket) -> None:
    """Reads what the client sent (its first request, with TLS 1.3) before the socket is closed.

    Closing with unread bytes makes the kernel answer with a RST, and a RST discards the TLS alert the
    client has not read yet: the client would see "connection reset" instead of why it was refused.
    """
    try:
        raw = socket.socket(fileno=os.dup(sock.fileno()))
    except OSError:
        return
    with raw:
        try:
            raw.settimeout(0.5)
            raw.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and raw.recv(65536):
                pass
        except OSError:
            pass

