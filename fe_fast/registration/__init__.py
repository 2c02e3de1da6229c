"""Partial point-cloud registration (thesis ch. 3): HOUV and HOUV_pri (:mod:`.houv`), evaluation
metrics (:mod:`.metrics`, eq. 3-13, 3-14), the free-space check of hypotheses from the scans' sensor
positions (:mod:`.visibility`, HOUV's ``viewpoints``), the best of several HOUV settings
(:mod:`.best_of`), cloud / transform / pair-list files (:mod:`.io`), many pairs at once, sharded
over ``torch.distributed`` ranks (:func:`register_pairs`) and Open3D baselines (:mod:`.baselines`, imported
on use because Open3D is optional)."""
from fe_fast.registration.best_of import houv_best_of
from fe_fast.registration.batch import register_pairs
from fe_fast.registration.houv import HOUV, RegistrationResult, houv, houv_batch

__all__ = ["HOUV", "RegistrationResult", "houv", "houv_batch", "houv_best_of", "register_pairs"]
