"""Socket reads and writes for the stream transports' hot paths.

Invariant: results and errors are exactly socket.recv_into/send's (bytes read, bytes sent, the
same OSError subclasses, EINTR retried after running signal handlers). Compiled, they call
recv(2)/send(2) on the fd directly, without releasing the GIL: the sockets are non-blocking, so
the call never waits, and skipping the GIL hand-off and argument parsing is most of their cost.
"""

from __future__ import annotations

from typing import Any

try:
    import cython
except ImportError:  # pragma: no cover - interpreted without Cython installed
    from . import _cython_shim as cython  # type: ignore[no-redef]

if cython.compiled:
    from cython.cimports.cpython.bytes import (  # type: ignore[import-not-found]
        PyBytes_AS_STRING,
        PyBytes_FromStringAndSize,
        PyBytes_GET_SIZE,
    )
    from cython.cimports.cpython.exc import (  # type: ignore[import-not-found]
        PyErr_CheckSignals,
        PyErr_SetFromErrno,
    )
    from cython.cimports.libc.errno import EINTR, errno  # type: ignore[import-not-found]
    from cython.cimports.tideloop._sockio_sys import (  # type: ignore[import-not-found]
        MSG_NOSIGNAL,
        recv,
        send,
    )


def recv_bytes(sock: Any, fd: int, view: Any) -> bytes:
    """Up to 256 KiB from the socket as bytes: b"" at EOF, BlockingIOError if none is there.

    Interpreted, it reads into ``view`` (the loop's reused buffer) and copies out what arrived.
    """
    if cython.compiled:
        while True:
            # _read_buf and READ_SIZE are C declarations in _sockio.pxd.
            n = recv(fd, _read_buf, READ_SIZE, 0)  # type: ignore[name-defined]  # noqa: F821
            if n >= 0:
                return PyBytes_FromStringAndSize(  # type: ignore[no-any-return]
                    _read_buf, n)  # type: ignore[name-defined]  # noqa: F821
            if errno != EINTR:
                PyErr_SetFromErrno(OSError)  # raises: BlockingIOError, ConnectionResetError...
            PyErr_CheckSignals()
    n = sock.recv_into(view)
    return bytes(view[:n])


def send_bytes(sock: Any, fd: int, data: Any) -> int:
    """socket.send(data): how many bytes the kernel took (BlockingIOError if none)."""
    if cython.compiled:
        if type(data) is bytes:
            while True:
                n = send(fd, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), MSG_NOSIGNAL)
                if n >= 0:
                    return n
                if errno != EINTR:
                    PyErr_SetFromErrno(OSError)
                PyErr_CheckSignals()
    # bytearray and memoryview (rarer here: the buffered path uses sendmsg): the socket method.
    return int(sock.send(data))
