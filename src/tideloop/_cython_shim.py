"""Stand-in for the ``cython`` module when tideloop runs interpreted without Cython installed.

Invariant: ``compiled`` is False here, so every ``if cython.compiled:`` branch is skipped.
"""

compiled = False
