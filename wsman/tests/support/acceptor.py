"""pyspnego acceptor driven over stdin/stdout, one JSON object per line.

Used by the wsman crate's tests to prove NTLM, Kerberos and SPNEGO (context
establishment, channel bindings, WinRM wrap/unwrap) against a real,
independent implementation.

argv: protocol (ntlm | kerberos | negotiate) [channel-binding application data, hex]
Requests: {"op": "step", "token": b64}, {"op": "wrap", "data": b64},
          {"op": "wrap_integrity", "data": b64} (WinRM's layout, signed but not
          encrypted), {"op": "unwrap", "header": b64, "data": b64}, {"op": "info"}
Replies:  {"token": b64|null, "complete": bool} / {"header", "data", "padding"} /
          {"header", "data", "padding", "encrypted"} / {"data"} /
          {"principal", "protocol"}; or {"error": text}.
"""

import base64
import json
import sys

import spnego
from spnego.channel_bindings import GssChannelBindings
from spnego.iov import BufferType


def b64(b):
    return None if b is None else base64.b64encode(b).decode()


def main():
    protocol = sys.argv[1]
    cb = None
    if len(sys.argv) > 2:
        cb = GssChannelBindings(application_data=bytes.fromhex(sys.argv[2]))
    ctx = spnego.server(hostname="localhost", service="HTTP", protocol=protocol, channel_bindings=cb)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            op = req["op"]
            if op == "step":
                out = ctx.step(base64.b64decode(req["token"]))
                rep = {"token": b64(out), "complete": ctx.complete}
            elif op == "wrap":
                w = ctx.wrap_winrm(base64.b64decode(req["data"]))
                rep = {"header": b64(w.header), "data": b64(w.data), "padding": w.padding_length}
            elif op == "wrap_integrity":
                # HEADER | DATA | PADDING as wrap_winrm, with conf_req_flag false.
                data = base64.b64decode(req["data"])
                res = ctx.wrap_iov([BufferType.header, data, BufferType.padding], encrypt=False)
                header, body, padding = (b.data or b"" for b in res.buffers)
                rep = {
                    "header": b64(header),
                    "data": b64(body + padding),
                    "padding": len(padding),
                    "encrypted": res.encrypted,
                }
            elif op == "unwrap":
                d = ctx.unwrap_winrm(base64.b64decode(req["header"]), base64.b64decode(req["data"]))
                rep = {"data": b64(d)}
            elif op == "info":
                rep = {"principal": str(ctx.client_principal), "protocol": ctx.negotiated_protocol}
            else:
                rep = {"error": f"unknown op {op}"}
        except Exception as e:  # report every failure to the test
            rep = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(rep) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
