"""A fleet: many WinRM HTTP listeners in one peer process, each a separate simulated host.

Each host is a listening port with an instance of its own (``peer.instance.Instance``:
shells, operation log, faults and counters), sharing the realm, the options and the file
store of the peer. A host has a role:

- ``ok``: a normal host;
- ``slow``: every WS-Man request waits ``slow_ms`` before it is handled (the ``delay``
  fault, on every request);
- ``failing``: the command fails with a terminating error record (the ``fail_pipeline``
  fault, on every Command); the shell opens and is deleted as usual;
- ``refusing``: nothing listens: the port is bound (so no other socket takes it) but not
  listening, so a connection is refused at once (a TCP reset), as by a host whose WinRM
  service is stopped or whose firewall rejects the port.

Scale: a ``socketserver`` server per host would need a ``serve_forever`` thread each,
waking every poll interval; here one acceptor thread waits on every listening socket
with one selector and hands each new connection to a thread of its own (as every
listener of the peer does), so 1,000 idle hosts cost one sleeping thread, and threads
follow the connections actually open.
"""

import logging
import random
import resource
import selectors
import socket
import threading
import typing

log = logging.getLogger("peer.fleet")

ROLES = ("ok", "slow", "failing", "refusing")
FAILURE_MESSAGE = "The command failed on this host (the test peer's failing fleet host)."
# Rules that fire on every request for the life of the peer.
FOREVER = 1 << 62


class FleetHost:
    """One simulated host: its address, port, role and (but for ``refusing``) its
    listener and instance."""

    def __init__(self, address: str, role: str) -> None:
        self.address = address
        self.role = role
        self.port = 0
        self.server: typing.Any = None  # peer.httpd.Listener
        self.instance: typing.Any = None  # peer.instance.Instance
        self.refusing_socket: typing.Optional[socket.socket] = None

    def info(self) -> typing.Dict[str, typing.Any]:
        return {"address": self.address, "port": self.port, "role": self.role}

    def describe(self) -> typing.Dict[str, typing.Any]:
        described = self.info()
        inst = self.instance
        if inst is None:
            described.update(open_shells=0, shells_created=0, connections=0, requests=0)
        else:
            with inst.lock:
                described.update(open_shells=len(inst.shells), shells_created=inst.shells_created,
                                 connections=inst.connections, requests=inst.requests)
        return described


def plan_roles(total: int, slow: int, failing: int, refusing: int, seed: int = 0) -> typing.List[str]:
    """``total`` roles with the given numbers of slow, failing and refusing hosts, the
    rest ok, in a shuffled but reproducible order (the special hosts spread out)."""
    if min(total, slow, failing, refusing) < 0 or slow + failing + refusing > total:
        raise ValueError("the slow, failing and refusing hosts must be at most --listeners in all")
    roles = ["slow"] * slow + ["failing"] * failing + ["refusing"] * refusing
    roles += ["ok"] * (total - len(roles))
    random.Random(seed).shuffle(roles)
    return roles


def raise_fd_limit(needed: int) -> None:
    """Raises the soft RLIMIT_NOFILE to the hard one when ``needed`` descriptors may not fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = hard if hard == resource.RLIM_INFINITY else max(soft, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        log.info("RLIMIT_NOFILE raised from %s to %s for the fleet", soft, new)
        if new != resource.RLIM_INFINITY and new < needed:
            log.warning("RLIMIT_NOFILE %s may be too low for the fleet (about %d needed)", new, needed)


class Fleet:
    """The fleet's hosts and the acceptor thread of their listeners."""

    def __init__(
        self,
        roles: typing.List[str],
        addresses: typing.List[str],
        make_instance: typing.Callable[[], typing.Any],
        make_listener: typing.Callable[[typing.Tuple[str, int], typing.Any, str], typing.Any],
        slow_ms: int,
    ) -> None:
        self.slow_ms = slow_ms
        self.hosts: typing.List[FleetHost] = []
        self.selector = selectors.DefaultSelector()
        self.stopping = threading.Event()
        self.thread: typing.Optional[threading.Thread] = None
        # Listening sockets, connections (with a thread each) and slack.
        raise_fd_limit(len(roles) * 2 + 1024)
        try:
            for index, role in enumerate(roles):
                host = FleetHost(addresses[index % len(addresses)], role)
                self.hosts.append(host)
                if role == "refusing":
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.bind((host.address, 0))
                    host.refusing_socket = s
                    host.port = s.getsockname()[1]
                    continue
                inst = make_instance()
                if role == "slow":
                    inst.set_faults([{"kind": "delay", "delay_ms": slow_ms, "count": FOREVER}])
                elif role == "failing":
                    inst.set_faults([{"kind": "fail_pipeline", "message": FAILURE_MESSAGE, "count": FOREVER}])
                host.instance = inst
                host.server = make_listener((host.address, 0), inst, f"fleet-{index}")
                host.port = host.server.server_address[1]
                self.selector.register(host.server.socket, selectors.EVENT_READ, host.server)
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        self.thread = threading.Thread(target=self._accept, name="fleet-acceptor", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            for key, _ in self.selector.select(0.5):
                # Accepts one connection and starts its thread (ThreadingMixIn).
                key.data._handle_request_noblock()

    def close(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(2.0)
        for host in self.hosts:
            if host.server is not None:
                host.server.server_close()
            if host.refusing_socket is not None:
                host.refusing_socket.close()
        self.selector.close()

    def info(self) -> typing.Dict[str, typing.Any]:
        """For the info document: every host's address, port and role."""
        return {"slow_ms": self.slow_ms, "hosts": [h.info() for h in self.hosts]}

    def describe(self) -> typing.Dict[str, typing.Any]:
        """For GET /fleet: the hosts with their open shells and counters, and the totals."""
        hosts = [h.describe() for h in self.hosts]
        return {
            "hosts": hosts,
            "open_shells": sum(h["open_shells"] for h in hosts),
            "shells_created": sum(h["shells_created"] for h in hosts),
            "connections": sum(h["connections"] for h in hosts),
        }
