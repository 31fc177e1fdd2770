#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what it needs,
# then runs formatting and lint checks, the Rust tests (unit, doc and
# integration against tests/peer) and the Python validation suites.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

# System packages: MIT Kerberos (KDC, client tools, GSSAPI headers for the
# Rust and Python bindings), clang for bindgen, pkg-config, openssl (test
# certificates signed with SHA-1/MD5 for the channel binding tests), tinyproxy
# (a real HTTP CONNECT proxy for the wsman proxy test).
apt_pkgs=(krb5-kdc krb5-admin-server krb5-user libkrb5-dev clang libclang-dev pkg-config openssl tinyproxy)
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

step "Python virtualenv (tests/requirements.txt)"
PSRP_VENV=$(tests/venv.sh)
export PSRP_VENV

# The test peer proven against a mature client (pypsrp) before our tests use it.
step "pytest tests/peer (pypsrp against the test peer)"
timeout 1200 "$PSRP_VENV/bin/python" -m pytest -q -p no:cacheprovider tests/peer

step "cargo fmt --check"
cargo fmt --all -- --check

# Licenses, banned or duplicate crates and crate sources, from Cargo.lock
# (deny.toml). Advisories need the RustSec database from the network: see the
# README's "Test" section.
if ! cargo deny --version >/dev/null 2>&1; then
    step "cargo install --locked cargo-deny"
    cargo install --locked cargo-deny
fi
step "cargo deny check licenses bans sources"
cargo deny --locked check --hide-inclusion-graph licenses bans sources

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

# The Python package (python/): its wheel built with maturin, then pytest of
# its API against the peer, beside pypsrp and psrpcore in one venv.
step "python/test.sh (psrp_client wheel, pytest against the test peer)"
python/test.sh

# Real Airflow 3 (its own pinned venv) running DAGs with our provider and
# Airflow's PSRP provider side by side against the peer, with the wheel above.
step "tests/airflow/run.sh (Airflow DAGs against the test peer)"
PSRP_WHEEL=$(ls "$root"/target/wheels/psrp_client-*.whl) tests/airflow/run.sh

# Every cargo-fuzz target over its seed corpus plus a fixed number of new
# inputs: a parser regression fails here.
step "fuzz smoke (tests/fuzz_smoke.sh)"
tests/fuzz_smoke.sh

echo
echo "All tests passed."
