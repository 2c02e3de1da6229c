"""Named HOUV settings: ``houv(P, Q, **PRESETS[name])``, ``fe-fast register --preset NAME`` and
the registration benchmark's ``--preset NAME``. Every setting beyond ``thesis`` is an option of
ours, and :func:`~fe_fast.registration.houv`'s defaults stay the thesis's."""
from __future__ import annotations

_COARSE_TO_FINE = dict(schedule=[(256, 150), (1024, 50)], lr=3e-2, lr_schedule="cosine")
_ROBUST = dict(_COARSE_TO_FINE, refine_iters=200, refine_groups=8, refine_lr=1e-2, select="inlier")
_HALVING = dict(_ROBUST, groups=256, schedule=[(128, 40), (256, 110), (1024, 50)], prune_groups=[32, 8],
                init_translation="search")

PRESETS = {
    # thesis §3.3.2: 32 groups, 500 Adam iterations at lr 1e-3, all points
    "thesis": dict(groups=32, iters=500, lr=1e-3),
    # coarse-to-fine point counts with a cosine-annealed larger rate
    "fast": dict(_COARSE_TO_FINE),
    # fast + 100 iterations of local-Chamfer-only refinement of the 4 best groups (the projected
    # terms of eq. 3-11 bias the optimum on partial pairs)
    "refine": dict(_COARSE_TO_FINE, refine_iters=100, refine_groups=4, refine_lr=3e-3),
    # wider refinement (8 groups, 200 iterations at 1e-2) and the inlier (truncated Chamfer)
    # selection, which holds when the overlap is below alpha
    "robust": dict(_ROBUST),
    # robust, but only the 8 best groups after the 256-point stage go on (about 20 % less time)
    "robust-pruned": dict(_ROBUST, prune_groups=8),
    # robust with even (Super-Fibonacci) initial rotations: for arbitrary rotations (so3)
    "robust-sfib": dict(_ROBUST, init="sfib"),
    # 64 coarse starts pruned to 8: the most accurate on modelnet (32 pairs) at about robust's time
    "robust-wide": dict(_ROBUST, groups=64, prune_groups=8),
    # robust-wide, each start translation the best of 79 offsets for its start rotation
    "robust-search": dict(_ROBUST, groups=64, prune_groups=8, init_translation="search"),
    # 256 starts with searched translations, pruned to 32 after 40 iterations at 128 points and to 8
    # after the 256-point stage (successive halving): the best mvp row without sensor positions
    "robust-halving": dict(_HALVING),
    # robust-halving on the local Chamfer alone (beta 0) at alpha 0.3: on pairs overlapping less than
    # alpha = 0.5 the top-alpha set and the projected terms hold non-overlapping points, and their
    # optimum drifts from the truth (on the 8 worst mvp pairs, free starts 15 degrees from the truth
    # ended a median 29-87 degrees away after the schedule, 2-22 with these settings); about half the
    # time per pair without the projected terms
    "halving-local": dict(_HALVING, alpha=0.3, beta=0.0),
}


def preset(name: str) -> dict:
    """A copy of the named preset's :func:`~fe_fast.registration.houv` keyword arguments."""
    if name not in PRESETS:
        raise ValueError(f"unknown HOUV preset {name!r}; choose one of {', '.join(PRESETS)}")
    return {k: (list(v) if isinstance(v, list) else v) for k, v in PRESETS[name].items()}
