"""Loading of the compiled modules. Only ``fe_fast.ops`` imports from here."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def cpu():
    """The C++ module ``fe_fast._C`` (always built by ``pip install``)."""
    try:
        from fe_fast import _C
    except ImportError as exc:  # pragma: no cover - only on a broken install
        raise ImportError(
            "fe_fast._C is not built. Reinstall with `pip install .` (or `make build` in a checkout); "
            "building needs cmake >= 3.18, a C++17 compiler and OpenMP."
        ) from exc
    return _C


@functools.lru_cache(maxsize=None)
def cuda():
    """The CUDA module ``fe_fast._C_cuda`` or None when it was not built (no nvcc at install)."""
    try:
        from fe_fast import _C_cuda
    except ImportError:
        return None
    return _C_cuda
