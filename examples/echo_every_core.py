"""An echo server on every core: the parent binds 127.0.0.1:PORT once, each worker serves it.

    python examples/echo_every_core.py [PORT] [WORKERS]

Ctrl-C (or SIGTERM) stops every worker gracefully; try `nc 127.0.0.1 8888`.
"""

from __future__ import annotations

import asyncio
import os
import sys

import tideloop.multicore as mc


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(worker: mc.Worker) -> None:
    server = await asyncio.start_server(handle, sock=worker.sockets[0])
    print(f"worker {worker.index} (pid {os.getpid()}) serving "
          f"{worker.sockets[0].getsockname()}", flush=True)
    async with server:
        try:
            await server.serve_forever()
        finally:
            print(f"worker {worker.index} stopping", flush=True)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8888
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else None
    mc.run_workers(main, workers=workers, listen=[("127.0.0.1", port)])
