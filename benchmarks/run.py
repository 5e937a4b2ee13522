"""Benchmark runner: ``python benchmarks/run.py [--quick]`` (or ``python -m benchmarks``).

Invariant: rounds alternate loops (A B C A B C ...) inside every benchmark point, each measurement
in a fresh child process pinned to one vCPU together with its load generator; a loop that fails a
point is recorded with its error and not retried in later rounds, and the run never aborts for it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: make the `benchmarks` package importable from the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _internals, _loops, _measure, _native, _report  # noqa: E402
from benchmarks._report import (
    CPU_SECONDS,
    CPU_US,
    PEAK_RSS,
    REQ_S,
    RSS_GROWTH,
    SECONDS,
    Metric,
)  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Point:
    """One row group of the table: a benchmark with fixed parameters, measured on every loop."""

    id: str
    title: str
    group: str  # "echo" | "http" | "internal" | "memory"
    metrics: tuple[Metric, ...]
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    with_c: bool = False  # the C epoll reference server is measured too


@dataclass
class Settings:
    quick: bool
    repeat: int
    duration: float
    warmup: float
    http_duration: float
    http_warmup: float
    sizes: list[int]
    conns: int
    http_conns: int
    scale: float
    mem_requests: int


def _size_label(size: int) -> str:
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def build_points(s: Settings, groups: set[str]) -> list[Point]:
    pts: list[Point] = []
    if "echo" in groups:
        for size in s.sizes:
            for style, name in (
                ("protocol", "Protocol"),
                ("streams", "Streams"),
                ("sock", "sock_*"),
            ):
                pts.append(
                    Point(
                        f"echo-{style}-{size}",
                        f"TCP echo {name} {_size_label(size)}",
                        "echo",
                        (REQ_S, CPU_US),
                        {"style": style, "size": size},
                        with_c=style == "protocol",
                    )
                )
    if "http" in groups:
        pts.append(
            Point(
                "http-httptools",
                "HTTP httptools (wrk -c50)",
                "http",
                (REQ_S, CPU_US),
                {"kind": "http"},
            )
        )
        pts.append(
            Point(
                "http-aiohttp",
                "HTTP aiohttp (wrk -c50)",
                "http",
                (REQ_S, CPU_US),
                {"kind": "aiohttp"},
            )
        )
    if "internal" in groups:
        for bench, n in _internals.DEFAULT_N.items():
            scaled = max(100, int(n * s.scale))
            title = f"{_count(scaled)} {_internals.TITLES[bench]}"
            if bench == "sleep0":
                title = f"100 tasks x {scaled // 100} sleep(0)"
            pts.append(
                Point(
                    f"internal-{bench}",
                    title,
                    "internal",
                    (SECONDS, CPU_SECONDS),
                    {"bench": bench, "n": scaled},
                )
            )
    if "memory" in groups:
        pts.append(
            Point(
                "memory-echo-protocol",
                f"echo Protocol 1 KiB, {_count(s.mem_requests)} requests",
                "memory",
                (PEAK_RSS, RSS_GROWTH),
                {"style": "protocol", "size": 1024},
            )
        )
    return pts


def _count(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def measure(
    point: Point, loop: str, s: Settings, setup: _measure.ChildSetup, bins: dict[str, Path] | None
) -> tuple[dict[str, float], dict[str, Any]]:
    p = point.params
    if point.group == "internal":
        return _measure.measure_internal(setup, loop, bench=p["bench"], n=p["n"])
    if point.group == "http":
        return _measure.measure_http(
            setup,
            loop,
            kind=p["kind"],
            conns=s.http_conns,
            warmup=s.http_warmup,
            duration=s.http_duration,
        )
    if bins is None:
        raise _native.ToolMissing("C tools not built (no C compiler?)")
    if point.group == "echo":
        return _measure.measure_echo(
            setup,
            loop,
            bins,
            style=p["style"],
            size=p["size"],
            conns=s.conns,
            warmup=s.warmup,
            duration=s.duration,
        )
    if point.group == "memory":
        return _measure.measure_memory(
            setup,
            loop,
            bins,
            style=p["style"],
            size=p["size"],
            conns=s.conns,
            warm_requests=max(1000, s.mem_requests // 10),
            requests=s.mem_requests,
            max_seconds=600,
        )
    raise ValueError(point.group)


def _short(metrics: dict[str, float], point: Point) -> str:
    return ", ".join(f"{_report.fmt(metrics[m.key], m.unit)} {m.unit}" for m in point.metrics)


def _contended(metrics: dict[str, float], point: Point) -> bool:
    """Another process took the benchmark vCPU during the measured window.

    Internal runs: the child got < 85% of its wall time as CPU time. Network runs: > 10% of the
    pinned vCPU's task time belonged to neither the server nor the load generator.
    """
    if point.group == "internal":
        share = metrics.get("cpu_share")
        return share is not None and share < 0.85
    if point.group in ("echo", "http"):
        return metrics.get("foreign_share", 0.0) > 0.10
    return False


def _share_text(metrics: dict[str, float]) -> str:
    if "foreign_share" in metrics:
        return f"{metrics['foreign_share']:.0%} of it went to others"
    return f"got {metrics.get('cpu_share', 0):.0%} of wall time"


def probe_loops(names: list[str], setup: _measure.ChildSetup) -> tuple[list[str], dict[str, Any]]:
    """Which loops can run here; the rest are skipped with the reason recorded."""
    usable: list[str] = []
    notes: dict[str, Any] = {}
    for name in names:
        try:
            info = _measure.run_child_json(setup, name, ["probe", "--loop", name], timeout=60)
        except Exception as exc:  # a missing loop is a note, not a failure of the run
            notes[name] = {"skipped": str(exc)}
            print(f"  skip {name}: {exc}", file=sys.stderr)
            continue
        usable.append(name)
        notes[name] = info
    return usable, notes


def tideloop_pythonpath(choice: str) -> list[str]:
    """Where children import tideloop from: the in-tree src/ (after build_ext --inplace) or site."""
    if choice == "installed":
        return []
    if choice in ("src", "auto"):
        return [str(ROOT / "src")] if (ROOT / "src" / "tideloop").is_dir() else []
    return [choice]


def precompile(python: str, pythonpath: list[str]) -> None:
    """Byte-compile the in-tree sources every child imports, as an installed package would be.

    The peers run from site-packages, where pip wrote their bytecode; without this, each child
    would compile tideloop (and the benchmark modules) from source, which costs time and, worse
    for the memory group, about 3 KiB of peak RSS per line of the largest module compiled.
    compileall writes the caches even under PYTHONDONTWRITEBYTECODE.
    """
    dirs = [str(Path(p) / "tideloop") for p in pythonpath if (Path(p) / "tideloop").is_dir()]
    dirs.append(str(ROOT / "benchmarks"))
    subprocess.run([python, "-m", "compileall", "-q", *dirs], check=False,
                   stdout=subprocess.DEVNULL)


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return ""


def machine_info(python: str) -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if python == sys.executable:
        pyver = platform.python_version()
    else:
        pyver = subprocess.run(
            [python, "-c", "import platform;print(platform.python_version())"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": pyver,
        "python_executable": python,
        "platform": platform.platform(),
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "hostname": platform.node(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round, short points (< 60 s)")
    p.add_argument(
        "--loops",
        default=",".join(_loops.ALL_LOOPS),
        help="comma-separated loops (default: %(default)s)",
    )
    p.add_argument(
        "--groups",
        default="internal,echo,http,memory",
        help="comma-separated groups: internal, echo, http, memory (default: all)",
    )
    p.add_argument(
        "--only",
        default="",
        help="comma-separated glob patterns on point ids, "
        "e.g. 'echo-protocol-*,internal-call_soon'",
    )
    p.add_argument("--repeat", type=int, help="rounds per point (default: 3, quick: 1)")
    p.add_argument("--duration", type=float, help="seconds per echo point (default 2, quick 0.5)")
    p.add_argument("--warmup", type=float, help="echo warm-up seconds (default 0.5, quick 0.2)")
    p.add_argument(
        "--sizes", help="echo message sizes in bytes (default 1024,10240,102400; quick 1024)"
    )
    p.add_argument("--conns", type=int, default=10, help="echo connections (default 10)")
    p.add_argument("--http-conns", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument(
        "--scale", type=float, help="factor on internal benchmark sizes (default 1, quick 0.1)"
    )
    p.add_argument(
        "--mem-requests",
        type=int,
        help="requests in the memory run "
        "(default 200000, quick 20000; the issue's check is 1000000)",
    )
    p.add_argument(
        "--cpu", default="1", help="vCPU for server+client (taskset -c); 'none' = unpinned"
    )
    p.add_argument("--python", default=sys.executable, help="interpreter for the children")
    p.add_argument(
        "--tideloop-from",
        default="auto",
        help="'src' (in-tree, after build_ext --inplace), 'installed', or a directory; "
        "'auto' = src when present",
    )
    p.add_argument(
        "--json", type=Path, help="result file (default benchmarks/results/<stamp>.json)"
    )
    p.add_argument("--markdown", type=Path, help="also write the table to this file")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument(
        "--retries",
        type=int,
        help="re-measure a point when another process took the vCPU meanwhile (default 2, quick 1)",
    )
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="skip the loop availability probe (a missing loop then shows up as failed rows)",
    )
    return p.parse_args(argv)


def settings_from(a: argparse.Namespace) -> Settings:
    q = a.quick
    sizes = (
        [int(x) for x in a.sizes.split(",")]
        if a.sizes
        else ([1024] if q else [1024, 10240, 102400])
    )
    return Settings(
        quick=q,
        repeat=a.repeat or (1 if q else 3),
        duration=a.duration or (0.5 if q else 2.0),
        warmup=a.warmup if a.warmup is not None else (0.2 if q else 0.5),
        # wrk runs in whole seconds; quick mode skips the wrk warm-up to stay under a minute.
        http_duration=max(1.0, a.duration or (1.0 if q else 2.0)),
        http_warmup=0.0 if q else 1.0,
        sizes=sizes,
        conns=a.conns,
        http_conns=a.http_conns,
        scale=a.scale or (0.1 if q else 1.0),
        mem_requests=a.mem_requests or (20_000 if q else 200_000),
    )


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    s = settings_from(a)
    if a.retries is None:
        a.retries = 1 if a.quick else 2
    cpu = None if a.cpu == "none" else int(a.cpu)
    if cpu is not None and cpu >= (os.cpu_count() or 1):
        cpu = (os.cpu_count() or 1) - 1
    if cpu is not None:
        # Keep this coordinating process off the benchmark vCPU (children are pinned onto it).
        others = os.sched_getaffinity(0) - {cpu}
        if others:
            os.sched_setaffinity(0, others)
    setup = _measure.ChildSetup(
        python=a.python, pythonpath=tideloop_pythonpath(a.tideloop_from), cpu=cpu
    )
    precompile(a.python, setup.pythonpath)
    groups = {g.strip() for g in a.groups.split(",") if g.strip()}
    points = build_points(s, groups)
    if a.only:
        pats = [x.strip() for x in a.only.split(",") if x.strip()]
        points = [p for p in points if any(fnmatch.fnmatch(p.id, pat) for pat in pats)]
    if not points:
        print("no benchmark selected", file=sys.stderr)
        return 2

    notes: list[str] = []
    bins: dict[str, Path] | None = None
    if any(p.group in ("echo", "memory") for p in points):
        try:
            bins = _native.build()
        except (_native.ToolMissing, subprocess.CalledProcessError) as exc:
            notes.append(f"network benchmarks skipped: {exc}")
    if any(p.group == "http" for p in points) and shutil.which("wrk") is None:
        notes.append("HTTP benchmarks skipped: wrk not found (Debian: apt-get install -y wrk)")
        points = [p for p in points if p.group != "http"]
    if bins is None:
        points = [p for p in points if p.group not in ("echo", "memory")]

    wanted = [x.strip() for x in a.loops.split(",") if x.strip()]
    loop_info: dict[str, Any]
    if a.no_probe:
        loops, loop_info = wanted, {name: {} for name in wanted}
    else:
        print(f"probing loops with {a.python} ...", file=sys.stderr)
        loops, loop_info = probe_loops(wanted, setup)
    for name, info in loop_info.items():
        if "skipped" in info:
            notes.append(f"{name} skipped: {info['skipped']}")
    if not loops:
        print("no loop usable", file=sys.stderr)
        return 2

    load_before = _loadavg()
    raw: list[dict[str, Any]] = []
    broken: set[tuple[str, str]] = set()
    t_start = time.monotonic()
    for rnd in range(s.repeat):
        for point in points:
            series = [*loops, *([_loops.C_REFERENCE] if point.with_c else [])]
            for loop in series:
                if (point.id, loop) in broken:
                    continue
                rec: dict[str, Any] = {"point": point.id, "loop": loop, "round": rnd}
                try:
                    attempts = 0
                    for _ in range(1 + a.retries):
                        attempts += 1
                        metrics, info = measure(point, loop, s, setup, bins)
                        if not _contended(metrics, point) or attempts > a.retries:
                            break
                        print(
                            f"  retry {point.id} {loop}: vCPU shared with another process "
                            f"({_share_text(metrics)})",
                            file=sys.stderr,
                        )
                    rec["metrics"] = metrics
                    rec["info"] = info
                    rec["attempts"] = attempts
                    msg = _short(metrics, point)
                    if _contended(metrics, point):
                        rec["contended"] = True
                        msg += "  (contended)"
                except Exception as exc:  # recorded and reported; the run goes on
                    rec["error"] = f"{type(exc).__name__}: {exc}"
                    broken.add((point.id, loop))
                    msg = f"FAILED {rec['error']}"
                raw.append(rec)
                print(f"[{rnd + 1}/{s.repeat}] {point.id:<26} {loop:<12} {msg}", file=sys.stderr)
    elapsed = time.monotonic() - t_start
    contended = sum(1 for r in raw if r.get("contended"))
    if contended:
        notes.append(
            f"{contended} measurement(s) still shared the benchmark vCPU with another process "
            f"after {a.retries} retries; their req/s and wall times are "
            "pessimistic, CPU us/req is not affected"
        )

    rows = _report.summarize(raw, points, loops)
    table = _report.format_table(rows, loops)
    meta = machine_info(a.python)
    meta.update(
        {
            "quick": s.quick,
            "rounds": s.repeat,
            "elapsed_s": round(elapsed, 1),
            "cpu_pinned": cpu,
            "settings": s.__dict__,
            "argv": sys.argv[1:] if argv is None else argv,
            "loops": loop_info,
            "notes": notes,
            "loadavg_before": load_before,
            "loadavg_after": _loadavg(),
        }
    )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    out = a.json or RESULTS / f"{stamp}-py{meta['python']}{'-quick' if s.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "summary": rows, "raw": raw}, indent=1))

    subtitle = (
        f"Python {meta['python']}, {meta['cpu_model']}, {meta['date']}, "
        f"{s.repeat} round(s){' (quick)' if s.quick else ''}"
    )
    print(f"\n{subtitle}; medians (min–max); ratios > 1.00x mean tideloop is better\n")
    print(table)
    softirqd = _report.softirqd_note(rows)
    if softirqd:
        notes.append(softirqd)
    for note in [*notes, *_report.failures(rows)]:
        print(f"note: {note}")
    if a.markdown:
        note_lines = "".join(f"\n- {n}" for n in [*notes, *_report.failures(rows)])
        a.markdown.write_text(f"{subtitle}\n\n{table}\n{note_lines}\n")
    print(f"\nJSON: {out}")
    if not a.no_chart:
        try:
            chart = _report.write_chart(rows, loops, out, subtitle)
            print(f"chart: {chart}")
        except Exception as exc:  # a chart problem must not lose the measured table
            print(f"chart failed: {exc}")
    print(f"total {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
