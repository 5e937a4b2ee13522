"""The conformance runner's own bookkeeping: which tests count as "ran on the loop under test".

Invariant: a test counts only if it built a loop through `swap.make_loop` and no other asyncio loop;
failures count against the run unless a known-failures entry for this Python matches them.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import types
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "conformance"))

import run  # noqa: E402
import swap  # noqa: E402


@pytest.fixture
def stock_factory() -> Iterator[None]:
    saved = swap._factory, swap.LOOP_CLASS
    swap._factory, swap.LOOP_CLASS = swap._pick_factory("asyncio")
    try:
        yield
    finally:
        swap._factory, swap.LOOP_CLASS = saved


class _Sample(unittest.TestCase):
    __test__ = False  # run by the tests below through the runner's result class, not by pytest
    def test_a_on_loop(self) -> None:
        loop = swap.make_loop()
        try:
            self.assertEqual(loop.run_until_complete(asyncio.sleep(0, "x")), "x")
        finally:
            loop.close()

    def test_b_no_loop(self) -> None:
        self.assertTrue(True)

    def test_c_mixed(self) -> None:
        swap.make_loop().close()
        swap.OTHER_LOOPS_MADE += 1  # as if it had also built a test_utils.TestLoop

    def test_d_fails_on_loop(self) -> None:
        swap.make_loop().close()
        self.fail("boom")

    def test_e_skipped(self) -> None:
        swap.make_loop().close()
        self.skipTest("not here")

    def test_f_subtest_error(self) -> None:
        swap.make_loop().close()
        with self.subTest(i=1):
            raise ValueError("sub")


def _run_sample() -> list[dict[str, Any]]:
    out = io.StringIO()
    result = swap.StreamingResult(out, per_test_timeout=0)
    unittest.defaultTestLoader.loadTestsFromTestCase(_Sample).run(result)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return [ev for ev in lines if ev["ev"] == "end"]


def test_counts_only_tests_that_built_the_loop(stock_factory: None) -> None:
    ends = {ev["id"].rsplit(".", 1)[-1]: ev for ev in _run_sample()}
    assert {k: (v["outcome"], v["on_loop"]) for k, v in ends.items()} == {
        "test_a_on_loop": ("pass", True),
        "test_b_no_loop": ("pass", False),
        "test_c_mixed": ("pass", False),
        "test_d_fails_on_loop": ("fail", True),
        "test_e_skipped": ("skip", True),
        "test_f_subtest_error": ("error", True),
    }
    assert ends["test_d_fails_on_loop"]["detail"] == "AssertionError: boom"


def test_tally_and_known_failures(stock_factory: None, tmp_path: Path) -> None:
    known_file = tmp_path / "known.txt"
    known_file.write_text(
        "[tideloop]\n"
        f"*.test_d_fails_on_loop  {run.PY}  # reason one\n"
        "*.test_f_*  3.0  # another Python only\n"
        "[uvloop]\n*  # other loop's section\n"
    )
    known = run.parse_list(known_file, "tideloop")
    assert [e.reason for e in known] == ["reason one", "another Python only"]
    res = run.ModuleResult("sample", tests=_run_sample())
    row, bad = run.tally(res, known, "compiled")
    assert (row.on_loop, row.passed, row.failed, row.errors, row.known) == (3, 1, 1, 1, 1)
    assert (row.skipped, row.not_on_loop) == (1, 2)
    assert [(b["id"].rsplit(".", 1)[-1], b["known"]) for b in bad] == [
        ("test_d_fails_on_loop", "reason one"),
        ("test_f_subtest_error", None),
    ]


def test_reason_is_required(tmp_path: Path) -> None:
    f = tmp_path / "known.txt"
    f.write_text("test_tasks.X.test_y 3.12\n")
    with pytest.raises(SystemExit):
        run.parse_list(f, "tideloop")


def test_selector_variants_collapse_into_one_swapped_class(stock_factory: None) -> None:
    mod = types.ModuleType("fake_mod")

    class Mixin:
        def test_x(self) -> None:
            loop = self.create_event_loop()  # type: ignore[attr-defined]
            loop.close()

    def _cls(name: str) -> type:
        def create_event_loop(self: object) -> object:
            return asyncio.SelectorEventLoop()

        return type(name, (Mixin, unittest.TestCase),
                    {"create_event_loop": create_event_loop, "__module__": "fake_mod"})

    for name in ("EPollEventLoopTests", "PollEventLoopTests", "SelectEventLoopTests"):
        setattr(mod, name, _cls(name))
    notes = swap._swap_classes(mod)
    assert not hasattr(mod, "EPollEventLoopTests") and hasattr(mod, "SwapEventLoopTests")
    assert notes and "SwapEventLoopTests" in notes[-1]
    before = swap.LOOPS_MADE
    outcome = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromModule(mod).run(outcome)
    assert outcome.wasSuccessful() and outcome.testsRun == 1
    assert swap.LOOPS_MADE == before + 1


def test_match_any_is_substring_or_glob() -> None:
    assert swap.match_any("test_events.SwapEventLoopTests.test_call_soon", ["call_soon"])
    assert swap.match_any("test_events.SwapEventLoopTests.test_call_soon", ["*.test_call_*"])
    assert not swap.match_any("test_events.HandleTests.test_handle", ["*.Swap*"])
