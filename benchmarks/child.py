"""Child-process entry: one loop, one job, then exit (``python -m benchmarks.child ...``).

Invariant: the loop named by ``--loop`` is created before any benchmark code runs, and every
result line the parent reads is a single JSON object on stdout (servers: ``READY <port> <json>``).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
from typing import Any

from benchmarks import _internals, _loops, _servers


def _info(name: str, loop: Any) -> dict[str, Any]:
    info = _loops.describe(name, loop)
    info["python"] = platform.python_version()
    info["implementation"] = platform.python_implementation()
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.child")
    sub = p.add_subparsers(dest="cmd", required=True)
    probe = sub.add_parser("probe")
    probe.add_argument("--loop", required=True)
    internal = sub.add_parser("internal")
    internal.add_argument("--loop", required=True)
    internal.add_argument("--bench", required=True, choices=sorted(_internals.BENCHMARKS))
    internal.add_argument("--n", type=int, required=True)
    internal.add_argument("--warmup-n", type=int, default=0)
    server = sub.add_parser("server")
    server.add_argument("--loop", required=True)
    server.add_argument("--kind", required=True, choices=_servers.SERVER_KINDS)
    args = p.parse_args(argv)

    loop = _loops.make_loop(args.loop)
    if args.cmd == "probe":
        print(json.dumps(_info(args.loop, loop)))
        loop.close()
        return 0
    if args.cmd == "internal":
        fn = _internals.BENCHMARKS[args.bench]
        if args.warmup_n:
            fn(loop, args.warmup_n)
        gc.collect()
        wall, cpu = fn(loop, args.n)
        info = _info(args.loop, loop)
        print(json.dumps({"seconds": wall, "cpu_seconds": cpu, "n": args.n, "info": info}))
        loop.close()
        return 0
    # server: the info goes on the READY line so the parent records what really served.
    import io

    real_stdout = sys.stdout
    sys.stdout = io.StringIO()  # swallow prints from imports until READY
    try:
        info = _info(args.loop, loop)
    finally:
        sys.stdout = real_stdout
    _servers.serve(args.kind, loop, json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
