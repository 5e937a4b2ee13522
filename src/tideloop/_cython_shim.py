"""Stand-in for the ``cython`` module when tideloop runs interpreted without Cython installed.

Invariant: ``compiled`` is False here, so every ``if cython.compiled:`` branch is skipped.
"""

compiled = False


def freelist(n: int):  # type: ignore[no-untyped-def]
    return lambda cls: cls


def final(cls):  # type: ignore[no-untyped-def]
    return cls


def cast(type_: object, value: object) -> object:
    return value


def boundscheck(flag: bool):  # type: ignore[no-untyped-def]
    return lambda func: func


wraparound = boundscheck


def cclass(cls):  # type: ignore[no-untyped-def]
    return cls


def locals(**types: object):  # type: ignore[no-untyped-def]  # noqa: A001 - cython.locals
    return lambda func: func


Py_ssize_t = int
