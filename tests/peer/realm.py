"""A throwaway Kerberos realm (real MIT KDC on loopback), NTLM users and the test PKI.

One realm can serve several peer instances: the instance that creates it owns the KDC
process; others load it from the owner's info file (``--realm-from``).
"""

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import time
import typing

from peer import certs

REALM = "PEER.TEST"
NETBIOS_DOMAIN = "PEER"
USER = "testuser"
SERVICE = "HTTP"
HOST = "localhost"

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the KDC child between fork and exec: the KDC must not outlive the peer.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _free_port_tcp_udp() -> int:
    """A loopback port that is free for both TCP and UDP right now."""
    for _ in range(50):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            udp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
    raise RuntimeError("no free loopback port for the KDC")


def _tool(name: str) -> str:
    """The path of an MIT Kerberos tool: from PATH, else /usr/sbin or /sbin, where Debian puts the KDC tools
    (kdb5_util, kadmin.local, krb5kdc) and which a normal user's PATH lacks."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError(f"{name} not found in PATH, /usr/sbin or /sbin: install krb5-kdc, krb5-admin-server "
                           "and krb5-user (tests/run.sh does)")
    return found


def _run(args: typing.List[str], env: typing.Dict[str, str], stdin: typing.Optional[bytes] = None) -> None:
    args = [_tool(args[0])] + args[1:]
    proc = subprocess.run(args, env=env, input=stdin, capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{args[0]} failed with exit code {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}"
        )


class Realm:
    """Paths and credentials of a realm; ``kdc`` is set when this process owns the KDC."""

    def __init__(self, directory: str, data: typing.Dict[str, typing.Any]) -> None:
        self.directory = directory
        self.data = data
        self.kdc: typing.Optional[subprocess.Popen] = None

    @property
    def password(self) -> str:
        return self.data["password"]

    def acceptor_env(self) -> typing.Dict[str, str]:
        """Environment the pyspnego acceptor reads (keytab, config, NTLM users)."""
        return {
            "KRB5_CONFIG": self.data["krb5_config"],
            "KRB5_KTNAME": "FILE:" + self.data["keytab"],
            "NTLM_USER_FILE": self.data["ntlm_user_file"],
            # The server side never uses a client ticket cache; keep it away from the user's.
            "KRB5CCNAME": "MEMORY:peer-acceptor",
        }

    def info(self) -> typing.Dict[str, typing.Any]:
        d = dict(self.data)
        d["kdc_pid"] = self.kdc.pid if self.kdc else self.data.get("kdc_pid")
        return d

    @classmethod
    def load(cls, info_file: str) -> "Realm":
        """Uses the realm of another running instance (from its info file)."""
        with open(info_file) as f:
            info = json.load(f)
        realm = info["realm_info"]
        return cls(realm["realm_dir"], realm)

    @classmethod
    def create(cls, directory: str) -> "Realm":
        os.makedirs(os.path.join(directory, "db"), exist_ok=True)
        password = "Pw-" + secrets.token_urlsafe(12)
        paths = {
            "krb5_config": os.path.join(directory, "krb5.conf"),
            "kdc_profile": os.path.join(directory, "kdc.conf"),
            "keytab": os.path.join(directory, "http.keytab"),
            "ccache": os.path.join(directory, "ccache"),
            "ntlm_user_file": os.path.join(directory, "ntlm_users"),
            "kdc_log": os.path.join(directory, "kdc.log"),
        }
        data: typing.Dict[str, typing.Any] = {
            "realm_dir": directory,
            "realm": REALM,
            "user": USER,
            "password": password,
            "principal": f"{USER}@{REALM}",
            "spn": f"{SERVICE}/{HOST}@{REALM}",
            "ntlm": {
                "netbios_domain": NETBIOS_DOMAIN,
                # NTLM_USER_FILE matches user AND domain exactly, so every spelling a client
                # may send is listed (see peer-notes): bare, NETBIOS\user, REALM\user, UPN.
                "accepted_usernames": [
                    USER,
                    f"{NETBIOS_DOMAIN}\\{USER}",
                    f"{REALM}\\{USER}",
                    f"{USER}@{REALM}",
                ],
            },
            **paths,
        }
        realm = cls(directory, data)
        with open(paths["ntlm_user_file"], "w") as f:
            for domain, user in [("", USER), (NETBIOS_DOMAIN, USER), (REALM, USER), ("", f"{USER}@{REALM}")]:
                f.write(f"{domain}:{user}:{password}\n")
        os.chmod(paths["ntlm_user_file"], 0o600)
        data.update(certs.create_pki(directory))
        data["client_certs"] = certs.create_client_pki(
            directory, data["ca_file"], data["ca_key"], f"{USER}@{REALM}", f"nobody@{REALM}",
            "Key-" + secrets.token_urlsafe(12),
        )
        data["server_cbt_sha256_hex"] = certs.tls_server_end_point(data["server_cert"]).hex()
        realm._start_kdc()
        return realm

    def _write_configs(self, port: int) -> None:
        d = self.data
        with open(d["krb5_config"], "w") as f:
            f.write(
                f"""[libdefaults]
    default_realm = {REALM}
    dns_lookup_realm = false
    dns_lookup_kdc = false
    rdns = false
    dns_canonicalize_hostname = false
    udp_preference_limit = 1
    ignore_acceptor_hostname = false
    # Tickets are forwardable, as Active Directory issues them, so that clients can delegate.
    forwardable = true
    default_ccache_name = FILE:{d['ccache']}

[realms]
    {REALM} = {{
        kdc = 127.0.0.1:{port}
    }}

[domain_realm]
    localhost = {REALM}
    .localhost = {REALM}
"""
            )
        db = os.path.join(self.directory, "db")
        with open(d["kdc_profile"], "w") as f:
            f.write(
                f"""[kdcdefaults]
    kdc_ports = {port}
    kdc_tcp_ports = {port}
    kdc_listen = 127.0.0.1:{port}
    kdc_tcp_listen = 127.0.0.1:{port}

[realms]
    {REALM} = {{
        database_name = {db}/principal
        key_stash_file = {db}/stash
        acl_file = {db}/kadm5.acl
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
    }}

[logging]
    kdc = FILE:{d['kdc_log']}
"""
            )

    def _start_kdc(self) -> None:
        d = self.data
        last_error = ""
        for _attempt in range(5):
            port = _free_port_tcp_udp()
            self._write_configs(port)
            env = dict(os.environ, KRB5_CONFIG=d["krb5_config"], KRB5_KDC_PROFILE=d["kdc_profile"])
            if not os.path.exists(os.path.join(self.directory, "db", "principal")):
                _run(["kdb5_util", "create", "-s", "-r", REALM, "-P", secrets.token_hex(16)], env)
                # kadmin.local takes one query per run; three short runs are still ~0.1 s. The user
                # requires pre-authentication, as Active Directory accounts do (a wrong password
                # is then "Preauthentication failed" from the KDC).
                _run(["kadmin.local", "-r", REALM, "-q",
                      f"addprinc +requires_preauth -pw {d['password']} {d['principal']}"], env)
                _run(["kadmin.local", "-r", REALM, "-q", f"addprinc -randkey {SERVICE}/{HOST}@{REALM}"], env)
                _run(["kadmin.local", "-r", REALM, "-q", f"ktadd -k {d['keytab']} {SERVICE}/{HOST}@{REALM}"], env)
            log = open(os.path.join(self.directory, "krb5kdc.out"), "ab")
            proc = subprocess.Popen(
                [_tool("krb5kdc"), "-n", "-r", REALM],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_die_with_parent,
            )
            log.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    self.kdc = proc
                    d["kdc_port"] = port
                    d["kdc_pid"] = proc.pid
                    self._kinit()
                    self._make_variants()
                    return
                except OSError:
                    time.sleep(0.02)
            last_error = f"krb5kdc did not listen on 127.0.0.1:{port} (exit code {proc.poll()})"
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        raise RuntimeError(last_error + f"; see {self.directory}/krb5kdc.out")

    def _kinit(self) -> None:
        d = self.data
        env = dict(os.environ, KRB5_CONFIG=d["krb5_config"], KRB5CCNAME="FILE:" + d["ccache"])
        _run(["kinit", d["principal"]], env, stdin=(d["password"] + "\n").encode())

    def _make_variants(self) -> None:
        """Broken client-side Kerberos environments of this realm, for clients' diagnostics:

        - ``ccache_expired``: a TGT with a one-second lifetime (expired by the time a test uses it)
        - ``ccache_skewed``: a fresh TGT whose cache header records a KDC time offset of
          ``clock_skew_seconds`` (MIT's kdc_timesync), so the client's requests carry times that far
          ahead: the KDC answers "Clock skew too great", as for a client whose clock is wrong
        - ``ccache_not_forwardable``: a fresh TGT without the forwardable flag (``kinit -F``), so
          delegation cannot forward it
        - ``krb5_config_enctype_mismatch``: the realm's krb5.conf allowing only camellia256-cts-cmac,
          which the KDC has no keys for ("KDC has no support for encryption type")
        """
        d = self.data
        skew = 3600
        paths = {
            "ccache_expired": os.path.join(self.directory, "ccache_expired"),
            "ccache_skewed": os.path.join(self.directory, "ccache_skewed"),
            "ccache_not_forwardable": os.path.join(self.directory, "ccache_not_forwardable"),
            "krb5_config_enctype_mismatch": os.path.join(self.directory, "krb5_enctype_mismatch.conf"),
        }
        env = dict(os.environ, KRB5_CONFIG=d["krb5_config"])
        _run(["kinit", "-l", "1s", d["principal"]], dict(env, KRB5CCNAME="FILE:" + paths["ccache_expired"]),
             stdin=(d["password"] + "\n").encode())
        _run(["kinit", d["principal"]], dict(env, KRB5CCNAME="FILE:" + paths["ccache_skewed"]),
             stdin=(d["password"] + "\n").encode())
        _run(["kinit", "-F", d["principal"]], dict(env, KRB5CCNAME="FILE:" + paths["ccache_not_forwardable"]),
             stdin=(d["password"] + "\n").encode())
        with open(paths["ccache_skewed"], "rb") as f:
            data = f.read()
        if data[:2] != b"\x05\x04":
            raise RuntimeError("kinit wrote a credential cache format other than 0x0504")
        (header_len,) = struct.unpack(">H", data[2:4])
        # Header: one DeltaTime tag (1): seconds, microseconds.
        header = struct.pack(">HHiI", 1, 8, skew, 0)
        with open(paths["ccache_skewed"], "wb") as f:
            f.write(b"\x05\x04" + struct.pack(">H", len(header)) + header + data[4 + header_len:])
        with open(d["krb5_config"]) as f:
            conf = f.read()
        conf = conf.replace(
            "[libdefaults]\n",
            "[libdefaults]\n    default_tkt_enctypes = camellia256-cts-cmac\n"
            "    default_tgs_enctypes = camellia256-cts-cmac\n    permitted_enctypes = camellia256-cts-cmac\n",
            1,
        )
        with open(paths["krb5_config_enctype_mismatch"], "w") as f:
            f.write(conf)
        d["variants"] = {**paths, "clock_skew_seconds": skew}

    def stop(self) -> None:
        if self.kdc and self.kdc.poll() is None:
            self.kdc.terminate()
            try:
                self.kdc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kdc.kill()
                self.kdc.wait()
