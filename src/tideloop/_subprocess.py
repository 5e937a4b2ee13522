"""SubprocessTransport on ``subprocess.Popen``; child exits noticed without watchers or SIGCHLD.

Invariant: every child is reaped exactly once, by its own transport's watch (a pidfd on the loop's
reactor, or one waiter thread), and its status is copied into the Popen object at reaping time;
``connection_lost`` runs only after ``process_exited`` and every ``pipe_connection_lost``.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import threading
import warnings
from asyncio.log import logger
from typing import Any

__all__ = ["SubprocessTransport", "ChildWatch", "pidfd_supported"]

# No module state changes after import: the capability probes below hold in a forked child too,
# and every watch lives on its loop, so nothing needs resetting via os.register_at_fork.


def _probe_pidfd() -> bool:
    # pidfd_open exists since Linux 5.3; seccomp profiles (containers) may still refuse it.
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


def _probe_waitid_pidfd() -> bool:
    # waitid(P_PIDFD) (Linux 5.4) reaps by pidfd, which cannot hit a recycled pid.
    if not hasattr(os, "P_PIDFD") or not _PIDFD:
        return False
    fd = os.pidfd_open(os.getpid())
    try:
        os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        return True  # the call is understood; we are just not our own parent
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


_PIDFD = _probe_pidfd()
_WAITID_PIDFD = _probe_waitid_pidfd()
_PIDFD_SEND_SIGNAL = _PIDFD and hasattr(signal, "pidfd_send_signal")
# Where waitid() exists the waiter thread only *observes* the exit (WNOWAIT) and the loop thread
# reaps, so the thread never races Popen.poll() for the status.
_WAITID_NOWAIT = hasattr(os, "waitid") and hasattr(os, "WNOWAIT")

# Tests flip this to exercise the portable path on Linux.
use_pidfd = _PIDFD


def pidfd_supported() -> bool:
    return _PIDFD


def _exitcode_from_waitid(res: Any) -> int:
    if res.si_code == os.CLD_EXITED:
        return int(res.si_status)
    return -int(res.si_status)  # CLD_KILLED / CLD_DUMPED carry the signal number


def _reap_nohang(pid: int, pidfd: int, proc: Any) -> int | None:
    """Collect an exited child's status without blocking; None while it still runs."""
    if proc.returncode is not None:
        # Popen.poll()/wait() in user code (or close()) reaped it first.
        return int(proc.returncode)
    try:
        if pidfd >= 0 and _WAITID_PIDFD:
            res = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
            if res is None:
                return None
            code = _exitcode_from_waitid(res)
        else:
            wpid, status = os.waitpid(pid, os.WNOHANG)
            if wpid == 0:
                return None
            code = os.waitstatus_to_exitcode(status)
    except ChildProcessError:
        if proc.returncode is not None:
            return int(proc.returncode)
        # Someone else reaped it (SIGCHLD set to SIG_IGN, a waitpid(-1) elsewhere): the status
        # is gone. asyncio reports 255 in this case; so do we.
        logger.warning(
            "child process pid %d exit status already read:  will report returncode 255", pid
        )
        code = 255
    # Record it in the Popen at once: a later Popen.poll()/kill() must not wait on or signal a pid
    # the kernel may already have handed to another process.
    proc.returncode = code
    return code


def _reap_blocking(pid: int, proc: Any) -> None:
    """Block until the child exits and reap it (threads only), so it never stays a zombie."""
    if proc.returncode is not None:
        return
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return
    if proc.returncode is None:
        proc.returncode = os.waitstatus_to_exitcode(status)


def _start_quiet_thread(target: Any, args: tuple[Any, ...], name: str) -> None:
    """Start a daemon thread with every signal blocked.

    The kernel may deliver a process-directed signal (Ctrl-C) to any thread that does not block
    it; Python runs handlers in the main thread only, which would then sleep on in its poll until
    something else woke it. Blocked here, the signal interrupts the main thread's poll instead.
    The mask is set around start() so the thread is born with it (no window).
    """
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    if not hasattr(signal, "pthread_sigmask"):
        thread.start()
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class ChildWatch:
    """Notices one child's exit and hands its code to ``transport._process_exited``.

    pidfd mode: the pidfd sits on the loop's reactor; readable means exited, the loop thread then
    reaps (no thread, no signal). Thread mode: one daemon thread blocks in waitid/waitpid and wakes
    the loop with call_soon_threadsafe. Either way the loop may run in any thread.
    """

    __slots__ = ("_loop", "_transport", "_proc", "pid", "pidfd", "_lock", "_state", "_code")

    # states of the thread mode, guarded by _lock
    _WAITING, _POSTED, _DONE, _DETACHED = range(4)

    def __init__(self, loop: Any, transport: SubprocessTransport, proc: Any) -> None:
        self._loop = loop
        self._transport: SubprocessTransport | None = transport
        self._proc = proc
        self.pid: int = proc.pid
        self.pidfd = -1
        self._lock: threading.Lock | None = None
        self._state = self._WAITING
        self._code: int | None = None  # thread mode without WNOWAIT: the status the thread reaped
        if use_pidfd:
            try:
                self.pidfd = os.pidfd_open(self.pid)
            except OSError:
                # ESRCH (already reaped by someone else) or EMFILE: the thread copes with both
                self.pidfd = -1
        if self.pidfd >= 0:
            loop._add_reader(self.pidfd, self._pidfd_ready)
        else:
            self._lock = threading.Lock()
            _start_quiet_thread(self._thread_wait, (), f"tideloop-waitpid-{self.pid}")

    # -- pidfd mode --

    def _pidfd_ready(self) -> None:
        code = _reap_nohang(self.pid, self.pidfd, self._proc)
        if code is None:
            return  # spurious wake-up: keep waiting
        self._loop._remove_reader(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = -1
        self._deliver(code)

    # -- thread mode --

    def _thread_wait(self) -> None:
        code: int | None = None
        try:
            if _WAITID_NOWAIT:
                os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            else:
                _, status = os.waitpid(self.pid, 0)
                code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            pass  # reaped elsewhere; _reap_nohang on the loop thread sorts it out
        assert self._lock is not None
        with self._lock:
            self._code = code
            if self._state == self._WAITING:
                try:
                    self._loop.call_soon_threadsafe(self._thread_exited, code)
                    self._state = self._POSTED
                    return
                except RuntimeError:  # the loop closed under us
                    self._state = self._DETACHED
        if code is None:
            _reap_blocking(self.pid, self._proc)
        elif self._proc.returncode is None:
            self._proc.returncode = code

    def _thread_exited(self, code: int | None) -> None:
        assert self._lock is not None
        with self._lock:
            if self._state != self._POSTED:
                return
            self._state = self._DONE
        if code is None:
            code = _reap_nohang(self.pid, -1, self._proc)
            if code is None:  # cannot happen after WNOWAIT reported the exit; be safe
                code = 255
        elif self._proc.returncode is None:
            self._proc.returncode = code
        self._deliver(code)

    # -- common --

    def _deliver(self, code: int) -> None:
        transport = self._transport
        self._transport = None
        unregister = getattr(self._loop, "_tl_forget_child", None)
        if unregister is not None:
            unregister(self)
        if transport is not None:
            # One iteration later, as asyncio does: output read in this iteration reaches the
            # protocol before process_exited().
            self._loop.call_soon(transport._process_exited, code)

    def send_signal(self, sig: int) -> bool:
        """Signal through the pidfd (immune to pid reuse); False if there is no pidfd."""
        if self.pidfd < 0 or not _PIDFD_SEND_SIGNAL:
            return False
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass
        return True

    def detach(self) -> None:
        """The loop is closing: release the pidfd and make sure the child is still reaped."""
        self._transport = None
        if self.pidfd >= 0:
            pidfd, self.pidfd = self.pidfd, -1
            code = _reap_nohang(self.pid, pidfd, self._proc)
            os.close(pidfd)  # the reactor is gone or going; no need to unregister
            if code is None:
                _start_quiet_thread(
                    _reap_blocking, (self.pid, self._proc), f"tideloop-reap-{self.pid}"
                )
            return
        if self._lock is None:
            return
        with self._lock:
            state, self._state = self._state, self._DETACHED
        if state == self._POSTED:
            # the exit was posted but the loop will never run the callback: finish here
            if self._code is None:
                _reap_nohang(self.pid, -1, self._proc)
            elif self._proc.returncode is None:
                self._proc.returncode = self._code
        # _WAITING: the thread sees _DETACHED when the child exits and reaps it itself


def popen(
    args: Any, shell: bool, stdin: Any, stdout: Any, stderr: Any, bufsize: int, kwargs: Any
) -> Any:
    # Looked up on the module at call time so that mock.patch('subprocess.Popen') works.
    return subprocess.Popen(
        args,
        shell=shell,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        universal_newlines=False,
        bufsize=bufsize,
        **kwargs,
    )


def _discard_child(proc: Any) -> None:
    """A child nobody will ever see (its creator was cancelled): kill it, reap it, close pipes."""
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    try:
        proc.kill()
    except OSError:
        pass
    _start_quiet_thread(_reap_blocking, (proc.pid, proc), f"tideloop-reap-{proc.pid}")


async def start_popen_off_loop(
    loop: Any, args: Any, shell: bool, stdin: Any, stdout: Any, stderr: Any, bufsize: int,
    kwargs: Any,
) -> Any:  # fmt: skip
    """Popen in a helper thread, for preexec_fn.

    Popen returns only once the child has exec'd, and with a preexec_fn that is after the
    function ran in the child (and after a full fork(): vfork is off then). Running it here keeps
    the loop serving meanwhile. If the caller is cancelled, or the loop closes, before Popen
    returns, the child is killed and reaped once it exists, so it never leaks.
    """
    fut = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if fut.cancelled():
            if ok:
                _discard_child(value)
        elif ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def body() -> None:
        try:
            proc = popen(args, shell, stdin, stdout, stderr, bufsize, kwargs)
            result: tuple[bool, Any] = (True, proc)
        except BaseException as exc:
            result = (False, exc)
        try:
            loop.call_soon_threadsafe(deliver, *result)
        except RuntimeError:  # the loop closed meanwhile
            if result[0]:
                _discard_child(result[1])

    # Not a quiet thread: the child inherits this thread's signal mask across exec.
    threading.Thread(target=body, name="tideloop-popen", daemon=True).start()
    return await fut


class _PipeProto(asyncio.Protocol):
    """Connects one of the child's pipes (fd 0, 1 or 2) to the SubprocessTransport."""

    def __init__(self, proc: SubprocessTransport, fd: int) -> None:
        self.proc: SubprocessTransport | None = proc
        self.fd = fd
        self.pipe: Any = None
        self.disconnected = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.pipe = transport

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} fd={self.fd} pipe={self.pipe!r}>"

    def connection_lost(self, exc: BaseException | None) -> None:
        self.disconnected = True
        assert self.proc is not None
        self.proc._pipe_connection_lost(self.fd, exc)
        self.proc = None

    def pause_writing(self) -> None:
        assert self.proc is not None
        self.proc._protocol.pause_writing()

    def resume_writing(self) -> None:
        assert self.proc is not None
        self.proc._protocol.resume_writing()

    def data_received(self, data: bytes) -> None:
        assert self.proc is not None
        self.proc._pipe_data_received(self.fd, data)


class SubprocessTransport(asyncio.SubprocessTransport):
    """A child process started by ``subprocess.Popen`` with every POSIX Popen argument."""

    def __init__(
        self,
        loop: Any,
        protocol: Any,
        args: Any,
        shell: bool,
        stdin: Any,
        stdout: Any,
        stderr: Any,
        bufsize: int,
        waiter: asyncio.Future[Any] | None = None,
        extra: dict[str, Any] | None = None,
        _popen: Any = None,
        **kwargs: Any,
    ) -> None:
        info: dict[str, Any] = dict(extra) if extra else {}
        super().__init__(info)
        self._closed = False
        self._protocol: Any = protocol
        self._loop: Any = loop
        self._proc: Any = None
        self._pid: int | None = None
        self._returncode: int | None = None
        self._exit_waiters: list[asyncio.Future[Any]] | None = []
        self._pending_calls: collections.deque[Any] | None = collections.deque()
        self._pipes: dict[int, _PipeProto | None] = {}
        self._finished = False
        self._watch: ChildWatch | None = None

        if stdin == subprocess.PIPE:
            self._pipes[0] = None
        if stdout == subprocess.PIPE:
            self._pipes[1] = None
        if stderr == subprocess.PIPE:
            self._pipes[2] = None

        try:
            # _popen: already started off the loop thread (see start_popen_off_loop)
            self._proc = (
                _popen
                if _popen is not None
                else popen(args, shell, stdin, stdout, stderr, bufsize, kwargs)
            )
        except BaseException:
            self.close()
            raise

        self._pid = self._proc.pid
        info["subprocess"] = self._proc

        if loop.get_debug():
            program = args if isinstance(args, (bytes, str)) else args[0]
            logger.debug("process %r created: pid %s", program, self._pid)

        # Watch before anything else can fail, so the child is always reaped.
        self._watch = ChildWatch(loop, self, self._proc)
        register = getattr(loop, "_tl_remember_child", None)
        if register is not None:
            register(self._watch)
        loop.create_task(self._connect_pipes(waiter))

    async def _connect_pipes(self, waiter: asyncio.Future[Any] | None) -> None:
        # Through the loop's public connect_*_pipe, as asyncio does, so a loop subclass (or a test
        # wrapping them) sees every pipe. Pipe events that arrive before the protocol's
        # connection_made are queued in _pending_calls and replayed right after it.
        proc = self._proc
        loop = self._loop
        try:
            if proc.stdin is not None:
                _, pipe = await loop.connect_write_pipe(lambda: _PipeProto(self, 0), proc.stdin)
                self._pipes[0] = pipe
            if proc.stdout is not None:
                _, pipe = await loop.connect_read_pipe(lambda: _PipeProto(self, 1), proc.stdout)
                self._pipes[1] = pipe
            if proc.stderr is not None:
                _, pipe = await loop.connect_read_pipe(lambda: _PipeProto(self, 2), proc.stderr)
                self._pipes[2] = pipe

            assert self._pending_calls is not None
            loop.call_soon(self._protocol.connection_made, self)
            for callback, data in self._pending_calls:
                loop.call_soon(callback, *data)
            self._pending_calls = None
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if waiter is not None and not waiter.cancelled():
                waiter.set_exception(exc)
        else:
            if waiter is not None and not waiter.cancelled():
                waiter.set_result(None)

    def __repr__(self) -> str:
        info = [self.__class__.__name__]
        if self._closed:
            info.append("closed")
        if self._pid is not None:
            info.append(f"pid={self._pid}")
        if self._returncode is not None:
            info.append(f"returncode={self._returncode}")
        elif self._pid is not None:
            info.append("running")
        else:
            info.append("not started")

        stdin = self._pipes.get(0)
        if stdin is not None:
            info.append(f"stdin={stdin.pipe}")
        stdout = self._pipes.get(1)
        stderr = self._pipes.get(2)
        if stdout is not None and stderr is stdout:
            info.append(f"stdout=stderr={stdout.pipe}")
        else:
            if stdout is not None:
                info.append(f"stdout={stdout.pipe}")
            if stderr is not None:
                info.append(f"stderr={stderr.pipe}")
        return "<{}>".format(" ".join(info))

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        for proto in self._pipes.values():
            if proto is None or proto.pipe is None:
                continue
            proto.pipe.close()

        # Kill only a child that is still running: poll() also catches one that exited but whose
        # exit we have not processed yet (and records its status for our watch).
        if self._proc is not None and self._returncode is None and self._proc.poll() is None:
            if self._loop is not None and self._loop.get_debug():
                logger.warning("Close running child process: kill %r", self)
            try:
                self._proc.kill()
            except (ProcessLookupError, PermissionError):
                # already gone, or a setuid child we may not signal
                pass
            # keep _proc: the exit still has to be delivered

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if not self._closed:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self.close()

    def get_pid(self) -> int | None:  # type: ignore[override]
        return self._pid

    def get_returncode(self) -> int | None:  # type: ignore[override]
        return self._returncode

    def get_pipe_transport(self, fd: int) -> Any:
        proto = self._pipes.get(fd)
        return None if proto is None else proto.pipe

    def _check_proc(self) -> None:
        if self._proc is None:
            raise ProcessLookupError()

    def send_signal(self, signal: int) -> None:
        self._check_proc()
        watch = self._watch
        if watch is not None and watch.send_signal(signal):
            return
        if self._proc.returncode is not None:
            return  # reaped: the pid may already belong to someone else
        try:
            os.kill(self._proc.pid, signal)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    # -- events from the pipes and the watch, funnelled through the loop in asyncio's order --

    def _call(self, cb: Any, *data: Any) -> None:
        if self._pending_calls is not None:
            self._pending_calls.append((cb, data))
        else:
            self._loop.call_soon(cb, *data)

    def _pipe_connection_lost(self, fd: int, exc: BaseException | None) -> None:
        self._call(self._protocol.pipe_connection_lost, fd, exc)
        self._try_finish()

    def _pipe_data_received(self, fd: int, data: bytes) -> None:
        self._call(self._protocol.pipe_data_received, fd, data)

    def _process_exited(self, returncode: int) -> None:
        assert returncode is not None, returncode
        assert self._returncode is None, self._returncode
        if self._loop.get_debug():
            logger.info("%r exited with return code %r", self, returncode)
        self._returncode = returncode
        self._watch = None
        if self._proc.returncode is None:
            self._proc.returncode = returncode
        self._call(self._protocol.process_exited)
        self._try_finish()

    async def _wait(self) -> int:
        """Wait for the child to exit and every pipe to close; return the exit code."""
        if self._returncode is not None:
            return self._returncode
        waiter = self._loop.create_future()
        assert self._exit_waiters is not None
        self._exit_waiters.append(waiter)
        return await waiter  # type: ignore[no-any-return]

    def _try_finish(self) -> None:
        assert not self._finished
        if self._returncode is None:
            return
        if all(p is not None and p.disconnected for p in self._pipes.values()):
            self._finished = True
            self._call(self._call_connection_lost, None)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            for waiter in self._exit_waiters or ():
                if not waiter.cancelled():
                    waiter.set_result(self._returncode)
            self._exit_waiters = None
            self._loop = None
            self._proc = None
            self._protocol = None
