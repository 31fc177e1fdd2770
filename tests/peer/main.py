"""Command line: start one peer instance (KDC + listeners + control endpoint).

Prints the info document as one JSON line on stdout when ready, and writes it to
``--info-file`` (default STATE_DIR/info.json). Exits when stdin reaches EOF, when the
parent process goes away, on SIGTERM/SIGINT, or on POST /shutdown.
"""

import argparse
import ctypes
import errno
import json
import logging
import os
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
import typing

SCHEMES = ("Negotiate", "Kerberos", "Basic", "CredSSP")


def parse_args(argv: typing.Optional[typing.List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m peer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state-dir", help="directory for realm, logs and info (default: a new temp dir, removed at exit)")
    p.add_argument("--info-file", help="where to write the info JSON (default: STATE_DIR/info.json)")
    p.add_argument("--realm-from", metavar="INFO_FILE",
                   help="share the realm (KDC, users, certificates) of a running instance instead of creating one")
    p.add_argument("--allow-unencrypted", action="store_true",
                   help="AllowUnencrypted=true: Basic and plain bodies over HTTP")
    p.add_argument("--cbt", choices=("strict", "none", "proxy"), default="strict",
                   help="channel binding on HTTPS: strict (CbtHardeningLevel=Strict, default), none, or proxy: "
                        "strict, but checked against another certificate's hash, as a server behind a "
                        "TLS-terminating proxy or load balancer sees it (NTLM/Kerberos over HTTPS fail with 401)")
    p.add_argument("--schemes", default=",".join(SCHEMES),
                   help="enabled auth schemes in WWW-Authenticate order (default: Negotiate,Kerberos,Basic,CredSSP); "
                        "leave CredSSP out to refuse it by policy, as WinRM's default service settings do")
    p.add_argument("--credssp-version", type=int, choices=(2, 3, 4, 5, 6), default=6,
                   help="the CredSSP version the acceptor speaks (default 6; 2-4: raw public key binding, "
                        "5-6: nonce and hash binding; 2 and 5 have no errorCode)")
    p.add_argument("--credssp-bad-binding", action="store_true",
                   help="the CredSSP acceptor answers with a public key binding that does not match its "
                        "certificate, as a man in the middle would")
    p.add_argument("--credssp-tls", choices=("1.2", "1.3"), default="1.3",
                   help="the highest TLS version inside CredSSP (default 1.3; the minimum is 1.2)")
    p.add_argument("--ntlm-only", action="store_true",
                   help="offer Negotiate/Kerberos but refuse Kerberos tokens (a server that accepts only NTLM)")
    p.add_argument("--stale-keytab", action="store_true",
                   help="the acceptor's keytab holds an old key of HTTP/localhost (its password changed): the "
                        "KDC issues tickets the server cannot decrypt")
    p.add_argument("--jea-denied", action="store_true",
                   help="the user is in no role of JEA.Maintenance: its Create faults with Access is denied (5)")
    p.add_argument("--max-envelope-kb", type=int, default=0,
                   help="the server's MaxEnvelopeSizekb (default 500): larger requests fault")
    p.add_argument("--bad-cert", action="store_true",
                   help="also start HTTPS listeners with an untrusted and a wrong-host certificate")
    p.add_argument("--listeners", type=int, default=0, metavar="N",
                   help="a fleet: N more WinRM HTTP listeners, each a separate simulated host with its own "
                        "shells, log and faults (peer.fleet; GET /fleet on the control endpoint)")
    p.add_argument("--slow-listeners", type=int, default=0, metavar="K",
                   help="of the fleet, K slow hosts: each WS-Man request waits --slow-ms")
    p.add_argument("--slow-ms", type=int, default=500, help="the slow hosts' delay per request (default 500)")
    p.add_argument("--failing-listeners", type=int, default=0, metavar="K",
                   help="of the fleet, K hosts where every command fails with a terminating error")
    p.add_argument("--refusing-listeners", type=int, default=0, metavar="K",
                   help="of the fleet, K hosts that refuse connections (the port is bound but not listening)")
    p.add_argument("--listener-addresses", default="127.0.0.1", metavar="A,B,...",
                   help="loopback IPv4 addresses the fleet's hosts are spread over, in turn (default 127.0.0.1)")
    p.add_argument("--no-stdin-watch", action="store_true", help="do not exit when stdin reaches EOF")
    p.add_argument("--no-parent-watch", action="store_true", help="do not exit when the parent process exits")
    p.add_argument("--pdeathsig", action="store_true",
                   help="also set PR_SET_PDEATHSIG (fires when the spawning *thread* ends)")
    p.add_argument("--keep-state", action="store_true", help="keep a temporary state dir at exit")
    p.add_argument("--log-level", default="INFO", help="log level for STATE_DIR/peer.log")
    args = p.parse_args(argv)
    args.schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    args.listener_addresses = [a.strip() for a in args.listener_addresses.split(",") if a.strip()]
    if args.listeners < 0 or args.slow_ms < 0 or not args.listener_addresses:
        p.error("--listeners and --slow-ms must not be negative; --listener-addresses needs an address")
    if min(args.slow_listeners, args.failing_listeners, args.refusing_listeners) < 0 or \
            args.slow_listeners + args.failing_listeners + args.refusing_listeners > args.listeners:
        p.error("--slow-listeners, --failing-listeners and --refusing-listeners are part of --listeners")
    for s in args.schemes:
        if s not in SCHEMES:
            p.error(f"unknown scheme {s!r}; choose from {', '.join(SCHEMES)}")
    return args


def _bind_pair(factory: typing.Callable[[typing.Tuple[str, int]], typing.Any]) -> typing.List[typing.Any]:
    """Listeners on 127.0.0.1 and, when possible, ::1 with the same free port."""
    last: typing.Optional[OSError] = None
    for _ in range(20):
        v4 = factory(("127.0.0.1", 0))
        port = v4.server_address[1]
        try:
            v6 = factory(("::1", port))
        except OSError as e:
            if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                return [v4]  # no IPv6 loopback here
            v4.server_close()
            last = e
            continue
        return [v4, v6]
    raise RuntimeError(f"could not bind a loopback port on both 127.0.0.1 and ::1: {last}")


def _tls_context(cert: str, key: str, client_ca: typing.Optional[str] = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        # Asks for a client certificate (for WinRM certificate authentication) without requiring
        # one, so the other schemes still work; one that is sent must chain to the peer's CA.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(client_ca)
    return ctx


def _watch_stdin(stop: threading.Event) -> None:
    try:
        while sys.stdin.buffer.read1(4096):
            pass
    except (OSError, ValueError):
        pass
    logging.getLogger("peer").info("stdin reached EOF: shutting down")
    stop.set()


def _watch_parent(stop: threading.Event) -> None:
    parent = os.getppid()
    while not stop.wait(0.5):
        if os.getppid() != parent:
            logging.getLogger("peer").info("parent process %d is gone: shutting down", parent)
            stop.set()


def main(argv: typing.Optional[typing.List[str]] = None) -> int:
    args = parse_args(argv)
    if args.pdeathsig:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)
    temporary = args.state_dir is None
    state_dir = args.state_dir or tempfile.mkdtemp(prefix="psrp-peer-")
    os.makedirs(state_dir, exist_ok=True)
    log_file = os.path.join(state_dir, "peer.log")
    logging.basicConfig(
        filename=log_file,
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s",
    )
    log = logging.getLogger("peer")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    from peer import realm as realm_mod

    if args.realm_from:
        realm = realm_mod.Realm.load(args.realm_from)
    else:
        realm = realm_mod.Realm.create(os.path.join(state_dir, "realm"))
    # The acceptor (GSSAPI, pyspnego NTLM) reads these from the environment.
    os.environ.update(realm.acceptor_env())
    if args.stale_keytab:
        # A key of HTTP/localhost made from another password, with a newer kvno: the acceptor
        # cannot decrypt the tickets the KDC issues (like a computer account whose keytab is stale).
        stale = os.path.join(state_dir, "stale.keytab")
        realm_mod._run(["ktutil"], dict(os.environ), stdin=(
            f"addent -password -p {realm.data['spn']} -k 9 -e aes256-cts-hmac-sha1-96\n"
            "not-the-service-password\n"
            f"wkt {stale}\nquit\n").encode())
        os.environ["KRB5_KTNAME"] = "FILE:" + stale

    from peer import certs, control, copyscripts, fleet, httpd, instance, runner, wsman

    if args.credssp_version != 6 or args.credssp_bad_binding:
        from peer import auth as auth_mod

        if args.credssp_version != 6:
            auth_mod.set_credssp_version(args.credssp_version)
        if args.credssp_bad_binding:
            auth_mod.break_credssp_binding()
    inst = instance.Instance(realm, args)
    inst.handlers = wsman.Handlers(inst)
    inst.file_store = copyscripts.FileStore(os.path.join(state_dir, "files"))
    cbt = certs.tls_server_end_point(realm.data["server_cert"])
    # What the acceptor binds to: its own certificate's hash, or with --cbt proxy another
    # certificate's (the client saw the proxy's certificate, the server knows only its own).
    acceptor_cbt = certs.tls_server_end_point(realm.data["wronghost_cert"]) if args.cbt == "proxy" else cbt
    listeners: typing.Dict[str, typing.List[typing.Any]] = {}
    try:
        listeners["http"] = _bind_pair(lambda a: httpd.Listener(a, inst, "http", name="http"))
        good = _tls_context(realm.data["server_cert"], realm.data["server_key"], realm.data["ca_file"])
        listeners["https"] = _bind_pair(lambda a: httpd.Listener(a, inst, "https", good, acceptor_cbt, name="https"))
        if args.bad_cert:
            for label in ("untrusted", "wronghost"):
                tls = _tls_context(realm.data[f"{label}_cert"], realm.data[f"{label}_key"])
                bad_cbt = certs.tls_server_end_point(realm.data[f"{label}_cert"])
                listeners[label] = _bind_pair(
                    lambda a, tls=tls, c=bad_cbt, n=label: httpd.Listener(a, inst, "https", tls, c, name=n)
                )
        fleet_hosts = None
        if args.listeners:
            def fleet_instance() -> typing.Any:
                host = instance.Instance(realm, args)
                host.handlers = wsman.Handlers(host)
                host.file_store = inst.file_store
                return host

            fleet_hosts = fleet.Fleet(
                fleet.plan_roles(args.listeners, args.slow_listeners, args.failing_listeners,
                                 args.refusing_listeners),
                args.listener_addresses,
                fleet_instance,
                lambda a, host, name: httpd.Listener(a, host, "http", name=name),
                args.slow_ms,
            )
    except Exception:
        realm.stop()
        raise

    # How each WinRM listener group is built, to rebuild it on the same ports.
    factories: typing.Dict[str, typing.Callable[..., typing.Any]] = {
        "http": lambda a, r: httpd.Listener(a, inst, "http", name="http", reuse_address=r),
        "https": lambda a, r: httpd.Listener(a, inst, "https", good, acceptor_cbt, name="https", reuse_address=r),
    }
    restart_lock = threading.Lock()

    def serve(server: typing.Any) -> None:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()

    def restart_listeners(down_seconds: float) -> typing.Dict[str, typing.Any]:
        """Stops the HTTP and HTTPS listeners, cuts their open connections, stays down
        for ``down_seconds`` (connections are refused) and listens again on the same
        ports. Shells, pipelines and their output stay as they are."""
        with restart_lock:
            cut = 0
            for name in factories:
                for server in listeners[name]:
                    server.shutdown()
                    server.server_close()
                    cut += server.cut_connections()
            # The port can be bound again only when the cut connections are closed.
            for name in factories:
                for server in listeners[name]:
                    server.wait_closed(5.0)
            inst.log_op({"kind": "listener", "event": "down", "connections_cut": cut})
            time.sleep(down_seconds)
            for name, factory in factories.items():
                listeners[name] = [factory(s.server_address[:2], True) for s in listeners[name]]
                for server in listeners[name]:
                    serve(server)
            inst.log_op({"kind": "listener", "event": "up"})
            return {"connections_cut": cut, "down_seconds": down_seconds}

    info: typing.Dict[str, typing.Any] = {}
    control_server = control.ControlServer(inst, lambda: info, stop)
    control_server.restart_listeners = restart_listeners
    control_server.fleet = fleet_hosts
    port = {k: v[0].server_address[1] for k, v in listeners.items()}
    r = realm.info()
    info.update(
        {
            "host": "localhost",
            "http_port": port["http"],
            "https_port": port["https"],
            "http_url": f"http://localhost:{port['http']}/wsman",
            "https_url": f"https://localhost:{port['https']}/wsman",
            "ipv6": len(listeners["http"]) > 1,
            "bad_cert": {
                "untrusted_port": port.get("untrusted"),
                "wrong_host_port": port.get("wronghost"),
                "wrong_host_name": certs.WRONG_HOST,
            },
            "realm": r["realm"],
            "user": r["user"],
            "password": r["password"],
            "principal": r["principal"],
            "spn": r["spn"],
            "ntlm": r["ntlm"],
            "ca_file": r["ca_file"],
            # Client certificates for certificate authentication (peer.certs.create_client_pki).
            "client_certs": r.get("client_certs", {}),
            "server_cert": r["server_cert"],
            "tls_server_end_point_sha256": cbt[len(b"tls-server-end-point:") :].hex(),
            "krb5_config": r["krb5_config"],
            "ccache": r["ccache"],
            "keytab": r["keytab"],
            "kdc_port": r["kdc_port"],
            "kdc_pid": r.get("kdc_pid"),
            "owns_kdc": realm.kdc is not None,
            "control_url": f"http://127.0.0.1:{control_server.server_address[1]}",
            "pid": os.getpid(),
            "state_dir": state_dir,
            "log_file": log_file,
            "configurations": ["Microsoft.PowerShell", "JEA.Maintenance"],
            # What JEA.Maintenance lets its role run (GET_COMMAND_METADATA answers these).
            "jea_visible_commands": list(runner.JEA_VISIBLE),
            "options": {"cbt": args.cbt, "allow_unencrypted": args.allow_unencrypted, "schemes": args.schemes,
                        "ntlm_only": args.ntlm_only, "stale_keytab": args.stale_keytab,
                        "jea_denied": args.jea_denied, "max_envelope_kb": args.max_envelope_kb,
                        "credssp_version": args.credssp_version, "credssp_tls": args.credssp_tls,
                        "credssp_bad_binding": args.credssp_bad_binding},
            # Broken Kerberos client environments of the realm (peer.realm.Realm._make_variants).
            "kerberos_variants": r.get("variants", {}),
            "realm_info": r,
        }
    )
    if fleet_hosts is not None:
        info["fleet"] = fleet_hosts.info()
        info["options"].update(listeners=args.listeners, slow_listeners=args.slow_listeners,
                               failing_listeners=args.failing_listeners,
                               refusing_listeners=args.refusing_listeners, slow_ms=args.slow_ms,
                               listener_addresses=args.listener_addresses)
    threads = []
    for group in list(listeners.values()) + [[control_server]]:
        for server in group:
            t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
            t.start()
            threads.append(t)
    if fleet_hosts is not None:
        fleet_hosts.start()

    info_file = args.info_file or os.path.join(state_dir, "info.json")
    info["info_file"] = info_file
    tmp = info_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(info, f, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, info_file)
    public = {k: v for k, v in info.items() if k != "realm_info"}
    log.info("peer ready: http %d, https %d, control %s", port["http"], port["https"], info["control_url"])
    sys.stdout.write(json.dumps(public) + "\n")
    sys.stdout.flush()

    if not args.no_stdin_watch:
        threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    if not args.no_parent_watch:
        threading.Thread(target=_watch_parent, args=(stop,), daemon=True).start()
    while not stop.wait(1.0):
        pass

    log.info("shutting down")
    for group in list(listeners.values()) + [[control_server]]:
        for server in group:
            threading.Thread(target=server.shutdown, daemon=True).start()
    if fleet_hosts is not None:
        fleet_hosts.close()
    time.sleep(0.3)
    realm.stop()
    if temporary and not args.keep_state:
        logging.shutdown()
        shutil.rmtree(state_dir, ignore_errors=True)
    return 0
