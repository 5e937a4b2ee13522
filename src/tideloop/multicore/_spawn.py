"""Starting, watching and reaping worker processes (fresh interpreters, fork+exec, two pipes).

Invariant: every process started here stays in ``_LIVE`` until it is reaped; its exit is seen
through a pidfd on the caller's loop (pipe EOF is the second signal), and at interpreter exit any
process still in ``_LIVE`` is SIGKILLed and reaped, so no worker outlives its parent by our doing.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

IMPORTING_MAIN = False  # set in a worker while it re-imports the parent's __main__
_LIVE: set[subprocess.Popen[bytes]] = set()
_SRC_DIR = str(Path(__file__).resolve().parents[2])

_BOOT_CODE = (
    "import sys\n"
    "sys.path.insert(0, {src!r})\n"
    "from tideloop.multicore._worker import main\n"
    "main({rfd}, {wfd})\n"
)


def preparation_data() -> dict[str, Any]:
    """What a fresh interpreter needs to unpickle the parent's functions (as multiprocessing's).

    The parent's ``__main__`` is re-imported in the worker under the name ``__mp_main__`` (so its
    ``if __name__ == "__main__"`` block does not run), which makes functions defined in a script
    picklable by reference.
    """
    cwd = os.getcwd()
    sys_path = [cwd if p == "" else p for p in sys.path]
    data: dict[str, Any] = {"sys_path": sys_path, "sys_argv": list(sys.argv), "dir": cwd}
    main = sys.modules.get("__main__")
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    if spec_name is not None:
        data["init_main_from_name"] = spec_name
    else:
        main_path = getattr(main, "__file__", None)
        if main_path is not None:
            data["init_main_from_path"] = os.path.normpath(os.path.join(cwd, main_path))
    return data


class ProcessHandle:
    """One child process plus the parent's ends of its two pipes (``to_child``, ``from_child``)."""

    def __init__(self, pass_fds: Iterable[int] = ()) -> None:
        if IMPORTING_MAIN:
            raise RuntimeError(
                "a worker process tried to start worker processes while importing the main "
                "module: guard the code that starts the Pool or run_workers with "
                "`if __name__ == '__main__':`"
            )
        child_r, to_child = os.pipe()
        from_child, child_w = os.pipe()
        try:
            code = _BOOT_CODE.format(src=_SRC_DIR, rfd=child_r, wfd=child_w)
            # Same interpreter flags (-X dev, -O, warnings) as the parent, as multiprocessing does.
            flags: list[str] = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
            self.proc = subprocess.Popen(
                [sys.executable, *flags, "-c", code],
                pass_fds=(child_r, child_w, *pass_fds),
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except BaseException:
            for fd in (child_r, to_child, from_child, child_w):
                os.close(fd)
            raise
        os.close(child_r)
        os.close(child_w)
        _LIVE.add(self.proc)
        self.pid = self.proc.pid
        self.to_child = to_child
        self.from_child = from_child
        self.returncode: int | None = None
        self._pidfd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poll_handle: asyncio.TimerHandle | None = None
        self._on_exit: Callable[[int], None] | None = None
        self._exit_waiters: list[asyncio.Future[int]] = []

    def watch(self, loop: asyncio.AbstractEventLoop, on_exit: Callable[[int], None]) -> None:
        """Call ``on_exit(returncode)`` on ``loop`` once the process has exited and been reaped."""
        self._loop = loop
        self._on_exit = on_exit
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                self._pidfd = pidfd_open(self.pid)
            except OSError:
                self._pidfd = None
        if self._pidfd is not None:
            loop.add_reader(self._pidfd, self._check_exit)
        else:
            # No pidfd (old kernel, not Linux): pipe EOF calls check_soon(); this slow poll is
            # only a backstop for a child that closed its pipe yet keeps running.
            self._poll_handle = loop.call_later(0.5, self._poll)

    def _poll(self) -> None:
        self._poll_handle = None
        if not self._check_exit() and self._loop is not None:
            self._poll_handle = self._loop.call_later(0.5, self._poll)

    def check_soon(self) -> None:
        """The pipe hit EOF: the process is exiting; reap it promptly even without a pidfd."""
        if self._pidfd is None and self._loop is not None and self.returncode is None:
            if self._poll_handle is not None:
                self._poll_handle.cancel()
            self._poll_handle = self._loop.call_later(0.005, self._poll)

    def _check_exit(self) -> bool:
        if self.returncode is not None:
            return True
        rc = self.proc.poll()
        if rc is None:
            return False
        self._reaped(rc)
        return True

    def _reaped(self, rc: int) -> None:
        self.returncode = rc
        _LIVE.discard(self.proc)
        self._unwatch()
        for fut in self._exit_waiters:
            if not fut.done():
                fut.set_result(rc)
        self._exit_waiters.clear()
        cb, self._on_exit = self._on_exit, None
        if cb is not None:
            cb(rc)

    def _unwatch(self) -> None:
        if self._pidfd is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if self._poll_handle is not None:
            self._poll_handle.cancel()
            self._poll_handle = None

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self, timeout: float | None = None) -> int | None:
        """Wait until reaped (needs ``watch``); None on timeout."""
        if self.returncode is not None:
            return self.returncode
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._exit_waiters.append(fut)
        if self._check_exit():
            return self.returncode
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None

    def reap_blocking(self) -> None:
        """Last resort outside a loop: kill and wait synchronously."""
        if self.returncode is None:
            self.kill()
            rc = self.proc.wait()
            self._reaped(rc)
        self._unwatch()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        if proc.poll() is None:
            try:
                proc.kill()
            except OSError:
                pass
            proc.wait()
        _LIVE.discard(proc)
