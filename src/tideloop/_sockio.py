"""Socket reads and writes for the stream transports' hot paths.

Invariant: results and errors are exactly socket.recv_into/send's (bytes read, bytes sent, the
same OSError subclasses, EINTR retried after running signal handlers). Compiled, they call
recv(2)/send(2) on the fd directly, without releasing the GIL: the sockets are non-blocking, so
the call never waits, and skipping the GIL hand-off and argument parsing is most of their cost.

``hint_allocator`` runs once per process, before the first socket transport or ``sock_*`` call of
any loop (see its docstring for why).
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
    from cython.cimports.libc.errno import (  # type: ignore[import-not-found]
        EAGAIN,
        EINTR,
        errno,
    )
    from cython.cimports.tideloop._sockio_sys import (  # type: ignore[import-not-found]
        MSG_DONTWAIT,
        MSG_NOSIGNAL,
        recv,
        send,
        tl_recv_new_bytes,
    )


# Size of the block hint_allocator() allocates and frees; glibc's trim threshold becomes twice
# this. Measured on a Streams echo of 100 KiB messages over 10 connections: the heap top creeps up
# ~1.2 MiB before freed blocks are reused (a 1 MiB trim threshold still trimmed and re-faulted
# every few messages, 1.5 MiB and above never did); 2 MiB leaves room for more connections.
ALLOC_HINT_SIZE = 1024 * 1024
_alloc_hinted = False


def hint_allocator() -> None:
    """Tell glibc's malloc, once per process, that this process moves large buffers.

    Why: glibc gives memory at the top of the heap back to the kernel as soon as more than
    M_TRIM_THRESHOLD (128 KiB by default) is free there. A socket echoing 100 KiB messages
    allocates and frees ~100 KiB bytes objects (the received data, a StreamReader's buffer, the
    chunks read from it) every message, so the heap top shrinks and regrows each time and every
    regrowth page-faults ~25 fresh zeroed pages: measured, that was two thirds of the server's CPU
    per request for a Streams echo of 100 KiB. glibc raises both thresholds by itself the first
    time the process frees an mmap()ed block (mmap threshold := its size, trim threshold := twice
    it), which a process handling large messages does sooner or later anyway; freeing one such
    block now makes that happen before the first message instead of never (no single allocation
    in that echo exceeds the default 128 KiB). Cost: up to 2 * ALLOC_HINT_SIZE of freed memory may
    stay mapped at the heap top. On other allocators this is just a short-lived allocation.
    """
    global _alloc_hinted
    if _alloc_hinted:
        return
    _alloc_hinted = True
    # bytes(n) is calloc(): served by mmap() and never touched, so the hint costs two syscalls.
    block = bytes(ALLOC_HINT_SIZE)
    del block


# Reads at least this large switch the next read to a new bytes object of READ_SIZE (no copy);
# smaller ones switch back to the static buffer. Measured with callgrind on a 10 KiB echo, the
# malloc() + in-place realloc() of the direct read cost ~300 instructions more than the copying
# path's allocation, while the copy itself is a 10 KiB memcpy; for 100 KiB the copy was ~7% of
# the server's CPU per request. Small reads (HTTP requests, 1 KiB echoes) keep the copy.
DIRECT_MIN = 4 * 1024
_recv_direct = False


def recv_bytes(sock: Any, fd: int, view: Any) -> bytes:
    """Up to 256 KiB from the socket as bytes: b"" at EOF, BlockingIOError if none is there.

    Compiled, it uses ``fd`` only (callers may pass None for the others) and predicts the size
    from the previous read (of any socket: workloads are rarely mixed within a few reads): after
    a large read it receives straight into a new bytes object, otherwise into a static buffer
    and copies what arrived. Interpreted, it reads into ``view``
    (the loop's reused buffer) and copies out what arrived.
    """
    global _recv_direct
    if cython.compiled:
        if _recv_direct:
            data = tl_recv_new_bytes(fd, READ_SIZE, 0, 0)  # type: ignore[name-defined]  # noqa: F821
            _recv_direct = len(data) >= DIRECT_MIN
            return data
        while True:
            # _read_buf and READ_SIZE are C declarations in _sockio.pxd.
            n = recv(fd, _read_buf, READ_SIZE, 0)  # type: ignore[name-defined]  # noqa: F821
            if n >= 0:
                _recv_direct = n >= DIRECT_MIN
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


def try_recv(sock: Any, n: int) -> bytes | None:
    """sock.recv(n) for sock_recv, but None where it would raise BlockingIOError.

    Only for an exact socket.socket (its methods cannot be patched per instance). Compiled, it is
    recv(2) on the fd with MSG_DONTWAIT, so even a socket left blocking by mistake never blocks
    while holding the GIL; anything but a positive int size goes to the socket method for its
    exact errors.
    """
    if cython.compiled:
        if type(n) is int and n > 0:
            return tl_recv_new_bytes(  # type: ignore[no-any-return]
                sock.fileno(), n, MSG_DONTWAIT, 1)
    try:
        return sock.recv(n)  # type: ignore[no-any-return]
    except (BlockingIOError, InterruptedError):
        return None


def try_send(sock: Any, data: Any) -> int:
    """sock.send(data) for sock_sendall, but 0 where it would raise BlockingIOError."""
    if cython.compiled:
        if type(data) is bytes:
            fd = sock.fileno()
            while True:
                n = send(fd, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                         MSG_NOSIGNAL | MSG_DONTWAIT)
                if n >= 0:
                    return n
                if errno == EAGAIN:  # == EWOULDBLOCK on Linux, the BSDs and macOS
                    return 0
                if errno != EINTR:
                    PyErr_SetFromErrno(OSError)
                PyErr_CheckSignals()
    try:
        return int(sock.send(data))
    except (BlockingIOError, InterruptedError):
        return 0
