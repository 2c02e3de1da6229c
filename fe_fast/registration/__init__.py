"""Partial point-cloud registration (thesis ch. 3): HOUV and HOUV_pri (:mod:`.houv`) run as composed
stages configured by :class:`RegistrationConfig` (:mod:`.config`: starts, objective, schedule,
refinement, selection, accept; :data:`DEFAULT_CONFIG` is the general recipe, :data:`PRESETS` the named
configs, ``PRESETS["thesis"]`` algorithm 3.1), evaluation metrics (:mod:`.metrics`, eq. 3-13, 3-14),
the free-space check of hypotheses from the scans' sensor positions (:mod:`.visibility`), the choice
between a pose and its symmetric flips (:mod:`.selection`), the best of several configs
(:mod:`.best_of`), cloud / transform / pair-list files (:mod:`.io`), many pairs at once, sharded over
``torch.distributed`` ranks (:func:`register_pairs`) and Open3D baselines (:mod:`.baselines`)."""
from fe_fast.registration.best_of import houv_best_of
from fe_fast.registration.batch import register_pairs
from fe_fast.registration.config import (DEFAULT_CONFIG, Accept, Objective, Refinement, RegistrationConfig, Schedule,
                                         Selection, Starts)
from fe_fast.registration.houv import HOUV, RegistrationResult, houv, houv_batch
from fe_fast.registration.presets import PRESETS

__all__ = ["HOUV", "RegistrationResult", "houv", "houv_batch", "houv_best_of", "register_pairs",
           "RegistrationConfig", "DEFAULT_CONFIG", "PRESETS", "Starts", "Objective", "Schedule", "Refinement",
           "Selection", "Accept"]
