"""HOUV's settings as composed stages (thesis ch. 3; the layout follows registration APIs such as
Open3D's: one small typed object per stage instead of one long list of keywords).

A registration runs these stages in order (:func:`~fe_fast.registration.houv`):

1. :class:`Starts`: the initial hypotheses: ``groups`` rotation starts (random as algorithm 3.1, or an
   even Super-Fibonacci cover of SO(3)), their start translations (small random offsets or a search),
   plus correspondence starts (``correspondence`` runs of Open3D RANSAC on FPFH features refined by
   ICP, :func:`~fe_fast.registration.baselines.ransac_icp`) and the caller's ``init_transforms``;
2. :class:`Accept`: when the best correspondence start, refined locally by point-to-plane ICP, scores
   at most ``Accept.score`` (:func:`~fe_fast.registration.selection.selection_score`), it is the answer
   and the optimisation is skipped;
3. :class:`Objective` and :class:`Schedule`: Adam on the hybrid loss (eq. 3-11) of all hypotheses at
   once, coarse to fine, with successive pruning;
4. :class:`Refinement`: the best groups continue on the local Chamfer alone (eq. 3-9);
5. :class:`Selection`: the answer: the local Chamfer (algorithm 3.1, line 10), the inlier score, or
   the flip-aware score (the best ``hypotheses`` groups, each with its half-turn and mirror flips,
   refined by point-to-plane ICP and compared by
   :func:`~fe_fast.registration.selection.selection_score`).

:class:`RegistrationConfig` composes them. Every default of the method lives here, in the fields:
``RegistrationConfig()`` (:data:`DEFAULT_CONFIG`) is the general recipe that ``houv(P, Q)`` and
``fe-fast register S T`` run; the thesis's algorithm is the preset ``"thesis"``
(:mod:`fe_fast.registration.presets`), whose values are spelled out there. All classes are frozen:
derive variants with :meth:`RegistrationConfig.replace` (``cfg.replace(prune=8)`` or
``cfg.replace(schedule={"lr": 1e-2})``) or :func:`dataclasses.replace`.

Bad values raise one ``ValueError`` naming the field (``"Objective.alpha must be in (0, 1], got 2"``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional, Tuple, Union

__all__ = [
    "Starts",
    "Objective",
    "Schedule",
    "Refinement",
    "Selection",
    "Accept",
    "RegistrationConfig",
    "DEFAULT_CONFIG",
    "config_from_kwargs",
    "STAGES",
]


def _bad(cls, name: str, msg: str, value) -> ValueError:
    return ValueError(f"{cls.__name__}.{name} {msg}, got {value!r}")


def _choice(obj, name: str, options) -> None:
    v = getattr(obj, name)
    if v not in options:
        raise _bad(type(obj), name, "must be " + " or ".join(repr(o) for o in options), v)


def _int(obj, name: str, low: int, none_ok: bool = False) -> None:
    v = getattr(obj, name)
    if v is None and none_ok:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise _bad(type(obj), name, f"must be an int >= {low}" + (" or None" if none_ok else ""), v)


def _positive(obj, name: str, none_ok: bool = False, zero_ok: bool = False) -> None:
    v = getattr(obj, name)
    if v is None and none_ok:
        return
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (v >= 0 if zero_ok else v > 0)
    if not ok:
        raise _bad(type(obj), name, ("must be >= 0" if zero_ok else "must be > 0") + (" or None" if none_ok else ""), v)


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class Starts:
    """Initial hypotheses (thesis eq. 3-3..3-8: the unconstrained variables ``v_pq, theta_pq, u_pq,
    d_pq`` of each group; algorithm 3.1, line 2).

    ``groups``: hypotheses optimised together. ``rotations``: ``"random"`` (the thesis: i.i.d. axis
    and angle per group) or ``"sfib"`` (a Super-Fibonacci spiral, an even cover of SO(3), or of each
    HOUV_pri angle range of eq. 3-12). ``translation``: ``"random"`` (small random offsets, 1-25 % of
    ``d_max`` of eq. 3-8) or ``"search"`` (the best of 79 offsets for each start rotation by the local
    Chamfer of eq. 3-9 on 128 points). ``correspondence``: runs of Open3D RANSAC on FPFH feature
    correspondences refined by ICP (seeds ``seed, seed + 1, ...``) whose answers start the last groups
    (held during the schedule, then refined and selected like every group; the :class:`Accept` rule
    can return the best of them at once); 0: none. Three runs (the default) put 61 of 96 choosing pairs
    on the :class:`Accept` fast path where one run put 45, at 0.1 s each on 2 idle cores."""

    groups: int = 256
    rotations: str = "random"
    translation: str = "search"
    correspondence: int = 3

    def __post_init__(self):
        _int(self, "groups", 1)
        _choice(self, "rotations", ("random", "sfib"))
        _choice(self, "translation", ("random", "search"))
        _int(self, "correspondence", 0)


@dataclass(frozen=True)
class Objective:
    """The hybrid loss of eq. 3-11, ``L_local + beta (L_xy + L_yz + L_xz)``: the local Chamfer of
    eq. 3-9 over the fraction ``alpha`` of best-matched points in each direction plus ``beta`` times
    the projected Chamfer distances of eq. 3-10 (``beta = 0``: the local term alone). ``mapping``:
    the translation's length, ``"sin"`` (eq. 3-8) or ``"sigmoid"`` (eq. 3-7), bounded by ``d_max``
    (input units; None: the larger cloud radius). ``angle_bounds``: HOUV_pri (algorithm 3.2,
    eq. 3-12): ``((low, high), ...)`` in degrees; group g's angle stays in range ``g mod K``."""

    alpha: float = 0.3
    beta: float = 0.0
    mapping: str = "sin"
    d_max: Optional[float] = None
    angle_bounds: Optional[Tuple[Tuple[float, float], ...]] = None

    def __post_init__(self):
        a = self.alpha
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a <= 1:
            raise _bad(Objective, "alpha", "must be in (0, 1]", a)
        _positive(self, "beta", zero_ok=True)
        _choice(self, "mapping", ("sin", "sigmoid"))
        _positive(self, "d_max", none_ok=True)
        if self.angle_bounds is not None:
            try:
                b = tuple((float(lo), float(hi)) for lo, hi in
                          ([self.angle_bounds] if len(self.angle_bounds) == 2
                           and not hasattr(self.angle_bounds[0], "__len__") else self.angle_bounds))
            except (TypeError, ValueError):
                raise _bad(Objective, "angle_bounds", "must be ((low, high), ...) in degrees", self.angle_bounds) \
                    from None
            if not b or any(not hi > lo for lo, hi in b):
                raise _bad(Objective, "angle_bounds", "must be non-empty (low, high) ranges with high > low", b)
            _set(self, "angle_bounds", b)


@dataclass(frozen=True)
class Schedule:
    """Optimisation schedule of algorithm 3.1 (Adam on the variables of eq. 3-3..3-8).

    ``stages``: coarse-to-fine ``((n_points, iters), ...)``, each stage on a fixed seeded subset of
    both clouds; None: ``iters`` iterations on all points (the thesis). ``lr``: Adam's rate;
    ``lr_schedule``: ``"constant"`` or ``"cosine"`` (annealed to ``lr / 100`` over all iterations).
    ``prune``: after the first stage(s) only the best groups continue: an int (after the first stage)
    or ``(k0, k1, ...)`` after each of the first stages in turn (successive halving); None: all.
    ``early_stop``: stop a stage when no group's loss improved by more than this relative amount over
    ``patience`` iterations (None: off)."""

    stages: Optional[Tuple[Tuple[int, int], ...]] = ((128, 40), (256, 110), (1024, 50))
    iters: int = 500
    lr: float = 3e-2
    lr_schedule: str = "cosine"
    prune: Union[None, int, Tuple[int, ...]] = (32, 8)
    early_stop: Optional[float] = None
    patience: int = 25

    def __post_init__(self):
        if self.stages is not None:
            try:
                st = tuple((int(n), int(k)) for n, k in self.stages)
            except (TypeError, ValueError):
                raise _bad(Schedule, "stages", "must be ((n_points, iters), ...)", self.stages) from None
            if not st or any(n < 1 or k < 0 for n, k in st):
                raise _bad(Schedule, "stages", "must be non-empty (n_points >= 1, iters >= 0) pairs", self.stages)
            _set(self, "stages", st)
        _int(self, "iters", 0)
        _positive(self, "lr")
        _choice(self, "lr_schedule", ("constant", "cosine"))
        p = self.prune
        if p is not None:
            ks = [p] if isinstance(p, int) and not isinstance(p, bool) else p
            try:
                ks = list(ks)
            except TypeError:
                raise _bad(Schedule, "prune", "must be None, an int >= 1 or a sequence of them", p) from None
            if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
                raise _bad(Schedule, "prune", "must be None, an int >= 1 or a sequence of them", p)
            if any(b > a for a, b in zip(ks, ks[1:])):
                raise _bad(Schedule, "prune", "must not increase from stage to stage", p)
            n_bounds = 0 if self.stages is None else len(self.stages) - 1
            if not isinstance(p, int) and len(ks) > n_bounds:
                raise _bad(Schedule, "prune", f"has more counts than the {n_bounds} stage boundaries of "
                                              "Schedule.stages (one count per boundary)", p)
            if not isinstance(p, int):
                _set(self, "prune", tuple(ks))
        _positive(self, "early_stop", none_ok=True, zero_ok=True)
        _int(self, "patience", 1)


@dataclass(frozen=True)
class Refinement:
    """Local refinement after the schedule (beyond the thesis): the ``groups`` best groups continue
    for ``iters`` Adam iterations at full resolution on the local Chamfer of eq. 3-9 alone (eq. 3-11
    with ``beta = 0``: the projected terms of eq. 3-10 match all points, so on partial pairs their
    optimum is biased) at rate ``lr`` (None: :attr:`Schedule.lr`) and fraction ``alpha`` (None:
    :attr:`Objective.alpha`). ``objective="inlier"``: the truncated Chamfer of the inlier score
    instead. ``by``: the criterion that picks the groups (None: the selection's). ``iters = 0``: off
    (the thesis)."""

    iters: int = 200
    groups: int = 8
    lr: Optional[float] = 1e-2
    objective: str = "local_cd"
    alpha: Optional[float] = None
    by: Optional[str] = None

    def __post_init__(self):
        _int(self, "iters", 0)
        _int(self, "groups", 1)
        _positive(self, "lr", none_ok=True)
        _choice(self, "objective", ("local_cd", "inlier"))
        a = self.alpha
        if a is not None and (isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 < a <= 1):
            raise _bad(Refinement, "alpha", "must be None or in (0, 1]", a)
        _choice(self, "by", (None, "local_cd", "inlier"))


@dataclass(frozen=True)
class Selection:
    """How the answer is chosen among the hypotheses.

    ``method``: ``"local_cd"``: the smallest local Chamfer (eq. 3-9; algorithm 3.1, line 10, the
    thesis); ``"inlier"``: the smallest truncated Chamfer ``mean min(d^2, tau^2) / tau^2`` in both
    directions (eq. 3-9's distances without the fixed fraction alpha), ``tau = inlier_factor x`` the
    point spacing, plus ``visibility_weight x`` the free-space violation share when the call gives
    ``viewpoints``; ``"flips"``: the inlier score ranks the groups (pruning, refinement), then the
    ``hypotheses`` best, each with its half-turn and mirror flips
    (:func:`~fe_fast.registration.selection.flip_candidates`, ``extra_axes`` more half-turn axes),
    are refined by ``flip_iters`` iterations of point-to-plane ICP
    (:func:`~fe_fast.registration.selection.refine_local`) and the lowest
    :func:`~fe_fast.registration.selection.selection_score` wins (plane distance and normal agreement
    separate a pose from its half-turn flip on a partial scan; see :mod:`.selection`)."""

    method: str = "flips"
    hypotheses: int = 2
    flip_iters: int = 30
    extra_axes: int = 16
    inlier_factor: float = 1.0
    visibility_weight: float = 4.0

    def __post_init__(self):
        _choice(self, "method", ("local_cd", "inlier", "flips"))
        _int(self, "hypotheses", 1)
        _int(self, "flip_iters", 1)
        _int(self, "extra_axes", 0)
        _positive(self, "inlier_factor")
        _positive(self, "visibility_weight", zero_ok=True)


@dataclass(frozen=True)
class Accept:
    """Early accept of a correspondence start (beyond the thesis): the :attr:`Starts.correspondence`
    answers are refined as they are by point-to-plane ICP
    (:func:`~fe_fast.registration.selection.refine_local`, ``Selection.flip_iters`` iterations) and,
    when the best has a :func:`~fe_fast.registration.selection.selection_score` of at most ``score``,
    it is returned at once (no HOUV optimisation). Otherwise the best one's flips join the flip-aware
    selection's candidates. The score is about ``2 - 2 x`` the overlap at the true pose (a point
    without a partner within tau costs 1 on each side), so a threshold accepts only pairs overlapping
    enough to be unambiguous. None: never (every pair runs the schedule); without correspondence
    starts there is nothing to accept and the rule is skipped.

    The default 1.2 (with 3 correspondence starts) was chosen on the 64 + 32 choosing pairs of
    :mod:`fe_fast.datasets.registration_sets` only (``tools/houv_default_choose.py``; see
    bench/results/houv.md, "Default recipe" and "A faster default"): refined starts that were right
    scored up to 1.44, wrong ones from 1.41; no threshold up to 1.3 accepted a wrong start, and 1.2
    keeps a margin of 0.2 below the lowest-scoring wrong one while taking 61 of the 96 pairs on the
    fast path (threshold 1.0 with 3 starts: 45; 1.0 with one start, the first default: 41)."""

    score: Optional[float] = 1.2

    def __post_init__(self):
        _positive(self, "score", none_ok=True, zero_ok=True)


@dataclass(frozen=True)
class RegistrationConfig:
    """A whole registration: the stages in the order they run (module docstring) and ``threads``,
    the torch intra-op thread count used during the call (restored afterwards; None: leave torch's
    setting). One thread is the safe choice on a shared machine: with a second busy process on 2
    cores, the local ICP of the flip selection took 9.5-15 s with 2 torch threads and 0.9 s with 1
    (threads that spin-wait for a busy core); ``fe-fast ... --threads N`` overrides it."""

    starts: Starts = field(default_factory=Starts)
    objective: Objective = field(default_factory=Objective)
    schedule: Schedule = field(default_factory=Schedule)
    refinement: Refinement = field(default_factory=Refinement)
    selection: Selection = field(default_factory=Selection)
    accept: Accept = field(default_factory=Accept)
    threads: Optional[int] = 1

    def __post_init__(self):
        for name, cls in STAGES.items():
            if not isinstance(getattr(self, name), cls):
                raise _bad(RegistrationConfig, name, f"must be a {cls.__name__}", getattr(self, name))
        _int(self, "threads", 1, none_ok=True)
        if self.objective.angle_bounds is not None and self.starts.correspondence:
            raise ValueError("Starts.correspondence must be 0 with Objective.angle_bounds (HOUV_pri): a "
                             "correspondence start need not lie in its group's angle range")
        p = self.schedule.prune
        if isinstance(p, tuple) and p[0] > self.starts.groups:
            raise ValueError(f"Schedule.prune must not exceed Starts.groups ({self.starts.groups}), got {p!r}")

    def replace(self, **changes) -> "RegistrationConfig":
        """A copy with some fields changed: a stage (``starts=Starts(...)``, or a dict of that stage's
        fields, ``schedule={"lr": 1e-2}``), ``threads``, or a field name unique to one stage
        (``prune=8`` is ``schedule={"prune": 8}``; names of several stages such as ``groups`` must go
        through their stage)."""
        top, per_stage = {}, {}
        for k, v in changes.items():
            if k in STAGES:
                if isinstance(v, dict):
                    per_stage.setdefault(k, {}).update(v)
                else:
                    top[k] = v
            elif k == "threads":
                top[k] = v
            else:
                owners = [s for s, cls in STAGES.items() if k in {f.name for f in dataclasses.fields(cls)}]
                if len(owners) != 1:
                    raise ValueError(f"RegistrationConfig.replace: {k!r} is " +
                                     ("not a field of any stage" if not owners else
                                      f"a field of {', '.join(owners)}: write e.g. {owners[0]}={{{k!r}: ...}}"))
                per_stage.setdefault(owners[0], {})[k] = v
        for s, fields_ in per_stage.items():
            top[s] = dataclasses.replace(top.get(s, getattr(self, s)), **fields_)
        return dataclasses.replace(self, **top)


#: stage field of :class:`RegistrationConfig` -> its class
STAGES = {"starts": Starts, "objective": Objective, "schedule": Schedule, "refinement": Refinement,
          "selection": Selection, "accept": Accept}

#: the general recipe: ``houv(P, Q)`` and ``fe-fast register S T``
DEFAULT_CONFIG = RegistrationConfig()


# ----------------------------------------------------------------------------------------------
# The core loop's keywords (one list, used by houv.py) and the old keyword style
# ----------------------------------------------------------------------------------------------
#: keyword of the core loop (and of the old ``houv(P, Q, **kwargs)`` style) -> (stage, field)
CORE_KEYWORDS = {
    "groups": ("starts", "groups"),
    "init": ("starts", "rotations"),
    "init_translation": ("starts", "translation"),
    "alpha": ("objective", "alpha"),
    "beta": ("objective", "beta"),
    "mapping": ("objective", "mapping"),
    "d_max": ("objective", "d_max"),
    "angle_bounds": ("objective", "angle_bounds"),
    "schedule": ("schedule", "stages"),
    "iters": ("schedule", "iters"),
    "lr": ("schedule", "lr"),
    "lr_schedule": ("schedule", "lr_schedule"),
    "prune_groups": ("schedule", "prune"),
    "early_stop": ("schedule", "early_stop"),
    "patience": ("schedule", "patience"),
    "refine_iters": ("refinement", "iters"),
    "refine_groups": ("refinement", "groups"),
    "refine_lr": ("refinement", "lr"),
    "refine_objective": ("refinement", "objective"),
    "refine_alpha": ("refinement", "alpha"),
    "refine_by": ("refinement", "by"),
    "select": ("selection", "method"),
    "inlier_factor": ("selection", "inlier_factor"),
    "visibility_weight": ("selection", "visibility_weight"),
}


def core_kwargs(config: RegistrationConfig) -> dict:
    """The core loop's keywords for ``config`` (``select="flips"`` runs the loop with the inlier
    score; the flip stage follows it)."""
    out = {}
    for key, (stage, name) in CORE_KEYWORDS.items():
        v = getattr(getattr(config, stage), name)
        if key == "schedule" and v is not None:
            v = [tuple(s) for s in v]
        elif key == "angle_bounds" and v is not None:
            v = [list(b) for b in v]
        elif key == "prune_groups" and isinstance(v, tuple):
            v = list(v)
        elif key == "select" and v == "flips":
            v = "inlier"
        out[key] = v
    return out


def config_from_kwargs(base: Optional[RegistrationConfig] = None, **kwargs) -> RegistrationConfig:
    """The config of the old keyword style: ``houv(P, Q, alpha=..., groups=...)`` meant the thesis's
    settings (``base`` None: the ``"thesis"`` preset) with these keywords changed. A keyword that is
    not one of :data:`CORE_KEYWORDS` raises TypeError."""
    if base is None:
        from fe_fast.registration.presets import PRESETS

        base = PRESETS["thesis"]
    per_stage = {}
    for k, v in kwargs.items():
        if k not in CORE_KEYWORDS:
            raise TypeError(f"unexpected HOUV keyword argument {k!r}")
        stage, name = CORE_KEYWORDS[k]
        per_stage.setdefault(stage, {})[name] = v
    cfg = base
    if per_stage.get("objective", {}).get("angle_bounds") is not None and cfg.starts.correspondence:
        per_stage.setdefault("starts", {})["correspondence"] = 0
    try:
        return cfg.replace(**per_stage)
    except ValueError as exc:  # name the old keyword too
        old = [k for k, (st, f) in CORE_KEYWORDS.items() if k in kwargs and f"{STAGES[st].__name__}.{f}" in str(exc)]
        raise ValueError(f"{exc} (keyword {', '.join(old)})" if old else str(exc)) from None


#: per-call arguments that the old keyword style mixed with the settings
RUN_KEYWORDS = ("seed", "device", "progress", "init_transforms", "viewpoints")


def split_run_kwargs(kwargs: dict):
    """``(settings, per-call arguments)`` of an old-style keyword dict."""
    return ({k: v for k, v in kwargs.items() if k not in RUN_KEYWORDS},
            {k: v for k, v in kwargs.items() if k in RUN_KEYWORDS})
