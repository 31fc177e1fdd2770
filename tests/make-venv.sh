#!/usr/bin/env bash
# Creates (idempotently) a Python virtualenv from requirement files and prints
# its path: make-venv.sh <venv dir> <requirements file>...
# It is rebuilt only when the requirement files change (their hash is stored in
# the venv). Several callers may ask at once: one creates, the others wait.
# Used by tests/venv.sh (the peer's venv), python/test.sh and
# tests/airflow/venv.sh.
set -euo pipefail
venv=$1
shift
stamp=$venv/.requirements.sha256
want=$(cat "$@" | sha256sum | cut -d' ' -f1)
up_to_date() { [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; }
if ! up_to_date; then
    mkdir -p "$(dirname "$venv")"
    exec 9>"$venv.lock"
    flock 9
    if ! up_to_date; then
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q --disable-pip-version-check $(printf -- '-r %s ' "$@") >&2
        echo "$want" > "$stamp"
    fi
    flock -u 9
fi
echo "$venv"
