"""The server side of psrp-core's state-machine tests: a real psrpcore
ServerRunspacePool driven over stdin/stdout by a Rust test.

Frames both ways: 4-byte big-endian length, then UTF-8 JSON. Binary PSRP
data travels base64-encoded. Requests:

  {"op": "feed", "pipeline": UUID|null, "data": B64}
      Bytes the client sent (creationXml, Command Arguments or Send). A
      pipeline id seen for the first time creates its ServerPipeline first,
      as a WS-Man server does on Command. Answer: {"events": [...]}, each
      server event described as JSON.
  {"op": "drain", "amount": N}
      What the server has to send, in payloads of at most N bytes. Answer:
      {"payloads": [{"pipeline": UUID|null, "stream": NAME, "data": B64}]}.
  {"op": "act", "pipeline": UUID|null, "actions": [[NAME, ARGS...], ...]}
      Server-side actions (write output, errors, host calls, state changes).
      Answer: {"results": [...]}.

Requests to set/get runspaces and reset state are answered automatically.
Errors are answered as {"error": TEXT}; the Rust side fails the test.
"""

import base64
import decimal
import json
import struct
import sys
import traceback
import uuid

import psrpcore
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    HostMethodIdentifier,
    NETException,
    ProgressRecordType,
    PSCustomObject,
    PSInvocationState,
    PSObject,
    PSVersion,
    add_note_property,
)


def describe(v, depth=0):
    """A JSON description of a deserialized value: type name and content."""
    if depth > 20:
        return {"t": "TooDeep"}
    if v is None:
        return {"t": "Null"}
    if isinstance(v, bool):
        return {"t": "bool", "v": v}
    name = type(v).__name__
    if isinstance(v, int):
        return {"t": name, "v": int(v)}
    if isinstance(v, float):
        return {"t": name, "v": float(v)}
    if isinstance(v, str):
        return {"t": name, "v": str(v)}
    if isinstance(v, bytes):
        return {"t": name, "v": v.hex()}
    if isinstance(v, (uuid.UUID, decimal.Decimal, PSVersion)):
        return {"t": name, "v": str(v)}
    if isinstance(v, dict):
        return {
            "t": name,
            "v": [[describe(k, depth + 1), describe(x, depth + 1)] for k, x in v.items()],
        }
    if isinstance(v, (list, tuple)):
        return {"t": name, "v": [describe(x, depth + 1) for x in v]}
    if isinstance(v, PSObject):
        props = {}
        for p in v.PSObject.extended_properties + v.PSObject.adapted_properties:
            props[p.name] = describe(p.get_value(v), depth + 1)
        return {"t": name, "types": list(v.PSTypeNames), "props": props}
    return {"t": name, "v": repr(v)}


def describe_command(c):
    return {
        "cmd": c.command_text,
        "is_script": bool(c.is_script),
        "use_local_scope": c.use_local_scope,
        "end_of_statement": bool(c.end_of_statement),
        "params": [[n, describe(v)] for n, v in c.parameters],
        "merge_my": int(c.merge_my),
        "merge_to": int(c.merge_to),
        "merge_error": int(c.merge_error),
        "merge_warning": int(c.merge_warning),
        "merge_verbose": int(c.merge_verbose),
        "merge_debug": int(c.merge_debug),
        "merge_information": int(c.merge_information),
    }


def describe_host(h):
    if h is None:
        return None
    return {
        "is_host_null": bool(h.IsHostNull),
        "is_host_ui_null": bool(h.IsHostUINull),
        "is_host_raw_ui_null": bool(h.IsHostRawUINull),
        "use_runspace_host": bool(h.UseRunspaceHost),
    }


class Peer:
    def __init__(self):
        self.pool = psrpcore.ServerRunspacePool()

    def pipeline(self, pid):
        return self.pool.pipeline_table[uuid.UUID(pid)]

    def describe_event(self, e):
        name = type(e).__name__
        d = {"type": name.removesuffix("Event")}
        if e.pipeline_id:
            d["pipeline"] = str(e.pipeline_id)
        if isinstance(e, psrpcore.SessionCapabilityEvent):
            d["protocol"] = str(e.protocol_version)
            d["ps_version"] = str(e.ps_version)
        elif isinstance(e, psrpcore.InitRunspacePoolEvent):
            d["min"] = e.min_runspaces
            d["max"] = e.max_runspaces
            d["host"] = describe_host(e.host_info)
            d["apartment_state"] = int(e.apartment_state)
            d["thread_options"] = int(e.ps_thread_options)
            d["application_arguments"] = describe(e.application_arguments)
        elif isinstance(e, psrpcore.CreatePipelineEvent):
            ps = e.pipeline
            d["no_input"] = bool(ps.no_input)
            d["is_nested"] = bool(ps.is_nested)
            d["add_to_history"] = bool(ps.add_to_history)
            d["remote_stream_options"] = int(ps.remote_stream_options)
            d["redirect_shell_error_to_out"] = bool(ps.redirect_shell_error_to_out)
            d["host"] = describe_host(ps.host)
            d["commands"] = [describe_command(c) for c in ps.commands]
        elif isinstance(e, psrpcore.GetCommandMetadataEvent):
            md = e.pipeline
            d["names"] = [str(n) for n in md.name]
            d["command_type"] = int(md.command_type)
        elif isinstance(e, psrpcore.PipelineInputEvent):
            d["value"] = describe(e.data)
        elif isinstance(e, (psrpcore.PipelineHostResponseEvent, psrpcore.RunspacePoolHostResponseEvent)):
            d["ci"] = e.ci
            d["method"] = e.method_identifier.name
            d["result"] = describe(e.result)
            d["error"] = None
            if e.error is not None:
                d["error"] = {
                    "message": str(e.error.Exception.Message),
                    "category": int(e.error.CategoryInfo.Category),
                    "fqid": str(e.error.FullyQualifiedErrorId),
                }
        elif isinstance(e, (psrpcore.SetMaxRunspacesEvent, psrpcore.SetMinRunspacesEvent)):
            d["ci"] = e.ci
            d["count"] = e.count
            self.pool.runspace_availability_response(e.ci, True)
        elif isinstance(e, psrpcore.GetAvailableRunspacesEvent):
            d["ci"] = e.ci
            self.pool.runspace_availability_response(e.ci, 3)
        elif isinstance(e, psrpcore.ResetRunspaceStateEvent):
            d["ci"] = e.ci
            self.pool.runspace_availability_response(e.ci, True)
        return d

    def feed(self, pid, data):
        pipeline_id = uuid.UUID(pid) if pid else None
        if pipeline_id and pipeline_id not in self.pool.pipeline_table:
            psrpcore.ServerPipeline(self.pool, pipeline_id)
        self.pool.receive_data(psrpcore.PSRPPayload(data, psrpcore.StreamType.default, pipeline_id))
        events = []
        while True:
            e = self.pool.next_event()
            if e is None:
                break
            events.append(self.describe_event(e))
        return {"events": events}

    def drain(self, amount):
        out = []
        while True:
            p = self.pool.data_to_send(amount)
            if p is None:
                break
            out.append(
                {
                    "pipeline": str(p.pipeline_id) if p.pipeline_id else None,
                    "stream": p.stream_type.name,
                    "data": base64.b64encode(p.data).decode(),
                }
            )
        return {"payloads": out}

    def act(self, pid, actions):
        results = []
        for action in actions:
            name, args = action[0], action[1:]
            results.append(getattr(self, "do_" + name)(pid, *args))
        return {"results": results}

    # Pipeline actions -------------------------------------------------

    def do_start(self, pid):
        self.pipeline(pid).start()

    def do_start_quiet(self, pid):
        # Windows does not send a Running state; psrpcore's start() does.
        self.pipeline(pid)._change_state(PSInvocationState.Running, emit=False)

    def do_output(self, pid, kind, *args):
        sp = self.pipeline(pid)
        if kind == "str":
            sp.write_output(args[0])
        elif kind == "int":
            sp.write_output(args[0])
        elif kind == "bigstr":
            sp.write_output(args[0] * args[1])
        elif kind == "many":
            for i in range(args[0]):
                sp.write_output(f"item {i} " + "x" * args[1])
        elif kind == "object":
            o = PSObject()
            o.PSObject.type_names = ["System.IO.FileInfo", "System.IO.FileSystemInfo", "System.Object"]
            for k, v in args[0].items():
                add_note_property(o, k, v)
            sp.write_output(o)
        elif kind == "custom":
            sp.write_output(PSCustomObject(**args[0]))
        elif kind == "list":
            sp.write_output(args[0])
        else:
            raise ValueError(kind)

    def do_error(self, pid, message, fqid, target):
        self.pipeline(pid).write_error(
            NETException(message),
            ErrorCategoryInfo(
                Category=ErrorCategory.ObjectNotFound,
                Reason="ItemNotFoundException",
                TargetName=target,
                TargetType="String",
                Activity="Get-Item",
            ),
            target_object=target,
            fully_qualified_error_id=fqid,
        )

    def do_warning(self, pid, message):
        self.pipeline(pid).write_warning(message)

    def do_verbose(self, pid, message):
        self.pipeline(pid).write_verbose(message)

    def do_debug(self, pid, message):
        self.pipeline(pid).write_debug(message)

    def do_information(self, pid, message, source):
        self.pipeline(pid).write_information(message, source, tags=["tag1"], computer="peer")

    def do_progress(self, pid, activity, activity_id, status, percent):
        self.pipeline(pid).write_progress(
            activity, activity_id, status, percent_complete=percent, record_type=ProgressRecordType.Processing
        )

    def do_host_call(self, pid, method, *params):
        return self.pipeline(pid).host_call(HostMethodIdentifier[method], list(params))

    def do_complete(self, pid):
        self.pipeline(pid).complete()

    def do_fail(self, pid, message, fqid):
        err = ErrorRecord(
            Exception=NETException(message),
            CategoryInfo=ErrorCategoryInfo(Category=ErrorCategory.ObjectNotFound, Reason="CommandNotFoundException"),
            FullyQualifiedErrorId=fqid,
        )
        self.pipeline(pid)._change_state(PSInvocationState.Failed, err)

    def do_stop(self, pid):
        self.pipeline(pid).stop()

    def do_close(self, pid):
        self.pipeline(pid).close()

    def do_state(self, pid):
        return self.pipeline(pid).state.name

    # Pool actions -----------------------------------------------------

    def do_pool_state(self, _pid):
        return self.pool.state.name

    def do_pool_host_call(self, _pid, method, *params):
        return self.pool.host_call(HostMethodIdentifier[method], list(params))

    def do_user_event(self, _pid, event_id, source, data):
        self.pool.send_event(event_id, source, message_data=data, computer="peer")

    def do_set_broken(self, _pid, message):
        err = ErrorRecord(
            Exception=NETException(message),
            CategoryInfo=ErrorCategoryInfo(Category=ErrorCategory.ResourceUnavailable),
            FullyQualifiedErrorId="PoolBroken",
        )
        self.pool.set_broken(err)

    def do_max_runspaces(self, _pid):
        return self.pool.max_runspaces


def read_frame(stream):
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack(">I", head)
    return json.loads(stream.read(n))


def write_frame(stream, obj):
    data = json.dumps(obj).encode()
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def main():
    peer = Peer()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        req = read_frame(stdin)
        if req is None:
            return
        try:
            op = req["op"]
            if op == "feed":
                resp = peer.feed(req["pipeline"], base64.b64decode(req["data"]))
            elif op == "drain":
                resp = peer.drain(req["amount"])
            elif op == "act":
                resp = peer.act(req["pipeline"], req["actions"])
            else:
                raise ValueError(f"unknown op {op}")
        except Exception as e:  # reported to the Rust test, which fails
            resp = {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc()}"}
        write_frame(stdout, resp)


if __name__ == "__main__":
    main()
