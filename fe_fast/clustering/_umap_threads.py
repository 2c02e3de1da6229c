"""Several seeded UMAP maps at once on threads (speed only: each map is the same as alone).

With a seed, umap-learn optimises the 2-D layout single-threaded, and that loop (a numba function
compiled without ``nogil``) holds the GIL, so two maps on two threads would take turns. The
layout of one epoch is ``umap.layouts._optimize_layout_euclidean_single_epoch``;
:func:`install_nogil_layout` compiles the very same Python function with ``nogil=True`` (same
``fastmath`` flag, same arguments, so the same machine arithmetic) and makes umap-learn's dispatcher
lookup return it. Each map keeps its own seeded random state (``check_random_state(seed)`` inside
``UMAP.fit``), so a map does not depend on what runs beside it; ``tests/clustering`` checks that a
map made on a thread equals the map made alone.
"""
from __future__ import annotations

import threading

_LOCK = threading.Lock()
_INSTALLED = False


def install_nogil_layout() -> bool:
    """Make umap-learn's sequential layout epoch release the GIL (once per process).

    Returns True when the GIL-free layout is in place, False when this umap-learn version does not
    have the expected internals (then maps on threads still work, only without the speed-up).
    """
    global _INSTALLED
    with _LOCK:
        if _INSTALLED:
            return True
        try:
            import numba
            from umap import layouts
        except ImportError:  # pragma: no cover - umap-learn is a pinned dependency
            return False
        fn = getattr(layouts, "_optimize_layout_euclidean_single_epoch", None)
        if fn is None or not hasattr(layouts, "_nb_optimize_layout_euclidean_single_epoch") \
                or not hasattr(layouts, "_get_optimize_layout_euclidean_single_epoch_fn"):
            return False  # pragma: no cover - other umap-learn internals
        layouts._nb_optimize_layout_euclidean_single_epoch = numba.njit(
            fn, fastmath=True, parallel=False, nogil=True
        )
        _INSTALLED = True
        return True
