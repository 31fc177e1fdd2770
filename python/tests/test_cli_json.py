"""Output values are the same as the psrp CLI's JSON for the same command: one
mapping (psrp-core's JsonView), built in Rust for both."""

import json
import os
import subprocess
import typing

import pytest

from conftest import REPO, PeerProcess, kerberos
from psrp_client import RunspacePool

CASES = [
    # (configuration, command, parameters as --params JSON (None: switch))
    ("JEA.Maintenance", "Get-ChildItem", {"Path": "C:\\", "Recurse": None, "Force": None}),
    ("JEA.Maintenance", "Get-Item", {"Path": ["C:\\Windows\\win.ini", "C:\\Temp"]}),
    ("JEA.Maintenance", "Get-LargeOutput", {"Count": 300}),
    ("JEA.Maintenance", "Invoke-Echo", {"Text": "a\u00e9\U0001f600", "N": 2**40, "X": 0.1, "L": [1, [2, None]], "T": {"k": {"z": True}}}),
    ("Microsoft.PowerShell", "Get-Process", {}),
    ("Microsoft.PowerShell", "Get-Date", {}),
]


def psrp_bin() -> str:
    path = os.environ.get("PSRP_BIN") or os.path.join(REPO, "target", "debug", "psrp")
    if not os.access(path, os.X_OK):
        pytest.skip("the psrp binary is not built (python/test.sh builds it)")
    return path


@pytest.mark.parametrize("configuration,command,params", CASES, ids=[c[1] for c in CASES])
def test_output_matches_cli_json(
    peer: PeerProcess, configuration: str, command: str, params: typing.Dict[str, typing.Any]
) -> None:
    cli = subprocess.run(
        [
            psrp_bin(), "invoke", command, "--params", json.dumps(params),
            "-H", "localhost", "--port", str(peer.info["http_port"]), "-a", "kerberos",
            "-c", configuration, "-o", "json", "-l", "none",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    expected = json.loads(cli.stdout)
    with RunspacePool(**kerberos(peer), configuration_name=configuration) as pool:
        result = pool.invoke(command, params)
    assert result.succeeded and not result.had_errors
    if command == "Get-Date":
        # The clock moved between the two runs: compare the shape.
        assert isinstance(result.output[0], str) and result.output[0][:4] == expected[0][:4]
        return
    assert len(expected) > 0
    assert result.output == expected
    # Same types (int vs float) and the same key order, too.
    assert json.dumps(result.output) == json.dumps(expected)
