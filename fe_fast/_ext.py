"""Loading of the compiled modules. Only ``fe_fast.ops`` (and ``fe-fast info``) import from here.

``FE_FAST_DISABLE_EXT=1`` hides both compiled modules, as on a machine where the build failed:
the ops then run their pure-torch fallbacks (how CI tests those, ``make test``). It is read at
every call, so a test can switch it for one block.
"""
from __future__ import annotations

import functools
import os
import warnings

DISABLE_ENV = "FE_FAST_DISABLE_EXT"
BUILD_HINT = ("build it with `pip install .` (or `make build` in a checkout); building needs "
              "cmake >= 3.18, a C++17 compiler and OpenMP")


class FallbackWarning(RuntimeWarning):
    """The compiled CPU kernels are missing; the ops run slower pure-torch code."""


def disabled() -> bool:
    """True when ``FE_FAST_DISABLE_EXT=1`` hides the compiled modules."""
    return os.environ.get(DISABLE_ENV) == "1"


@functools.lru_cache(maxsize=None)
def _load_cpu():
    # _C links libgomp.so.1, which resolves to the OpenMP runtime torch already loaded (torch's
    # wheel ships it under that soname): kernels and torch share one runtime and its thread pool,
    # configured when torch was imported. Its wait policy is therefore set (if at all) by
    # fe_fast/__init__.py before torch loads, not here.
    try:
        from fe_fast import _C
    except ImportError as exc:
        return exc
    return _C


def cpu():
    """The C++ module ``fe_fast._C`` (built by ``pip install``); ImportError when it is missing
    or hidden by ``FE_FAST_DISABLE_EXT=1``."""
    if disabled():
        raise ImportError(f"fe_fast._C is hidden by {DISABLE_ENV}=1")
    mod = _load_cpu()
    if isinstance(mod, ImportError):
        raise ImportError(f"fe_fast._C is not built ({mod}): {BUILD_HINT}") from mod
    return mod


_warned = False


def cpu_or_none():
    """``cpu()``, or None (with one FallbackWarning per process) when the module is missing: the
    caller then runs its pure-torch fallback."""
    global _warned
    try:
        return cpu()
    except ImportError as exc:
        if not _warned:
            _warned = True
            warnings.warn(f"{exc}; the fe_fast CPU ops run a slower pure-torch fallback. To get "
                          f"the compiled kernels, {BUILD_HINT}.", FallbackWarning, stacklevel=3)
        return None


@functools.lru_cache(maxsize=None)
def _load_cuda():
    try:
        from fe_fast import _C_cuda
    except ImportError:
        return None
    return _C_cuda


def cuda():
    """The CUDA module ``fe_fast._C_cuda`` or None when it was not built (no nvcc at install) or
    is hidden by ``FE_FAST_DISABLE_EXT=1``."""
    return None if disabled() else _load_cuda()


def _assume_constant(fn):
    import torch

    return torch.compiler.assume_constant_result(fn)


@_assume_constant
def cpu_available() -> bool:
    """``cpu_or_none() is not None``; under torch.compile evaluated once while tracing (not traced)."""
    return cpu_or_none() is not None
