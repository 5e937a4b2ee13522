"""Loop-internal micro-benchmarks: each returns (wall seconds, process CPU seconds) of one run.

Invariant: every benchmark builds its inputs before the clock starts and stops the clock only when
the loop has done all the work (a future completes), so the number covers scheduling and running,
never setup; the same code runs on every loop through the public asyncio API alone.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable

# Defaults match the issue (1M call_soon, 100 x 1000 sleep(0), 100k tasks, 100k timers, 10k
# threadsafe calls); the runner scales them down for --quick and for the smoke test.
DEFAULT_N: dict[str, int] = {
    "call_soon": 1_000_000,
    "sleep0": 100_000,  # 100 tasks x 1000 sleeps
    "gather": 100_000,
    "timers": 100_000,
    "threadsafe": 10_000,
}

# (wall, cpu): CPU time well below wall time means another process took the vCPU meanwhile.
Timing = tuple[float, float]


def _start() -> Timing:
    return time.perf_counter(), time.process_time()


def _since(t0: Timing) -> Timing:
    return time.perf_counter() - t0[0], time.process_time() - t0[1]


TITLES: dict[str, str] = {
    "call_soon": "chained call_soon",
    "sleep0": "100 tasks x sleep(0)",
    "gather": "tasks + gather",
    "timers": "call_later, half cancelled",
    "threadsafe": "call_soon_threadsafe from a thread",
}


def bench_call_soon(loop: asyncio.AbstractEventLoop, n: int) -> Timing:
    """n callbacks, each scheduling the next: the bare cost of one ready-queue round trip."""
    done = loop.create_future()
    remaining = n

    def step() -> None:
        nonlocal remaining
        remaining -= 1
        if remaining:
            loop.call_soon(step)
        else:
            done.set_result(None)

    t0 = _start()
    loop.call_soon(step)
    loop.run_until_complete(done)
    return _since(t0)


def bench_sleep0(loop: asyncio.AbstractEventLoop, n: int) -> Timing:
    """100 tasks each yielding n/100 times: task step + ready queue under contention."""
    tasks = 100
    per_task = max(1, n // tasks)

    async def worker() -> None:
        for _ in range(per_task):
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*[worker() for _ in range(tasks)])

    t0 = _start()
    loop.run_until_complete(main())
    return _since(t0)


def bench_gather(loop: asyncio.AbstractEventLoop, n: int) -> Timing:
    """n tasks created and gathered: task creation, first step, completion callbacks."""

    async def leaf() -> None:
        return None

    async def main() -> None:
        await asyncio.gather(*[loop.create_task(leaf()) for _ in range(n)])

    t0 = _start()
    loop.run_until_complete(main())
    return _since(t0)


def bench_timers(loop: asyncio.AbstractEventLoop, n: int) -> Timing:
    """n call_later with random delays in [0, 10 ms), every second one cancelled.

    The delays are shorter than the time scheduling n timers takes on any loop, so the run never
    waits for the clock: it measures heap push, cancel, and pop of due timers.
    """
    rng = random.Random(20241125)
    delays = [rng.random() * 0.01 for _ in range(n)]
    done = loop.create_future()
    expected = n - (n + 1) // 2
    fired = 0

    def fire() -> None:
        nonlocal fired
        fired += 1
        if fired == expected:
            done.set_result(None)

    async def main() -> None:
        handles = [loop.call_later(d, fire) for d in delays]
        for h in handles[::2]:
            h.cancel()
        if expected == 0:
            done.set_result(None)
        await done

    t0 = _start()
    loop.run_until_complete(main())
    return _since(t0)


def bench_threadsafe(loop: asyncio.AbstractEventLoop, n: int) -> Timing:
    """n call_soon_threadsafe from another thread: the wake-up path (self-pipe / eventfd) cost."""
    done = loop.create_future()
    got = 0

    def cb() -> None:
        nonlocal got
        got += 1
        if got == n:
            done.set_result(None)

    def producer() -> None:
        for _ in range(n):
            loop.call_soon_threadsafe(cb)

    thread = threading.Thread(target=producer)

    async def main() -> None:
        thread.start()
        await done

    t0 = _start()
    loop.run_until_complete(main())
    elapsed = _since(t0)
    thread.join()
    return elapsed


def bench_sock_pingpong(loop: asyncio.AbstractEventLoop, n: int) -> Timing:
    """n round trips of 10 KiB between two tasks over a socketpair, with sock_recv/sock_sendall.

    Each side sends only after it has received, so every sock_recv finds nothing at first and
    waits for readiness: the path a sock_* server takes when its client is slower than it,
    without the timing of another process deciding how often that happens (the echo-sock server
    under callgrind nearly always finds the next request already there). Not in the timed suite
    (no DEFAULT_N entry); for instruction counts.
    """
    import socket

    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    msg = b"x" * 10240

    async def echo() -> None:
        while True:
            data = await loop.sock_recv(b, 65536)
            if not data:
                return
            await loop.sock_sendall(b, data)

    async def client() -> None:
        for _ in range(n):
            await loop.sock_sendall(a, msg)
            got = 0
            while got < len(msg):
                got += len(await loop.sock_recv(a, 65536))
        a.shutdown(socket.SHUT_WR)

    async def main() -> None:
        server = loop.create_task(echo())
        await client()
        await server

    t0 = _start()
    loop.run_until_complete(main())
    elapsed = _since(t0)
    a.close()
    b.close()
    return elapsed


BENCHMARKS: dict[str, Callable[[asyncio.AbstractEventLoop, int], Timing]] = {
    "call_soon": bench_call_soon,
    "sleep0": bench_sleep0,
    "gather": bench_gather,
    "timers": bench_timers,
    "threadsafe": bench_threadsafe,
    "sock_pingpong": bench_sock_pingpong,
}
