"""The control endpoint (loopback HTTP, JSON) tests use to inspect and steer an instance.

GET  /info            the info document (also in the info file)
GET  /shells          {"open": n, "by_configuration": {...}, "shells": [...]}
GET  /log?since=N     operation log entries with seq > N
POST /log/reset       clears the operation log and the Restart-Computer calls
GET  /restarts        recorded Restart-Computer calls
GET  /faults          active fault rules
POST /faults          add rules: one object or a list, e.g. {"kind": "delay", "action": "Create",
                      "delay_ms": 500}; peer.instance.FaultRule lists the kinds: faults a real
                      WinRM host may answer with (dropped connection, WS-Man fault, delay), a
                      network that dies ({"kind": "kill", "at": "request|response|mid_body",
                      "action": "Receive", "skip": N}: the TCP connection cut before the
                      request is processed, after it was processed but before its answer,
                      or in the middle of the answer's body) and
                      the attacks of a hostile server (peer.hostile): tampered encryption
                      framing, HTTP bodies that never end, endless Receive streams and PSRP
                      fragments, oversized or pathological XML, terminal escapes in every
                      stream. Unknown kinds or parameters out of range answer 400.
POST /faults/clear    remove every rule
POST /receive_sequence {"enabled": false}: answer Receives as a server without robust Receive
                      does (SequenceId ignored and not echoed, no response kept); true: back
POST /listeners/restart  {"down_ms": N}: the WinRM HTTP and HTTPS listeners stop, their open
                      connections are cut, connections are refused for N ms (default
                      1000), then they listen again on the same ports; shells, pipelines
                      and their output are kept (answers when they are back)
GET  /stats           the peer's own CPU time and counters
GET  /fleet           the fleet's hosts (--listeners, peer.fleet): each one's address, port, role,
                      open_shells, shells_created, connections and requests, and the totals
                      open_shells, shells_created, connections (empty without a fleet)
GET  /settings        server settings: max_idle_timeout (s, WinRM's MaxIdleTimeoutms: disconnected
                      shells are deleted past min(their IdleTimeOut, this)), disconnected_buffer_bytes
                      (output kept per command while nobody is connected; then Block waits, Drop
                      drops the oldest)
POST /shells/owner    {"shell_id": ..., "owner": "PEER\\alice"}: hand a shell to another user (the
                      peer has one account; this stands for a shell another user created)
POST /settings        change them: {"max_idle_timeout": 2, "disconnected_buffer_bytes": 65536}
POST /shutdown        stop the instance
"""

import http.server
import json
import logging
import threading
import typing
import urllib.parse

log = logging.getLogger("peer.control")


class ControlServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, instance: typing.Any, info: typing.Callable[[], typing.Dict[str, typing.Any]],
                 shutdown: threading.Event) -> None:
        self.instance = instance
        self.info = info
        self.shutdown_event = shutdown
        self.restart_listeners: typing.Optional[typing.Callable[[float], typing.Dict[str, typing.Any]]] = None
        self.fleet: typing.Any = None  # peer.fleet.Fleet, with --listeners
        super().__init__(("127.0.0.1", 0), ControlHandler)


class ControlHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ControlServer

    def log_message(self, format: str, *args: typing.Any) -> None:
        log.debug(format, *args)

    def _json(self, status: int, value: typing.Any) -> None:
        body = json.dumps(value, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> typing.Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw.strip() else None

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        inst = self.server.instance
        if url.path == "/info":
            self._json(200, self.server.info())
        elif url.path == "/shells":
            self._json(200, inst.describe_shells())
        elif url.path == "/log":
            since = int(query.get("since", ["0"])[0])
            self._json(200, inst.get_log(since))
        elif url.path == "/restarts":
            with inst.lock:
                self._json(200, list(inst.restarts))
        elif url.path == "/faults":
            with inst.lock:
                self._json(200, [r.describe() for r in inst.faults])
        elif url.path == "/fleet":
            fleet = self.server.fleet
            self._json(200, fleet.describe() if fleet is not None else
                       {"hosts": [], "open_shells": 0, "shells_created": 0, "connections": 0})
        elif url.path == "/stats":
            self._json(200, inst.stats())
        elif url.path == "/settings":
            with inst.lock:
                self._json(200, dict(inst.settings))
        else:
            self._json(404, {"error": f"no such control path {url.path}"})

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        inst = self.server.instance
        try:
            body = self._body()
        except ValueError as e:
            self._json(400, {"error": f"body is not JSON: {e}"})
            return
        if url.path == "/log/reset":
            inst.reset_log()
            self._json(200, {"ok": True})
        elif url.path == "/faults":
            specs = body if isinstance(body, list) else [body]
            try:
                inst.set_faults([s for s in specs if s is not None])
            except (ValueError, TypeError) as e:
                self._json(400, {"error": str(e)})
                return
            with inst.lock:
                self._json(200, [r.describe() for r in inst.faults])
        elif url.path == "/shells/owner":
            shell = inst.get_shell(str((body or {}).get("shell_id", "")))
            if shell is None or not isinstance((body or {}).get("owner"), str):
                self._json(400, {"error": "needs the shell_id of an open shell and an owner string"})
                return
            with shell.cond:
                shell.owner = body["owner"]
            self._json(200, {"ok": True})
        elif url.path == "/settings":
            try:
                inst.update_settings(body if isinstance(body, dict) else {})
            except ValueError as e:
                self._json(400, {"error": str(e)})
                return
            with inst.lock:
                self._json(200, dict(inst.settings))
        elif url.path == "/faults/clear":
            inst.clear_faults()
            self._json(200, {"ok": True})
        elif url.path == "/receive_sequence":
            enabled = (body or {}).get("enabled") if isinstance(body, dict) else None
            if not isinstance(enabled, bool):
                self._json(400, {"error": 'the body must be {"enabled": true|false}'})
                return
            inst.robust_receive = enabled
            self._json(200, {"enabled": enabled})
        elif url.path == "/listeners/restart":
            down_ms = (body or {}).get("down_ms", 1000) if isinstance(body, (dict, type(None))) else None
            if not isinstance(down_ms, int) or not 0 <= down_ms <= 60000:
                self._json(400, {"error": "down_ms must be a whole number of milliseconds from 0 to 60000"})
                return
            if self.server.restart_listeners is None:
                self._json(404, {"error": "this peer cannot restart its listeners"})
                return
            try:
                result = self.server.restart_listeners(down_ms / 1000.0)
            except OSError as e:
                log.exception("restarting the listeners failed")
                self._json(500, {"error": f"restarting the listeners failed: {e}"})
                return
            self._json(200, result)
        elif url.path == "/shutdown":
            self._json(200, {"ok": True})
            self.server.shutdown_event.set()
        else:
            self._json(404, {"error": f"no such control path {url.path}"})
