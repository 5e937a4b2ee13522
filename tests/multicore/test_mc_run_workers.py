"""run_workers: parent-bound sockets served by every worker, graceful stop, restarts."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mc_funcs as f
import pytest

import tideloop.multicore as mc
from tideloop.multicore import Worker, supervise_workers

HERE = Path(__file__).parent
SRC = str(Path(mc.__file__).resolve().parents[2])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, str(HERE), env.get("PYTHONPATH", "")])
    return env


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class _Lines:
    """Lines from a child's stdout with a deadline (a plain readline could block forever)."""

    def __init__(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.buf = b""
        self.deadline = time.monotonic() + timeout

    def next(self) -> str:
        while b"\n" not in self.buf:
            left = self.deadline - time.monotonic()
            ready = select.select([self.fd], [], [], max(left, 0))[0] if left > 0 else []
            chunk = os.read(self.fd, 4096) if ready else b""
            if not chunk:
                self.proc.kill()
                self.proc.wait()
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise AssertionError(f"no line from the child ({self.buf!r}); stderr:\n{err}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode().strip()


def _echo(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        return s.recv(4096)


@pytest.mark.parametrize("mode", ["shared", "reuse"])
def test_serves_on_every_worker_and_stops_on_sigterm(mode: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "mc_serve.py"), mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
        start_new_session=True,
    )
    try:
        lines = _Lines(proc, 20)
        serving = [lines.next().split() for _ in range(2)]
        assert sorted(int(s[1]) for s in serving) == [0, 1]
        pids = {int(s[2]) for s in serving}
        ports = {int(s[3]) for s in serving}
        assert len(ports) == 1, "every worker serves the same port"
        port = ports.pop()
        answered_by = set()
        for i in range(40):
            reply = _echo(port, b"ping %d" % i)
            assert reply.startswith(b"ping %d from " % i)
            answered_by.add(int(reply.rsplit(b" ", 1)[1]))
        assert answered_by <= pids
        proc.send_signal(signal.SIGTERM)
        rest = [lines.next() for _ in range(3)]
        assert sorted(rest[:2]) == ["stopped 0", "stopped 1"]
        assert rest[2] == "returned [None, None]"
        assert proc.wait(10) == 0
        assert not any(_alive(p) for p in pids)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def test_ctrl_c_stops_pool_workers(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "mc_pool_interrupt.py"), str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
        start_new_session=True,
    )
    try:
        lines = _Lines(proc, 20)
        deadline = lines.deadline
        pids = [int(p) for p in lines.next().split()[1:]]
        while not all((tmp_path / f"started-{i}").exists() for i in range(4)):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        # What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(15) == 130
        assert not any(_alive(p) for p in pids)
        # The workers cancelled their items (their `finally` ran) before they exited.
        assert all((tmp_path / f"cancelled-{i}").exists() for i in range(4))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


async def crash_first_time(worker: Worker) -> int:
    if worker.restarts == 0:
        os._exit(3)
    return worker.index * 10 + worker.restarts


async def fail_once_with_error(worker: Worker) -> int:
    if worker.restarts == 0:
        raise f.CustomError(f"worker {worker.index} failed")
    return worker.restarts


async def always_fail(worker: Worker) -> None:
    raise f.CustomError("no luck")


async def report_socket(worker: Worker) -> tuple[int, int]:
    return worker.index, worker.sockets[0].getsockname()[1]


def test_crashed_workers_are_restarted(run_tl: Any) -> None:
    results = run_tl(supervise_workers(crash_first_time, workers=1, handle_signals=False))
    assert results == [1]
    results = run_tl(supervise_workers(fail_once_with_error, workers=1, handle_signals=False))
    assert results == [1]


def test_no_restart_reraises_the_error(run_tl: Any) -> None:
    with pytest.raises(f.CustomError, match="no luck"):
        run_tl(supervise_workers(always_fail, workers=1, restart=False, handle_signals=False))


def test_reuse_port_gives_each_worker_its_socket_on_one_port(run_tl: Any) -> None:
    results = run_tl(
        supervise_workers(
            report_socket, workers=2, listen=[("127.0.0.1", 0)], reuse_port=True,
            handle_signals=False,
        )
    )
    assert [r[0] for r in results] == [0, 1]
    assert results[0][1] == results[1][1] != 0


class _Unloadable:
    """Pickles fine in the parent, cannot be unpickled in a worker."""

    def __reduce__(self) -> Any:
        return (f._explode, ())


async def needs_unloadable(worker: Worker, _: Any) -> None:
    return None


def test_a_main_that_cannot_load_is_fatal_not_restarted(run_tl: Any) -> None:
    import functools

    main = functools.partial(needs_unloadable, _=_Unloadable())
    with pytest.raises(RuntimeError, match="cannot load this in the parent"):
        run_tl(supervise_workers(main, workers=1, handle_signals=False))


async def exit_zero(worker: Worker) -> None:
    os._exit(0)


def test_exit_code_zero_is_an_end_not_a_crash(run_tl: Any) -> None:
    assert run_tl(supervise_workers(exit_zero, workers=1, handle_signals=False)) == [None]
