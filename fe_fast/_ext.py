"""Loading of the compiled modules. Only ``fe_fast.ops`` imports from here."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def cpu():
    """The C++ module ``fe_fast._C`` (always built by ``pip install``)."""
    # torch bundles its own OpenMP runtime and _C links the system one. libgomp's default is to
    # spin after each parallel region, so two runtimes take the cores from each other between
    # calls. Let ours (configured from the environment when it loads) sleep instead, unless the
    # user chose a policy; torch's runtime is left as it is.
    import os

    chosen = "OMP_WAIT_POLICY" in os.environ
    if not chosen:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from fe_fast import _C
    except ImportError as exc:  # pragma: no cover - only on a broken install
        raise ImportError(
            "fe_fast._C is not built. Reinstall with `pip install .` (or `make build` in a checkout); "
            "building needs cmake >= 3.18, a C++17 compiler and OpenMP."
        ) from exc
    finally:
        if not chosen:
            del os.environ["OMP_WAIT_POLICY"]
    return _C


@functools.lru_cache(maxsize=None)
def cuda():
    """The CUDA module ``fe_fast._C_cuda`` or None when it was not built (no nvcc at install)."""
    try:
        from fe_fast import _C_cuda
    except ImportError:
        return None
    return _C_cuda
