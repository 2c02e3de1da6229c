"""``fe-fast info``: versions and which compiled backends are available."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("info", help="show versions and available backends")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from fe_fast import __version__, _ext

    cuda_mod = _ext.cuda()
    print(f"fe-fast {__version__}")
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    try:
        print(f"C++ module: fe_fast._C, OpenMP threads: {_ext.cpu().omp_max_threads()}")
    except ImportError as exc:
        print(f"C++ module: not available ({exc}); the CPU ops use pure-torch fallbacks")
    if cuda_mod is None:
        print("CUDA module: not built (no nvcc at install time, or FE_FAST_CUDA=0)")
    else:
        print(f"CUDA module: fe_fast._C_cuda, devices seen: {cuda_mod.device_count()}")
    try:
        import triton

        print(f"triton {triton.__version__}")
    except ImportError:
        print("triton: not installed (GPU kernels fall back to the CUDA module)")
    return 0
