#!/usr/bin/env bash
# Creates (idempotently) the Python virtualenv the tests use and prints its
# path. Location: $PSRP_VENV, default target/venv in the repository.
# gssapi and krb5 build from source: needs gcc and libkrb5-dev.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec "$root/tests/make-venv.sh" "${PSRP_VENV:-$root/target/venv}" "$root/tests/requirements.txt"
