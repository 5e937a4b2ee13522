"""Multicore benchmarks: Pool dispatch overhead, single-item round trip, scaling, run_workers HTTP.

    python benchmarks/multicore_bench.py [dispatch|roundtrip|scaling|http|all] [--processes N]

Peers: aiomultiprocess (if installed), concurrent.futures.ProcessPoolExecutor, and asyncio in one
process. Every number is the median of a few repeats; pools are started before timing.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import tideloop
from tideloop.multicore import Pool, Worker, run_workers

N_ITEMS = 10_000
ROUND_TRIPS = 300


async def noop(x: int) -> int:
    return x


def noop_sync(x: int) -> int:
    return x


def spin(n: int) -> int:
    """A fixed amount of CPU work (not wall time: a descheduled spinner must not finish early)."""
    acc = 0
    for i in range(n):
        acc ^= i
    return acc


def calibrate(ms: float) -> int:
    """Iterations of `spin` that take `ms` milliseconds of CPU here (best of several)."""
    n = 100_000
    best = min(_cpu_of(spin, n) for _ in range(5))
    return max(1, int(n * (ms / 1000) / best))


def _cpu_of(fn: Callable[[int], Any], n: int) -> float:
    t = time.process_time()
    fn(n)
    return time.process_time() - t


async def io_then_cpu(n: int) -> int:
    await asyncio.sleep(0.010)
    return spin(n)


def cpu_item(n: int) -> int:
    return spin(n)


_TICK = os.sysconf("SC_CLK_TCK")


def family_cpu() -> float:
    """CPU seconds used so far by this process and its live children (wall time on a loaded
    2-vCPU machine mostly measures the neighbours; CPU time measures us)."""
    me = os.getpid()
    total = time.process_time()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


class Timer:
    """Wall and family CPU time of a block."""

    def __enter__(self) -> Timer:
        self.cpu0 = family_cpu()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = family_cpu() - self.cpu0


def _med(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def run_on_tideloop(coro: Awaitable[Any]) -> Any:
    return tideloop.run(coro)  # type: ignore[arg-type]


# -- dispatch overhead -----------------------------------------------------------------------
async def tideloop_dispatch(
    processes: int, fn: Callable[[int], Any] = noop
) -> tuple[float, float]:
    async with Pool(processes, concurrency=64) as pool:
        await pool.map(fn, range(1000))  # warm up (imports, caches)

        runs = []
        for _ in range(5):
            with Timer() as tm:
                r = await pool.map(fn, range(N_ITEMS))
            assert r[-1] == N_ITEMS - 1
            runs.append((tm.wall, tm.cpu))
        return _med(runs)


async def aiomp_dispatch(processes: int) -> tuple[float, float] | None:
    try:
        import aiomultiprocess
    except ImportError:
        return None
    async with aiomultiprocess.Pool(processes, childconcurrency=64) as pool:
        await pool.map(noop, range(1000))
        runs = []
        for _ in range(3):
            with Timer() as tm:
                await pool.map(noop, range(N_ITEMS))
            runs.append((tm.wall, tm.cpu))
        return _med(runs)


def ppe_dispatch(processes: int, chunksize: int) -> tuple[float, float]:
    with concurrent.futures.ProcessPoolExecutor(processes) as ex:
        list(ex.map(noop_sync, range(1000), chunksize=chunksize))

        runs = []
        for _ in range(3):
            with Timer() as tm:
                list(ex.map(noop_sync, range(N_ITEMS), chunksize=chunksize))
            runs.append((tm.wall, tm.cpu))
        return _med(runs)


async def asyncio_dispatch() -> tuple[float, float]:
    runs = []
    for _ in range(5):
        with Timer() as tm:
            await asyncio.gather(*(noop(i) for i in range(N_ITEMS)))
        runs.append((tm.wall, tm.cpu))
    return _med(runs)


def bench_dispatch(processes: int) -> list[tuple[str, tuple[float, float] | None]]:
    rows: list[tuple[str, tuple[float, float] | None]] = []
    rows.append((f"tideloop Pool({processes}).map, parent on tideloop",
                 run_on_tideloop(tideloop_dispatch(processes))))
    rows.append((f"tideloop Pool({processes}).map, parent on asyncio",
                 asyncio.run(tideloop_dispatch(processes))))
    rows.append((f"tideloop Pool({processes}).map, plain function, parent on tideloop",
                 run_on_tideloop(tideloop_dispatch(processes, noop_sync))))
    rows.append((f"aiomultiprocess Pool({processes}).map", asyncio.run(aiomp_dispatch(processes))))
    rows.append((f"ProcessPoolExecutor({processes}).map chunksize=1",
                 ppe_dispatch(processes, 1)))
    rows.append((f"ProcessPoolExecutor({processes}).map chunksize=256",
                 ppe_dispatch(processes, 256)))
    rows.append(("asyncio, one process, gather", asyncio.run(asyncio_dispatch())))
    return rows


# -- single-item round trip ------------------------------------------------------------------
async def tideloop_roundtrip(processes: int) -> float:
    async with Pool(processes) as pool:
        for _ in range(50):
            await pool.apply(noop, 1)
        samples = []
        for _ in range(ROUND_TRIPS):
            t = time.perf_counter()
            await pool.apply(noop, 1)
            samples.append(time.perf_counter() - t)
        return statistics.median(samples)


async def aiomp_roundtrip(processes: int) -> float | None:
    try:
        import aiomultiprocess
    except ImportError:
        return None
    async with aiomultiprocess.Pool(processes) as pool:
        for _ in range(5):
            await pool.apply(noop, (1,))
        samples = []
        for _ in range(60):
            t = time.perf_counter()
            await pool.apply(noop, (1,))
            samples.append(time.perf_counter() - t)
        return statistics.median(samples)


async def ppe_roundtrip(processes: int) -> float:
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(processes) as ex:
        for _ in range(50):
            await loop.run_in_executor(ex, noop_sync, 1)
        samples = []
        for _ in range(ROUND_TRIPS):
            t = time.perf_counter()
            await loop.run_in_executor(ex, noop_sync, 1)
            samples.append(time.perf_counter() - t)
        return statistics.median(samples)


async def asyncio_roundtrip() -> float:
    samples = []
    for _ in range(ROUND_TRIPS):
        t = time.perf_counter()
        await asyncio.ensure_future(noop(1))
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def bench_roundtrip(processes: int) -> list[tuple[str, float | None]]:
    return [
        ("tideloop Pool.apply, parent on tideloop", run_on_tideloop(tideloop_roundtrip(processes))),
        ("tideloop Pool.apply, parent on asyncio", asyncio.run(tideloop_roundtrip(processes))),
        ("aiomultiprocess Pool.apply", asyncio.run(aiomp_roundtrip(processes))),
        ("ProcessPoolExecutor via run_in_executor", asyncio.run(ppe_roundtrip(processes))),
        ("asyncio task, one process", asyncio.run(asyncio_roundtrip())),
    ]


# -- scaling ---------------------------------------------------------------------------------
async def scaling_run(processes: int, fn: Callable[[int], Any], items: int,
                      concurrency: int, n: int) -> float:
    async with Pool(processes, concurrency=concurrency) as pool:
        await pool.map(noop, range(processes * 4))
        t = time.perf_counter()
        await pool.map(fn, [n] * items)
        return time.perf_counter() - t


def bench_scaling(processes: int) -> list[tuple[str, float, float, float]]:
    rows = []
    one_ms = calibrate(1.0)
    for name, fn, items, conc, n in (
        ("IO+CPU: await 10 ms, then 1 ms CPU (x1000)", io_then_cpu, 1000, 64, one_ms),
        ("CPU: 5 ms per item (x400)", cpu_item, 400, 1, 5 * one_ms),
    ):
        t1 = run_on_tideloop(scaling_run(1, fn, items, conc, n))
        tn = run_on_tideloop(scaling_run(processes, fn, items, conc, n))
        rows.append((name, t1, tn, t1 / tn))
    return rows


# -- run_workers HTTP ------------------------------------------------------------------------
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!"
)


class _Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: Any = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4 :]
            self.t.write(_RESPONSE * n)


async def http_main(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Http, sock=worker.sockets[0])
    async with server:
        await server.serve_forever()


def _serve_http(workers: int, port: int) -> None:
    run_workers(http_main, workers=workers, listen=[("127.0.0.1", port)])


def bench_http(processes: int) -> list[tuple[str, float | None]]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return [("wrk not installed", None)]
    rows: list[tuple[str, float | None]] = []
    for n in (1, processes):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, __file__, "_serve", str(n), str(port)], start_new_session=True
        )
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            out = subprocess.run(
                [wrk, "-t1", "-c50", "-d5s", f"http://127.0.0.1:{port}/"],
                capture_output=True, text=True, timeout=30,
            ).stdout
            m = re.search(r"Requests/sec:\s+([\d.]+)", out)
            rows.append((f"run_workers HTTP, {n} worker(s), wrk -t1 -c50",
                         float(m.group(1)) if m else None))
        finally:
            server.terminate()
            server.wait(15)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", nargs="?", default="all")
    ap.add_argument("args", nargs="*")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    a = ap.parse_args()
    if a.what == "_serve":
        _serve_http(int(a.args[0]), int(a.args[1]))
        return
    print(f"# python {sys.version.split()[0]}, tideloop COMPILED={tideloop.COMPILED}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    if a.what in ("dispatch", "all"):
        print(f"\n## dispatch overhead, {N_ITEMS} trivial items\n")
        print("| runner | wall ms | wall us/item | CPU us/item (all processes) |")
        print("|---|---|---|---|")
        for name, t in bench_dispatch(a.processes):
            if t is None:
                print(f"| {name} | n/a | n/a | n/a |")
                continue
            wall, cpu = t
            print(f"| {name} | {wall * 1e3:.1f} | {wall / N_ITEMS * 1e6:.2f} | "
                  f"{cpu / N_ITEMS * 1e6:.2f} |")
    if a.what in ("roundtrip", "all"):
        print("\n## single-item round trip (median)\n")
        print("| runner | ms |\n|---|---|")
        for name, t in bench_roundtrip(a.processes):
            print(f"| {name} | " + ("n/a |" if t is None else f"{t * 1e3:.3f} |"))
    if a.what in ("scaling", "all"):
        print(f"\n## scaling, 1 vs {a.processes} processes\n")
        print(f"| workload | 1 process s | {a.processes} processes s | speed-up |")
        print("|---|---|---|---|")
        for name, t1, tn, sp in bench_scaling(a.processes):
            print(f"| {name} | {t1:.3f} | {tn:.3f} | {sp:.2f}x |")
    if a.what in ("http", "all"):
        print("\n## run_workers HTTP (wrk shares the same 2 vCPUs)\n")
        print("| setup | req/s |\n|---|---|")
        for name, rps in bench_http(a.processes):
            print(f"| {name} | " + ("n/a |" if rps is None else f"{rps:.0f} |"))


if __name__ == "__main__":
    main()
