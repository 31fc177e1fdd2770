"""The realm finds the MIT Kerberos tools where Debian installs them, whatever the caller's PATH."""

import os

import pytest

from peer import realm


def test_kdc_tools_are_found_outside_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # A normal user's PATH on Debian: no /usr/sbin, where the KDC tools live.
    monkeypatch.setenv("PATH", "/usr/local/bin:/usr/bin:/bin")
    for tool in ("kdb5_util", "kadmin.local", "krb5kdc"):
        assert realm._tool(tool) == os.path.join("/usr/sbin", tool)
    # Tools on PATH come from PATH.
    assert realm._tool("kinit") == "/usr/bin/kinit"
    with pytest.raises(RuntimeError, match="no-such-kdc-tool not found"):
        realm._tool("no-such-kdc-tool")
