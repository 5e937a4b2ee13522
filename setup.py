"""Build script: compiles tideloop's hot modules with Cython when it and a C compiler exist.

The same .py files ship either way; TIDELOOP_NO_EXTENSIONS=1 at run time picks them over the
compiled ones, and TIDELOOP_BUILD_EXTENSIONS=0 at build time skips compiling altogether.
"""

import os

from setuptools import setup
from setuptools.command.build_ext import build_ext

# Modules compiled from their own .py source (typed by the .pxd beside them).
COMPILED_MODULES = [
    "tideloop._timerheap",
    "tideloop._core",
    "tideloop._sockio",
    "tideloop._epoll",
    "tideloop._stream_transport",
    "tideloop._sockets",
    "tideloop._datagram",
]

# Plain C compiled into a module beside its Cython source: _pyinternal.c needs CPython's internal
# headers, which only a translation unit of its own can include (see its comment).
EXTRA_SOURCES = {
    "tideloop._core": [os.path.join("src", "tideloop", "_pyinternal.c")],
}


class OptionalBuildExt(build_ext):
    """A failed compile leaves the pure-Python package intact instead of failing the install."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any toolchain failure means "no extensions"
            print(f"tideloop: building C extensions failed ({exc}); using the pure-Python core")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            print(f"tideloop: could not compile {ext.name} ({exc}); it stays pure Python")


def extensions():
    if os.environ.get("TIDELOOP_BUILD_EXTENSIONS", "1") == "0":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("tideloop: Cython not found; installing the pure-Python core only")
        return []
    from setuptools import Extension

    exts = [
        Extension(name, [os.path.join("src", *name.split(".")) + ".py",
                         *EXTRA_SOURCES.get(name, [])], optional=True)
        for name in COMPILED_MODULES
    ]
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={
            # Python semantics everywhere (negative indexing, bounds, division): the compiled
            # and the interpreted core must behave identically.
            "embedsignature": True,
            # Types come from the .pxd files only; the .py annotations are for mypy.
            "annotation_typing": False,
            "binding": True,
        },
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
