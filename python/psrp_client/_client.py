"""Runspace pools and invocations, blocking and asyncio, around the native module."""

from __future__ import annotations

import atexit
import threading
import warnings
import weakref
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Sequence, Union

from psrp_client import _native
from psrp_client._errors import InsecureSettingWarning, UsageError
from psrp_client._native import Event
from psrp_client._types import InvocationResult, ReceivedSecureString

__all__ = ["Command", "DetachedJob", "RunspacePool", "AsyncRunspacePool", "Invocation", "AsyncInvocation"]


class Command:
    """A command (cmdlet, function) with its parameters and positional arguments,
    or a script (:meth:`Command.script`, for endpoints that allow the language).

    ``parameters`` maps names to values; ``None`` makes a switch (``-Force``),
    as in Airflow's PSRP operator. Values: str, int (Int32, else Int64), float
    (Double), bool, None, list/tuple (Object[]), dict (Hashtable), datetime
    (DateTime), and also date, timedelta (TimeSpan), Decimal, UUID (Guid),
    bytes (Byte[]). ``None`` inside a list or dict is ``$null``.

    >>> Command("Get-ChildItem", {"Path": "C:\\\\Temp", "Force": None})
    Command('Get-ChildItem', {'Path': 'C:\\\\Temp', 'Force': None})
    """

    __slots__ = ("name", "parameters", "arguments", "is_script")

    def __init__(
        self, name: str, parameters: Optional[Mapping[str, Any]] = None, arguments: Sequence[Any] = ()
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise UsageError(f"a command needs a name (a non-empty string), not {name!r}")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise UsageError(f"parameters must be a mapping of names to values, not {type(parameters).__name__}")
        if isinstance(arguments, (str, bytes)):
            raise UsageError("arguments must be a sequence of values (a str would be split into characters)")
        self.name = name
        self.parameters = dict(parameters) if parameters else {}
        self.arguments = list(arguments)
        self.is_script = False

    @staticmethod
    def script(
        text: str, parameters: Optional[Mapping[str, Any]] = None, arguments: Sequence[Any] = ()
    ) -> "Command":
        """A script block's text, with parameters for its ``param()`` block."""
        c = Command(text, parameters, arguments)
        c.is_script = True
        return c

    def __repr__(self) -> str:
        kind = "Command.script" if self.is_script else "Command"
        extra = ""
        if self.parameters:
            extra += f", {self.parameters!r}"
        if self.arguments:
            extra += f", arguments={self.arguments!r}"
        return f"{kind}({self.name!r}{extra})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Command):
            return NotImplemented
        return (self.name, self.parameters, self.arguments, self.is_script) == (
            other.name,
            other.parameters,
            other.arguments,
            other.is_script,
        )


def _command(
    command: Union[str, Command],
    parameters: Optional[Mapping[str, Any]],
    arguments: Sequence[Any],
    script: bool,
) -> Command:
    if isinstance(command, Command):
        if not parameters and not arguments:
            return command
        merged = Command(command.name, {**command.parameters, **dict(parameters or {})}, [*command.arguments, *arguments])
        merged.is_script = command.is_script
        return merged
    if isinstance(command, str):
        return Command.script(command, parameters, arguments) if script else Command(command, parameters, arguments)
    raise UsageError(f"the command must be a str or a psrp_client.Command, not {type(command).__name__}")


def _session_command(item: Union[str, Command]) -> Command:
    if isinstance(item, Command):
        return item
    if isinstance(item, str):
        return Command(item)
    raise UsageError(f"session_init items must be str (a command name) or Command, not {type(item).__name__}")


class DetachedJob(NamedTuple):
    """A pipeline left running on the server in a disconnected shell
    (:meth:`RunspacePool.start_detached`): the ids to pick it up with
    :meth:`RunspacePool.connect` and :meth:`RunspacePool.connect_command`, from
    this or any other process of the same user. Holds no secret.

    ``expires_at`` (Unix seconds, or None) is when the server may delete the
    shell with its output if nobody connects (from the idle timeout asked for).
    """

    shell_id: str
    command_id: str
    expires_at: Optional[float]


_BUFFER_MODES = ("block", "drop")


def _check_detach(idle_timeout: Optional[float], buffer_mode: str) -> None:
    if buffer_mode not in _BUFFER_MODES:
        raise UsageError(f'buffer_mode must be "block" or "drop", not {buffer_mode!r}')
    if idle_timeout is not None and not idle_timeout > 0:
        raise UsageError(f"idle_timeout must be a positive number of seconds, not {idle_timeout!r}")


# Pools still open when the interpreter exits are closed (their shells deleted).
_open_pools: "weakref.WeakSet[_PoolBase]" = weakref.WeakSet()
_open_lock = threading.Lock()


@atexit.register
def _close_open_pools() -> None:
    with _open_lock:
        pools = list(_open_pools)
    for p in pools:
        native = p._native
        if native is not None:
            try:
                native.close()
            except Exception:  # noqa: BLE001 - exiting: nothing left to tell
                pass


class _PoolBase:
    """Settings and session-init commands shared by the blocking and asyncio pools."""

    def __init__(
        self,
        host: str,
        *,
        port: Optional[int] = None,
        scheme: str = "http",
        path: str = "wsman",
        auth: str = "negotiate",
        username: Optional[str] = None,
        password: Optional[str] = None,
        spn: Optional[str] = None,
        configuration_name: str = "Microsoft.PowerShell",
        ca_file: Optional[str] = None,
        insecure_skip_tls_verify: bool = False,
        allow_unencrypted: bool = False,
        no_ntlm_fallback: bool = False,
        delegate: bool = False,
        cert_file: Optional[str] = None,
        key_file: Optional[str] = None,
        connect_timeout: Optional[float] = None,
        operation_timeout: Optional[float] = None,
        read_timeout: Optional[float] = None,
        locale: Optional[str] = None,
        data_locale: Optional[str] = None,
        max_envelope_size: Optional[int] = None,
        reconnection_retries: Optional[int] = None,
        reconnection_backoff: Optional[float] = None,
        session_init: Sequence[Union[Command, str]] = (),
        on_prompt: Optional[Callable[[Dict[str, Any]], Any]] = None,
    ) -> None:
        self._native: Optional[_native.Pool] = None
        self._on_prompt = on_prompt
        self._settings = _native.Settings(
            host,
            port=port,
            scheme=scheme,
            path=path,
            auth=auth,
            username=username,
            password=password,
            spn=spn,
            configuration_name=configuration_name,
            ca_file=None if ca_file is None else str(ca_file),
            insecure_skip_tls_verify=insecure_skip_tls_verify,
            allow_unencrypted=allow_unencrypted,
            no_ntlm_fallback=no_ntlm_fallback,
            delegate=delegate,
            cert_file=None if cert_file is None else str(cert_file),
            key_file=None if key_file is None else str(key_file),
            connect_timeout=connect_timeout,
            operation_timeout=operation_timeout,
            read_timeout=read_timeout,
            locale=locale,
            data_locale=data_locale,
            max_envelope_size=max_envelope_size,
            reconnection_retries=reconnection_retries,
            reconnection_backoff=reconnection_backoff,
        )
        self._session_init = [_session_command(c) for c in session_init]
        if insecure_skip_tls_verify:
            warnings.warn(
                "insecure_skip_tls_verify: server certificates are NOT checked; anyone on the network "
                "path can impersonate the host and read the session",
                InsecureSettingWarning,
                stacklevel=3,
            )
        if allow_unencrypted:
            warnings.warn(
                "allow_unencrypted: messages may travel in clear text over HTTP; anyone on the network "
                "path can read and change them",
                InsecureSettingWarning,
                stacklevel=3,
            )

    def _opened(self, native: _native.Pool) -> None:
        self._native = native
        with _open_lock:
            _open_pools.add(self)

    def _closed(self) -> None:
        self._native = None
        with _open_lock:
            _open_pools.discard(self)

    def _pool(self) -> _native.Pool:
        if self._native is None:
            raise UsageError(
                "the runspace pool is not open: use `with RunspacePool(...) as pool:` "
                "(`async with` for AsyncRunspacePool) or call open() first"
            )
        return self._native

    @property
    def endpoint(self) -> str:
        """The endpoint URL, e.g. ``http://win01:5985/wsman``."""
        return self._settings.endpoint

    @property
    def configuration_name(self) -> str:
        """The session configuration (JEA endpoint) name."""
        return self._settings.configuration_name

    @property
    def is_open(self) -> bool:
        """Whether the pool is open."""
        return self._native is not None and not self._native.is_closed

    @property
    def shell_id(self) -> Optional[str]:
        """The WS-Man ShellId while open."""
        return None if self._native is None else self._native.shell_id

    @property
    def protocol_version(self) -> Optional[str]:
        """The PSRP protocol version both sides speak (``"2.3"``), once open."""
        return None if self._native is None else self._native.protocol_version

    @property
    def ps_version_table(self) -> Optional[Dict[str, Any]]:
        """The server's ``$PSVersionTable``, once open (when the server sent it)."""
        return None if self._native is None else self._native.ps_version_table

    @property
    def session_init_results(self) -> "list[InvocationResult]":
        """The results of the session-init commands (their streams, e.g. debug lines)."""
        return [] if self._native is None else self._native.session_init_results

    @property
    def has_session_key(self) -> bool:
        """Whether the SecureString session key was exchanged with the server."""
        return self._native is not None and self._native.has_session_key

    def decrypt(self, value: ReceivedSecureString) -> str:
        """The text of a SecureString this pool received (an output value, or a property
        of one, that is a :class:`ReceivedSecureString`), decrypted with the pool's
        session key. The only way the client reveals one: output values keep it
        encrypted and print as ``"System.Security.SecureString"``. Raises
        :class:`PsrpError` when it came from another pool (another session key)."""
        if not isinstance(value, ReceivedSecureString):
            raise TypeError(f"decrypt takes a ReceivedSecureString from this pool's output, not {type(value).__name__}")
        return self._pool().decrypt(value.ciphertext)

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"{type(self).__name__}({self.endpoint!r}, configuration_name={self.configuration_name!r}, {state})"


class RunspacePool(_PoolBase):
    """A runspace pool on a remote session configuration (a WinRM shell), blocking API.

    Opened by ``with`` (or :meth:`open`), closed on leaving it, also on
    exceptions and KeyboardInterrupt: the shell is deleted on the server.
    Calls that wait on the network release the GIL and honour Ctrl-C.

    >>> with RunspacePool("win01.example.com", auth="kerberos",
    ...                   configuration_name="JEA.Maintenance") as pool:  # doctest: +SKIP
    ...     result = pool.invoke("Get-Item", {"Path": "C:\\\\Windows\\\\win.ini"})
    ...     result.raise_for_status()
    ...     print(result.output[0]["Length"])

    Defaults are secure: Basic over HTTP is refused and TLS certificates are
    checked unless ``allow_unencrypted`` / ``insecure_skip_tls_verify`` are
    given (each warns with :class:`InsecureSettingWarning`). The password
    never appears in ``repr``, logs or errors.
    """

    def open(self) -> "RunspacePool":
        """Opens the pool and runs the session-init commands (PipelineFailed if one
        fails). Does nothing if it is already open."""
        if self._native is None:
            self._opened(_native.Pool.open(self._settings, self._session_init, self._on_prompt))
        return self

    def close(self) -> None:
        """Deletes the shell on the server. Idempotent."""
        native = self._native
        if native is not None:
            try:
                native.close()
            finally:
                self._closed()

    def exchange_keys(self) -> None:
        """Exchanges the SecureString session key now (invocations with a
        :class:`SecureString` parameter, and servers about to send one, do it when
        needed; this pays the cost, an RSA key pair and one round trip, up front)."""
        self._pool().exchange_keys()

    def __enter__(self) -> "RunspacePool":
        return self.open()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            self.close()
        except Exception:
            if exc is None:
                raise
            # The exception in flight matters more; the shell times out on the server.
            warnings.warn("closing the runspace pool failed while handling another exception", RuntimeWarning)

    def invoke(
        self,
        command: Union[str, Command],
        parameters: Optional[Mapping[str, Any]] = None,
        arguments: Sequence[Any] = (),
        *,
        timeout: Optional[float] = None,
    ) -> InvocationResult:
        """Runs a command to its end and returns everything it produced.

        A pipeline that fails is a result too (``state == "Failed"``; call
        :meth:`InvocationResult.raise_for_status`). ``timeout`` (seconds)
        stops the pipeline when it expires and raises :class:`PsrpTimeout`.
        """
        return self._pool().invoke(_command(command, parameters, arguments, False), timeout)

    def run_script(
        self,
        script: str,
        parameters: Optional[Mapping[str, Any]] = None,
        arguments: Sequence[Any] = (),
        *,
        timeout: Optional[float] = None,
    ) -> InvocationResult:
        """Runs script text (endpoints that allow the language; JEA NoLanguage
        endpoints refuse it)."""
        return self._pool().invoke(_command(script, parameters, arguments, True), timeout)

    def start(
        self,
        command: Union[str, Command],
        parameters: Optional[Mapping[str, Any]] = None,
        arguments: Sequence[Any] = (),
        *,
        script: bool = False,
    ) -> "Invocation":
        """Starts a pipeline and returns at once; iterate the :class:`Invocation`
        for its events as they arrive."""
        return Invocation(self._pool().start(_command(command, parameters, arguments, script)))

    def start_detached(
        self,
        command: Union[str, Command],
        parameters: Optional[Mapping[str, Any]] = None,
        arguments: Sequence[Any] = (),
        *,
        script: bool = False,
        idle_timeout: Optional[float] = None,
        buffer_mode: str = "block",
    ) -> DetachedJob:
        """Starts a pipeline and leaves it running on the server in the
        disconnected shell (WS-Man Command, then Disconnect): a detached job,
        picked up later by :meth:`connect` and :meth:`connect_command`.

        ``idle_timeout`` (seconds; default: the shell's, 2 hours on Windows,
        capped by the server's MaxIdleTimeoutms) is how long the server keeps
        the shell while nobody is connected before deleting it with its output.
        ``buffer_mode="block"`` pauses the pipeline when the server's output
        buffer is full until someone connects (nothing is lost); ``"drop"``
        drops the oldest output instead. This pool is closed afterwards
        without deleting the shell; on an error it stays open (leaving ``with``
        deletes the shell).
        """
        _check_detach(idle_timeout, buffer_mode)
        job = self._pool().start_detached(_command(command, parameters, arguments, script), idle_timeout, buffer_mode)
        self._closed()
        return DetachedJob(*job)

    @classmethod
    def connect(cls, host: str, shell_id: str, *, expires_at: Optional[float] = None, **settings: Any) -> "RunspacePool":
        """Connects to a disconnected shell by its id (WS-Man Connect; PSRP 2.2 or
        later, Windows Server 2012 and later) and returns the pool, open: use it
        in ``with`` (leaving it deletes the shell). ``settings`` are the
        constructor's (same configuration name as the shell's); session-init
        commands are not run. Refusals raise :class:`ShellConnectFailed` with
        its ``reason``; ``expires_at`` (from :class:`DetachedJob`) tells an
        expired shell from an unknown one."""
        pool = cls(host, **settings)
        pool._opened(_native.Pool.connect(pool._settings, shell_id, expires_at))
        return pool

    def connect_command(self, command_id: str) -> "Invocation":
        """Connects to a pipeline of a pool opened by :meth:`connect`: its output
        kept by the server since the disconnect, then the rest, as from
        :meth:`start`."""
        return Invocation(self._pool().connect_command(command_id))


class _InvocationBase:
    """What the blocking and asyncio invocations share: the native pipeline handle."""

    def __init__(self, native: _native.Invocation) -> None:
        self._native = native

    @property
    def command(self) -> str:
        """What runs, as text."""
        return self._native.command

    @property
    def id(self) -> str:
        """The pipeline id."""
        return self._native.id

    @property
    def done(self) -> bool:
        """Whether the pipeline has ended and was released on the server."""
        return self._native.done

    def __repr__(self) -> str:
        return repr(self._native)


class Invocation(_InvocationBase):
    """A running pipeline (blocking API). Iterating it yields :class:`Event` objects
    in the order the server sent them; the next one is read from the network
    only when asked for (memory stays flat however much output comes).

    >>> with pool.start("Get-LargeOutput", {"Count": 100000}) as inv:  # doctest: +SKIP
    ...     for event in inv:
    ...         if event.kind == "output":
    ...             handle(event.value)
    ...         else:
    ...             log(event.record.level, event.record.message)
    ...     result = inv.result()   # state, had_errors, exit_code
    """


    def __iter__(self) -> "Invocation":
        return self

    def __next__(self) -> Event:
        event = self._native.next_event()
        if event is None:
            raise StopIteration
        return event

    def stop(self) -> None:
        """Stops the remote pipeline (WS-Man Signal); returns when the server took
        the request. The pipeline then ends Stopped. Thread-safe."""
        self._native.stop()

    def result(self, timeout: Optional[float] = None) -> InvocationResult:
        """Reads the remaining events and returns the result (events already
        iterated are not in its lists; state, had_errors and exit_code cover
        the whole run)."""
        return self._native.result(timeout)

    def __enter__(self) -> "Invocation":
        return self

    def cancel(self) -> None:
        """Stops the pipeline if it still runs and drops the events not read yet;
        returns once it has ended on the server (at most 35 s)."""
        self._native.cancel()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # Left early (break, exception): stop the pipeline and let it end.
        if not self._native.done:
            self._native.cancel()


class AsyncRunspacePool(_PoolBase):
    """The asyncio twin of :class:`RunspacePool` (for Airflow triggers and other
    asyncio code): the same constructor; ``async with`` opens and closes,
    every method is awaited. Cancelling a call drops its network work (a shell
    being created is deleted; a pipeline's command is released).

    >>> async with AsyncRunspacePool("win01", auth="kerberos") as pool:  # doctest: +SKIP
    ...     inv = await pool.start("Get-ChildItem", {"Path": "C:\\\\Temp"})
    ...     async for event in inv:
    ...         print(event)
    ...     result = await inv.result()
    """

    async def open(self) -> "AsyncRunspacePool":
        """Opens the pool and runs the session-init commands."""
        if self._native is None:
            self._opened(await _native.Pool.open_async(self._settings, self._session_init, self._on_prompt))
        return self

    async def close(self) -> None:
        """Deletes the shell on the server. Idempotent."""
        native = self._native
        if native is not None:
            try:
                await native.close_async()
            finally:
                self._closed()

    async def exchange_keys(self) -> None:
        """Exchanges the SecureString session key now (see ``RunspacePool.exchange_keys``)."""
        await self._pool().exchange_keys_async()

    async def __aenter__(self) -> "AsyncRunspacePool":
        return await self.open()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            await self.close()
        except Exception:
            if exc is None:
                raise
            warnings.warn("closing the runspace pool failed while handling another exception", RuntimeWarning)

    async def invoke(
        self,
        command: Union[str, Command],
        parameters: Optional[Mapping[str, Any]] = None,
        arguments: Sequence[Any] = (),
        *,
        timeout: Optional[float] = None,
    ) -> InvocationResult:
        """See :meth:`RunspacePool.invoke`."""
        return await self._pool().invoke_async(_command(command, parameters, arguments, False), timeout)

    async def run_script(
        self,
        script: str,
        parameters: Optional[Mapping[str, Any]] = None,
        arguments: Sequence[Any] = (),
        *,
        timeout: Optional[float] = None,
    ) -> InvocationResult:
        """See :meth:`RunspacePool.run_script`."""
        return await self._pool().invoke_async(_command(script, parameters, arguments, True), timeout)

    async def start(
        self,
        command: Union[str, Command],
        parameters: Optional[Mapping[str, Any]] = None,
        arguments: Sequence[Any] = (),
        *,
        script: bool = False,
    ) -> "AsyncInvocation":
        """See :meth:`RunspacePool.start`."""
        return AsyncInvocation(await self._pool().start_async(_command(command, parameters, arguments, script)))

    async def start_detached(
        self,
        command: Union[str, Command],
        parameters: Optional[Mapping[str, Any]] = None,
        arguments: Sequence[Any] = (),
        *,
        script: bool = False,
        idle_timeout: Optional[float] = None,
        buffer_mode: str = "block",
    ) -> DetachedJob:
        """See :meth:`RunspacePool.start_detached`."""
        _check_detach(idle_timeout, buffer_mode)
        command_ = _command(command, parameters, arguments, script)
        job = await self._pool().start_detached_async(command_, idle_timeout, buffer_mode)
        self._closed()
        return DetachedJob(*job)

    @classmethod
    async def connect(
        cls, host: str, shell_id: str, *, expires_at: Optional[float] = None, **settings: Any
    ) -> "AsyncRunspacePool":
        """See :meth:`RunspacePool.connect` (``async with`` the result deletes the shell)."""
        pool = cls(host, **settings)
        pool._opened(await _native.Pool.connect_async(pool._settings, shell_id, expires_at))
        return pool

    async def connect_command(self, command_id: str) -> "AsyncInvocation":
        """See :meth:`RunspacePool.connect_command`."""
        return AsyncInvocation(await self._pool().connect_command_async(command_id))

    @classmethod
    async def disconnect_shell(
        cls,
        host: str,
        shell_id: str,
        *,
        idle_timeout: Optional[float] = None,
        buffer_mode: str = "block",
        **settings: Any,
    ) -> None:
        """Disconnects a shell by id from this new client (WS-Man Disconnect), for a
        shell whose client died while connected: a killed process leaves it
        connected, and :meth:`connect` is then refused (``connected_elsewhere``).
        Its pipelines go on. Checked against the test peer only: whether a
        Windows server accepts it from another client session is not known."""
        _check_detach(idle_timeout, buffer_mode)
        pool = cls(host, **settings)
        await _native.Pool.disconnect_shell_async(pool._settings, shell_id, idle_timeout, buffer_mode)

    @classmethod
    async def remove_shell(cls, host: str, shell_id: str, **settings: Any) -> None:
        """Deletes a shell by id with its pipelines and their output (WS-Man Delete)."""
        pool = cls(host, **settings)
        await _native.Pool.remove_shell_async(pool._settings, shell_id)


class AsyncInvocation(_InvocationBase):
    """The asyncio twin of :class:`Invocation`: ``async for event in inv``,
    ``await inv.stop()``, ``await inv.result()``."""


    def __aiter__(self) -> "AsyncInvocation":
        return self

    async def __anext__(self) -> Event:
        event = await self._native.next_event_async()
        if event is None:
            raise StopAsyncIteration
        return event

    async def stop(self) -> None:
        """Stops the remote pipeline; see :meth:`Invocation.stop`."""
        await self._native.stop_async()

    async def result(self, timeout: Optional[float] = None) -> InvocationResult:
        """See :meth:`Invocation.result`."""
        return await self._native.result_async(timeout)

    async def cancel(self) -> None:
        """See :meth:`Invocation.cancel`."""
        await self._native.cancel_async()

    async def __aenter__(self) -> "AsyncInvocation":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._native.done:
            await self._native.cancel_async()
