#!/usr/bin/env bash
# The whole test suite: for each Python (3.11, 3.12, 3.13), install tideloop fresh into a venv,
# run pytest on the compiled core, on the interpreted core (TIDELOOP_NO_EXTENSIONS=1) and on the
# poll reactor, then CPython's own asyncio tests with tideloop swapped in (conformance runner).
source "$(dirname "$0")/env.sh"
cd "$ROOT"
status=0
lint_done=0
for v in $PYTHON_VERSIONS; do
  echo "=== Python $v: install"
  venv=$(venv_for "$v" test)
  py="$venv/bin/python"
  if [ $lint_done = 0 ]; then
    echo "=== Python $v: ruff and mypy"
    "$py" -m pip install -q ruff mypy >&2
    "$py" -m ruff check src tests benchmarks examples || status=1
    "$py" -m mypy || status=1
    lint_done=1
  fi
  echo "=== Python $v: compiled core"
  TIDELOOP_EXPECT_COMPILED=1 "$py" -m pytest -q -p no:cacheprovider tests || status=1
  echo "=== Python $v: interpreted core"
  TIDELOOP_NO_EXTENSIONS=1 "$py" -m pytest -q -p no:cacheprovider tests || status=1
  echo "=== Python $v: CPython asyncio conformance (compiled core)"
  "$py" tests/conformance/run.py --ci --mode compiled || status=1
  echo "=== Python $v: CPython asyncio conformance (interpreted core)"
  "$py" tests/conformance/run.py --ci --mode interpreted || status=1
done
exit $status
