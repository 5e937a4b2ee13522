#!/usr/bin/env bash
# The whole test suite: for each Python (3.11, 3.12, 3.13), install tideloop fresh into a venv, run
# CPython's own asyncio tests with tideloop swapped in (conformance runner), then pytest on the
# compiled and on the interpreted core (TIDELOOP_NO_EXTENSIONS=1); the loop fixture covers stock
# asyncio and tideloop on the epoll and the poll reactor.
source "$(dirname "$0")/env.sh"
cd "$ROOT"
status=0
lint_done=0
# Issue 2 modules + test_futures, the network and subprocess modules, and the Unix loop tests.
CONFORMANCE_MODULES=${TIDELOOP_CONFORMANCE_MODULES:-core,io,test_unix_events}
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
  echo "=== Python $v: CPython asyncio conformance (compiled core)"
  "$py" tests/conformance/run.py --ci --modules "$CONFORMANCE_MODULES" --mode compiled || status=1
  echo "=== Python $v: CPython asyncio conformance (interpreted core)"
  "$py" tests/conformance/run.py --ci --modules "$CONFORMANCE_MODULES" --mode interpreted || status=1
  echo "=== Python $v: network and subprocess tests on the poll reactor (compiled core)"
  TIDELOOP_REACTOR=poll "$py" -m pytest -q -p no:cacheprovider tests/net tests/subprocess || status=1
  echo "=== Python $v: pytest, compiled core (epoll and poll reactors, and stock asyncio)"
  TIDELOOP_EXPECT_COMPILED=1 "$py" -m pytest -q -p no:cacheprovider tests || status=1
  echo "=== Python $v: pytest, interpreted core"
  TIDELOOP_NO_EXTENSIONS=1 "$py" -m pytest -q -p no:cacheprovider tests || status=1
done
exit $status
