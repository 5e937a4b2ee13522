"""Two tasks run concurrently: the total time is the longer delay, not the sum of both."""

from __future__ import annotations

import asyncio
import time

import tideloop


async def say_after(delay: float, what: str) -> None:
    await asyncio.sleep(delay)
    print(what)


async def main() -> None:
    task1 = asyncio.create_task(say_after(0.3, "hello"))
    task2 = asyncio.create_task(say_after(0.6, "world"))
    started = time.perf_counter()
    print(f"started at {time.strftime('%X')}")
    await task1
    await task2
    took = time.perf_counter() - started
    print(f"finished at {time.strftime('%X')}: {took:.2f} s (sum of delays: 0.90 s)")


if __name__ == "__main__":
    tideloop.run(main())
