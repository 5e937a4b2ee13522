"""Multi-core runtime: ``Pool`` (worker processes x coroutines), ``run_workers`` (one server on
every core) and the errors they raise. Public names are re-exported by ``tideloop``."""

from ._common import RemoteError, RemoteTraceback, WorkerLost
from ._pool import Pool
from ._run_workers import Worker, run_workers, supervise_workers

__all__ = [
    "Pool",
    "RemoteError",
    "RemoteTraceback",
    "Worker",
    "WorkerLost",
    "run_workers",
    "supervise_workers",
]
