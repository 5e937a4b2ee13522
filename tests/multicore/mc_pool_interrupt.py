"""Script run by the Ctrl-C test: a Pool whose items hang until the process group gets SIGINT."""

from __future__ import annotations

import asyncio
import os
import sys

import mc_funcs

from tideloop.multicore import Pool


async def main(tmpdir: str) -> None:
    async with Pool(2, concurrency=2) as pool:
        pids = [w.pid for w in pool._backend.workers]  # type: ignore[attr-defined]
        print("workers " + " ".join(map(str, pids)), flush=True)
        await pool.starmap(mc_funcs.hang_with_marker, [(tmpdir, i) for i in range(4)])


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1]))
    except KeyboardInterrupt:
        print(f"interrupted {os.getpid()}", flush=True)
        sys.exit(130)
