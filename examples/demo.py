"""tideloop demo: asyncio's basics, TCP and TLS echo, and a process pool, all on tideloop.

Run with `bash scripts/demo.sh` (installs tideloop first) or `python examples/demo.py`.
Everything listens on 127.0.0.1 only and finishes in a few seconds.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import tideloop


async def say_after(delay: float, what: str) -> str:
    await asyncio.sleep(delay)
    return what


async def basics() -> None:
    loop = asyncio.get_running_loop()
    print(f"  running on {type(loop).__module__}.{type(loop).__name__}")

    t0 = time.perf_counter()
    first = asyncio.create_task(say_after(0.2, "hello"), name="first")
    second = asyncio.create_task(say_after(0.3, "world"), name="second")
    words = [await first, await second]
    took = time.perf_counter() - t0
    print(f"  two tasks said {' '.join(words)!r} in {took:.2f}s (concurrent: < 0.5 s)")

    coro = say_after(0, "never run")  # calling a coroutine function runs nothing...
    coro.close()  # ...until awaited; close it so Python does not warn
    print("  a coroutine object is inert until awaited")

    fut = loop.run_in_executor(None, sum, range(1000))
    print(f"  run_in_executor -> awaitable {type(fut).__name__}: {await fut}")
    print(f"  sleep(0.01, result) -> {await asyncio.sleep(0.01, 'result')!r}")

    inner = asyncio.create_task(say_after(0.1, "inner finished"))
    outer = asyncio.ensure_future(asyncio.shield(inner))
    outer.cancel()
    try:
        await outer
    except asyncio.CancelledError:
        print(f"  shield: outer cancelled, inner still delivered {await inner!r}")

    results = await asyncio.gather(*(say_after(0.001 * i, str(i)) for i in range(1000)))
    print(f"  gathered {len(results)} tasks")


async def handle_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      finished: asyncio.Event) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
    finally:
        finished.set()


async def echo() -> None:
    finished = asyncio.Event()
    server = await asyncio.start_server(
        lambda r, w: handle_echo(r, w, finished), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 1000
        t0 = time.perf_counter()
        for i in range(n):
            msg = f"ping {i}\n".encode()
            writer.write(msg)
            assert await reader.readexactly(len(msg)) == msg
        took = time.perf_counter() - t0
        writer.close()
        await writer.wait_closed()
        await finished.wait()  # the server side saw EOF and closed its end too
    print(f"  echo server on 127.0.0.1:{port}: {n} round trips in {took * 1000:.0f} ms "
          f"({n / took:,.0f}/s)")


# A self-signed certificate for localhost/127.0.0.1 that the test suite ships.
CERTS = Path(__file__).resolve().parent.parent / "tests" / "net" / "certs"


async def tls_echo() -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(CERTS / "cert.pem", CERTS / "key.pem")
    client_ctx = ssl.create_default_context(cafile=str(CERTS / "cert.pem"))
    finished = asyncio.Event()
    server = await asyncio.start_server(
        lambda r, w: handle_echo(r, w, finished), "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    async with server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
        tls = writer.get_extra_info("ssl_object")
        writer.write(b"hello over TLS\n")
        line = await reader.readline()
        writer.close()
        await writer.wait_closed()
        await finished.wait()
    print(f"  {tls.version()} with {tls.cipher()[0]}: echoed {line!r}")


async def pool_demo() -> None:
    t0 = time.perf_counter()
    async with tideloop.Pool(2, concurrency=100) as pool:
        squares = await pool.map(square_later, range(1000))
    took = time.perf_counter() - t0
    print(f"  2 worker processes x 100 coroutines: {len(squares)} items, "
          f"sum of squares {sum(squares)}, {took:.2f}s including worker start-up")


async def square_later(n: int) -> int:
    await asyncio.sleep(0.01)  # an I/O wait: each worker overlaps a hundred of them
    return n * n


def main() -> None:
    mode = "compiled" if tideloop.COMPILED else "interpreted"
    print(f"tideloop {tideloop.__version__} ({mode} core)")
    print("basics:")
    tideloop.run(basics())
    print("TCP echo (streams):")
    tideloop.run(echo())
    print("TLS echo (streams over ssl=):")
    tideloop.run(tls_echo())
    print("tideloop.Pool (processes x coroutines):")
    tideloop.run(pool_demo())
    print("done")


if __name__ == "__main__":
    main()
