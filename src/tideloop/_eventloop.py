"""tideloop.EventLoop: the loop core, the public loop layer and the I/O mixins, composed once.

Invariant: this is the only place the layers meet; each mixin relies only on the private contract
documented in docs/design.md (_add_reader/_remove_reader/..., call_soon, _transports).
"""

from __future__ import annotations

from ._core import COMPILED
from ._loop import LoopBase
from ._netloop import NetworkMixin
from ._procloop import SubprocessMixin


class EventLoop(NetworkMixin, SubprocessMixin, LoopBase):  # type: ignore[misc]  # typeshed generics
    """An asyncio event loop: use it wherever asyncio's own loop would run."""


# The loop methods asyncio's C Task and Future call by name, for every task step and future.
# Such a call looks the name up on the type; when CPython's method cache misses (it is a small
# hash table, and which names collide depends on the order types were created in), the lookup
# walks the MRO, and LoopCore is ninth in EventLoop's: measured on 3.11, a colliding layout
# added ~2,500 instructions per task to a gather(). Interpreted, the same function objects are
# also bound here, where a miss finds them first. (Compiled, LoopCore's methods are C slots.)
_CALLED_FROM_C = ("call_soon", "get_debug")
if not COMPILED:
    for _name in _CALLED_FROM_C:
        setattr(EventLoop, _name, getattr(EventLoop, _name))
    del _name


def new_event_loop() -> EventLoop:
    """A new, not yet running tideloop loop (also usable as asyncio's ``loop_factory``)."""
    return EventLoop()
