"""Fixtures: the test peer (tests/peer, started as its own pytest suite does) and
connection settings for psrp_client against it."""

import os
import sys
import typing

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests"))

# The peer's fixtures: `peer` (shared, --bad-cert), `private_peer`, and the check
# that every test leaves no shell open on the shared peer.
from peer.conftest import PeerProcess, no_shell_left_open, peer, private_peer  # noqa: E402,F401


def kerberos(p: PeerProcess, **kwargs: typing.Any) -> typing.Dict[str, typing.Any]:
    """Kerberos over HTTP from the ticket cache (every message encrypted)."""
    kwargs.setdefault("port", p.info["http_port"])
    return dict(host="localhost", auth="kerberos", **kwargs)


def ntlm(p: PeerProcess, **kwargs: typing.Any) -> typing.Dict[str, typing.Any]:
    """NTLM over HTTP with the peer's user and password (encrypted)."""
    kwargs.setdefault("username", p.info["user"])
    kwargs.setdefault("password", p.info["password"])
    kwargs.setdefault("port", p.info["http_port"])
    return dict(host="localhost", auth="ntlm", **kwargs)


def https(p: PeerProcess, auth: str = "basic", **kwargs: typing.Any) -> typing.Dict[str, typing.Any]:
    """HTTPS with the peer's CA file."""
    kwargs.setdefault("username", p.info["user"])
    kwargs.setdefault("password", p.info["password"])
    kwargs.setdefault("ca_file", p.info["ca_file"])
    kwargs.setdefault("port", p.info["https_port"])
    return dict(host="localhost", scheme="https", auth=auth, **kwargs)


@pytest.fixture
def krb(peer: PeerProcess) -> typing.Dict[str, typing.Any]:
    return kerberos(peer)
