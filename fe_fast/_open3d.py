"""Open3D is an optional dependency (extra ``registration``): import it with a clear error."""
from __future__ import annotations


def require_open3d(user: str):
    """Return the ``open3d`` module or raise ImportError telling how to install it for ``user``."""
    try:
        import open3d as o3d
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            f"{user} needs Open3D: pip install 'fe-fast[registration]' (and the system package libusb-1.0-0)"
        ) from exc
    return o3d
