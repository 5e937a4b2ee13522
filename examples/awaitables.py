"""Coroutines, Tasks and Futures are all awaitable; calling a coroutine function runs nothing."""

from __future__ import annotations

import asyncio

import tideloop


async def nested() -> int:
    return 42


def blocking_sum(n: int) -> int:
    return sum(range(n))


async def main() -> None:
    coro = nested()  # nothing runs yet: this is only a coroutine object
    print(f"calling nested() gave a {type(coro).__name__}, not {await coro}")

    task = asyncio.create_task(nested(), name="the-task")
    print(f"task {task.get_name()!r} -> {await task}")

    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.call_soon(fut.set_result, "future result")
    print(f"future -> {await fut!r}")

    executor_fut = loop.run_in_executor(None, blocking_sum, 1000)
    print(f"run_in_executor gave an awaitable {type(executor_fut).__name__} -> "
          f"{await executor_fut}")

    print(f"sleep(0.01, result='slept') -> {await asyncio.sleep(0.01, result='slept')!r}")


if __name__ == "__main__":
    tideloop.run(main())
