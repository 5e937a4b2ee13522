"""TLS over tideloop transports, built on the stdlib's ``asyncio.sslproto.SSLProtocol``.

Invariant: the TLS state machine is the stdlib's (memory BIOs, handshake/shutdown timeouts,
the app transport); tideloop only supplies the raw socket transport beneath it, which is
``_start_tls_compatible`` and forwards ``_force_close`` as the stdlib expects.
"""

from __future__ import annotations

from asyncio import sslproto
from typing import Any

from ._stream_transport import SocketTransport

try:
    import ssl
except ImportError:  # pragma: no cover
    ssl = None  # type: ignore[assignment]


class TLSMixin:
    def _make_ssl_transport(self, rawsock: Any, protocol: Any, sslcontext: Any, waiter: Any = None,
                            *, server_side: bool = False, server_hostname: Any = None,
                            extra: Any = None, server: Any = None,
                            ssl_handshake_timeout: Any = None,
                            ssl_shutdown_timeout: Any = None,
                            call_connection_made: bool = True) -> Any:
        ssl_protocol = sslproto.SSLProtocol(
            self,  # type: ignore[arg-type]  # the composed loop is an AbstractEventLoop
            protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=call_connection_made)
        SocketTransport(self, rawsock, ssl_protocol, extra=extra, server=server)
        return ssl_protocol._app_transport

    async def start_tls(self, transport: Any, protocol: Any, sslcontext: Any, *,
                        server_side: bool = False, server_hostname: Any = None,
                        ssl_handshake_timeout: Any = None,
                        ssl_shutdown_timeout: Any = None) -> Any:
        if ssl is None:
            raise RuntimeError("Python ssl module is not available")
        if not isinstance(sslcontext, ssl.SSLContext):
            raise TypeError(f"sslcontext is expected to be an instance of ssl.SSLContext, "
                            f"got {sslcontext!r}")
        if not getattr(transport, "_start_tls_compatible", False):
            raise TypeError(f"transport {transport!r} is not supported by start_tls()")
        waiter = self.create_future()  # type: ignore[attr-defined]
        ssl_protocol = sslproto.SSLProtocol(
            self,  # type: ignore[arg-type]  # the composed loop is an AbstractEventLoop
            protocol, sslcontext, waiter, server_side, server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=False)
        # Pause first, so no data reaches the TLS protocol before its connection_made().
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        conmade_cb = self.call_soon(  # type: ignore[attr-defined]
            ssl_protocol.connection_made, transport)
        resume_cb = self.call_soon(transport.resume_reading)  # type: ignore[attr-defined]
        try:
            await waiter
        except BaseException:
            transport.close()
            conmade_cb.cancel()
            resume_cb.cancel()
            raise
        return ssl_protocol._app_transport
