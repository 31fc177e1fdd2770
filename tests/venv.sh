#!/usr/bin/env bash
# Creates (idempotently) the Python virtualenv the tests use and prints its
# path. Location: $PSRP_VENV, default target/venv in the repository.
# gssapi and krb5 build from source: needs gcc and libkrb5-dev.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${PSRP_VENV:-$root/target/venv}
req=$root/tests/requirements.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q -r "$req" >&2
    echo "$want" > "$stamp"
fi
echo "$venv"
