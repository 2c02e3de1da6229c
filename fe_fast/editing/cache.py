"""Resumable on-disk cache of a long channel-localisation run (thesis §6.2.2 / §6.2.3 at full scale).

A cache directory holds ``manifest.json`` (the arguments that determine every cached value) and one
file per finished chunk of work (``<stage>_<index>.pt``, written atomically: a temporary file, then
``os.replace``), so a run killed at any point loses at most the chunk it was computing, and a run
restarted with the same arguments reads the finished chunks instead of recomputing them. A
directory written for other arguments is refused with a message naming the first difference.

Files are read with ``torch.load(weights_only=True)`` (tensors and plain containers only).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import torch

__all__ = ["RunCache", "module_fingerprint", "CACHE_FORMAT", "FINGERPRINT_ATTRIBUTES"]

CACHE_FORMAT = "fe-fast-locate-cache/1"


#: Plain attributes that change a module's outputs without being in its ``state_dict``: a
#: generator's ``config`` (``conv_clamp``, ...), a real teacher's ``input_size``.
FINGERPRINT_ATTRIBUTES = ("config", "input_size")


def module_fingerprint(module) -> str:
    """blake2b of a module's state (names, shapes, dtypes and bytes of every tensor) and of its
    :data:`FINGERPRINT_ATTRIBUTES`, or of its type name when it has neither: cached teacher outputs
    and gradients belong to these weights and settings."""
    h = hashlib.blake2b(digest_size=16)
    h.update(type(module).__name__.encode())
    for attr in FINGERPRINT_ATTRIBUTES:
        v = getattr(module, attr, None)
        if v is not None:
            # values JSON cannot write count by their type only: a repr may hold a memory address,
            # which would make the fingerprint differ between the run and its resumption
            h.update(f"{attr}={json.dumps(v, sort_keys=True, default=lambda o: type(o).__qualname__)}".encode())
    sd = module.state_dict() if hasattr(module, "state_dict") else {}
    for name in sorted(sd):
        t = sd[name]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class RunCache:
    """``RunCache(root, key)``: chunk files under ``root`` for the run described by ``key`` (a JSON-able
    dict). ``root=None`` gives a cache that stores nothing (every ``get`` misses).

    ``open()`` creates ``root`` and its manifest, or checks an existing manifest against ``key``
    (ValueError naming the first differing argument)."""

    def __init__(self, root, key: dict):
        self.root = None if root is None else Path(root)
        self.key = json.loads(json.dumps(key))  # normalised: tuples -> lists, as read back from disk
        self.hits = 0
        self.writes = 0

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def open(self) -> "RunCache":
        if self.root is None:
            return self
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"cache_dir {self.root} exists and is not a directory")
        self.root.mkdir(parents=True, exist_ok=True)
        man = self.root / "manifest.json"
        if man.exists():
            try:
                old = json.loads(man.read_text())
            except (OSError, ValueError) as e:
                raise ValueError(f"cache_dir {self.root}: unreadable manifest.json ({e}); "
                                 "delete the directory") from None
            if not isinstance(old, dict) or old.get("format") != CACHE_FORMAT:
                got = old.get("format") if isinstance(old, dict) else None
                raise ValueError(f"cache_dir {self.root} is not an fe-fast locate cache (format {got!r}, "
                                 f"expected {CACHE_FORMAT!r})")
            okey = old.get("key", {})
            for name in sorted(set(okey) | set(self.key)):
                if okey.get(name) != self.key.get(name):
                    raise ValueError(f"cache_dir {self.root} was written by a run with other arguments "
                                     f"({name}: cached {okey.get(name)!r}, now {self.key.get(name)!r}); "
                                     "use another cache directory or delete this one")
        else:
            self._atomic_write(man, json.dumps({"format": CACHE_FORMAT, "key": self.key}, indent=1).encode())
        return self

    def _path(self, name: str) -> Path:
        return self.root / f"{name}.pt"

    def has(self, name: str) -> bool:
        return self.root is not None and self._path(name).exists()

    def get(self, name: str) -> Optional[Any]:
        if self.root is None:
            return None
        p = self._path(name)
        if not p.exists():
            return None
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable chunk is reported the same way
            raise ValueError(f"cache_dir {self.root}: cannot read {p.name} ({type(e).__name__}: {e}); "
                             "delete that file to recompute it") from None
        self.hits += 1
        return obj

    def put(self, name: str, obj) -> None:
        if self.root is None:
            return
        p = self._path(name)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        torch.save(obj, tmp)
        os.replace(tmp, p)
        self.writes += 1

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
