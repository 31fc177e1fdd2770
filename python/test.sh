#!/usr/bin/env bash
# Builds the psrp_client wheel with maturin and runs its pytest suite
# (python/tests) against the test peer, in a virtualenv that also holds
# pypsrp and psrpcore. The venv lives in target/python-venv (rebuilt when the
# requirement files change); the Rust build goes to the repository's
# target/ (dev profile by default, so it shares the crates `cargo test`
# built; PSRP_PY_PROFILE=release for an optimized wheel).
# Usage: python/test.sh [pytest arguments]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

venv=$(tests/make-venv.sh "${PSRP_PY_VENV:-$root/target/python-venv}" \
    tests/requirements.txt python/requirements-test.txt)

profile=${PSRP_PY_PROFILE:-dev}
wheels=$root/target/wheels
rm -f "$wheels"/psrp_client-*.whl
# Plain linux tag: the module links the system's libgssapi_krb5 (a wheel for
# PyPI would go through auditwheel; this one is for this machine).
"$venv/bin/maturin" build --quiet -m python/Cargo.toml --profile "$profile" --locked \
    --compatibility linux --out "$wheels" -i "$venv/bin/python"
"$venv/bin/pip" install -q --force-reinstall --no-deps "$wheels"/psrp_client-*.whl

# The CLI, for the test that compares its JSON with the package's values.
if [ -z "${PSRP_BIN:-}" ]; then
    [ -x target/debug/psrp ] || cargo build -q -p psrp-cli --locked
    export PSRP_BIN=$root/target/debug/psrp
fi

# From outside the source tree, so that the installed wheel is imported.
cd "$root/python/tests"
[ $# -gt 0 ] || set -- .
exec timeout 900 "$venv/bin/python" -m pytest -q -p no:cacheprovider --durations=5 "$@"
