"""A PSRP client engine (psrpcore) driven over stdin/stdout, one JSON object
per line, so Rust tests of the wsman crate can run real PSRP traffic through
it without depending on psrp-core.

Requests and replies:
  {"op": "open"}                       -> {"pool_id": UPPER-UUID, "data": b64 creationXml}
  {"op": "feed", "data": b64, "pipeline_id": id|null}
                                       -> {"events": [{"type", "text"}], "pool_state", "pipelines": {id: state}}
  {"op": "pipeline", "command": name, "params": {k: v}, "fragment_size": n}
                                       -> {"pipeline_id": UPPER-UUID, "fragments": [b64, ...]}
  {"op": "close"}                      -> {"pool_state"}
Errors: {"error": text}.
"""

import base64
import json
import sys
import uuid

import psrpcore
from psrpcore.types import PSInvocationState


def main():
    pool = psrpcore.ClientRunspacePool()
    pipelines = {}

    def states():
        return {str(k).upper(): p.state.name for k, p in pipelines.items()}

    for line in sys.stdin:
        req = json.loads(line)
        try:
            op = req["op"]
            if op == "open":
                pool.open()
                payload = pool.data_to_send()
                rep = {"pool_id": str(pool.runspace_pool_id).upper(), "data": base64.b64encode(payload.data).decode()}
            elif op == "feed":
                pid = req.get("pipeline_id")
                pool.receive_data(
                    psrpcore.PSRPPayload(
                        base64.b64decode(req["data"]),
                        psrpcore.StreamType.default,
                        uuid.UUID(pid) if pid else None,
                    )
                )
                events = []
                while (ev := pool.next_event()) is not None:
                    text = None
                    for attr in ("data", "record", "state"):
                        if hasattr(ev, attr):
                            text = str(getattr(ev, attr))
                            break
                    events.append({"type": type(ev).__name__, "text": text})
                rep = {"events": events, "pool_state": pool.state.name, "pipelines": states()}
            elif op == "pipeline":
                ps = psrpcore.ClientPowerShell(pool)
                ps.add_command(req["command"])
                for k, v in (req.get("params") or {}).items():
                    ps.add_parameter(k, v)
                ps.start()
                pipelines[ps.pipeline_id] = ps
                size = req.get("fragment_size")
                frags = []
                while (p := pool.data_to_send(size)) is not None:
                    frags.append(base64.b64encode(p.data).decode())
                rep = {"pipeline_id": str(ps.pipeline_id).upper(), "fragments": frags}
            elif op == "close":
                rep = {"pool_state": pool.state.name}
            else:
                rep = {"error": f"unknown op {op}"}
        except Exception as e:
            rep = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(rep) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
