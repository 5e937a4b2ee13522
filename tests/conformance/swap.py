"""Child side of the conformance runner: swap the loop under test into asyncio and run one module.

Invariant: every loop the swapped names hand out is built by `make_loop`, which bumps `LOOPS_MADE`;
a test counts as "on the loop under test" only if that counter moved while the test (or its class
fixture) ran.  Everything asyncio-private touched here is named in `_POLICY_NAMES`, `_swap_classes`
and `_adapt`.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import fnmatch
import importlib
import inspect
import json
import os
import re
import signal
import sys
import time
import traceback
import types
import unittest
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType, TracebackType
from typing import IO, Any

# The shape unittest hands to add*(): typeshed's sys._OptExcInfo minus its None case's use here.
_ExcInfo = (
    tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
)

# Captured before anything is swapped: the stock loop is the reference for `--loop asyncio`.
_STOCK_SELECTOR_LOOP: Any = asyncio.SelectorEventLoop

LOOPS_MADE = 0
# Other asyncio loops (test_utils.TestLoop, mocked BaseEventLoop): a test that made one of these
# may have run its body there, so it is not counted for the loop under test.
OTHER_LOOPS_MADE = 0
_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
LOOP_CLASS: type | None = None

PACKAGE = "test.test_asyncio"


def _pick_factory(loop: str) -> tuple[Callable[[], asyncio.AbstractEventLoop], type]:
    """Return (factory, class every loop it makes must be an instance of)."""
    if loop == "tideloop":
        try:
            import tideloop
        except ImportError:
            # Fall back to the checkout's src/ so the runner works before `pip install .`.
            src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
            sys.path.insert(0, os.path.abspath(src))
            import tideloop
        return tideloop.new_event_loop, tideloop.EventLoop
    if loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop, uvloop.Loop
    if loop == "asyncio":
        return _STOCK_SELECTOR_LOOP, _STOCK_SELECTOR_LOOP
    raise SystemExit(f"unknown loop {loop!r}")


def make_loop(*_ignored_selector: object) -> asyncio.AbstractEventLoop:
    """The one place loops under test come from (the selector a test asked for is ignored)."""
    global LOOPS_MADE
    assert _factory is not None and LOOP_CLASS is not None
    loop = _factory()
    if not isinstance(loop, LOOP_CLASS):
        # A factory that silently hands back some other loop would make every count a lie.
        raise AssertionError(f"loop factory returned {type(loop)!r}, not {LOOP_CLASS!r}")
    LOOPS_MADE += 1
    return loop


# Names asyncio rebuilds its default policy from after `set_event_loop_policy(None)`, which every
# test module's tearDownModule calls.  Checked against 3.11.7, 3.12.1, 3.13.0
# (events._init_event_loop_policy does `from . import DefaultEventLoopPolicy`); the underscore
# spellings are where 3.14 moved them (events._BaseDefaultEventLoopPolicy,
# asyncio._DefaultEventLoopPolicy) and are only replaced when present.
_POLICY_NAMES: tuple[tuple[str, str], ...] = (
    ("asyncio", "DefaultEventLoopPolicy"),
    ("asyncio", "_DefaultEventLoopPolicy"),
    ("asyncio.unix_events", "DefaultEventLoopPolicy"),
    ("asyncio.unix_events", "_DefaultEventLoopPolicy"),
    ("asyncio.unix_events", "_UnixDefaultEventLoopPolicy"),
)


def install(loop: str) -> dict[str, str]:
    """Swap the loop under test into asyncio's policy machinery; return what was replaced."""
    global _factory, LOOP_CLASS
    _factory, LOOP_CLASS = _pick_factory(loop)
    replaced: dict[str, str] = {}
    base: type | None = None
    for modname, attr in _POLICY_NAMES:
        # vars() rather than getattr(): 3.14 serves some of these through a warning __getattr__.
        cls = vars(importlib.import_module(modname)).get(attr)
        if isinstance(cls, type):
            base = cls
            break
    if base is None:
        raise SystemExit("no default event loop policy class found in asyncio")

    class SwappedPolicy(base):  # type: ignore[misc, valid-type]
        """The platform default policy, except that new loops are loops under test."""

        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return make_loop()

    SwappedPolicy.__qualname__ = SwappedPolicy.__name__ = f"Swapped{base.__name__}"
    for modname, attr in _POLICY_NAMES:
        mod = importlib.import_module(modname)
        if attr in vars(mod):
            replaced[f"{modname}.{attr}"] = repr(vars(mod)[attr])
            setattr(mod, attr, SwappedPolicy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(None)
        # Self-check: the public entry point must now reach the factory, on every version.
        before = LOOPS_MADE
        probe = asyncio.new_event_loop()
        probe.close()
        if LOOPS_MADE != before + 1:
            raise SystemExit("asyncio.new_event_loop() does not reach the swapped policy")
    return replaced


def _count_other_loops() -> None:
    base = asyncio.base_events.BaseEventLoop
    orig_init = base.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        global OTHER_LOOPS_MADE
        if LOOP_CLASS is None or not isinstance(self, LOOP_CLASS):
            OTHER_LOOPS_MADE += 1
        orig_init(self, *args, **kwargs)

    base.__init__ = __init__  # type: ignore[method-assign]


# TestLoop-only API (fd bookkeeping a real loop does not have); seen in test_selector_events,
# test_unix_events, test_proactor_events on 3.11-3.13.
_TESTLOOP_API = re.compile(r"assert_(no_)?(reader|writer)|remove_(reader|writer)_count|"
                           r"\.(readers|writers)\b")
# Unit tests of asyncio's BaseEventLoop itself.
_INTERNALS = frozenset({"test_base_events"})


def _adapt(module: ModuleType) -> list[str]:
    """Deep swap: route the suite's plain "give me a fresh loop" helpers to the loop under test.

    Only helpers whose loop is a stand-in for a real one are rerouted: test_utils' TestLoop without
    a time generator (no timers can fire on it), and the mocked BaseEventLoop of test_pep492 and
    test_runners.  TestLoop *with* a generator drives virtual time and stays.  `--loop asyncio`
    must still pass with these adapters; that run is what validates them.
    """
    from test.test_asyncio import utils

    notes: list[str] = []
    tc = utils.TestCase
    name = module.__name__.rsplit(".", 1)[-1]
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        source = ""
    # Modules that test asyncio's own internals or use TestLoop's bookkeeping keep TestLoop.
    uses_testloop_api = bool(_TESTLOOP_API.search(source)) or name in _INTERNALS
    if uses_testloop_api:
        notes.append("TestLoop kept: module uses its bookkeeping or tests asyncio internals")
    elif not getattr(tc, "_conformance_adapted", False):
        orig_new_test_loop = tc.new_test_loop
        orig_close_loop = tc.close_loop

        def new_test_loop(self: Any, gen: Any = None) -> asyncio.AbstractEventLoop:
            if gen is not None:
                return orig_new_test_loop(self, gen)  # type: ignore[no-any-return]
            loop = make_loop()
            self.set_event_loop(loop)
            return loop

        def close_loop(loop: Any) -> None:
            if hasattr(loop, "_default_executor"):
                orig_close_loop(loop)
                return
            # Same clean-up through public API only, for loops without asyncio's private field;
            # the original then does the rest (close, child-watcher threads) on a stand-in.
            if not loop.is_closed():
                loop.run_until_complete(loop.shutdown_default_executor())
            orig_close_loop(types.SimpleNamespace(_default_executor=None, close=loop.close))

        tc.new_test_loop = new_test_loop  # type: ignore[method-assign]
        tc.close_loop = staticmethod(close_loop)  # type: ignore[assignment]
        tc._conformance_adapted = True  # type: ignore[attr-defined]
        notes.append("utils.TestCase.new_test_loop() without gen -> loop under test")

    base = vars(module).get("BaseTest")
    if name == "test_pep492" and isinstance(base, type):

        def setUp(self: Any) -> None:
            utils.TestCase.setUp(self)
            self.loop = make_loop()
            self.set_event_loop(self.loop)

        base.setUp = setUp  # type: ignore[attr-defined]
        notes.append("test_pep492.BaseTest.setUp: mocked BaseEventLoop -> loop under test")
    elif name == "test_runners" and isinstance(base, type):

        def new_loop(self: Any) -> asyncio.AbstractEventLoop:
            loop: Any = make_loop()
            loop.shutdown_ag_run = False
            real = loop.shutdown_asyncgens

            async def shutdown_asyncgens() -> None:
                loop.shutdown_ag_run = True
                await real()

            loop.shutdown_asyncgens = shutdown_asyncgens
            return loop  # type: ignore[no-any-return]

        base.new_loop = new_loop  # type: ignore[attr-defined]
        notes.append("test_runners.BaseTest.new_loop: mocked BaseEventLoop -> loop under test")
    return notes


# The Unix variants that are only ever instantiated with asyncio.SelectorEventLoop(<selector>).
_SELECTOR_VARIANT = re.compile(r"^(Kqueue|EPoll|Poll|Select)EventLoopTests$")
_LOOP_METHODS = ("create_event_loop", "new_loop")


def _binds_selector_loop(cls: type) -> str | None:
    """Name of the method through which `cls` builds a SelectorEventLoop itself, if any."""
    for name in _LOOP_METHODS:
        fn = cls.__dict__.get(name)
        if fn is None:
            continue
        try:
            src = inspect.getsource(fn)
        except (OSError, TypeError):
            continue
        if "SelectorEventLoop" in src:
            return name
    return None


def _swap_classes(module: ModuleType) -> list[str]:
    """Rebind test classes that build `asyncio.SelectorEventLoop` themselves to the loop under test.

    The Kqueue/EPoll/Poll/Select variants differ only in the selector handed to SelectorEventLoop,
    which means nothing to another loop, so they collapse into one `Swap<Name>` class (reactor
    choice is TIDELOOP_REACTOR's job).  Other such classes (test_buffered_proto, test_server,
    test_sslproto) are replaced in place under their own name.
    """
    notes: list[str] = []
    variants: dict[str, type] = {}
    for name, obj in list(vars(module).items()):
        if not (isinstance(obj, type) and issubclass(obj, unittest.TestCase)):
            continue
        if obj.__module__ != module.__name__:
            continue
        method = _binds_selector_loop(obj)
        if method is None:
            continue

        def _loop(self: object) -> asyncio.AbstractEventLoop:
            return make_loop()

        if _SELECTOR_VARIANT.match(name):
            variants[name] = obj
            delattr(module, name)
            continue
        new = type(name, (obj,), {method: _loop, "__module__": module.__name__})
        new.__qualname__ = name
        setattr(module, name, new)
        notes.append(f"{name}.{method} -> loop under test")
    if variants:
        # SelectEventLoopTests always exists on Unix and adds no selector-specific test overrides.
        base = variants.get("SelectEventLoopTests") or next(iter(variants.values()))
        method = _binds_selector_loop(base) or "create_event_loop"

        def _loop2(self: object) -> asyncio.AbstractEventLoop:
            return make_loop()

        new_name = "SwapEventLoopTests"
        new = type(new_name, (base,), {method: _loop2, "__module__": module.__name__})
        new.__qualname__ = new_name
        setattr(module, new_name, new)
        notes.append(f"{'/'.join(sorted(variants))} -> {new_name}")
    return notes


def short_id(test_id: str) -> str:
    prefix = PACKAGE + "."
    return test_id[len(prefix) :] if test_id.startswith(prefix) else test_id


def match_any(test_id: str, patterns: list[str]) -> bool:
    """unittest -k semantics: a pattern with wildcards is a glob, otherwise a substring."""
    for pat in patterns:
        if any(ch in pat for ch in "*?["):
            if fnmatch.fnmatchcase(test_id, pat):
                return True
        elif pat in test_id:
            return True
    return False


def _flatten(suite: unittest.TestSuite | unittest.TestCase) -> Iterator[unittest.TestCase]:
    if isinstance(suite, unittest.TestSuite):
        for sub in suite:
            yield from _flatten(sub)
    else:
        yield suite


class StreamingResult(unittest.TestResult):
    """One flushed JSON line per test, so a crash or hang loses nothing that came before it."""

    def __init__(self, out: IO[str], per_test_timeout: float) -> None:
        super().__init__()
        self.out = out
        self.per_test_timeout = per_test_timeout
        self.loops_at_start = 0
        self.others_at_start = 0
        self.loops_at_last_stop = LOOPS_MADE
        self.fixture_class: type | None = None
        self.outcome: str = "pass"
        self.detail = ""
        self.tb = ""
        self.started = 0.0

    def _emit(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        if LOOPS_MADE != self.loops_at_last_stop:
            # A loop made between tests came from setUpClass/setUpModule: its class runs on it.
            self.fixture_class = type(test)
        self.loops_at_start = LOOPS_MADE
        self.others_at_start = OTHER_LOOPS_MADE
        self.outcome, self.detail, self.tb = "pass", "", ""
        self.started = time.monotonic()
        self._emit({"ev": "start", "id": short_id(test.id())})
        if self.per_test_timeout > 0:
            # Dumps every thread's stack to stderr and exits: the parent then resumes after us.
            faulthandler.dump_traceback_later(self.per_test_timeout, exit=True)

    def stopTest(self, test: unittest.TestCase) -> None:
        if self.per_test_timeout > 0:
            faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        made = LOOPS_MADE - self.loops_at_start
        others = OTHER_LOOPS_MADE - self.others_at_start
        # Conservative: a test that also built another loop may have run its body there.
        on_loop = (made > 0 or type(test) is self.fixture_class) and others == 0
        self.loops_at_last_stop = LOOPS_MADE
        self._emit(
            {
                "ev": "end",
                "id": short_id(test.id()),
                "outcome": self.outcome,
                "on_loop": on_loop,
                "loops": made,
                "other_loops": others,
                "detail": self.detail,
                "tb": self.tb,
                "seconds": round(time.monotonic() - self.started, 3),
            }
        )

    def _fail(self, kind: str, test: unittest.TestCase, err: _ExcInfo) -> None:
        # An error outranks a failure: keep the first of the worst kind.
        if self.outcome in ("pass", "skip") or (kind == "error" and self.outcome == "fail"):
            self.outcome = kind
            self.detail = _one_line(err)
            self.tb = "".join(traceback.format_exception(*err))[-4000:]

    def addError(self, test: unittest.TestCase, err: _ExcInfo) -> None:
        super().addError(test, err)
        if isinstance(test, unittest.TestCase):
            self._fail("error", test, err)
        else:
            # setUpClass / tearDownModule and friends: no start/stop pair exists for these.
            self._emit(
                {
                    "ev": "end",
                    "id": short_id(str(test)),
                    "outcome": "error",
                    "on_loop": True,
                    "fixture": True,
                    "loops": 0,
                    "detail": _one_line(err),
                    "tb": "".join(traceback.format_exception(*err))[-4000:],
                    "seconds": 0.0,
                }
            )

    def addFailure(self, test: unittest.TestCase, err: _ExcInfo) -> None:
        super().addFailure(test, err)
        self._fail("fail", test, err)

    def addSubTest(
        self, test: unittest.TestCase, subtest: unittest.TestCase, err: _ExcInfo | None
    ) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None and err[0] is not None:
            kind = "fail" if issubclass(err[0], test.failureException) else "error"
            self._fail(kind, test, err)

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        if self.outcome == "pass":
            self.outcome, self.detail = "skip", reason[:300]

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self.outcome, self.detail = "fail", "unexpected success of an @expectedFailure test"


def _one_line(err: _ExcInfo) -> str:
    exc = err[1]
    if exc is None:
        return "unknown error"
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def run_child(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="swap.py")
    ap.add_argument("module")
    ap.add_argument("--loop", default="tideloop")
    ap.add_argument("--events", required=True)
    ap.add_argument("--config", required=True, help="JSON: include/exclude/skip lists")
    ap.add_argument("--per-test-timeout", type=float, default=120.0)
    ap.add_argument("--shallow", action="store_true", help="no deep swap (see _adapt)")
    args = ap.parse_args(argv)
    with open(args.config) as f:
        cfg = json.load(f)
    faulthandler.enable()
    # A shell starts background jobs with SIGINT ignored; then asyncio.Runner installs no handler
    # and _thread.interrupt_main() does nothing, so test_runners' interrupt tests would hang.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with open(args.events, "a", buffering=1) as out:
        try:
            replaced = install(args.loop)
            module = importlib.import_module(f"{PACKAGE}.{args.module}")
            notes = _swap_classes(module)
            _count_other_loops()
            if not args.shallow:
                notes += _adapt(module)
        except BaseException as exc:  # noqa: BLE001 - the parent must hear about any setup failure
            out.write(json.dumps({"ev": "setup_error", "detail": _one_line(_exc_info(exc)),
                                  "tb": traceback.format_exc()[-4000:]}) + "\n")
            return 2
        meta: dict[str, Any] = {"ev": "meta", "replaced": replaced, "swapped_classes": notes,
                                "python": sys.version.split()[0]}
        if args.loop == "tideloop":
            import tideloop

            meta["tideloop_file"] = getattr(tideloop, "__file__", None)
            meta["compiled"] = getattr(tideloop, "COMPILED", None)
        out.write(json.dumps(meta) + "\n")
        tests = list(_flatten(unittest.defaultTestLoader.loadTestsFromModule(module)))
        include: list[str] = cfg.get("include", [])
        exclude: list[str] = cfg.get("exclude", [])
        skip = set(cfg.get("skip_ids", []))
        chosen = []
        deselected = 0
        for t in tests:
            tid = short_id(t.id())
            if tid in skip:
                continue
            if (include and not match_any(tid, include)) or match_any(tid, exclude):
                deselected += 1
                continue
            chosen.append(t)
        out.write(json.dumps({"ev": "plan", "total": len(tests), "chosen": len(chosen),
                              "deselected": deselected}) + "\n")
        result = StreamingResult(out, args.per_test_timeout)
        result.startTestRun()
        with warnings.catch_warnings():
            # The same default filters unittest.main() installs.
            warnings.simplefilter("default")
            unittest.TestSuite(chosen).run(result)
        result.stopTestRun()
        out.write(json.dumps({"ev": "done", "loops": LOOPS_MADE}) + "\n")
    return 0


def _exc_info(exc: BaseException) -> _ExcInfo:
    assert exc.__traceback__ is not None
    return (type(exc), exc, exc.__traceback__)


if __name__ == "__main__":
    sys.exit(run_child(sys.argv[1:]))
