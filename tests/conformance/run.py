"""Run CPython's own asyncio test suite (test.test_asyncio) with a loop under test swapped in.

Invariant: each module runs in its own child process (swap.py); a test is counted for the loop under
test only if it created such a loop, and the exit status is non-zero exactly when a counted test
failed without a matching entry in known_failures.txt, or when the harness itself could not run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import fnmatch
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SWAP = HERE / "swap.py"
KNOWN_FAILURES = HERE / "known_failures.txt"
DEFERRED = HERE / "deferred.txt"
PY = f"{sys.version_info.major}.{sys.version_info.minor}"

# Issue 2's list: everything a loop without transports must pass.
ISSUE2 = [
    "test_tasks", "test_futures2", "test_eager_task_factory", "test_taskgroups", "test_timeouts",
    "test_waitfor", "test_locks", "test_queues", "test_context", "test_pep492", "test_threads",
    "test_runners", "test_events",
]
# Modules whose tests need transports, servers, TLS, subprocesses (later issues).
IO = [
    "test_events", "test_streams", "test_server", "test_ssl", "test_sslproto", "test_sock_lowlevel",
    "test_sendfile", "test_buffered_proto", "test_subprocess", "test_protocols", "test_transports",
]
# Modules only meaningful on Windows; they skip themselves, so "all" leaves them out to save time.
WINDOWS_ONLY = {"test_windows_events", "test_windows_utils", "test_proactor_events"}


def _suite_dir() -> Path:
    try:
        import test.test_asyncio as pkg
    except ImportError as exc:
        # Distribution Pythons often ship the test package separately (Debian:
        # libpython3.X-testsuite); pyenv and python.org builds include it.
        raise SystemExit(f"CPython's test.test_asyncio is not installed for {sys.executable}: "
                         f"{exc}") from None
    return Path(pkg.__path__[0])


def available_modules() -> list[str]:
    return sorted(p.stem for p in _suite_dir().glob("test_*.py"))


def resolve_modules(spec: str) -> list[str]:
    have = set(available_modules())
    out: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part == "issue2":
            names = ISSUE2
        elif part == "core":
            # Issue 2's list plus test_futures, which needs no I/O either.
            names = [*ISSUE2, "test_futures"]
        elif part == "io":
            names = IO
        elif part == "all":
            names = [m for m in sorted(have) if m not in WINDOWS_ONLY]
        else:
            names = [part if part.startswith("test_") else f"test_{part}"]
        for name in names:
            if name not in have:
                # test_eager_task_factory is 3.12+: a missing module is reported, not an error.
                print(f"note: {name} does not exist on Python {PY}; skipped", file=sys.stderr)
                continue
            if name not in out:
                out.append(name)
    return out


@dataclass
class Entry:
    """One line of known_failures.txt / deferred.txt."""

    pattern: str
    pythons: set[str] | None  # None: every version
    modes: set[str] | None
    reason: str
    line: int
    used: int = 0

    def active(self, mode: str) -> bool:
        return (self.pythons is None or PY in self.pythons) and (
            self.modes is None or mode in self.modes)

    def applies(self, test_id: str, mode: str) -> bool:
        return self.active(mode) and fnmatch.fnmatchcase(test_id, self.pattern)


def parse_list(path: Path, loop: str, *, need_reason: bool = True) -> list[Entry]:
    """Parse `<glob> [pythons] [modes]  # reason` lines; `[loop]` headers select a section.

    pythons is `*` or a comma list (3.11,3.12); modes is compiled / interpreted (default both).
    Lines before any section header apply to every loop.
    """
    if not path.exists():
        return []
    entries: list[Entry] = []
    section: str | None = None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        body, _, reason = line.partition("#")
        reason = reason.strip()
        if need_reason and not reason:
            raise SystemExit(f"{path}:{n}: every entry needs a '# reason'")
        if section is not None and section != loop:
            continue
        fields = body.split()
        pythons: set[str] | None = None
        modes: set[str] | None = None
        for extra in fields[1:]:
            values = set(extra.split(","))
            if values <= {"compiled", "interpreted"}:
                modes = values
            elif extra != "*":
                pythons = values
        entries.append(Entry(fields[0], pythons, modes, reason, n))
    return entries


@dataclass
class ModuleResult:
    module: str
    tests: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    harness_errors: list[str] = field(default_factory=list)
    restarts: int = 0
    seconds: float = 0.0


# Children run in their own sessions (so a timeout kills a test's helpers too); these are killed
# if the runner itself is interrupted or terminated.
_LIVE: set[subprocess.Popen[bytes]] = set()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _on_terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_module(module: str, args: argparse.Namespace, env: dict[str, str],
               include: list[str], exclude: list[str], workdir: Path) -> ModuleResult:
    """Run one module, resuming after the test in flight whenever the child dies or hangs."""
    res = ModuleResult(module)
    started = time.monotonic()
    seen: set[str] = set()
    attempt = 0
    while True:
        attempt += 1
        events = workdir / f"{module}.{attempt}.jsonl"
        log = workdir / f"{module}.{attempt}.log"
        cfg = workdir / f"{module}.{attempt}.json"
        cfg.write_text(json.dumps({"include": include, "exclude": exclude,
                                   "skip_ids": sorted(seen)}))
        cmd = [sys.executable, str(SWAP), module, "--loop", args.loop, "--events", str(events),
               "--config", str(cfg), "--per-test-timeout", str(args.per_test_timeout)]
        if args.shallow:
            cmd.append("--shallow")
        budget = args.timeout - (time.monotonic() - started)
        with open(log, "w") as logf:
            proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=str(workdir),
                                    start_new_session=True)
            _LIVE.add(proc)
            timed_out = False
            try:
                rc = proc.wait(timeout=max(budget, 1.0))
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill(proc)
                rc = proc.wait()
            finally:
                _LIVE.discard(proc)
        in_flight: str | None = None
        done = False
        for line in events.read_text().splitlines() if events.exists() else []:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the kill
            kind = ev.get("ev")
            if kind == "start":
                in_flight = ev["id"]
            elif kind == "end":
                res.tests.append(ev)
                seen.add(ev["id"])
                if ev["id"] == in_flight:
                    in_flight = None
            elif kind == "meta":
                res.meta = ev
            elif kind == "plan" and not res.plan:
                res.plan = ev
            elif kind == "setup_error":
                res.harness_errors.append(f"setup: {ev['detail']}\n{ev['tb']}")
            elif kind == "done":
                done = True
        if done:
            break
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        if in_flight is None:
            # Died outside any test (import, fixture teardown): nothing to resume after.
            if not res.harness_errors:
                res.harness_errors.append(f"child exited rc={rc} outside a test:\n{tail}")
            break
        why = "module timeout" if timed_out else f"child died rc={rc} (per-test timeout or crash)"
        res.tests.append({"ev": "end", "id": in_flight, "outcome": "error", "on_loop": True,
                          "loops": None, "detail": why, "tb": tail, "seconds": None})
        seen.add(in_flight)
        if timed_out or attempt > args.max_restarts:
            res.harness_errors.append(f"gave up after {attempt} attempts ({why})")
            break
        res.restarts += 1
    res.seconds = time.monotonic() - started
    return res


@dataclass
class Row:
    module: str
    on_loop: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    known: int = 0
    skipped: int = 0
    not_on_loop: int = 0
    off_loop_bad: int = 0
    deselected: int = 0
    seconds: float = 0.0


def tally(res: ModuleResult, known: list[Entry], mode: str) -> tuple[Row, list[dict[str, Any]]]:
    """Count one module; return its row and the failing on-loop tests (marked known or not)."""
    row = Row(res.module, deselected=res.plan.get("deselected", 0), seconds=res.seconds)
    bad: list[dict[str, Any]] = []
    for t in res.tests:
        outcome = t["outcome"]
        if outcome == "skip":
            row.skipped += 1
            continue
        if not t["on_loop"]:
            row.not_on_loop += 1
            if outcome != "pass":
                row.off_loop_bad += 1
            continue
        row.on_loop += 1
        if outcome == "pass":
            row.passed += 1
            continue
        if outcome == "fail":
            row.failed += 1
        else:
            row.errors += 1
        hit = next((e for e in known if e.applies(t["id"], mode)), None)
        if hit is not None:
            hit.used += 1
            row.known += 1
        bad.append({**t, "known": hit.reason if hit else None})
    return row, bad


COLUMNS = [("module", "module"), ("on_loop", "ran on {loop}"), ("passed", "passed"),
           ("failed", "failed"), ("errors", "errors"), ("known", "known"),
           ("skipped", "skipped"), ("not_on_loop", "not on {loop}"),
           ("deselected", "deselected"), ("seconds", "seconds")]


def render(rows: list[Row], loop: str, markdown: bool) -> str:
    heads = [h.format(loop=loop) for _, h in COLUMNS]
    total = Row("TOTAL")
    for r in rows:
        for name, _ in COLUMNS[1:]:
            setattr(total, name, getattr(total, name) + getattr(r, name))
    cells = []
    for r in [*rows, total]:
        cells.append([f"{getattr(r, n):.1f}" if n == "seconds" else str(getattr(r, n))
                      for n, _ in COLUMNS])
    if markdown:
        lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines)
    widths = [max(len(heads[i]), *(len(c[i]) for c in cells)) for i in range(len(heads))]

    def fmt(c: list[str]) -> str:
        return "  ".join(c[0].ljust(widths[0]) if i == 0 else c[i].rjust(widths[i])
                         for i in range(len(c)))

    return "\n".join([fmt(heads), fmt(["-" * w for w in widths]), *map(fmt, cells[:-1]),
                      fmt(["-" * w for w in widths]), fmt(cells[-1])])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # test_subprocess joined the default set with issue 4 (subprocesses and pipes).
    ap.add_argument("--modules", default="issue2,test_subprocess",
                    help="comma list of modules and groups: issue2, core (issue2 + "
                         "test_futures), io, all; default: issue2,test_subprocess")
    ap.add_argument("--loop", choices=["tideloop", "asyncio", "uvloop"], default="tideloop")
    ap.add_argument("--mode", choices=["compiled", "interpreted"], default=None,
                    help="tideloop core: interpreted sets TIDELOOP_NO_EXTENSIONS=1 "
                         "(default: whatever the environment says)")
    ap.add_argument("--reactor", default=None, help="sets TIDELOOP_REACTOR (e.g. poll)")
    ap.add_argument("-k", dest="include", action="append", default=[],
                    help="only tests whose id matches (substring or glob), repeatable")
    ap.add_argument("--exclude", action="append", default=[], help="drop matching tests")
    ap.add_argument("--exclude-file", action="append", default=[], type=Path)
    ap.add_argument("--all-tests", action="store_true",
                    help=f"do not apply {DEFERRED.name} (tests deferred to later issues)")
    ap.add_argument("--shallow", action="store_true",
                    help="only swap the policy and selector-bound classes, not the suite's "
                         "stand-in loops (TestLoop without time generator, mocked BaseEventLoop)")
    ap.add_argument("--known-failures", type=Path, default=KNOWN_FAILURES)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per module")
    ap.add_argument("--per-test-timeout", type=float, default=120.0)
    ap.add_argument("--max-restarts", type=int, default=20)
    ap.add_argument("--json", type=Path, help="write every test's outcome here")
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown")
    ap.add_argument("--show-tb", action="store_true", help="print tracebacks of failures")
    ap.add_argument("--keep-logs", type=Path, help="keep child logs in this directory")
    ap.add_argument("--ci", action="store_true",
                    help="CI preset: 2 workers, 30 s per test, 600 s per module (mode and "
                         "reactor still come from the flags or the environment)")
    args = ap.parse_args(argv)
    if args.ci:
        args.workers = max(args.workers, 2)
        args.per_test_timeout = min(args.per_test_timeout, 30.0)
        args.timeout = min(args.timeout, 600.0)

    env = dict(os.environ)
    if args.mode == "interpreted":
        env["TIDELOOP_NO_EXTENSIONS"] = "1"
    elif args.mode == "compiled":
        env.pop("TIDELOOP_NO_EXTENSIONS", None)
    mode = args.mode or ("interpreted" if env.get("TIDELOOP_NO_EXTENSIONS") == "1"
                         else "compiled")
    if args.reactor:
        env["TIDELOOP_REACTOR"] = args.reactor
    # Asyncio's debug mode changes what tests see; the suite expects it off unless it asks.
    env.pop("PYTHONASYNCIODEBUG", None)

    modules = resolve_modules(args.modules)
    if not modules:
        print(f"no test modules selected by --modules {args.modules!r}", file=sys.stderr)
        return 2
    exclude = list(args.exclude)
    deferred = [] if args.all_tests else parse_list(DEFERRED, args.loop)
    exclude += [e.pattern for e in deferred if e.active(mode)]
    for path in args.exclude_file:
        exclude += [e.pattern for e in parse_list(path, args.loop, need_reason=False)
                    if e.active(mode)]
    known = parse_list(args.known_failures, args.loop) if args.known_failures else []

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tideloop-conf-") as tmp:
        workdir = args.keep_logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGTERM, _on_terminate)
        pool = concurrent.futures.ThreadPoolExecutor(max(1, args.workers))
        try:
            futs = {m: pool.submit(run_module, m, args, env, args.include, exclude, workdir)
                    for m in modules}
            results = [futs[m].result() for m in modules]
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in list(_LIVE):
                _kill(proc)
            print("interrupted: children killed", file=sys.stderr)
            return 130
        pool.shutdown()
    wall = time.monotonic() - t0

    rows: list[Row] = []
    failures: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    for res in results:
        row, bad = tally(res, known, mode)
        rows.append(row)
        failures += bad
        meta = meta or res.meta
    harness = [(r.module, e) for r in results for e in r.harness_errors]

    reactor = env.get("TIDELOOP_REACTOR", "default")
    print(f"# conformance: Python {sys.version.split()[0]}, loop={args.loop}, mode={mode}, "
          f"reactor={reactor}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if args.loop == "tideloop" and meta:
        print(f"# tideloop: {meta.get('tideloop_file')} COMPILED={meta.get('compiled')}")
    print(render(rows, args.loop, args.markdown))
    print(f"# wall time {wall:.1f}s with {args.workers} worker(s)")

    unexpected = [f for f in failures if f["known"] is None]
    for f in failures:
        tag = f"known: {f['known']}" if f["known"] else "UNEXPECTED"
        print(f"{f['outcome'].upper():5} {f['id']}  -- {f['detail']}  [{tag}]")
        if args.show_tb and f.get("tb"):
            print("    " + f["tb"].replace("\n", "\n    "))
    if len(failures) > 10:
        # Big runs (--modules all) fail in bulk for a few reasons; show them by message too.
        by_detail: dict[str, list[str]] = {}
        for f in failures:
            by_detail.setdefault(f["detail"] or f["outcome"], []).append(f["id"])
        print("# failures by message:")
        for detail, ids in sorted(by_detail.items(), key=lambda kv: -len(kv[1])):
            print(f"{len(ids):5}  {detail[:120]}  e.g. {ids[0]}")
    off_loop_bad = sum(r.off_loop_bad for r in rows)
    if off_loop_bad:
        print(f"note: {off_loop_bad} tests that did not run on {args.loop} failed "
              "(a side effect of the swap? see --json)")
    for mod, err in harness:
        print(f"HARNESS {mod}: {err}")
    ran_ids = [t["id"] for r in results for t in r.tests if t["outcome"] != "skip"]
    for e in known:
        # Only entries whose test ran and passed are stale; a filtered run says nothing.
        if e.used == 0 and e.active(mode) and any(e.applies(i, mode) for i in ran_ids):
            print(f"note: known failure now passes ({args.known_failures}:{e.line}): "
                  f"{e.pattern}")

    status = 0
    if unexpected:
        status = 1
    if harness:
        status = max(status, 2)
    compiled = meta.get("compiled")
    if args.loop == "tideloop" and compiled is not None and bool(compiled) != (mode == "compiled"):
        print(f"HARNESS: asked for mode={mode} but tideloop.COMPILED={compiled}")
        status = max(status, 2)

    if args.json:
        args.json.write_text(json.dumps({
            "python": sys.version.split()[0], "loop": args.loop, "mode": mode,
            "reactor": reactor, "meta": meta, "wall_seconds": round(wall, 1),
            "rows": [vars(r) for r in rows],
            "modules": {r.module: {"tests": r.tests, "restarts": r.restarts,
                                   "harness_errors": r.harness_errors} for r in results},
            "failures": failures, "exit_status": status,
        }, indent=1))
    return status


if __name__ == "__main__":
    sys.exit(main())
