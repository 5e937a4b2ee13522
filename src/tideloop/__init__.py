"""tideloop: a fast asyncio-compatible event loop, and coroutines on every core.

    import tideloop
    tideloop.run(main())                                         # like asyncio.run
    asyncio.run(main(), loop_factory=tideloop.new_event_loop)    # or through asyncio

Public names are defined in private modules and re-exported here, once.
"""

from . import _native  # noqa: F401  (must run first: picks compiled or interpreted core)
from ._core import COMPILED, Handle, TimerHandle
from ._eventloop import EventLoop, new_event_loop
from ._runner import EventLoopPolicy, Runner, install, run

__version__ = "0.1.0"

__all__ = [
    "COMPILED",
    "EventLoop",
    "EventLoopPolicy",
    "Handle",
    "Runner",
    "TimerHandle",
    "__version__",
    "install",
    "new_event_loop",
    "run",
]
