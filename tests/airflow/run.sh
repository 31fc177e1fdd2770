#!/usr/bin/env bash
# The real-Airflow proof (README "Airflow"): Apache Airflow 3 with our provider
# (psrp_client.airflow) and Airflow's PSRP provider side by side, against the
# test peer, in the venv of tests/airflow/venv.sh (pinned, cached). Our wheel
# is PSRP_WHEEL when given (tests/run.sh hands over the one python/test.sh
# built), else built here with maturin. See tests/airflow/proof.py for what
# is checked. Needs the peer's venv (tests/venv.sh) and the psrp binary
# (PSRP_BIN, else target/debug/psrp, built if missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

PSRP_VENV=${PSRP_VENV:-$(tests/venv.sh)}
export PSRP_VENV
venv=$(tests/airflow/venv.sh)

wheel=${PSRP_WHEEL:-}
if [ -z "$wheel" ]; then
    out=$root/target/airflow-wheel
    rm -rf "$out"
    "$venv/bin/maturin" build --quiet -m python/Cargo.toml --profile "${PSRP_PY_PROFILE:-dev}" --locked \
        --compatibility linux --out "$out" -i "$venv/bin/python"
    wheel=$(ls "$out"/psrp_client-*.whl)
fi
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"

if [ -z "${PSRP_BIN:-}" ]; then
    [ -x target/debug/psrp ] || cargo build -q -p psrp-cli --locked
    export PSRP_BIN=$root/target/debug/psrp
fi

exec timeout 600 "$venv/bin/python" tests/airflow/proof.py
