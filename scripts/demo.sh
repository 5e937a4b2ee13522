#!/usr/bin/env bash
# The main job: install tideloop (compiled) and run the demo on it.
source "$(dirname "$0")/env.sh"
v=${TIDELOOP_DEMO_PYTHON:-3.12.1}
venv=$(venv_for "$v" test)
exec "$venv/bin/python" "$ROOT/examples/demo.py" "$@"
