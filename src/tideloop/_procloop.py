"""SubprocessMixin: the loop's ``subprocess_exec/shell`` and ``connect_read/write_pipe``.

Invariant: the mixin relies only on the core contract (``_add_reader``/``_remove_reader``/...,
``call_soon``, ``create_future``, ``get_debug``, ``close``); it owns one thing, the set of watched
children, and on ``close()`` hands each still-running child to a reaper so no zombie outlives it.

Invariant: the implementation modules (_subprocess, _pipes) are imported on first use, inside the
few setup methods below, never at module level: most loops never start a child or open a pipe,
and not loading them saves each process their code and, without cached bytecode, the memory of
compiling ~1,200 lines (docs/performance.md, "Memory, session 3"). A child can only be watched
after subprocess_exec/shell imported _subprocess, so close() needs no import of its own.
"""

from __future__ import annotations

import asyncio
import subprocess
from asyncio.log import logger
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._pipes import ReadPipeTransport, WritePipeTransport
    from ._subprocess import ChildWatch, SubprocessTransport

__all__ = ["SubprocessMixin"]


def _format_pipe(fd: Any) -> str:
    if fd == subprocess.PIPE:
        return "<pipe>"
    if fd == subprocess.STDOUT:
        return "<stdout>"
    return repr(fd)


def _check_text_args(
    universal_newlines: bool, bufsize: int, text: Any, encoding: Any, errors: Any
) -> None:
    # The transport speaks bytes only: refuse every way Popen could be asked for text or buffering.
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")


class SubprocessMixin:
    """Subprocess and pipe methods of ``tideloop.EventLoop`` (see the module docstring)."""

    _tl_children: dict[int, ChildWatch] | None = None

    if TYPE_CHECKING:  # provided by the loop core (LoopBase) / asyncio.SelectorEventLoop
        _debug: bool

        def create_future(self) -> Any: ...
        def get_debug(self) -> bool: ...
        def is_closed(self) -> bool: ...

    # -- bookkeeping used by ChildWatch --

    def _tl_remember_child(self, watch: ChildWatch) -> None:
        if self._tl_children is None:
            self._tl_children = {}
        self._tl_children[id(watch)] = watch

    def _tl_forget_child(self, watch: ChildWatch) -> None:
        if self._tl_children is not None:
            self._tl_children.pop(id(watch), None)

    def close(self) -> None:
        super().close()  # type: ignore[misc]
        # Only once the loop really closed (close() refuses a running loop): the reactor is gone,
        # so each still-watched child gets its pidfd closed and a reaper instead.
        if self.is_closed() and self._tl_children:
            watches, self._tl_children = list(self._tl_children.values()), None
            for watch in watches:
                watch.detach()

    # -- pipes --

    def _make_read_pipe_transport(
        self,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> ReadPipeTransport:
        from ._pipes import ReadPipeTransport  # on first use: see the module docstring

        return ReadPipeTransport(self, pipe, protocol, waiter, extra)

    def _make_write_pipe_transport(
        self,
        pipe: Any,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> WritePipeTransport:
        from ._pipes import WritePipeTransport  # on first use: see the module docstring

        return WritePipeTransport(self, pipe, protocol, waiter, extra)

    async def connect_read_pipe(
        self, protocol_factory: Callable[[], Any], pipe: Any
    ) -> tuple[ReadPipeTransport, Any]:
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = self._make_read_pipe_transport(pipe, protocol, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        if self._debug:
            logger.debug("Read pipe %r connected: (%r, %r)", pipe.fileno(), transport, protocol)
        return transport, protocol

    async def connect_write_pipe(
        self, protocol_factory: Callable[[], Any], pipe: Any
    ) -> tuple[WritePipeTransport, Any]:
        protocol = protocol_factory()
        waiter = self.create_future()
        transport = self._make_write_pipe_transport(pipe, protocol, waiter)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        if self._debug:
            logger.debug("Write pipe %r connected: (%r, %r)", pipe.fileno(), transport, protocol)
        return transport, protocol

    # -- subprocesses --

    def _log_subprocess(self, msg: str, stdin: Any, stdout: Any, stderr: Any) -> None:
        info = [msg]
        if stdin is not None:
            info.append(f"stdin={_format_pipe(stdin)}")
        if stdout is not None and stderr == subprocess.STDOUT:
            info.append(f"stdout=stderr={_format_pipe(stdout)}")
        else:
            if stdout is not None:
                info.append(f"stdout={_format_pipe(stdout)}")
            if stderr is not None:
                info.append(f"stderr={_format_pipe(stderr)}")
        logger.debug(" ".join(info))

    async def _make_subprocess_transport(
        self,
        protocol: Any,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        extra: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> SubprocessTransport:
        from ._subprocess import SubprocessTransport, start_popen_off_loop  # see module docstring

        proc = None
        if kwargs.get("preexec_fn") is not None:
            # Popen returns only after preexec_fn ran in the child: keep the loop serving meanwhile
            # (asyncio and uvloop block here).
            proc = await start_popen_off_loop(
                self, args, shell, stdin, stdout, stderr, bufsize, kwargs
            )
        waiter = self.create_future()
        transport = SubprocessTransport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize,
            waiter=waiter, extra=extra, _popen=proc, **kwargs,
        )  # fmt: skip
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            # Cancelled (or the pipes failed) before the caller got the transport: nobody else
            # can clean up, so kill the child and wait until it is reaped.
            transport.close()
            await transport._wait()
            raise
        return transport

    async def subprocess_shell(
        self,
        protocol_factory: Callable[[], Any],
        cmd: str | bytes,
        *,
        stdin: Any = subprocess.PIPE,
        stdout: Any = subprocess.PIPE,
        stderr: Any = subprocess.PIPE,
        universal_newlines: bool = False,
        shell: bool = True,
        bufsize: int = 0,
        encoding: Any = None,
        errors: Any = None,
        text: Any = None,
        **kwargs: Any,
    ) -> tuple[SubprocessTransport, Any]:
        if not isinstance(cmd, (bytes, str)):
            raise ValueError("cmd must be a string")
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if not shell:
            raise ValueError("shell must be True")
        _check_text_args(universal_newlines, bufsize, text, encoding, errors)

        protocol = protocol_factory()
        debug_log = None
        if self._debug:
            # the command line only: arguments may hold secrets
            debug_log = f"run shell command {cmd!r}"
            self._log_subprocess(debug_log, stdin, stdout, stderr)
        transport = await self._make_subprocess_transport(
            protocol, cmd, True, stdin, stdout, stderr, bufsize, **kwargs
        )
        if self._debug and debug_log is not None:
            logger.info("%s: %r", debug_log, transport)
        return transport, protocol

    async def subprocess_exec(
        self,
        protocol_factory: Callable[[], Any],
        program: Any,
        *args: Any,
        stdin: Any = subprocess.PIPE,
        stdout: Any = subprocess.PIPE,
        stderr: Any = subprocess.PIPE,
        universal_newlines: bool = False,
        shell: bool = False,
        bufsize: int = 0,
        encoding: Any = None,
        errors: Any = None,
        text: Any = None,
        **kwargs: Any,
    ) -> tuple[SubprocessTransport, Any]:
        if universal_newlines:
            raise ValueError("universal_newlines must be False")
        if shell:
            raise ValueError("shell must be False")
        _check_text_args(universal_newlines, bufsize, text, encoding, errors)

        popen_args = (program,) + args
        protocol = protocol_factory()
        debug_log = None
        if self._debug:
            debug_log = f"execute program {program!r}"
            self._log_subprocess(debug_log, stdin, stdout, stderr)
        transport = await self._make_subprocess_transport(
            protocol, popen_args, False, stdin, stdout, stderr, bufsize, **kwargs
        )
        if self._debug and debug_log is not None:
            logger.info("%s: %r", debug_log, transport)
        return transport, protocol
