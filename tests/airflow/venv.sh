#!/usr/bin/env bash
# Creates (idempotently) the virtualenv of the real-Airflow proof and prints its
# path: $PSRP_AIRFLOW_VENV, default target/airflow-venv in the repository. It is
# rebuilt only when tests/airflow/requirements.txt changes (its hash is stored in
# the venv). gssapi and krb5 build from source: needs gcc and libkrb5-dev.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${PSRP_AIRFLOW_VENV:-$root/target/airflow-venv}
req=$root/tests/airflow/requirements.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
up_to_date() { [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; }
if ! up_to_date; then
    mkdir -p "$(dirname "$venv")"
    exec 9>"$venv.lock"
    flock 9
    if ! up_to_date; then
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
        echo "$want" > "$stamp"
    fi
    flock -u 9
fi
echo "$venv"
