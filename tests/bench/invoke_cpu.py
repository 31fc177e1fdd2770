#!/usr/bin/env python3
"""Client CPU per object of ``psrp invoke``, layer by layer, in instructions (callgrind).

Starts one test peer (tests/peer) and runs ``psrp invoke Get-LargeOutput -Count N
-c JEA.Maintenance -o ndjson`` (release build, stdout to a file) under
``valgrind --tool=callgrind`` for two counts, so that everything done once per run
(start-up, authentication, pool opening, shell deletion) cancels out:
instructions per object = (instructions(N2) - instructions(N1)) / (N2 - N1).
Only the psrp process is measured; the peer (Python) is not.

It does so for Kerberos over HTTP (every message sealed with gss_wrap/gss_unwrap of
the system MIT GSSAPI), NTLM over HTTP (our own RC4/HMAC-MD5 sealing) and Basic over
HTTPS (rustls), and for the baseline, "decode + JSON alone": ``psrp clixml`` of the
very same objects (saved with ``psrp invoke ... -o clixml``) to NDJSON, whose output
must be identical byte for byte to what invoke printed.

Each total is split into layers by the inclusive instructions of the functions that
own them (a layer missing from a build shows as 0; what no layer claims is "rest":
the runtime, channels, dropping values, the output thread's wake-ups):

  system Kerberos   gss_unwrap_iov + gss_wrap_iov (libgssapi_krb5, libkrb5, libk5crypto)
  TLS               rustls reading and writing records (tokio-rustls poll_read/poll_write)
  HTTP              hyper's connection task and the exchange (Connection::post), minus TLS
  unseal (ours)     decrypt_reply minus the system Kerberos in it (MIME framing, NTLM RC4)
  seal (ours)       encrypt_body minus the system Kerberos in it
  SOAP + base64     read_receive_response (one pass), or parse_response (the tree) and
                    parse_receive (streams, base64)
  fragments         Shared::feed minus message decoding (defragmenting, message headers)
  CLIXML decode     Message::decode (invoke) / ObjsReader::next_item (clixml)
  JSON              Formatter::append (both)
  stdout            the output thread (write_all)

Callgrind counts instructions, not time: robust to the load of a shared machine.
(It counts a `rep movsb` copy per byte, so large memcpys weigh more than in time.)

Usage: tests/bench/invoke_cpu.py [--counts 1000,3000] [--no-build | --psrp PATH]
                                 [--cases kerberos/http,ntlm/http,basic/https]
Needs valgrind and the Debian packages and venv of tests/peer/setup.sh.
"""

import argparse
import collections
import os
import pathlib
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from benchlib import ROOT, TESTS, start_peer, stop_peer, venv_python  # noqa: E402

# layer -> (functions whose inclusive cost is added, functions whose inclusive cost is subtracted)
LAYERS = [
    ("system Kerberos (GSSAPI)", [r"^gss_unwrap_iov$", r"^gss_wrap_iov$"], []),
    ("TLS (rustls)", [r"^<tokio_rustls::client::TlsStream<IO> as tokio::io::async_read::AsyncRead>::poll_read$",
                      r"^<tokio_rustls::client::TlsStream<IO> as tokio::io::async_write::AsyncWrite>::poll_write$"],
     []),
    # hyper's connection task (parsing, body frames) and our side of the exchange (collecting the body).
    ("HTTP (hyper, body)", [r"^hyper::proto::h1::dispatch::Dispatcher<.*>::poll_catch$",
                            r"^wsman::transport::Connection::post::\{\{closure\}\}$"], ["TLS (rustls)"]),
    ("unseal (ours)", [r"^wsman::transport::Connection::decrypt_reply$"], [r"^gss_unwrap_iov$"]),
    ("seal (ours)", [r"^wsman::auth::Security::encrypt_body$"], [r"^gss_wrap_iov$"]),
    ("SOAP + base64", [r"^wsman::soap::envelope::parse_response$", r"^wsman::shell::parse_receive$",
                       r"^wsman::shell::receive::read_receive_response$"], []),
    ("fragments", [r"^psrp_core::client::shared::Shared::feed$"], [r"^psrp_core::message::Message::decode$"]),
    ("CLIXML decode", [r"^psrp_core::message::Message::decode$",
                       r"^psrp_core::clixml::objs::ObjsReader<.*>::next_item$"], []),
    ("JSON", [r"^psrp::output::Formatter::append$"], []),
    ("stdout", [r"^psrp::output::write_all$"], []),
]
KERBEROS = LAYERS[0][0]

CASES = {
    "kerberos/http": ("kerberos", "http"),
    "ntlm/http": ("ntlm", "http"),
    "basic/https": ("basic", "https"),
}


def inclusive(path: str) -> "collections.Counter[str]":
    """Inclusive instructions per function name from a callgrind file
    (--compress-strings=no): self cost plus the cost of its calls to other
    functions (calls of a function to itself are inside its self cost already)."""
    inc: "collections.Counter[str]" = collections.Counter()
    fn = cfn = None
    call_line = False
    total = 0
    summary = None
    with open(path) as f:
        for line in f:
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                if len(parts) < 2:
                    continue
                v = int(parts[1])
                if call_line:
                    call_line = False
                    if cfn != fn:
                        inc[fn] += v
                else:
                    inc[fn] += v
                    total += v
            elif line.startswith("fn="):
                fn = line[3:].strip()
            elif line.startswith("cfn="):
                cfn = line[4:].strip()
            elif line.startswith("calls="):
                call_line = True
            elif line.startswith("summary:"):
                summary = int(line.split()[1])
    inc["TOTAL"] = summary if summary is not None else total
    return inc


def layer_costs(inc: "collections.Counter[str]") -> "dict[str, int]":
    def matching(pattern: str) -> int:
        rx = re.compile(pattern)
        return sum(v for k, v in inc.items() if rx.search(k))

    out: "dict[str, int]" = {}
    for name, plus, minus in LAYERS:
        v = sum(matching(p) for p in plus)
        for m in minus:
            v -= out[m] if m in out else matching(m)
        out[name] = max(v, 0)
    out["rest"] = inc["TOTAL"] - sum(out.values())
    out["total"] = inc["TOTAL"]
    return out


def callgrind(argv: "list[str]", env: dict, out_file: str, stdout_path: str) -> "collections.Counter[str]":
    cmd = ["valgrind", "--tool=callgrind", "--compress-strings=no", "--compress-pos=no",
           f"--callgrind-out-file={out_file}"] + argv
    with open(stdout_path, "wb") as stdout:
        r = subprocess.run(cmd, env=env, stdout=stdout, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} exited {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}")
    inc = inclusive(out_file)
    os.unlink(out_file)
    return inc


def per_object(a: "dict[str, int]", b: "dict[str, int]", n: int) -> "dict[str, float]":
    return {k: (b[k] - a[k]) / n for k in b}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="1000,3000", help="two object counts (default 1000,3000)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"auth/scheme cases (default {','.join(CASES)})")
    ap.add_argument("--no-build", action="store_true", help="use target/release/psrp as it is")
    ap.add_argument("--psrp", help="measure this psrp binary (implies --no-build), e.g. an older build")
    args = ap.parse_args()
    n1, n2 = (int(c) for c in args.counts.split(","))
    cases = [c for c in args.cases.split(",") if c]
    if not (args.no_build or args.psrp):
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "psrp-cli"], cwd=ROOT, check=True)
    psrp = args.psrp or str(ROOT / "target" / "release" / "psrp")
    python = venv_python()
    peer, info = start_peer(python)
    results: "dict[str, dict[str, float]]" = {}
    try:
        with tempfile.TemporaryDirectory(prefix="psrp-invoke-cpu-") as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("PSRP_")}
            env.update(KRB5_CONFIG=info["krb5_config"], KRB5CCNAME="FILE:" + info["ccache"])
            outputs: "dict[tuple[str, int], bytes]" = {}
            for case in cases:
                auth, scheme = CASES[case]
                port = str(info["https_port" if scheme == "https" else "http_port"])
                base = [psrp, "invoke", "Get-LargeOutput", "-H", "localhost", "--port", port, "--scheme", scheme,
                        "-a", auth, "--ca-file", info["ca_file"], "-c", "JEA.Maintenance", "-o", "ndjson"]
                case_env = dict(env)
                if auth in ("basic", "ntlm"):
                    base += ["-u", info["user"]]
                    case_env["PSRP_PASSWORD"] = info["password"]
                # Warm-up (the peer serializes its template object once; KDC service ticket).
                subprocess.run(base + ["--param-json", "Count=10"], env=case_env, check=True,
                               stdout=subprocess.DEVNULL)
                costs = []
                for n in (n1, n2):
                    out = os.path.join(tmp, f"{auth}-{n}.ndjson")
                    inc = callgrind(base + ["--param-json", f"Count={n}"], case_env,
                                    os.path.join(tmp, "callgrind.out"), out)
                    data = pathlib.Path(out).read_bytes()
                    lines = data.count(b"\n")
                    if lines != n:
                        raise SystemExit(f"{case}: {lines} lines for {n} objects")
                    if outputs.setdefault(("invoke", n), data) != data:
                        raise SystemExit(f"{case}: other output than the first case's")
                    costs.append(layer_costs(inc))
                results[case] = per_object(costs[0], costs[1], n2 - n1)
                print(f"  {case}: {results[case]['total']:,.0f} instructions per object", flush=True)

            # Baseline: the same objects as CLIXML, decoded and written as JSON without transport.
            kerberos_env = env
            costs = []
            for n in (n1, n2):
                xml = os.path.join(tmp, f"objs-{n}.xml")
                with open(xml, "wb") as f:
                    subprocess.run([psrp, "invoke", "Get-LargeOutput", "-H", "localhost", "--port",
                                    str(info["http_port"]), "-a", "kerberos", "-c", "JEA.Maintenance",
                                    "--param-json", f"Count={n}", "-o", "clixml"],
                                   env=kerberos_env, check=True, stdout=f)
                out = os.path.join(tmp, f"clixml-{n}.ndjson")
                inc = callgrind([psrp, "clixml", xml, "-o", "ndjson"], env, os.path.join(tmp, "callgrind.out"), out)
                data = pathlib.Path(out).read_bytes()
                if ("invoke", n) in outputs and outputs[("invoke", n)] != data:
                    raise SystemExit(f"psrp clixml of {n} objects printed other JSON than psrp invoke")
                costs.append(layer_costs(inc))
                xml_size = os.path.getsize(xml)
            results["clixml"] = per_object(costs[0], costs[1], n2 - n1)
            print(f"  clixml: {results['clixml']['total']:,.0f} instructions per object "
                  f"({xml_size / n2:,.0f} bytes of CLIXML each)", flush=True)
    finally:
        stop_peer(peer)

    columns = cases + ["clixml"]
    print()
    print(f"Get-LargeOutput -Count {n1} and {n2}, JEA.Maintenance, -o ndjson; instructions per object "
          f"(callgrind, psrp process only); clixml = `psrp clixml` of the same objects")
    print(f"{'layer':26}" + "".join(f"{c:>15}" for c in columns))
    for name in [layer[0] for layer in LAYERS] + ["rest", "total"]:
        print(f"{name:26}" + "".join(f"{results[c][name]:>15,.0f}" for c in columns))
    base = results["clixml"]["total"]
    print(f"{'total / clixml':26}" + "".join(f"{results[c]['total'] / base:>14.2f}x" for c in columns))
    ours = {c: results[c]["total"] - results[c][KERBEROS] for c in columns}
    print(f"{'without system Kerberos':26}" + "".join(f"{ours[c]:>15,.0f}" for c in columns))
    print(f"{'  / clixml':26}" + "".join(f"{ours[c] / base:>14.2f}x" for c in columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
