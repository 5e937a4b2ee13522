"""``import tideloop`` loads only what a loop needs; the rest is imported on first use.

Each check runs in a fresh interpreter (this process has long imported everything). The memory
reasons are in docs/performance.md, "Memory, session 3".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

# Modules that a plain `import tideloop; new_event_loop()` must not load.
_LAZY = ("tideloop._subprocess", "tideloop._pipes", "importlib.abc")

_SCRIPT = r"""
import asyncio, json, os, sys
before = set(sys.modules)
import tideloop
loop = tideloop.new_event_loop()
at_import = sorted(set(sys.modules) - before)

async def main():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "print('hi')", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    r, w = os.pipe()
    transport, _ = await loop.connect_read_pipe(asyncio.Protocol, os.fdopen(r, "rb", 0))
    transport.close()
    os.close(w)
    return proc.returncode, out.decode().strip()

result = loop.run_until_complete(main())
loop.close()
print(json.dumps({"at_import": at_import, "result": list(result),
                  "after_use": sorted(m for m in sys.modules if m.startswith("tideloop."))}))
"""


def _run() -> dict[str, list[object]]:
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=dict(os.environ),
                         capture_output=True, text=True, timeout=60, check=True)
    data: dict[str, list[object]] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def test_subprocess_and_pipe_code_loads_on_first_use() -> None:
    data = _run()
    loaded_early = [m for m in _LAZY if m in data["at_import"]]
    assert loaded_early == [], f"import tideloop loaded {loaded_early}"
    # ... and the first use in a fresh process works and brings them in.
    assert data["result"] == [0, "hi"]
    assert "tideloop._subprocess" in data["after_use"]
    assert "tideloop._pipes" in data["after_use"]
