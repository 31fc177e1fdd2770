#!/usr/bin/env bash
# The README quick start: starts one test peer (a throwaway MIT Kerberos realm and a
# WinRM/PSRP endpoint on loopback, see README.md "Test peer") in the background, and
# prints the shell lines that point Kerberos and psrp at it:
#
#   eval "$(tests/peer/quickstart.sh)"
#   psrp invoke Get-Item -p 'Path=C:\Windows\win.ini' --auth kerberos -c JEA.Maintenance
#
# Running it again reuses the running peer. Stop it with: tests/peer/quickstart.sh --stop
# State (realm, ticket cache, logs) lives in $PSRP_QUICKSTART_DIR, default
# ${XDG_RUNTIME_DIR:-/tmp}/psrp-quickstart-$UID. Installs what the peer needs first
# (tests/peer/setup.sh: Debian packages, Python venv); progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
state=${PSRP_QUICKSTART_DIR:-${XDG_RUNTIME_DIR:-/tmp}/psrp-quickstart-$(id -u)}
info=$state/info.json
pidfile=$state/peer.pid

running() {
    [ -f "$pidfile" ] && [ -f "$info" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

if [ "${1:-}" = "--stop" ]; then
    if running; then
        kill "$(cat "$pidfile")"
        for _ in $(seq 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -rf "$state"
    echo "quickstart peer stopped" >&2
    exit 0
fi
if [ $# -gt 0 ]; then
    echo "usage: $0 [--stop]" >&2
    exit 64
fi

if ! running; then
    "$here/setup.sh" >/dev/null
    rm -rf "$state"
    mkdir -p "$state"
    chmod 700 "$state"
    # Detached from this shell: it runs until --stop.
    nohup "$here/start.sh" --no-stdin-watch --no-parent-watch --state-dir "$state" \
        --info-file "$info" >"$state/stdout" 2>"$state/stderr" </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 300); do
        [ -s "$state/stdout" ] && break
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "the test peer did not start:" >&2
            cat "$state/stderr" >&2
            exit 1
        fi
        sleep 0.2
    done
    [ -s "$state/stdout" ] || { echo "the test peer did not start within 60 s" >&2; exit 1; }
fi

# The values, read from the peer's info file.
python3 - "$info" <<'EOF'
import json, shlex, sys
info = json.load(open(sys.argv[1]))
for name, value in [
    ("KRB5_CONFIG", info["krb5_config"]),
    ("KRB5CCNAME", "FILE:" + info["ccache"]),
    ("PSRP_HOST", info["host"]),
    ("PSRP_PORT", str(info["http_port"])),
]:
    print(f"export {name}={shlex.quote(value)}")
print(f"# test peer ready: realm {info['realm']}, user {info['principal']} (ticket in KRB5CCNAME), "
      f"WinRM on {info['http_url']}; stop it with tests/peer/quickstart.sh --stop", file=sys.stderr)
EOF
