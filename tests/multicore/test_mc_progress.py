"""progress=True: drawn only on a terminal; tqdm when installed, else the built-in bar."""

from __future__ import annotations

import io
import sys
from typing import Any

import mc_funcs as f
import pytest

from tideloop.multicore import Pool
from tideloop.multicore._progress import Progress


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_drawn_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    p = Progress("map(f)", 10)
    for i in range(1, 11):
        p.update(i)
    p.close()
    assert err.getvalue() == ""


def test_builtin_bar_on_a_terminal_without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    err = FakeTty()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    p = Progress("map(f)", 4)
    for i in range(1, 5):
        p.update(i)
    p.close()
    out = err.getvalue()
    assert "map(f) [" in out and "4/4" in out and "it/s" in out and "ETA" in out
    assert out.endswith("\n")


def test_tqdm_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tqdm")
    err = FakeTty()
    monkeypatch.setattr(sys, "stderr", err)
    p = Progress("map(f)", 3)
    for i in range(1, 4):
        p.update(i)
    p.close()
    assert "3/3" in err.getvalue()


def test_pool_with_progress_runs(run_tl: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    err = FakeTty()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setitem(sys.modules, "tqdm", None)

    async def main() -> None:
        async with Pool(1, progress=True) as pool:
            assert await pool.map(f.square, range(20)) == [x * x for x in range(20)]

    run_tl(main())
    assert "20/20" in err.getvalue()
