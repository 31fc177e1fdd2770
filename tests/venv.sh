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
up_to_date() { [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; }
if ! up_to_date; then
    # Several test binaries may ask at once: one creates, the others wait.
    mkdir -p "$(dirname "$venv")"
    exec 9>"$venv.lock"
    flock 9
    if ! up_to_date; then
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q -r "$req" >&2
        echo "$want" > "$stamp"
    fi
    flock -u 9
fi
echo "$venv"
