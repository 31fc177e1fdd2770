#!/usr/bin/env bash
# Starts one test peer instance in the foreground (see README.md, "Test peer").
# Prints the info JSON as one line on stdout when ready; options: python -m peer --help.
# The peer exits when its stdin reaches EOF or its parent exits; when starting it by
# hand in the background use: tests/peer/start.sh --no-stdin-watch &
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${PSRP_VENV:-$here/../../target/venv}
if [ ! -x "$venv/bin/python" ]; then
    venv=$("$here/../venv.sh")
fi
export PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}"
exec "$venv/bin/python" -m peer "$@"
