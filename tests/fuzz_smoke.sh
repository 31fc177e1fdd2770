#!/usr/bin/env bash
# Fuzz smoke test: every cargo-fuzz target of the repository (psrp-core/fuzz,
# wsman/fuzz) runs over its seed corpus plus a fixed number of new inputs
# (FUZZ_SMOKE_RUNS, default 20000, from a fixed libFuzzer seed
# FUZZ_SMOKE_SEED), built with debug assertions (overflow checks). A crash,
# a failed invariant, an input slower than 10 s or more than 2 GiB of memory
# fails the script, so a parser regression fails tests/run.sh. The long runs
# are described in psrp-core/README.md and wsman/README.md ("Fuzzing").
#
# Installs cargo-fuzz when missing; builds on the stable toolchain with
# RUSTC_BOOTSTRAP=1 into target/fuzz (cached with the rest of target/).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${FUZZ_SMOKE_RUNS:-20000}
seed=${FUZZ_SMOKE_SEED:-1}
# Real Windows captures, used read-only when present (never copied here).
windows=$root/../shared/real-windows

step() { printf '\n==> %s\n' "$*"; }

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    step "cargo install --locked cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
# cargo-fuzz passes nightly-only flags to rustc (sanitizer, coverage);
# RUSTC_BOOTSTRAP lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
target_dir=$root/target/fuzz
scratch=$root/target/fuzz-smoke
rm -rf "$scratch"
mkdir -p "$scratch"

# crate | target | seed directories (from the root) | libFuzzer options
targets=(
    "psrp-core/fuzz|defragment|psrp-core/fuzz/seeds/defragment ../shared/real-windows/psrp|"
    "psrp-core/fuzz|pool_receive|psrp-core/fuzz/seeds/pool_receive ../shared/real-windows/psrp|"
    "psrp-core/fuzz|clixml_decode|testdata/clixml/psrpcore ../shared/real-windows/clixml|-dict=clixml.dict -max_len=16384"
    "psrp-core/fuzz|clixml_objs|testdata/clixml/psrpcore|-dict=clixml.dict -max_len=16384"
    "psrp-core/fuzz|key_blobs|psrp-core/fuzz/seeds/key_blobs|-max_len=4096"
    "wsman/fuzz|encrypted_body|wsman/fuzz/seeds/encrypted_body|"
    "wsman/fuzz|soap_envelope|wsman/fuzz/seeds/soap_envelope|-dict=soap.dict"
    "wsman/fuzz|wsman_fault|wsman/fuzz/seeds/wsman_fault|-dict=soap.dict"
    "wsman/fuzz|receive_response|wsman/fuzz/seeds/receive_response|-dict=soap.dict"
    "wsman/fuzz|ntlm_challenge|wsman/fuzz/seeds/ntlm_challenge|"
    "wsman/fuzz|proxy_reply|wsman/fuzz/seeds/proxy_reply|"
    "wsman/fuzz|www_authenticate|wsman/fuzz/seeds/www_authenticate|"
    "wsman/fuzz|channel_bindings|wsman/fuzz/seeds/channel_bindings|"
    "wsman/fuzz|certificate|wsman/fuzz/seeds/certificate|"
    "wsman/fuzz|shell_disconnect|wsman/fuzz/seeds/shell_disconnect|-dict=soap.dict"
    "wsman/fuzz|credssp|wsman/fuzz/seeds/credssp|-max_len=4096"
)

for crate in psrp-core/fuzz wsman/fuzz; do
    step "cargo fuzz build -a ($crate)"
    # Fails when the fuzz crate's own Cargo.lock is out of date.
    (cd "$crate" && cargo fetch --locked --quiet && cargo fuzz build -a --target-dir "$target_dir")
done

started=$(date +%s)
for entry in "${targets[@]}"; do
    IFS='|' read -r crate name seed_dirs opts <<<"$entry"
    corpora=("$scratch/$name")
    for d in $seed_dirs; do
        case $d in
            ../shared/real-windows/*) [ -d "$windows" ] && corpora+=("$root/$d") ;;
            *) corpora+=("$root/$d") ;;
        esac
    done
    mkdir -p "$scratch/$name"
    step "fuzz $name: ${#corpora[@]} corpus dirs + $runs runs"
    t0=$(date +%s)
    # shellcheck disable=SC2086 # $opts holds several options
    if ! (cd "$crate" && cargo fuzz run -a --target-dir "$target_dir" "$name" "${corpora[@]}" -- \
        -runs="$runs" -seed="$seed" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$scratch/$name-" $opts) >"$scratch/$name.log" 2>&1; then
        cat "$scratch/$name.log"
        echo "fuzz smoke: $name FAILED (log above; the input is in $scratch/$name-*)" >&2
        exit 1
    fi
    echo "$(grep -E '^stat::number_of_executed_units' "$scratch/$name.log" | awk '{print $2}') executions in $(($(date +%s) - t0)) s"
done
echo
echo "fuzz smoke: ${#targets[@]} targets passed in $(($(date +%s) - started)) s (after the build)"
