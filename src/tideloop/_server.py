"""Listening servers: the ``Server`` object and the loop's accept path.

Invariant: a serving listening socket keeps one sticky reader registration; it is removed only
by ``close()`` or, for ACCEPT_RETRY_DELAY seconds, when accept() hits EMFILE/ENFILE/ENOBUFS/ENOMEM.
Every transport created for a server is attached to it until its connection_lost has run.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import weakref
from asyncio import constants, events, exceptions, tasks, trsock
from typing import Any

from ._stream_transport import SocketTransport

logger = logging.getLogger("asyncio")

_PY312_1 = sys.version_info >= (3, 12, 1)
_RESOURCE_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Server(events.AbstractServer):
    """asyncio's Server API (3.11-3.13) over tideloop's accept path."""

    def __init__(self, loop: Any, sockets: list[Any], protocol_factory: Any, ssl_context: Any,
                 backlog: int, ssl_handshake_timeout: float | None,
                 ssl_shutdown_timeout: float | None = None) -> None:
        self._loop = loop
        self._sockets: list[Any] | None = sockets
        # Weak, so that an abandoned transport can still be collected and warn.
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()
        self._waiters: list[Any] | None = []
        self._protocol_factory = protocol_factory
        self._backlog = backlog
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._serving = False
        self._serving_forever_fut: Any = None

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} sockets={self.sockets!r}>"

    # 3.11/3.12 count anonymous attachments (``_attach()``); 3.13 tracks transports.
    _anonymous = 0

    @property
    def _active_count(self) -> int:
        return len(self._clients) + self._anonymous

    def _attach(self, transport: Any = None) -> None:
        assert self._sockets is not None
        if transport is None:
            self._anonymous += 1
        else:
            self._clients.add(transport)

    def _detach(self, transport: Any = None) -> None:
        if transport is None:
            assert self._anonymous > 0
            self._anonymous -= 1
        else:
            self._clients.discard(transport)
        if self._active_count == 0 and self._sockets is None:
            self._wakeup()

    def _wakeup(self) -> None:
        waiters = self._waiters
        self._waiters = None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _start_serving(self) -> None:
        if self._serving:
            return
        self._serving = True
        assert self._sockets is not None
        for sock in self._sockets:
            sock.listen(self._backlog)
            self._loop._start_serving(
                self._protocol_factory, sock, self._ssl_context, self, self._backlog,
                self._ssl_handshake_timeout, self._ssl_shutdown_timeout)

    def get_loop(self) -> Any:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[Any, ...]:
        if self._sockets is None:
            return ()
        return tuple(trsock.TransportSocket(s) for s in self._sockets)

    def close(self) -> None:
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        for sock in sockets:
            self._loop._stop_serving(sock)
        self._serving = False
        fut = self._serving_forever_fut
        if fut is not None and not fut.done():
            fut.cancel()
            self._serving_forever_fut = None
        if self._active_count == 0:
            self._wakeup()

    def close_clients(self) -> None:
        for transport in self._clients.copy():
            transport.close()

    def abort_clients(self) -> None:
        for transport in self._clients.copy():
            transport.abort()

    async def start_serving(self) -> None:
        self._start_serving()
        # One loop iteration, so that the accept readers are registered when this returns.
        await tasks.sleep(0)

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except exceptions.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        # 3.12.1 made this wait for both "closed" and "no connections left"; before, it
        # returned at once on a closed server. Each Python keeps its own behaviour.
        if self._waiters is None:
            return
        if not _PY312_1 and self._sockets is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter


class ServingMixin:
    """The loop's accept path, used by ``Server``."""

    _debug: bool

    def _start_serving(self, protocol_factory: Any, sock: Any, sslcontext: Any = None,
                       server: Any = None, backlog: int = 100,
                       ssl_handshake_timeout: float | None = constants.SSL_HANDSHAKE_TIMEOUT,
                       ssl_shutdown_timeout: float | None = constants.SSL_SHUTDOWN_TIMEOUT
                       ) -> None:
        fd = sock.fileno()
        if fd < 0:
            return  # closed while accepting was backing off (EMFILE): nothing to resume
        self._add_reader(  # type: ignore[attr-defined]
            fd, self._accept_connection, protocol_factory, sock, sslcontext,
            server, backlog, ssl_handshake_timeout, ssl_shutdown_timeout)

    def _stop_serving(self, sock: Any) -> None:
        cleanup = getattr(self, "_tl_unix_cleanup", None)
        path = None
        if cleanup and sock in cleanup:
            try:
                path = sock.getsockname()
            except OSError:
                path = None
        self._remove_reader(sock.fileno())  # type: ignore[attr-defined]
        sock.close()
        if cleanup and sock in cleanup:
            prev_ino = cleanup.pop(sock)
            if path:
                try:
                    if os.stat(path).st_ino == prev_ino:
                        os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as err:
                    logger.error("Unable to clean up listening UNIX socket %r: %r", path, err)

    def _accept_connection(self, protocol_factory: Any, sock: Any, sslcontext: Any = None,
                           server: Any = None, backlog: int = 100,
                           ssl_handshake_timeout: Any = constants.SSL_HANDSHAKE_TIMEOUT,
                           ssl_shutdown_timeout: Any = constants.SSL_SHUTDOWN_TIMEOUT) -> None:
        # Called once per readiness event; drain up to `backlog` pending connections.
        for _ in range(backlog):
            try:
                conn, addr = sock.accept()
                if self._debug:
                    logger.debug("%r got a new connection from %r: %r", server, addr, conn)
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRNOS:
                    # Linux keeps reporting the listening fd readable while we cannot
                    # accept: stop listening for a while instead of spinning.
                    self.call_exception_handler({  # type: ignore[attr-defined]
                        "message": "socket.accept() out of system resource",
                        "exception": exc,
                        "socket": trsock.TransportSocket(sock),
                    })
                    self._remove_reader(sock.fileno())  # type: ignore[attr-defined]
                    self.call_later(  # type: ignore[attr-defined]
                        constants.ACCEPT_RETRY_DELAY, self._start_serving, protocol_factory,
                        sock, sslcontext, server, backlog, ssl_handshake_timeout,
                        ssl_shutdown_timeout)
                    return
                raise  # the loop logs it and carries on
            extra = {"peername": addr}
            if sslcontext:
                self.create_task(self._accept_connection2(  # type: ignore[attr-defined]
                    protocol_factory, conn, extra, sslcontext, server,
                    ssl_handshake_timeout, ssl_shutdown_timeout))
            else:
                self._accept_plain(protocol_factory, conn, extra, server)

    def _accept_plain(self, protocol_factory: Any, conn: Any, extra: dict[str, Any],
                      server: Any) -> None:
        # Plain connections need nothing awaited, so no task per connection.
        try:
            protocol = protocol_factory()
            SocketTransport(self, conn, protocol, None, extra, server)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            conn.close()
            if self._debug:
                self.call_exception_handler({  # type: ignore[attr-defined]
                    "message": "Error on transport creation for incoming connection",
                    "exception": exc,
                })

    async def _accept_connection2(self, protocol_factory: Any, conn: Any, extra: dict[str, Any],
                                  sslcontext: Any = None, server: Any = None,
                                  ssl_handshake_timeout: Any = constants.SSL_HANDSHAKE_TIMEOUT,
                                  ssl_shutdown_timeout: Any = constants.SSL_SHUTDOWN_TIMEOUT
                                  ) -> None:
        protocol = None
        transport = None
        try:
            protocol = protocol_factory()
            waiter = self.create_future()  # type: ignore[attr-defined]
            if sslcontext:
                transport = self._make_ssl_transport(  # type: ignore[attr-defined]
                    conn, protocol, sslcontext, waiter=waiter, server_side=True, extra=extra,
                    server=server, ssl_handshake_timeout=ssl_handshake_timeout,
                    ssl_shutdown_timeout=ssl_shutdown_timeout)
            else:
                transport = SocketTransport(self, conn, protocol, waiter, extra, server)
            try:
                await waiter
            except BaseException:
                transport.close()
                waiter = None  # the exception would keep the protocol alive via a cycle
                raise
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if self._debug:
                context: dict[str, Any] = {
                    "message": "Error on transport creation for incoming connection",
                    "exception": exc,
                }
                if protocol is not None:
                    context["protocol"] = protocol
                if transport is not None:
                    context["transport"] = transport
                self.call_exception_handler(context)  # type: ignore[attr-defined]
