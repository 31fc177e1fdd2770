"""SecureStrings with psrp_client against the test peer (psrpcore's server side of the
session key exchange): a marked value arrives intact, received ones stay encrypted until
``pool.decrypt``, and neither shows in repr or in the output values."""

import copy
import hashlib
import json
import pickle

import pytest

from conftest import PeerProcess, https, kerberos
from psrp_client import PsrpError, ReceivedSecureString, RunspacePool, SecureString

SECRET = "py-P\u00e4ssw0rd-\U0001f511-with a tail"


def test_marked_value_hides_its_text() -> None:
    value = SecureString(SECRET)
    assert SECRET not in repr(value) and SECRET not in str(value)
    assert SECRET not in repr({"Password": value})
    assert value.reveal() == SECRET
    with pytest.raises(TypeError):
        pickle.dumps(value)
    with pytest.raises(TypeError):
        SecureString(b"bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", ["kerberos-http", "basic-https"])
def test_secure_string_parameter_arrives_intact(peer: PeerProcess, transport: str) -> None:
    settings = kerberos(peer) if transport == "kerberos-http" else https(peer)
    with RunspacePool(**settings) as pool:
        assert not pool.has_session_key
        result = pool.invoke("Get-SecretHash", {"Secret": SecureString(SECRET)})
        result.raise_for_status()
        assert pool.has_session_key
        (reported,) = result.output
        assert reported["Sha256"] == hashlib.sha256(SECRET.encode("utf-8")).hexdigest()
        assert reported["Length"] == len(SECRET)
        # Inside a list too.
        result = pool.invoke("Invoke-Echo", {"Many": [SecureString("a"), SecureString("b")]})
        result.raise_for_status()
        assert '"a"' not in json.dumps(result.output)


def test_received_secure_string_decrypts_on_request(peer: PeerProcess) -> None:
    with RunspacePool(**kerberos(peer, operation_timeout=2)) as pool:
        # No key yet: the peer sends PUBLIC_KEY_REQUEST and waits for ours.
        result = pool.invoke("New-SecureSecret", {"Text": SECRET, "Count": 2})
        result.raise_for_status()
        assert pool.has_session_key
        for value in result.output:
            assert isinstance(value, ReceivedSecureString)
            # The same value as the CLI's JSON, never the text.
            assert value == "System.Security.SecureString"
            assert json.dumps(value) == '"System.Security.SecureString"'
            assert SECRET not in repr(value)
            assert pool.decrypt(value) == SECRET
        # Passed back as a parameter, it is the same SecureString.
        again = pool.invoke("Get-SecretHash", {"Secret": result.output[0]})
        again.raise_for_status()
        assert again.output[0]["Sha256"] == hashlib.sha256(SECRET.encode("utf-8")).hexdigest()
        kept = pickle.loads(pickle.dumps(result.output[0]))
        assert pool.decrypt(copy.copy(kept)) == SECRET
        with pytest.raises(TypeError):
            pool.decrypt("System.Security.SecureString")  # type: ignore[arg-type]

    with RunspacePool(**kerberos(peer)) as other:
        with pytest.raises(PsrpError, match="no session key"):
            other.decrypt(result.output[0])
        other.exchange_keys()
        # Bad padding, or (about 1 in 256) a valid padding of an odd length.
        with pytest.raises(PsrpError, match="does not decrypt|not UTF-16LE"):
            other.decrypt(result.output[0])


def test_asyncio_pool_sends_and_decrypts(peer: PeerProcess) -> None:
    import asyncio

    from psrp_client import AsyncRunspacePool

    async def run() -> None:
        async with AsyncRunspacePool(**kerberos(peer)) as pool:
            await pool.exchange_keys()
            assert pool.has_session_key
            result = await pool.invoke("Get-SecretHash", {"Secret": SecureString(SECRET)})
            result.raise_for_status()
            assert result.output[0]["Sha256"] == hashlib.sha256(SECRET.encode("utf-8")).hexdigest()
            result = await pool.invoke("New-SecureSecret", {"Text": SECRET})
            assert pool.decrypt(result.output[0]) == SECRET

    asyncio.run(run())
