"""tideloop: a fast asyncio-compatible event loop, and coroutines on every core.

    import tideloop
    tideloop.run(main())                                         # like asyncio.run
    asyncio.run(main(), loop_factory=tideloop.new_event_loop)    # or through asyncio
    async with tideloop.Pool() as pool:                          # coroutines on every core
        results = await pool.map(fetch, urls)

Public names are defined in private modules and re-exported here, once. The multi-core names
are imported on first use, so that a program that only wants the loop does not pay for them.
"""

from typing import TYPE_CHECKING, Any

from . import _native  # noqa: F401  (must run first: picks compiled or interpreted core)
from ._core import COMPILED, Handle, TimerHandle
from ._eventloop import EventLoop, new_event_loop
from ._runner import EventLoopPolicy, Runner, install, run

if TYPE_CHECKING:
    from .multicore import Pool, RemoteError, Worker, WorkerLost, run_workers

__version__ = "0.1.0"

_MULTICORE = ("Pool", "RemoteError", "Worker", "WorkerLost", "run_workers")


def __getattr__(name: str) -> Any:
    if name in _MULTICORE:
        from . import multicore

        return getattr(multicore, name)
    raise AttributeError(f"module 'tideloop' has no attribute {name!r}")


__all__ = [
    "COMPILED",
    "EventLoop",
    "EventLoopPolicy",
    "Handle",
    "Pool",
    "RemoteError",
    "Runner",
    "TimerHandle",
    "Worker",
    "WorkerLost",
    "__version__",
    "install",
    "new_event_loop",
    "run",
    "run_workers",
]
