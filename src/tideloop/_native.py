"""Chooses the compiled or the interpreted core before anything imports it.

Invariant: with TIDELOOP_NO_EXTENSIONS set, every module listed in HOT_MODULES is loaded from its
.py source even where a compiled .so sits beside it (Python would otherwise prefer the .so).
Either way it imports only os, sys and typing, which any asyncio program has loaded already.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import importlib.machinery
    from types import ModuleType

# Mirrors COMPILED_MODULES in setup.py.
HOT_MODULES = (
    "tideloop._timerheap",
    "tideloop._core",
    "tideloop._sockio",
    "tideloop._epoll",
    "tideloop._stream_transport",
    "tideloop._sockets",
    "tideloop._datagram",
)

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def extensions_disabled() -> bool:
    return os.environ.get("TIDELOOP_NO_EXTENSIONS", "").lower() not in ("", "0", "false", "no")


class _SourceOnlyFinder:
    """Finds tideloop's hot modules as .py files, ahead of the extension-module finder.

    A meta-path finder only needs ``find_spec``: not subclassing importlib.abc.MetaPathFinder
    spares every process the import of importlib.abc (~50 KiB) for a class used only in the
    interpreted mode.
    """

    def find_spec(self, fullname: str, path: object = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in HOT_MODULES:
            return None
        import importlib.util  # a sys.modules lookup after the first call (site loads it too)

        source = os.path.join(_PKG_DIR, fullname.rpartition(".")[2] + ".py")
        return importlib.util.spec_from_file_location(fullname, source)


def install_source_finder() -> None:
    if not any(isinstance(f, _SourceOnlyFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceOnlyFinder())


if extensions_disabled():
    install_source_finder()
