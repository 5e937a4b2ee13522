"""Builds the C load generator and reference server, and runs the load tools (C client, wrk).

Invariant: binaries live in benchmarks/bin/ (gitignored) and are rebuilt whenever their C source
is newer; every load tool targets 127.0.0.1 only and stops by itself within its time bound.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
C_DIR = HERE / "c"
BIN_DIR = HERE / "bin"
HOST = "127.0.0.1"
PROGRAMS = ("echo_client", "echo_server")


class ToolMissing(RuntimeError):
    """A tool the benchmark needs (C compiler, wrk) is not on this machine."""


def find_cc() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def build(force: bool = False) -> dict[str, Path]:
    """Compile the C programs (if stale) and return their paths; ToolMissing without a compiler."""
    BIN_DIR.mkdir(exist_ok=True)
    out: dict[str, Path] = {}
    cc: str | None = None
    for prog in PROGRAMS:
        src = C_DIR / f"{prog}.c"
        exe = BIN_DIR / prog
        if force or not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
            cc = cc or find_cc()
            if cc is None:
                raise ToolMissing("no C compiler (cc/gcc/clang) found: network benchmarks need one")
            subprocess.run([cc, "-O2", "-Wall", "-o", str(exe), str(src)], check=True)
        out[prog] = exe
    return out


def pin_prefix(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` so server and load generator share one vCPU (see ARCHITECTURE.md)."""
    if cpu is None:
        return []
    if shutil.which("taskset") is None:
        raise ToolMissing("taskset not found (util-linux); use --cpu none to run unpinned")
    return ["taskset", "-c", str(cpu)]


def run_echo_client(
    exe: Path,
    port: int,
    *,
    conns: int,
    size: int,
    seconds: float,
    max_requests: int = 0,
    cpu: int | None,
    timeout: float,
) -> dict[str, Any]:
    cmd = [*pin_prefix(cpu), str(exe), HOST, str(port), str(conns), str(size), f"{seconds:g}"]
    if max_requests:
        cmd.append(str(max_requests))
    proc, cpu_used = _run_timed(cmd, timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"echo_client failed ({proc.returncode}): {proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["loadgen_cpu"] = cpu_used
    return result


def _run_timed(cmd: list[str], timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a load generator; also return the CPU seconds it used.

    RUSAGE_CHILDREN grows only when a child is reaped, and the server child is still running, so
    the delta is exactly this load generator's CPU.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return proc, used


_WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b")
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests and seconds from wrk's summary (``N requests in 2.00s, ...``)."""
    m = _WRK_TOTAL.search(text)
    if not m:
        raise RuntimeError(f"cannot parse wrk output:\n{text}")
    errors = 0
    for em in re.finditer(r"Non-2xx or 3xx responses: (\d+)", text):
        errors += int(em.group(1))
    for em in re.finditer(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        errors += sum(int(g) for g in em.groups())
    return {
        "requests": int(m.group(1)),
        "seconds": float(m.group(2)) * _UNIT[m.group(3)],
        "errors": errors,
    }


def run_wrk(
    port: int,
    *,
    conns: int,
    seconds: float,
    cpu: int | None,
    timeout: float,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise ToolMissing("wrk not found (Debian: apt-get install -y wrk)")
    # wrk's -d takes whole seconds only (0.5s is rejected), so short runs round up to 1 s.
    cmd = [
        *pin_prefix(cpu),
        wrk,
        "-t1",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        *extra,
        f"http://{HOST}:{port}/",
    ]
    proc, cpu_used = _run_timed(cmd, timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()}")
    result = parse_wrk(proc.stdout)
    result["loadgen_cpu"] = cpu_used
    return result
