"""The seed's first example: print hello, sleep one second, print world (on tideloop)."""

from __future__ import annotations

import asyncio

import tideloop


async def main() -> None:
    print("hello")
    await asyncio.sleep(1)
    print("world")


if __name__ == "__main__":
    tideloop.run(main())
