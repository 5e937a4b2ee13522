"""shield(): cancelling the outer await leaves the inner task running to completion."""

from __future__ import annotations

import asyncio

import tideloop


async def important_work() -> str:
    await asyncio.sleep(0.2)
    return "inner task finished"


async def main() -> None:
    inner = asyncio.create_task(important_work())
    outer = asyncio.ensure_future(asyncio.shield(inner))
    asyncio.get_running_loop().call_later(0.05, outer.cancel)
    try:
        await outer
    except asyncio.CancelledError:
        print("outer await cancelled")
    print(f"inner: {await inner}")


if __name__ == "__main__":
    tideloop.run(main())
