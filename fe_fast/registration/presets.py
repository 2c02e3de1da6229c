"""Named registration settings: ``houv(P, Q, PRESETS[name])``, ``fe-fast register --preset NAME``
and the registration benchmark's ``--preset NAME``. Each is a
:class:`~fe_fast.registration.config.RegistrationConfig`; ``"thesis"`` is algorithm 3.1 with the
thesis's settings (§3.3.2), every other one an option of ours built on it, and ``"default"`` is
:data:`~fe_fast.registration.config.DEFAULT_CONFIG` (the general recipe, ``houv(P, Q)``)."""
from __future__ import annotations

from fe_fast.registration.config import (DEFAULT_CONFIG, Accept, Objective, Refinement, RegistrationConfig, Schedule,
                                         Selection, Starts)

__all__ = ["PRESETS", "THESIS", "preset"]

# thesis §3.3.2 / algorithm 3.1: 32 random starts, 500 Adam iterations at lr 1e-3 on all points,
# alpha 0.5, beta 0.1, the sin mapping of eq. 3-8, the local Chamfer selects; nothing else
THESIS = RegistrationConfig(
    starts=Starts(groups=32, rotations="random", translation="random", correspondence=0),
    objective=Objective(alpha=0.5, beta=0.1, mapping="sin", d_max=None, angle_bounds=None),
    schedule=Schedule(stages=None, iters=500, lr=1e-3, lr_schedule="constant", prune=None, early_stop=None,
                      patience=25),
    refinement=Refinement(iters=0, groups=4, lr=None, objective="local_cd", alpha=None, by=None),
    selection=Selection(method="local_cd", inlier_factor=1.0, visibility_weight=4.0),
    accept=Accept(score=None),
    threads=None,
)

# coarse-to-fine point counts with a cosine-annealed larger rate
_FAST = THESIS.replace(schedule={"stages": ((256, 150), (1024, 50)), "lr": 3e-2, "lr_schedule": "cosine"})
# wider refinement (8 groups, 200 iterations at 1e-2) and the inlier (truncated Chamfer) selection,
# which holds when the overlap is below alpha
_ROBUST = _FAST.replace(refinement={"iters": 200, "groups": 8, "lr": 1e-2}, selection={"method": "inlier"})
# 256 starts with searched translations, pruned to 32 after 40 iterations at 128 points and to 8 after
# the 256-point stage (successive halving)
_HALVING = _ROBUST.replace(starts={"groups": 256, "translation": "search"},
                           schedule={"stages": ((128, 40), (256, 110), (1024, 50)), "prune": (32, 8)})

PRESETS = {
    "thesis": THESIS,
    "fast": _FAST,
    # fast + 100 iterations of local-Chamfer-only refinement of the 4 best groups (the projected terms
    # of eq. 3-11 bias the optimum on partial pairs)
    "refine": _FAST.replace(refinement={"iters": 100, "groups": 4, "lr": 3e-3}),
    "robust": _ROBUST,
    # robust, but only the 8 best groups after the 256-point stage go on (about 20 % less time)
    "robust-pruned": _ROBUST.replace(prune=8),
    # robust with even (Super-Fibonacci) initial rotations: for arbitrary rotations (so3)
    "robust-sfib": _ROBUST.replace(rotations="sfib"),
    # 64 coarse starts pruned to 8: the most accurate on modelnet (32 pairs) at about robust's time
    "robust-wide": _ROBUST.replace(starts={"groups": 64}, prune=8),
    # robust-wide, each start translation the best of 79 offsets for its start rotation
    "robust-search": _ROBUST.replace(starts={"groups": 64, "translation": "search"}, prune=8),
    # the best mvp row without sensor positions
    "robust-halving": _HALVING,
    # robust-halving on the local Chamfer alone (beta 0) at alpha 0.3: on pairs overlapping less than
    # alpha = 0.5 the top-alpha set and the projected terms hold non-overlapping points, and their
    # optimum drifts from the truth (on the 8 worst mvp pairs, free starts 15 degrees from the truth
    # ended a median 29-87 degrees away after the schedule, 2-22 with these settings); about half the
    # time per pair without the projected terms
    "halving-local": _HALVING.replace(objective={"alpha": 0.3, "beta": 0.0}),
    # the general recipe (RegistrationConfig's field defaults)
    "default": DEFAULT_CONFIG,
}


def preset(name: str) -> RegistrationConfig:
    """The named preset (configs are frozen: derive variants with ``.replace(...)``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown HOUV preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
