"""tideloop benchmark suite: event loops compared side by side, one fresh child per measurement.

Invariant: the parent (``run.py``) never runs an event loop itself; every number comes from a child
started with the loop named on its command line, so no measurement can inherit another's warm state.
"""
