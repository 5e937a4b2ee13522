"""One measurement = one fresh child process (or C server) + one load run; this module runs them.

Invariant: every server started here is stopped before the function that started it returns
(quit on stdin, then kill after a bound), and the CPU window between the two ``mark`` snapshots
strictly contains the load generator's measured window, so CPU per request is never undercounted.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from benchmarks import _loops, _native

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ChildSetup:
    """How to start a Python child: interpreter, PYTHONPATH entries, CPU to pin to."""

    python: str = sys.executable
    pythonpath: list[str] = field(default_factory=list)
    cpu: int | None = 1

    def env(self, loop: str) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(ROOT), *self.pythonpath]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        for key, value in _loops.child_env_overrides(loop).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def cmd(self, *args: str) -> list[str]:
        return [*_native.pin_prefix(self.cpu), self.python, "-m", "benchmarks.child", *args]


class ChildFailed(RuntimeError):
    pass


def run_child_json(setup: ChildSetup, loop: str, args: list[str], timeout: float) -> dict[str, Any]:
    """Run a one-shot child and return the JSON object on its last stdout line."""
    proc = subprocess.run(
        setup.cmd(*args),
        env=setup.env(loop),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise ChildFailed(f"exit {proc.returncode}: {tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


class Server:
    """A running benchmark server speaking the READY/mark/quit protocol of ``_servers``."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None, start_timeout: float) -> None:
        self._err: IO[bytes] = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
        )
        self._buf = b""
        try:
            line = self._readline(start_timeout)
        except Exception:
            self.stop()
            raise
        parts = line.split(" ", 2)
        if parts[0] != "READY":
            self.stop()
            raise ChildFailed(f"server said {line!r}")
        self.port = int(parts[1])
        self.info: dict[str, Any] = json.loads(parts[2]) if len(parts) > 2 else {}

    def _stderr_tail(self) -> str:
        self._err.seek(0)
        lines = self._err.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(no stderr)"

    def _readline(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildFailed(f"server timed out: {self._stderr_tail()}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait(timeout=5)
                    raise ChildFailed(
                        f"server exited {self.proc.returncode}: {self._stderr_tail()}"
                    )
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode().strip()

    def mark(self, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"mark\n")
        self.proc.stdin.flush()
        snap: dict[str, Any] = json.loads(self._readline(timeout))
        return snap

    def stop(self) -> None:
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            self._err.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        # A load that failed usually failed in the server: say what the server said.
        tail = self._stderr_tail() if isinstance(exc, ChildFailed | RuntimeError) else ""
        self.stop()
        if tail and tail != "(no stderr)" and "server" not in str(exc):
            raise ChildFailed(f"{exc}; server stderr: {tail}") from exc


def start_server(setup: ChildSetup, loop: str, kind: str, bins: dict[str, Path] | None) -> Server:
    if loop == _loops.C_REFERENCE:
        if bins is None:
            raise _native.ToolMissing("C reference server not built")
        cmd = [*_native.pin_prefix(setup.cpu), str(bins["echo_server"])]
        return Server(cmd, None, start_timeout=10)
    return Server(
        setup.cmd("server", "--loop", loop, "--kind", kind), setup.env(loop), start_timeout=60
    )


def _cpu(m0: dict[str, Any], m1: dict[str, Any]) -> float:
    return float(m1["utime"] + m1["stime"] - m0["utime"] - m0["stime"])


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _ksoftirqd_pid(cpu: int) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == f"ksoftirqd/{cpu}":
                        return int(entry)
            except OSError:
                continue
    return None


def vcpu_sample(cpu: int | None) -> tuple[float, float] | None:
    """(task seconds, ksoftirqd seconds) of vCPU ``cpu`` so far; None when unpinned or unknown.

    Task seconds = user + nice + system + steal from /proc/stat. Softirq time run inline is left
    out (it is loopback work for the pair under test); softirq work the kernel deferred to the
    ksoftirqd/N thread shows up as that thread's system time, so it is sampled on its own.
    """
    if cpu is None:
        return None
    try:
        busy = None
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{cpu} "):
                    v = [int(x) for x in line.split()[1:]]
                    busy = (v[0] + v[1] + v[2] + (v[7] if len(v) > 7 else 0)) / _CLK_TCK
                    break
        if busy is None:
            return None
        soft = 0.0
        pid = _ksoftirqd_pid(cpu)
        if pid is not None:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            soft = (int(fields[11]) + int(fields[12])) / _CLK_TCK
        return busy, soft
    except OSError:
        return None


def _load_metrics(
    load: dict[str, Any],
    m0: dict[str, Any],
    m1: dict[str, Any],
    busy: tuple[tuple[float, float] | None, tuple[float, float] | None] = (None, None),
) -> dict[str, float]:
    requests = int(load["requests"])
    if requests <= 0:
        raise ChildFailed(f"the server echoed nothing (client errors: {load.get('errors')})")
    server_cpu = _cpu(m0, m1)
    loadgen_cpu = float(load.get("loadgen_cpu", 0.0))
    out = {
        "req_s": requests / float(load["seconds"]),
        "cpu_us": server_cpu * 1e6 / requests,
        # The split tells loop overhead (user) from kernel work (system), which a loop only
        # changes through the syscalls it makes and how well it batches wake-ups.
        "cpu_user_us": (m1["utime"] - m0["utime"]) * 1e6 / requests,
        "cpu_sys_us": (m1["stime"] - m0["stime"]) * 1e6 / requests,
        "loadgen_cpu_us": loadgen_cpu * 1e6 / requests,
        "peak_rss_mib": m1["maxrss_kb"] / 1024,
        "requests": float(requests),
        "errors": float(load.get("errors", 0)),
    }
    if busy[0] is not None and busy[1] is not None:
        # Task time on the pinned vCPU that was neither the server nor the load generator:
        # another process (or the host) took it, and req/s is pessimistic by about that share.
        seconds = float(load["seconds"])
        softirqd = busy[1][1] - busy[0][1]
        foreign = (busy[1][0] - busy[0][0]) - server_cpu - loadgen_cpu - softirqd
        out["foreign_share"] = max(0.0, foreign) / seconds
        # Loopback packets processed by ksoftirqd instead of inline: the kernel then schedules
        # that thread against server and client, which caps req/s (CPU/request stays valid).
        out["ksoftirqd_share"] = softirqd / seconds
    return out


def measure_echo(
    setup: ChildSetup,
    loop: str,
    bins: dict[str, Path],
    *,
    style: str,
    size: int,
    conns: int,
    warmup: float,
    duration: float,
) -> tuple[dict[str, float], dict[str, Any]]:
    client = bins["echo_client"]
    bound = warmup + duration + 30
    with start_server(setup, loop, f"echo-{style}", bins) as srv:
        if warmup > 0:
            _native.run_echo_client(
                client,
                srv.port,
                conns=conns,
                size=size,
                seconds=warmup,
                cpu=setup.cpu,
                timeout=bound,
            )
        m0 = srv.mark()
        b0 = vcpu_sample(setup.cpu)
        load = _native.run_echo_client(
            client, srv.port, conns=conns, size=size, seconds=duration, cpu=setup.cpu, timeout=bound
        )
        b1 = vcpu_sample(setup.cpu)
        m1 = srv.mark()
        return _load_metrics(load, m0, m1, (b0, b1)), srv.info


def measure_http(
    setup: ChildSetup, loop: str, *, kind: str, conns: int, warmup: float, duration: float
) -> tuple[dict[str, float], dict[str, Any]]:
    bound = warmup + duration + 30
    with start_server(setup, loop, kind, None) as srv:
        if warmup > 0:
            _native.run_wrk(srv.port, conns=conns, seconds=warmup, cpu=setup.cpu, timeout=bound)
        m0 = srv.mark()
        b0 = vcpu_sample(setup.cpu)
        load = _native.run_wrk(
            srv.port, conns=conns, seconds=duration, cpu=setup.cpu, timeout=bound
        )
        b1 = vcpu_sample(setup.cpu)
        m1 = srv.mark()
        metrics = _load_metrics(load, m0, m1, (b0, b1))
        if metrics["errors"]:
            raise ChildFailed(f"wrk saw {int(metrics['errors'])} errors")
        return metrics, srv.info


def measure_memory(
    setup: ChildSetup,
    loop: str,
    bins: dict[str, Path],
    *,
    style: str,
    size: int,
    conns: int,
    warm_requests: int,
    requests: int,
    max_seconds: float,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Peak RSS and RSS growth of an echo server across ``requests`` requests after a warm-up."""
    client = bins["echo_client"]
    with start_server(setup, loop, f"echo-{style}", bins) as srv:
        _native.run_echo_client(
            client,
            srv.port,
            conns=conns,
            size=size,
            seconds=max_seconds,
            max_requests=warm_requests,
            cpu=setup.cpu,
            timeout=max_seconds + 30,
        )
        m0 = srv.mark()
        load = _native.run_echo_client(
            client,
            srv.port,
            conns=conns,
            size=size,
            seconds=max_seconds,
            max_requests=requests,
            cpu=setup.cpu,
            timeout=max_seconds + 30,
        )
        m1 = srv.mark()
        if load["requests"] < requests:
            raise ChildFailed(f"only {load['requests']} of {requests} requests in {max_seconds}s")
        return {
            "peak_rss_mib": m1["maxrss_kb"] / 1024,
            "rss_growth_kib": float(m1["rss_kb"] - m0["rss_kb"]),
            "requests": float(load["requests"]),
        }, srv.info


def measure_internal(
    setup: ChildSetup, loop: str, *, bench: str, n: int, timeout: float = 300
) -> tuple[dict[str, float], dict[str, Any]]:
    out = run_child_json(
        setup,
        loop,
        [
            "internal",
            "--loop",
            loop,
            "--bench",
            bench,
            "--n",
            str(n),
            "--warmup-n",
            str(max(1, n // 10)),
        ],
        timeout=timeout,
    )
    wall, cpu = float(out["seconds"]), float(out["cpu_seconds"])
    return {
        "seconds": wall,
        "cpu_seconds": cpu,
        "cpu_share": cpu / wall if wall > 0 else 1.0,
    }, dict(out.get("info", {}))
