#!/usr/bin/env bash
# Installs what the test peer needs, idempotently: the Debian packages listed in
# tests/run.sh (MIT Kerberos KDC and tools, GSSAPI headers) and the Python venv
# (tests/venv.sh). Prints the venv path. Then start the peer with tests/peer/start.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tests=$(dirname "$here")

# One list of packages: the apt_pkgs=(...) line of tests/run.sh.
list=$(sed -n 's/^apt_pkgs=(\(.*\))$/\1/p' "$tests/run.sh")
if [ -z "$list" ]; then
    echo "setup.sh: no apt_pkgs=(...) line found in $tests/run.sh" >&2
    exit 1
fi
read -r -a apt_pkgs <<< "$list"
missing=()
for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: apt-get install ${missing[*]}" >&2
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
"$tests/venv.sh"
