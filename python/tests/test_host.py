"""``RunspacePool(on_prompt=callback)``: the remote command's prompts answered by a Python
callable against the test peer (Read-Host through UI.Prompt and ReadLineAsSecureString,
Get-Credential through PromptForCredential, Remove-Item -Confirm through PromptForChoice);
secrets go out as SecureStrings and come back decryptable; an exception refuses."""

import asyncio
import typing

from conftest import PeerProcess, kerberos
from psrp_client import AsyncRunspacePool, PipelineFailed, RunspacePool, SecureString

SECRET = "py-host-P\u00e4ssw0rd"


def test_callback_answers_every_prompt_kind(peer: PeerProcess) -> None:
    asked: typing.List[typing.Dict[str, typing.Any]] = []

    def answer(prompt: typing.Dict[str, typing.Any]) -> typing.Any:
        asked.append(prompt)
        kind = prompt["kind"]
        if kind == "fields":
            return {f["name"]: f"typed {f['name']}" for f in prompt["fields"]}
        if kind == "secure_line":
            return SecureString(SECRET)
        if kind == "credential":
            return ("PEER\\dave", SECRET)
        if kind == "choice":
            return "No"
        raise RuntimeError(f"not expected here: {kind}")

    with RunspacePool(**kerberos(peer), on_prompt=answer) as pool:
        assert pool.invoke("Read-Host", {"Prompt": "Name"}).output == ["typed Name"]
        (secure,) = pool.invoke("Read-Host", {"AsSecureString": None}).output
        assert pool.decrypt(secure) == SECRET
        (credential,) = pool.invoke("Get-Credential").output
        assert credential["UserName"] == "PEER\\dave"
        assert pool.decrypt(credential["Password"]) == SECRET
        pool.invoke("Remove-Item", {"Path": "C:\\Temp\\report.txt", "Confirm": None}).raise_for_status()
        assert len(pool.invoke("Get-Item", {"Path": "C:\\Temp\\report.txt"}).output) == 1

        # The callback's exception refuses the prompt: the server fails the pipeline.
        result = pool.invoke("Read-Host")
        assert isinstance(_raised(result), PipelineFailed)
        assert "RuntimeError: not expected here: line" in str(_raised(result))
    assert [p["kind"] for p in asked] == ["fields", "secure_line", "credential", "choice", "line"]
    assert asked[0]["fields"][0]["type"] == "System.String" and not asked[0]["fields"][0]["secure"]
    assert asked[2]["caption"] == "Windows PowerShell credential request"
    assert asked[3]["choices"] == ["&Yes", "Yes to &All", "&No", "No to A&ll"] and asked[3]["default"] == 0


def _raised(result: typing.Any) -> BaseException:
    try:
        result.raise_for_status()
    except BaseException as e:  # noqa: BLE001 - the test inspects it
        return e
    raise AssertionError("the pipeline did not fail")


def test_async_pool_takes_the_same_callback(peer: PeerProcess) -> None:
    async def run() -> typing.List[typing.Any]:
        async with AsyncRunspacePool(**kerberos(peer), on_prompt=lambda prompt: "from asyncio") as pool:
            return (await pool.invoke("Read-Host")).output

    assert asyncio.run(run()) == ["from asyncio"]
