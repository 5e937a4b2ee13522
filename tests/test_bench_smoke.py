"""Smoke test of the benchmark harness: one tiny internal benchmark through the real runner.

Invariant: this checks only that the harness produces a well-formed result (child processes, JSON,
summary); it asserts nothing about speed, so it cannot flake on a loaded CI machine.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "benchmarks" / "run.py"

pytestmark = pytest.mark.skipif(
    not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")),
    reason="benchmark suite needs a C compiler",
)


def _tideloop_loop() -> tuple[str, str] | None:
    """(loop name, import dir) for the tideloop this test process runs against, if any."""
    if importlib.util.find_spec("tideloop") is None:
        return None
    import tideloop

    if not hasattr(tideloop, "new_event_loop"):
        return None
    name = "tideloop" if getattr(tideloop, "COMPILED", False) else "tideloop-py"
    return name, str(Path(tideloop.__file__).resolve().parent.parent)


def _run(tmp_path: Path, loops: str, extra: list[str]) -> dict:
    out = tmp_path / "result.json"
    cmd = [
        sys.executable, str(RUNNER), "--groups", "internal", "--only", "internal-call_soon",
        "--loops", loops, "--scale", "0.0001", "--repeat", "1", "--cpu", "none",
        "--no-chart", "--no-probe", "--json", str(out), *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "| 100 chained call_soon |" in proc.stdout
    return json.loads(out.read_text())


def _check_result(result: dict, loop: str) -> None:
    assert result["meta"]["python"] == ".".join(map(str, sys.version_info[:3]))
    raw = [r for r in result["raw"] if r["loop"] == loop]
    assert len(raw) == 1, result["raw"]
    assert "error" not in raw[0], raw[0]
    assert raw[0]["point"] == "internal-call_soon"
    assert isinstance(raw[0]["metrics"]["seconds"], float) and raw[0]["metrics"]["seconds"] > 0
    assert raw[0]["info"]["loop_class"]
    assert raw[0]["metrics"]["cpu_seconds"] > 0
    rows = result["summary"]
    assert [(r["metric"], r["unit"]) for r in rows] == [("seconds", "s"), ("cpu_seconds", "s")]
    for row in rows:
        cell = row["cells"][loop]
        assert cell["n"] == 1 and cell["min"] == cell["median"] == cell["max"]


def test_runner_on_asyncio(tmp_path: Path) -> None:
    result = _run(tmp_path, "asyncio", [])
    _check_result(result, "asyncio")
    assert "SelectorEventLoop" in result["raw"][0]["info"]["loop_class"]


def test_runner_on_tideloop(tmp_path: Path) -> None:
    found = _tideloop_loop()
    if found is None:
        pytest.skip("tideloop core not importable here")
    name, import_dir = found
    result = _run(tmp_path, name, ["--tideloop-from", import_dir])
    _check_result(result, name)
    assert result["raw"][0]["info"]["compiled"] == (name == "tideloop")


def test_wrk_summary_parsing() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks._native import parse_wrk
    finally:
        sys.path.remove(str(ROOT))
    text = (
        "Running 2s test @ http://127.0.0.1:8080/\n  1 threads and 50 connections\n"
        "  254033 requests in 2.00s, 30.04MB read\n"
        "  Socket errors: connect 0, read 3, write 0, timeout 1\n"
        "Requests/sec: 126978.45\n"
    )
    assert parse_wrk(text) == {"requests": 254033, "seconds": 2.0, "errors": 4}
