"""Names of the loops the suite compares, and how a child process makes one.

Invariant: a loop name maps to exactly one factory and one child environment; "tideloop" must
really run the compiled core and "tideloop-py" the interpreted one, or the child refuses to measure.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import Any

# Order matters: it is the A B C order of every round, and the peers come first so a reader sees
# the yardstick before the thing measured against it.
ALL_LOOPS: tuple[str, ...] = ("asyncio", "uvloop", "rloop", "tideloop", "tideloop-py")
PEERS: tuple[str, ...] = ("uvloop", "rloop")
C_REFERENCE = "c-epoll"


def child_env_overrides(name: str) -> dict[str, str | None]:
    """Environment changes for a child measuring ``name`` (None removes a variable)."""
    if name == "tideloop-py":
        return {"TIDELOOP_NO_EXTENSIONS": "1"}
    if name == "tideloop":
        return {"TIDELOOP_NO_EXTENSIONS": None}
    return {}


def _tideloop_factory(compiled: bool) -> Callable[[], asyncio.AbstractEventLoop]:
    tideloop: Any = importlib.import_module("tideloop")
    active = bool(getattr(tideloop, "COMPILED", False))
    if active != compiled:
        want = "compiled" if compiled else "interpreted"
        raise RuntimeError(
            f"tideloop {want} core requested but tideloop.COMPILED is {active} "
            f"(module at {tideloop.__file__}); build it with `python setup.py build_ext --inplace` "
            "or `pip install .`"
        )
    factory: Callable[[], asyncio.AbstractEventLoop] = tideloop.new_event_loop
    return factory


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A zero-argument callable making a new loop of kind ``name`` (ImportError if absent)."""
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "uvloop":
        uvloop: Any = importlib.import_module("uvloop")
        f: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return f
    if name == "rloop":
        rloop: Any = importlib.import_module("rloop")
        g: Callable[[], asyncio.AbstractEventLoop] = rloop.new_event_loop
        return g
    if name == "tideloop":
        return _tideloop_factory(compiled=True)
    if name == "tideloop-py":
        return _tideloop_factory(compiled=False)
    raise ValueError(f"unknown loop {name!r}; known: {', '.join(ALL_LOOPS)}")


def describe(name: str, loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    """What the child actually ran: recorded beside every number."""
    info: dict[str, Any] = {"loop_class": f"{type(loop).__module__}.{type(loop).__qualname__}"}
    mod_name = {"uvloop": "uvloop", "rloop": "rloop"}.get(name)
    if name.startswith("tideloop"):
        mod_name = "tideloop"
    if mod_name:
        mod: Any = importlib.import_module(mod_name)
        info["version"] = getattr(mod, "__version__", None)
        info["module_file"] = getattr(mod, "__file__", None)
        if mod_name == "tideloop":
            info["compiled"] = bool(getattr(mod, "COMPILED", False))
    return info


def make_loop(name: str) -> asyncio.AbstractEventLoop:
    """Create the loop and make it current, the way an application would."""
    loop = loop_factory(name)()
    asyncio.set_event_loop(loop)
    return loop
