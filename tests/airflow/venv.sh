#!/usr/bin/env bash
# Creates (idempotently) the virtualenv of the real-Airflow proof and prints its
# path: $PSRP_AIRFLOW_VENV, default target/airflow-venv in the repository. It is
# rebuilt only when tests/airflow/requirements.txt changes (its hash is stored in
# the venv). gssapi and krb5 build from source: needs gcc and libkrb5-dev.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
exec "$root/tests/make-venv.sh" "${PSRP_AIRFLOW_VENV:-$root/target/airflow-venv}" "$root/tests/airflow/requirements.txt"
