# Shared by scripts/*.sh: one virtualenv per Python version, with tideloop installed from this
# checkout (compiled, since Cython is a build requirement and gcc is present).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON_VERSIONS=${TIDELOOP_PYTHONS:-"3.11.7 3.12.1 3.13.0"}

python_for() {  # python_for 3.12.1 -> path of that interpreter (pyenv), or fail loudly
  local v=$1 exe
  if command -v pyenv >/dev/null 2>&1 && exe=$(PYENV_VERSION=$v pyenv which python 2>/dev/null); then
    echo "$exe"; return
  fi
  for exe in "$HOME/.pyenv/versions/$v/bin/python" "python${v%.*}"; do
    if command -v "$exe" >/dev/null 2>&1; then command -v "$exe"; return; fi
  done
  echo "error: Python $v not found (install it with pyenv)" >&2; return 1
}

venv_for() {  # venv_for 3.12.1 [extras] -> path of a venv with tideloop[extras] installed fresh
  local v=$1 extras=${2:-test} venv py
  venv="$ROOT/.venv-$v"
  py=$(python_for "$v")
  if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install -q --upgrade pip >&2
  fi
  # Always reinstall from the checkout so the compiled core matches the sources.
  "$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$ROOT" >&2
  "$venv/bin/python" -m pip install -q "$ROOT[$extras]" >&2
  echo "$venv"
}
