"""subprocess_exec / subprocess_shell and asyncio.subprocess.Process, on asyncio and tideloop."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pwd
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from .conftest import LoopFactory, is_tideloop, run

SH = "/bin/sh"
TRUE = "/bin/true"
CAT = "/bin/cat"


def _proc_stat(text: bytes) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, session, ...]."""
    s = text.decode()
    return s[s.rfind(")") + 2 :].split()


class RecordingProtocol(asyncio.SubprocessProtocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.events: list[Any] = []
        self.done = loop.create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("connection_made")

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if self.events[-1] != ("data", fd):  # collapse chunking, which is timing-dependent
            self.events.append(("data", fd))

    def pipe_connection_lost(self, fd: int, exc: BaseException | None) -> None:
        self.events.append(("pipe_lost", fd, exc))

    def process_exited(self) -> None:
        self.events.append(("exited", self.transport.get_returncode()))

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append(("lost", exc))
        self.done.set_result(None)


def test_exec_communicate_and_exit_code(proc_loop_factory: LoopFactory, no_leaks: None) -> None:
    async def main() -> tuple[bytes, bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            SH,
            "-c",
            "read x; echo out:$x; echo err:$x >&2; exit 3",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await proc.communicate(b"hello\n")
        assert proc.returncode is not None
        return out, err, proc.returncode

    assert run(proc_loop_factory, main()) == (b"out:hello\n", b"err:hello\n", 3)


def test_shell(proc_loop_factory: LoopFactory) -> None:
    async def main() -> tuple[bytes, int]:
        proc = await asyncio.create_subprocess_shell(
            "echo $((6 * 7)); exit 9", stdout=subprocess.PIPE
        )
        out, _ = await proc.communicate()
        return out, await proc.wait()

    assert run(proc_loop_factory, main()) == (b"42\n", 9)


def test_protocol_callback_order(proc_loop_factory: LoopFactory) -> None:
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(
            lambda: RecordingProtocol(loop),
            SH,
            "-c",
            "echo o; echo e >&2; exit 4",
            stdin=None,
        )
        assert proto.events[0] == "connection_made"  # made before subprocess_exec returns
        assert transport.get_pipe_transport(0) is None
        assert transport.get_pipe_transport(1) is not None
        assert transport.get_pipe_transport(2) is not None
        await proto.done
        assert transport.get_returncode() == 4
        transport.close()
        return proto.events

    events = run(proc_loop_factory, main())
    assert events[0] == "connection_made"
    assert events[-1] == ("lost", None)
    assert ("exited", 4) in events
    for fd in (1, 2):
        assert events.index(("data", fd)) < events.index(("pipe_lost", fd, None))
    assert len(events) == 7


def test_transport_api(proc_loop_factory: LoopFactory) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(
            lambda: RecordingProtocol(loop), CAT, stdout=subprocess.DEVNULL, stderr=None
        )
        popen = transport.get_extra_info("subprocess")
        assert isinstance(popen, subprocess.Popen)
        assert popen.pid == transport.get_pid() > 0
        assert transport.get_returncode() is None
        assert not transport.is_closing()
        assert "running" in repr(transport)
        stdin = transport.get_pipe_transport(0)
        stdin.write(b"x")
        stdin.close()  # EOF: cat exits 0
        await proto.done
        assert transport.get_returncode() == 0 == popen.returncode
        assert "returncode=0" in repr(transport)
        for method in (transport.kill, transport.terminate):
            with pytest.raises(ProcessLookupError):
                method()
        with pytest.raises(ProcessLookupError):
            transport.send_signal(signal.SIGTERM)
        transport.close()
        assert transport.is_closing()

    run(proc_loop_factory, main())


@pytest.mark.parametrize(
    ("method", "expected"),
    [("kill", -signal.SIGKILL), ("terminate", -signal.SIGTERM), ("hup", -signal.SIGHUP)],
)
def test_signals(proc_loop_factory: LoopFactory, method: str, expected: int) -> None:
    async def main() -> int:
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", "trap - HUP; echo ready; exec sleep 30", stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        assert await proc.stdout.readline() == b"ready\n"
        if method == "hup":
            proc.send_signal(signal.SIGHUP)
        else:
            getattr(proc, method)()
        return await proc.wait()

    assert run(proc_loop_factory, main()) == expected


def test_close_kills_running_child(proc_loop_factory: LoopFactory, no_leaks: None) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(
            lambda: RecordingProtocol(loop), "sleep", "30"
        )
        transport.close()
        await proto.done
        return transport.get_returncode()  # type: ignore[no-any-return]

    assert run(proc_loop_factory, main()) == -signal.SIGKILL


def test_close_does_not_kill_reaped_child(proc_loop_factory: LoopFactory) -> None:
    async def main() -> tuple[int | None, int | None]:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(
            lambda: RecordingProtocol(loop), SH, "-c", "exit 6", stdin=None, stdout=None,
            stderr=None,
        )  # fmt: skip
        popen = transport.get_extra_info("subprocess")
        popen.wait()  # the user reaps it behind the loop's back
        killed = []
        popen.kill = lambda: killed.append(True)
        transport.close()
        await proto.done
        assert killed == []
        return popen.returncode, transport.get_returncode()

    codes = run(proc_loop_factory, main())
    if is_tideloop(proc_loop_factory):
        # asyncio loses the status here: its 3.11 watcher thread can reap first (Popen.wait()
        # then says 0), its 3.12+ pidfd watcher finds the child gone and says 255.
        assert codes == (6, 6)


def test_concurrent_wait(proc_loop_factory: LoopFactory) -> None:
    async def main() -> list[int]:
        proc = await asyncio.create_subprocess_exec(SH, "-c", "exit 2")
        return await asyncio.gather(*[proc.wait() for _ in range(10)])

    assert run(proc_loop_factory, main()) == [2] * 10


def test_cancel_while_creating_reaps_child(proc_loop_factory: LoopFactory, no_leaks: None) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        coro = loop.subprocess_exec(asyncio.SubprocessProtocol, "sleep", "30")
        task = asyncio.ensure_future(coro)
        loop.call_soon(task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task

    run(proc_loop_factory, main())


def test_cancel_wait_then_kill(proc_loop_factory: LoopFactory) -> None:
    async def main() -> int:
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.01)
        proc.kill()
        return await proc.wait()

    assert run(proc_loop_factory, main()) == -signal.SIGKILL


# -- argument validation: same exception types and messages as asyncio --


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"universal_newlines": True}, "universal_newlines must be False"),
        ({"text": True}, "text must be False"),
        ({"encoding": "utf-8"}, "encoding must be None"),
        ({"errors": "strict"}, "errors must be None"),
        ({"bufsize": 4096}, "bufsize must be 0"),
        ({"shell": True}, "shell must be False"),
    ],
)
def test_exec_rejects_text_and_shell(
    loop_factory: LoopFactory, kwargs: dict[str, Any], message: str
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(ValueError, match=message):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, TRUE, **kwargs)
        if "shell" not in kwargs:
            with pytest.raises(ValueError, match=message):
                await asyncio.create_subprocess_exec(TRUE, **kwargs)

    run(loop_factory, main())


@pytest.mark.parametrize(
    ("cmd", "kwargs", "message"),
    [
        (["ls", "-l"], {}, "cmd must be a string"),
        ("true", {"universal_newlines": True}, "universal_newlines must be False"),
        ("true", {"shell": False}, "shell must be True"),
        ("true", {"bufsize": 1}, "bufsize must be 0"),
        ("true", {"text": True}, "text must be False"),
        ("true", {"encoding": "utf-8"}, "encoding must be None"),
        ("true", {"errors": "strict"}, "errors must be None"),
    ],
)
def test_shell_rejects(
    loop_factory: LoopFactory, cmd: Any, kwargs: dict[str, Any], message: str
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(ValueError, match=message):
            await loop.subprocess_shell(asyncio.SubprocessProtocol, cmd, **kwargs)

    run(loop_factory, main())


def test_windows_only_arguments_rejected_like_popen(loop_factory: LoopFactory) -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="startupinfo"):
            await asyncio.create_subprocess_exec(TRUE, startupinfo=object())
        with pytest.raises(ValueError, match="creationflags"):
            await asyncio.create_subprocess_exec(TRUE, creationflags=1)

    run(loop_factory, main())


def test_nonexistent_program(proc_loop_factory: LoopFactory, no_leaks: None) -> None:
    async def main() -> None:
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec(
                "/nonexistent/tideloop-no-such-program", stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec(TRUE, cwd="/nonexistent/tideloop-no-such-dir")
        with pytest.raises(PermissionError):
            await asyncio.create_subprocess_exec("/etc/passwd")

    run(proc_loop_factory, main())


def test_popen_failure_propagates_exact_exception(loop_factory: LoopFactory) -> None:
    class Boom(Exception):
        pass

    def preexec() -> None:
        raise Boom

    async def main() -> None:
        # preexec_fn errors come back from the child as SubprocessError, as with plain Popen
        with pytest.raises(subprocess.SubprocessError):
            await asyncio.create_subprocess_exec(TRUE, preexec_fn=preexec, stdin=subprocess.PIPE)

    run(loop_factory, main())


# -- every POSIX Popen argument --


def test_stdio_variants(proc_loop_factory: LoopFactory, tmp_path: Any) -> None:
    infile = tmp_path / "in"
    infile.write_bytes(b"from-file\n")

    async def main() -> list[bytes]:
        results = []
        # stderr=STDOUT: both streams arrive on stdout, no stderr pipe exists
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(
            lambda: RecordingProtocol(loop), SH, "-c", "echo a; echo b >&2",
            stdin=None, stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert transport.get_pipe_transport(2) is None
        await proto.done
        transport.close()
        # stdin from an open file, stdout to DEVNULL / PIPE
        with open(infile, "rb") as f:
            proc = await asyncio.create_subprocess_exec(CAT, stdin=f, stdout=subprocess.PIPE)
            out, _ = await proc.communicate()
            results.append(out)
        proc = await asyncio.create_subprocess_exec(
            CAT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
        )
        results.append((await proc.communicate())[0])
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", "echo gone; echo here >&2", stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        results.append((await proc.communicate())[1])
        # an fd number as stdout
        r, w = os.pipe()
        proc = await asyncio.create_subprocess_exec(SH, "-c", "echo via-fd", stdout=w)
        os.close(w)
        await proc.wait()
        results.append(os.read(r, 100))
        os.close(r)
        return results

    assert run(proc_loop_factory, main()) == [b"from-file\n", b"", b"here\n", b"via-fd\n"]


def test_env_cwd_executable(proc_loop_factory: LoopFactory, tmp_path: Any) -> None:
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec(
            "argv0-name", "-c", 'echo "$0 $FOO $(pwd)"', executable=SH,
            env={"FOO": "bar", "PATH": os.environ.get("PATH", "/bin")}, cwd=tmp_path,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        return (await proc.communicate())[0]

    assert run(proc_loop_factory, main()) == f"argv0-name bar {tmp_path}\n".encode()


def test_pass_fds_and_close_fds(proc_loop_factory: LoopFactory) -> None:
    async def main() -> list[bytes]:
        outs = []
        for kwargs in ({"pass_fds": (None,)}, {"close_fds": False}, {"close_fds": True}):
            r, w = os.pipe()
            os.set_inheritable(w, kwargs.get("close_fds", True) is False)
            if "pass_fds" in kwargs:
                kwargs = {"pass_fds": (w,)}
            proc = await asyncio.create_subprocess_exec(
                SH, "-c", f"echo hi >/proc/self/fd/{w}; exit 0", stderr=subprocess.DEVNULL, **kwargs
            )
            os.close(w)
            await proc.wait()
            outs.append(os.read(r, 10))
            os.close(r)
        return outs

    # passed explicitly, inherited with close_fds=False, closed by default
    assert run(proc_loop_factory, main()) == [b"hi\n", b"hi\n", b""]


def test_session_and_process_group(proc_loop_factory: LoopFactory) -> None:
    async def stat_of(**kwargs: Any) -> tuple[int, list[str]]:
        proc = await asyncio.create_subprocess_exec(
            CAT, "/proc/self/stat", stdout=subprocess.PIPE, **kwargs
        )
        out, _ = await proc.communicate()
        return proc.pid, _proc_stat(out)

    async def main() -> None:
        pid, st = await stat_of(start_new_session=True)
        assert int(st[2]) == pid and int(st[3]) == pid  # own group and session
        pid, st = await stat_of(process_group=0)
        assert int(st[2]) == pid and int(st[3]) == os.getsid(0)  # own group, our session
        pid, st = await stat_of()
        assert int(st[2]) == os.getpgrp()

    run(proc_loop_factory, main())


def test_umask_preexec_restore_signals_pipesize(proc_loop_factory: LoopFactory) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", "umask", umask=0o027, stdout=subprocess.PIPE
        )
        assert (await proc.communicate())[0].strip() == b"0027"

        # preexec_fn runs in the child between fork and exec
        proc = await asyncio.create_subprocess_exec(
            CAT, "/proc/self/stat", preexec_fn=lambda: os.nice(3), stdout=subprocess.PIPE
        )
        nice = int(_proc_stat((await proc.communicate())[0])[16])
        assert nice == os.nice(0) + 3

        # restore_signals=False keeps Python's SIG_IGN for SIGPIPE in the child
        sigpipe_bit = 1 << (signal.SIGPIPE - 1)
        for restore, ignored in ((True, False), (False, True)):
            proc = await asyncio.create_subprocess_exec(
                CAT, "/proc/self/status", restore_signals=restore, stdout=subprocess.PIPE
            )
            status = (await proc.communicate())[0].decode()
            mask = int(status.split("SigIgn:")[1].split()[0], 16)
            assert bool(mask & sigpipe_bit) is ignored

        proc = await asyncio.create_subprocess_exec(
            CAT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, pipesize=1 << 20
        )
        assert proc.stdout is not None
        pipe = proc._transport.get_pipe_transport(1)  # type: ignore[attr-defined]
        fd = pipe.get_extra_info("pipe").fileno()
        assert fcntl.fcntl(fd, 1032) == 1 << 20  # F_GETPIPE_SZ
        await proc.communicate(b"")

    run(proc_loop_factory, main())


@pytest.mark.skipif(os.geteuid() != 0, reason="user/group/extra_groups need root")
def test_user_group_extra_groups(proc_loop_factory: LoopFactory) -> None:
    nobody = pwd.getpwnam("nobody")

    async def main() -> dict[str, str]:
        proc = await asyncio.create_subprocess_exec(
            CAT, "/proc/self/status", user="nobody", group=nobody.pw_gid,
            extra_groups=[nobody.pw_gid], stdout=subprocess.PIPE, cwd="/",
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return dict(line.split(":", 1) for line in out.decode().splitlines() if ":" in line)

    status = run(proc_loop_factory, main())
    uid = str(nobody.pw_uid)
    gid = str(nobody.pw_gid)
    assert status["Uid"].split() == [uid] * 4
    assert status["Gid"].split() == [gid] * 4
    assert status["Groups"].split() == [gid]


def test_get_extra_info_and_pipe_transports(proc_loop_factory: LoopFactory) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            CAT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        transport = proc._transport  # type: ignore[attr-defined]
        popen = transport.get_extra_info("subprocess")
        assert popen.pid == proc.pid
        for fd, file in ((0, popen.stdin), (1, popen.stdout), (2, popen.stderr)):
            assert transport.get_pipe_transport(fd).get_extra_info("pipe") is file
        assert transport.get_pipe_transport(3) is None
        out, err = await proc.communicate(b"z")
        assert (out, err, popen.returncode) == (b"z", b"", 0)

    run(proc_loop_factory, main())


def test_many_outputs_in_parallel(proc_loop_factory: LoopFactory) -> None:
    async def one(i: int) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            SH, "-c", f"echo foo{i}", stdout=subprocess.PIPE
        )
        return (await proc.communicate())[0]

    async def main() -> list[bytes]:
        return await asyncio.gather(*[one(i) for i in range(20)])

    assert run(proc_loop_factory, main()) == [f"foo{i}\n".encode() for i in range(20)]


def test_python_child_roundtrip(proc_loop_factory: LoopFactory) -> None:
    # one interpreter child, to check a real program with buffered stdio
    code = "import sys; data = sys.stdin.buffer.read(); sys.stdout.buffer.write(data[::-1])"

    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        return (await proc.communicate(b"abc"))[0]

    assert run(proc_loop_factory, main()) == b"cba"


def test_preexec_fn_does_not_block_the_loop(proc_loop_factory: LoopFactory) -> None:
    """Popen returns only after preexec_fn ran in the child; tideloop keeps serving meanwhile.

    The child's preexec_fn says "ready" on one pipe and waits for the parent's loop to answer on
    another: that can only happen if the loop is not stuck inside Popen. (asyncio and uvloop
    block there, so this improvement is tested on tideloop only.)
    """
    if not is_tideloop(proc_loop_factory):
        pytest.skip("asyncio runs Popen, and so preexec_fn, on the loop thread")
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()

    def preexec() -> None:
        import select

        os.write(ready_w, b"r")
        if not select.select([go_r], [], [], 10)[0]:
            raise RuntimeError("the parent's loop did not answer")

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.add_reader(ready_r, lambda: (os.read(ready_r, 1), os.write(go_w, b"g")))
        try:
            proc = await asyncio.create_subprocess_exec(SH, "-c", "exit 4", preexec_fn=preexec)
        finally:
            loop.remove_reader(ready_r)
        return await proc.wait()

    try:
        assert run(proc_loop_factory, main()) == 4
    finally:
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)


def test_cancel_during_preexec_fn_kills_and_reaps(proc_loop_factory: LoopFactory) -> None:
    """Cancelled while Popen runs in its thread: the child appears later and must not leak."""
    if not is_tideloop(proc_loop_factory):
        pytest.skip("asyncio blocks in Popen, so nothing can cancel it meanwhile")
    pid_r, pid_w = os.pipe()

    def preexec() -> None:
        os.write(pid_w, f"{os.getpid()}\n".encode())
        time.sleep(0.3)

    async def main() -> None:
        task = asyncio.ensure_future(
            asyncio.create_subprocess_exec("sleep", "30", preexec_fn=preexec)
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        run(proc_loop_factory, main())
        pid = int(os.read(pid_r, 100).split()[0])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)  # still exists, possibly as a zombie
            except ProcessLookupError:
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"child {pid} was neither killed nor reaped")
    finally:
        os.close(pid_r)
        os.close(pid_w)
