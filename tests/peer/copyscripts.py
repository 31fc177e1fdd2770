"""File copy: the scripts `psrp copy`/`psrp fetch` and pypsrp's Client.copy/fetch send,
recognized and emulated on a file store that persists between commands and pools.

Recognition (the peer cannot run PowerShell):

- psrp's scripts start with a marker comment, ``# psrp:copy-<step>/1`` (stat, hashes,
  open, write, read, hash: see ``psrp-core/src/client/copy.rs``); their parameters are
  bound by name as PowerShell binds them to the script's ``param()`` block.
- pypsrp's ``copy.ps1`` and ``fetch.ps1`` (comments stripped by pypsrp) are told by the
  .NET calls that make them what they are; their arguments are positional
  (``$MyInvocation.UnboundArguments``), and copy's data is pipeline input (base64
  strings, the last one the base64 of the SHA-1 hex digest).

Files live on the host under the peer's state directory, one host file per Windows path
(case-insensitive), for the life of the peer, so a file copied in one pool can be fetched
from another. A parent directory must exist in the fake ``C:`` file system (``C:\\Temp``,
``C:\\Users\\testuser\\Documents``, ...), as on Windows.

The ``corrupt_chunk`` fault (``/faults``) flips one byte of a chunk as if it had been
damaged on the way: for psrp's write after it arrived (the hash the script returns is of
the damaged bytes, which are written), for psrp's read after its hash was taken (the bytes
sent no longer match it), for pypsrp's copy in an input chunk (its SHA-1 check fails) and
for pypsrp's fetch in the data sent (its SHA-1 check fails).
"""

import base64
import hashlib
import os
import re
import threading
import typing

from psrpcore.types import PSInt64

from peer import objects

_MARKER = re.compile(r"^\s*#\s*psrp:copy-([a-z]+)/1\b")
PSRP_STEPS = ("stat", "hashes", "open", "write", "read", "hash")
READ_BLOCK = 1 << 20


def recognize(text: str) -> typing.Optional[str]:
    """The emulated script this text is, or None: ``psrp-<step>``, ``pypsrp-copy``, ``pypsrp-fetch``."""
    m = _MARKER.match(text)
    if m and m.group(1) in PSRP_STEPS:
        return "psrp-" + m.group(1)
    if "GetTempFileName()" in text and "FromBase64String($input)" in text and "TransformFinalBlock" in text:
        return "pypsrp-copy"
    if "UnboundArguments[0]" in text and ".OpenRead()" in text and "ToBase64String" in text:
        return "pypsrp-fetch"
    return None


def streams_input(text: str) -> bool:
    """Scripts that read pipeline input as it arrives (the runner does not wait for all of it)."""
    return recognize(text) == "pypsrp-copy"


class RemoteError(Exception):
    """A .NET exception the emulated script lets through (a terminating error)."""


class FileStore:
    """Files written by copies: Windows path -> host file, persistent for the peer's life."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.lock = threading.Lock()

    def host_path(self, full: str) -> str:
        return os.path.join(self.root, hashlib.sha256(full.lower().encode()).hexdigest())

    def exists(self, full: str) -> bool:
        return os.path.isfile(self.host_path(full))


def _store(call: typing.Any) -> FileStore:
    store = getattr(call.inv.instance, "file_store", None)
    if store is None:
        raise RemoteError("The peer has no file store.")
    return store


def _resolve(call: typing.Any, path: typing.Any) -> str:
    full = call.inv.session.fs.normalize(str(path))
    if full is None:
        raise RemoteError(f"Cannot find drive. A drive with the name '{str(path)[:1]}' does not exist.")
    return full


def _not_found(full: str) -> RemoteError:
    return RemoteError(f"Could not find file '{full}'.")


def _is_fake_dir(call: typing.Any, full: str) -> bool:
    found = call.inv.session.fs.lookup(full)
    return found is not None and found[1].is_dir


def _check_parent(call: typing.Any, full: str) -> None:
    parent = full.rsplit("\\", 1)[0]
    if parent == "C:":
        parent = "C:\\"
    if not _is_fake_dir(call, parent):
        raise RemoteError(f"Could not find a part of the path '{full}'.")
    if _is_fake_dir(call, full):
        raise RemoteError(f"Access to the path '{full}' is denied.")


def _params(cmd_parameters: typing.Iterable[typing.Tuple[typing.Optional[str], typing.Any]]) -> typing.Dict[str, typing.Any]:
    named: typing.Dict[str, typing.Any] = {}
    for name, value in cmd_parameters:
        if name is not None:
            named[name.lower()] = value
    return named


def _positional(cmd_parameters: typing.Iterable[typing.Tuple[typing.Optional[str], typing.Any]]) -> typing.List[typing.Any]:
    return [value for name, value in cmd_parameters if name is None]


def _require(params: typing.Dict[str, typing.Any], name: str) -> typing.Any:
    if name.lower() not in params:
        raise RemoteError(f"Missing an argument for parameter '{name}'.")
    return params[name.lower()]


def _corrupt(call: typing.Any, data: bytes) -> bytes:
    fault = call.inv.instance.take_fault("CopyChunk")
    if fault is None or not data:
        return data
    call.inv.instance.log_op({"kind": "corrupt_chunk", "shell_id": call.inv.shell.id, "bytes": len(data)})
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    return bytes(damaged)


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest().upper()


def run(inv: typing.Any, call: typing.Any, kind: str, parameters: typing.List[typing.Any]) -> None:
    """Runs one recognized script; its output goes to ``call.output``. Terminating errors
    are raised as the runner's TerminatingError."""
    from peer.runner import TerminatingError

    try:
        _RUNNERS[kind](call, parameters)
    except RemoteError as e:
        raise TerminatingError(objects.thrown(str(e))) from None
    except OSError as e:
        raise TerminatingError(objects.thrown(f"The peer's file store failed: {e.strerror or e}")) from None


# ---- psrp's scripts -------------------------------------------------------------------


def _psrp_stat(call: typing.Any, parameters: typing.List[typing.Any]) -> None:
    # Output: the full path, then the length (Int64). Throws when missing or a directory.
    full = _resolve(call, _require(_params(parameters), "Path"))
    if _is_fake_dir(call, full):
        raise RemoteError(f"The path '{full}' is a directory, not a file.")
    store = _store(call)
    if not store.exists(full):
        raise _not_found(full)
    call.output(full)
    call.output(PSInt64(os.path.getsize(store.host_path(full))))


def _psrp_hashes(call: typing.Any, parameters: typing.List[typing.Any]) -> None:
    # Output: the length (Int64, -1 when there is no file), then the SHA-256 of each chunk.
    params = _params(parameters)
    full = _resolve(call, _require(params, "Path"))
    chunk = int(_require(params, "ChunkSize"))
    if chunk <= 0:
        raise RemoteError("ChunkSize must be positive.")
    store = _store(call)
    if not store.exists(full):
        call.output(PSInt64(-1))
        return
    host = store.host_path(full)
    call.output(PSInt64(os.path.getsize(host)))
    with open(host, "rb") as f:
        while True:
            data = f.read(chunk)
            if not data:
                break
            call.output(_sha256_hex(data))


def _psrp_open(call: typing.Any, parameters: typing.List[typing.Any]) -> None:
    # Creates (or with -Keep keeps) the file and sets its length; output: the full path.
    params = _params(parameters)
    full = _resolve(call, _require(params, "Path"))
    length = int(_require(params, "Length"))
    keep = bool(params.get("keep", False))
    _check_parent(call, full)
    store = _store(call)
    host = store.host_path(full)
    with store.lock:
        with open(host, "r+b" if keep and os.path.exists(host) else "wb") as f:
            f.truncate(length)
    call.output(full)


def _psrp_write(call: typing.Any, parameters: typing.List[typing.Any]) -> None:
    # Writes -Data at -Offset; output: the SHA-256 of the bytes written.
    params = _params(parameters)
    full = _resolve(call, _require(params, "Path"))
    offset = int(_require(params, "Offset"))
    data = _require(params, "Data")
    if not isinstance(data, (bytes, bytearray)):
        raise RemoteError("Cannot convert the Data value to type System.Byte[].")
    store = _store(call)
    if not store.exists(full):
        raise _not_found(full)
    data = _corrupt(call, bytes(data))
    with open(store.host_path(full), "r+b") as f:
        f.seek(offset)
        f.write(data)
    call.output(_sha256_hex(data))


def _psrp_read(call: typing.Any, parameters: typing.List[typing.Any]) -> None:
    # Output: the SHA-256 of the bytes read at -Offset (at most -Count), then the bytes.
    params = _params(parameters)
    full = _resolve(call, _require(params, "Path"))
    offset = int(_require(params, "Offset"))
    count = int(_require(params, "Count"))
    store = _store(call)
    if not store.exists(full):
        raise _not_found(full)
    with open(store.host_path(full), "rb") as f:
        f.seek(offset)
        data = f.read(max(count, 0))
    call.output(_sha256_hex(data))
    call.output(_corrupt(call, data))


def _psrp_hash(call: typing.Any, parameters: typing.List[typing.Any]) -> None:
    # Output: the SHA-256 of the whole file.
    full = _resolve(call, _require(_params(parameters), "Path"))
    store = _store(call)
    if not store.exists(full):
        raise _not_found(full)
    digest = hashlib.sha256()
    with open(store.host_path(full), "rb") as f:
        for block in iter(lambda: f.read(READ_BLOCK), b""):
            digest.update(block)
    call.output(digest.hexdigest().upper())


# ---- pypsrp's scripts -----------------------------------------------------------------


def _next_input(call: typing.Any) -> typing.Optional[typing.Any]:
    """The next pipeline input object as it arrives, None at the end of input."""
    inv = call.inv
    command = inv.command
    with inv.shell.cond:
        while True:
            inv._check()
            if command.input:
                return command.input.pop(0)
            if command.input_done:
                return None
            inv.shell.cond.wait(1.0)


def _pypsrp_copy(call: typing.Any, parameters: typing.List[typing.Any]) -> None:
    # copy.ps1: input is base64 chunks, the last one the base64 of the SHA-1 hex digest;
    # data goes to a temporary file, which replaces the destination when the hash matches.
    args = _positional(parameters)
    if not args:
        raise RemoteError("Missing the destination path argument.")
    full = _resolve(call, args[0])
    store = _store(call)
    temp = store.host_path(full) + ".tmp"
    sha1 = hashlib.sha1()
    previous: typing.Optional[bytes] = None
    try:
        with open(temp, "wb") as f:
            while True:
                item = _next_input(call)
                if item is None:
                    break
                if previous is not None:
                    sha1.update(previous)
                    f.write(previous)
                previous = _corrupt(call, base64.b64decode(str(item)))
        expected = (previous or b"").decode("utf-8", "replace")
        actual = sha1.hexdigest()
        if actual != expected:
            raise RemoteError(f"Transport failure, hash mismatch\r\nActual: {actual}\r\nExpected: {expected}")
        _check_parent(call, full)
        os.replace(temp, store.host_path(full))
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    call.output(full)


def _pypsrp_fetch(call: typing.Any, parameters: typing.List[typing.Any]) -> None:
    # fetch.ps1: the whole file as one base64 string, then its SHA-1 hex digest.
    args = _positional(parameters)
    if not args:
        raise RemoteError("Missing the source path argument.")
    full = _resolve(call, args[0])
    if _is_fake_dir(call, full):
        raise RemoteError(f"The path at '{full}' is a directory, src must be a file")
    store = _store(call)
    if not store.exists(full):
        raise RemoteError(f"The path at '{full}' does not exist")
    with open(store.host_path(full), "rb") as f:
        data = f.read()
    digest = hashlib.sha1(data).hexdigest()
    call.output(base64.b64encode(_corrupt(call, data)).decode("ascii"))
    call.output(digest)


_RUNNERS: typing.Dict[str, typing.Callable[[typing.Any, typing.List[typing.Any]], None]] = {
    "psrp-stat": _psrp_stat,
    "psrp-hashes": _psrp_hashes,
    "psrp-open": _psrp_open,
    "psrp-write": _psrp_write,
    "psrp-read": _psrp_read,
    "psrp-hash": _psrp_hash,
    "pypsrp-copy": _pypsrp_copy,
    "pypsrp-fetch": _pypsrp_fetch,
}
