"""Instruction counts per unit of work, from callgrind: the numbers to tune against on a noisy VM.

    python -m benchmarks.callgrind internal --bench call_soon --n 20000,60000 --loops rloop,tideloop
    python -m benchmarks.callgrind server --kind echo-protocol --size 1024 --requests 2000,6000
    python -m benchmarks.callgrind server --kind aiohttp --requests 1000,3000 --keep /tmp/cg
    python -m benchmarks.callgrind internal --bench gather --n 20000,60000 --keep /tmp/cg

The echo kinds are driven by the C echo client; http and aiohttp by benchmarks/http_client.py
(keep-alive GETs, a fixed count: wrk runs for a duration, so its totals would not subtract).
``--keep DIR`` keeps the callgrind output files for callgrind_annotate. ``--cpu N`` pins the
server and its client to one vCPU, as benchmarks/run.py does: then the client only runs when the
server waits, so the server takes the paths of the timed runs (a sock_recv right after a send
finds nothing and waits). Unpinned, the server runs ~50x slower under callgrind than the client,
always finds the next request already there, and measures mostly other paths.
With several connections, how many requests one loop iteration finds depends on scheduling, so
per-request figures move by ~5% between runs; ``--conns 1`` makes every request one iteration
with one ready fd, which repeats to within a few instructions (the figure to compare changes by).

Invariant: every figure is (total instructions at the larger size - total at the smaller size)
divided by the difference in units, for the whole child process in user space, so start-up,
imports and loop creation cancel out; callgrind counts instructions, not time, so the result does
not depend on what else the machine is doing. Nothing here asserts a speed: it reports.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from . import _internals, _native, _servers
from ._measure import ChildSetup

ROOT = Path(__file__).resolve().parent.parent
HTTP_KINDS = ("http", "aiohttp")
_TOTAL = re.compile(rb"^(?:summary|totals):\s*(\d+)", re.MULTILINE)


def _env(loop: str, tideloop_from: Path) -> dict[str, str]:
    # The suite's own child environment, importing tideloop from the tree being measured.
    env = ChildSetup(pythonpath=[str(tideloop_from)]).env(loop)
    # A fixed string-hash seed: with randomised hashes the start-up's dict probes differ from
    # run to run by ~0.5M instructions, which the two-run difference would charge to the unit.
    env["PYTHONHASHSEED"] = "0"
    return env


def _valgrind(out: Path, cpu: int | None = None) -> list[str]:
    # The real interpreter, not a pyenv shim: the shim is a shell script callgrind would count.
    return [*_native.pin_prefix(cpu), "valgrind", "--tool=callgrind",
            f"--callgrind-out-file={out}", sys.executable]


def _total(out: Path) -> int:
    match = _TOTAL.search(out.read_bytes())
    if match is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(match.group(1))


def internal_total(loop: str, bench: str, n: int, *, tideloop_from: Path,
                   keep: Path | None = None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            out = keep / f"cg-{bench}-{loop}-{n}.out"
        cmd = [*_valgrind(out), "-m", "benchmarks.child", "internal", "--loop", loop,
               "--bench", bench, "--n", str(n)]
        subprocess.run(cmd, env=_env(loop, tideloop_from), cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
        return _total(out)


def _client_cmd(kind: str, port: int, size: int, requests: int, cpu: int | None,
                conns: int) -> list[str]:
    # The request cap ends the run, the time cap guards.
    pin = _native.pin_prefix(cpu)
    if kind in HTTP_KINDS:
        return [*pin, sys.executable, "-m", "benchmarks.http_client", _servers.HOST, str(port),
                str(conns), str(requests)]
    client = _native.build()["echo_client"]
    return [*pin, str(client), _servers.HOST, str(port), str(conns), str(size), "600",
            str(requests)]


def server_total(loop: str, kind: str, size: int, requests: int, *, tideloop_from: Path,
                 keep: Path | None = None, cpu: int | None = None, conns: int = 10) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            out = keep / f"cg-{kind}-{size}-{loop}-{requests}.out"
        cmd = [*_valgrind(out, cpu), "-m", "benchmarks.child", "server", "--loop", loop,
               "--kind", kind]
        proc = subprocess.Popen(cmd, env=_env(loop, tideloop_from), cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            line = proc.stdout.readline().decode()
            if not line.startswith("READY "):
                raise RuntimeError(f"server did not start: {line!r}")
            port = int(line.split()[1])
            subprocess.run(_client_cmd(kind, port, size, requests, cpu, conns), cwd=ROOT,
                           check=True, stdout=subprocess.DEVNULL, timeout=900)
        finally:
            proc.stdin.close()  # the server's control thread exits the process on EOF
            proc.wait(timeout=120)
        return _total(out)


def _per_unit(measure: Callable[[int], int], sizes: list[int]) -> float:
    small, large = sizes
    return (measure(large) - measure(small)) / (large - small)


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--loops", default="rloop,tideloop")
    common.add_argument("--tideloop-from", type=Path, default=ROOT / "src",
                        help="tree whose tideloop is measured (default: this checkout's src)")
    p = argparse.ArgumentParser(prog="python -m benchmarks.callgrind")
    sub = p.add_subparsers(dest="cmd", required=True)
    internal = sub.add_parser("internal", parents=[common])
    internal.add_argument("--bench", required=True, choices=sorted(_internals.BENCHMARKS))
    internal.add_argument("--n", default="20000,60000", help="two sizes, smaller first")
    internal.add_argument("--keep", type=Path, default=None,
                          help="keep the callgrind output files in this directory")
    server = sub.add_parser("server", parents=[common])
    server.add_argument("--kind", required=True, choices=_servers.SERVER_KINDS)
    server.add_argument("--size", type=int, default=1024)
    server.add_argument("--requests", default="2000,6000", help="two request counts")
    server.add_argument("--keep", type=Path, default=None,
                        help="keep the callgrind output files in this directory")
    server.add_argument("--cpu", type=int, default=None,
                        help="pin server and client to this vCPU (as the timed suite does)")
    server.add_argument("--conns", type=int, default=10,
                        help="client connections (default 10 as in the suite; 1 repeats exactly)")
    args = p.parse_args(argv)
    src = args.tideloop_from.resolve()
    for loop in args.loops.split(","):
        if args.cmd == "internal":
            sizes = [int(x) for x in args.n.split(",")]
            measure = partial(internal_total, loop, args.bench, tideloop_from=src, keep=args.keep)
            per = _per_unit(measure, sizes)
            print(f"{args.bench:<12} {loop:<12} {per:>10,.0f} instructions per unit", flush=True)
        else:
            sizes = [int(x) for x in args.requests.split(",")]
            measure = partial(server_total, loop, args.kind, args.size, tideloop_from=src,
                              keep=args.keep, cpu=args.cpu, conns=args.conns)
            per = _per_unit(measure, sizes)
            print(f"{args.kind}/{args.size:<6} {loop:<12} {per:>10,.0f} instructions per request",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
