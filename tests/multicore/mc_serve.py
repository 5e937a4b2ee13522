"""Script run by the run_workers tests: an echo server on N workers sharing 127.0.0.1:0.

Each worker prints `serving <index> <pid> <port>` and, when cancelled, `stopped <index>`."""

from __future__ import annotations

import asyncio
import os
import sys

from tideloop.multicore import Worker, run_workers


def say(line: str) -> None:
    # One write() per line: two workers share this stdout pipe and must not interleave.
    os.write(1, (line + "\n").encode())


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(4096):
        writer.write(data + f" from {os.getpid()}".encode())
        await writer.drain()
    writer.close()


async def main(worker: Worker) -> None:
    server = await asyncio.start_server(handle, sock=worker.sockets[0])
    port = worker.sockets[0].getsockname()[1]
    say(f"serving {worker.index} {os.getpid()} {port}")
    try:
        await server.serve_forever()
    finally:
        # Proves the main task was cancelled and could clean up.
        say(f"stopped {worker.index}")


if __name__ == "__main__":
    reuse = sys.argv[1] == "reuse" if len(sys.argv) > 1 else False
    results = run_workers(main, workers=2, listen=[("127.0.0.1", 0)], reuse_port=reuse,
                          graceful_timeout=5.0)
    say(f"returned {results}")
