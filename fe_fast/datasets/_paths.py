"""Where the named clustering datasets (``mnist-test``, ``usps``) live on disk.

Order: an explicit ``data_dir`` argument, the ``FE_FAST_DATA`` environment variable, then
``../shared/data`` relative to the repository and to the current directory, then ``./data``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

__all__ = ["candidate_data_dirs", "find_data_file"]

_REPO = Path(__file__).resolve().parents[2]


def candidate_data_dirs(data_dir: Optional[str] = None) -> List[Path]:
    """Directories searched for named datasets, most specific first."""
    if data_dir:
        return [Path(data_dir).expanduser()]
    out: List[Path] = []
    env = os.environ.get("FE_FAST_DATA")
    if env:
        out.append(Path(env).expanduser())
    for base in (_REPO, Path.cwd()):
        out += [base.parent / "shared" / "data", base / "shared" / "data", base / "data"]
    seen, uniq = set(), []
    for p in out:
        key = str(p.resolve()) if p.exists() else str(p)
        if key not in seen:
            seen.add(key)
            uniq.append(p)
    return uniq


def find_data_file(dataset: str, subdir: str, names: List[str], data_dir: Optional[str] = None) -> Path:
    """First existing ``<dir>/<subdir>/<name>`` (or ``<dir>/<name>``) over the candidate dirs.

    Raises ``FileNotFoundError`` naming the places searched and where to put the files.
    """
    dirs = candidate_data_dirs(data_dir)
    for d in dirs:
        for sub in (d / subdir, d):
            for name in names:
                if (sub / name).is_file():
                    return sub / name
    where = ", ".join(str(d) for d in dirs)
    raise FileNotFoundError(
        f"dataset {dataset!r}: none of {names} found under {where}; put the files in "
        f"<DATA>/{subdir}/ and pass --data-dir DATA (or set FE_FAST_DATA=DATA)"
    )
