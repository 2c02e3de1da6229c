"""Probe for the early-accept threshold (``fe_fast.registration.config.Accept.score``) on choosing
pairs only (:mod:`fe_fast.datasets.range_scans`, seed 0, never the held-out objects): for each pair,
the :func:`~fe_fast.registration.selection.selection_score` of the true pose refined by
``refine_local``, the lowest score among its refined flip candidates (a flip that the refinement
carries back to the truth scores as the truth), and RANSAC+ICP's answer after ``best_of_flips`` with
its rotation error. Not part of CI. Usage::

    python tools/houv_accept_probe.py 10      # the first 10 pairs, 1024 points
"""
import sys

import torch

from fe_fast.datasets import range_scans
from fe_fast.registration import baselines
from fe_fast.registration import selection as sel
from fe_fast.registration.metrics import rotation_error


def main(count: int) -> None:
    torch.set_num_threads(1)
    for i in range(count):
        p = range_scans.make_scan_pair(i, seed=0, n_points=1024)
        P, Q, T = p["P"], p["Q"], p["T_gt"]
        truth = sel.selection_score(P, Q, sel.refine_local(P, Q, T)).score.item()
        C, _ = sel.flip_candidates(P, Q, T, extra_axes=0)
        flip = sel.selection_score(P, Q, sel.refine_local(P, Q, C[1:])).score.min().item()
        r = baselines.ransac_icp(P, Q, seed=0)
        Tb, info = sel.best_of_flips(P, Q, r["transform"])
        err = rotation_error(Tb[:3, :3].numpy(), T[:3, :3])
        print(f"pair {i} {p['mesh']:>14} overlap {p['overlap']:.2f}  truth {truth:.3f}  best flip {flip:.3f}  "
              f"ransac+flips {info['score']:.3f} err {err:6.1f} deg", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
