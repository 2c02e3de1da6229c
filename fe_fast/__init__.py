"""fe-fast: compiled kernels and the four methods of "Research about Face Editing Based on Image
Features" (Yan Yuanjie, Nanjing University, 2023): HOUV registration (ch. 3), DERC clustering
(ch. 4), StyleGAN2 (ch. 5) and S-space channel editing (ch. 6)."""

__version__ = "0.1.0"


def _passive_openmp_waits() -> None:
    """Let OpenMP threads sleep instead of spin between parallel regions, when nothing decided yet.

    fe_fast._C links ``libgomp.so.1``, and torch's wheel ships its OpenMP runtime under that same
    soname, so the kernels and torch share ONE runtime, configured from the environment when
    ``import torch`` loads it. Its default spins about 300,000 times (GOMP_SPINCOUNT) after every
    parallel region and barrier; on a machine shared with other processes those spins take the
    cores that the other team threads and processes need, and a loop of short regions (HOUV's
    inner loop) slows down 10x and more. So, if torch is not loaded yet and the user set neither
    OMP_WAIT_POLICY nor GOMP_SPINCOUNT, ask for passive waits (on an idle machine they cost the
    wake-up of a sleeping thread per region; OMP_WAIT_POLICY=ACTIVE keeps the spinning). Imported
    after torch, this changes nothing: set OMP_WAIT_POLICY=PASSIVE in the environment instead."""
    import os
    import sys

    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


_passive_openmp_waits()
