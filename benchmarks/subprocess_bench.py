"""Subprocess and pipe benchmarks: asyncio vs tideloop (vs uvloop when installed).

    PYTHONPATH=src python benchmarks/subprocess_bench.py [--loops asyncio,tideloop,uvloop]

Rows: spawn+reap of /bin/true (sequential and 200 at once), communicate() of 64 MiB through cat,
and a pipe carrying 100 000 small (100-byte) messages, which is where the read path's cost per
call shows (os.read of 256 KiB vs readv into a reused buffer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

Factory = Callable[[], asyncio.AbstractEventLoop]


def factories() -> dict[str, Factory]:
    out: dict[str, Factory] = {"asyncio": asyncio.new_event_loop}
    import tideloop

    out["tideloop"] = tideloop.new_event_loop
    try:
        import uvloop

        out["uvloop"] = uvloop.new_event_loop
    except ImportError:
        pass
    return out


async def spawn_sequential(n: int = 300) -> None:
    for _ in range(n):
        proc = await asyncio.create_subprocess_exec("/bin/true")
        await proc.wait()


async def spawn_concurrent(n: int = 200) -> None:
    async def one() -> int:
        proc = await asyncio.create_subprocess_exec("/bin/true")
        return await proc.wait()

    codes = await asyncio.gather(*[one() for _ in range(n)])
    assert codes == [0] * n


async def communicate_64mib() -> None:
    blob = b"x" * (64 << 20)
    proc = await asyncio.create_subprocess_exec(
        "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate(blob)
    assert len(out) == len(blob)


async def small_messages(n: int = 100_000) -> None:
    class Counter(asyncio.Protocol):
        def __init__(self) -> None:
            self.nbytes = 0
            self.done = asyncio.get_running_loop().create_future()

        def data_received(self, data: bytes) -> None:
            self.nbytes += len(data)

        def connection_lost(self, exc: BaseException | None) -> None:
            self.done.set_result(self.nbytes)

    loop = asyncio.get_running_loop()
    r, w = os.pipe()
    _, proto = await loop.connect_read_pipe(Counter, open(r, "rb", 0))
    msg = b"m" * 100
    for i in range(n):
        os.write(w, msg)
        if i % 8 == 7:  # let the reader see a few messages per wake-up, as a busy peer would
            await asyncio.sleep(0)
    os.close(w)
    assert await proto.done == 100 * n


CASES: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
    "spawn+wait /bin/true x300 (sequential)": spawn_sequential,
    "spawn+wait /bin/true x200 (concurrent)": spawn_concurrent,
    "communicate 64 MiB through cat": communicate_64mib,
    "pipe: 100k x 100-byte messages": small_messages,
}


def measure(factory: Factory, case: Callable[[], Coroutine[Any, Any, None]]) -> tuple[float, float]:
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(case())  # warm-up
        best_wall = best_cpu = float("inf")
        for _ in range(3):
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            runner.run(case())
            wall = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
            best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return best_wall, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loops", default="asyncio,tideloop,uvloop")
    args = ap.parse_args()
    available = factories()
    loops = [name for name in args.loops.split(",") if name in available]
    print(f"# Python {sys.version.split()[0]}; best of 3; wall s / parent CPU s")
    print("| case | " + " | ".join(loops) + " |")
    print("|---|" + "---|" * len(loops))
    for label, case in CASES.items():
        cells = []
        for name in loops:
            wall, cpu = measure(available[name], case)
            cells.append(f"{wall:.3f} / {cpu:.3f}")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
