"""``fe-fast info``: versions and which compiled backends are available (``--json``: one object)."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("info", help="show versions and available backends")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=run)


def backends() -> dict:
    """Versions and backends: ``fe_fast``, ``torch``, ``cuda_available``, ``omp_threads`` (None
    without the compiled CPU module, whose import error is then ``cpu_module_error``),
    ``cuda_module`` (devices seen, or None when not built), ``triton`` (version or None)."""
    import torch

    from fe_fast import __version__, _ext

    info = {"fe_fast": __version__, "torch": torch.__version__, "cuda_available": torch.cuda.is_available()}
    try:
        info["omp_threads"] = _ext.cpu().omp_max_threads()
    except ImportError as exc:
        info.update(omp_threads=None, cpu_module_error=str(exc))
    cuda_mod = _ext.cuda()
    info["cuda_module"] = None if cuda_mod is None else {"devices": cuda_mod.device_count()}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    return info


def run(args) -> int:
    info = backends()
    if args.json:
        from fe_fast.cli._common import print_json

        print_json(info)
        return 0
    print(f"fe-fast {info['fe_fast']}")
    print(f"torch {info['torch']}, CUDA available: {info['cuda_available']}")
    if info["omp_threads"] is not None:
        print(f"C++ module: fe_fast._C, OpenMP threads: {info['omp_threads']}")
    else:
        print(f"C++ module: not available ({info['cpu_module_error']}); the CPU ops use pure-torch fallbacks")
    if info["cuda_module"] is None:
        print("CUDA module: not built (no nvcc at install time, or FE_FAST_CUDA=0)")
    else:
        print(f"CUDA module: fe_fast._C_cuda, devices seen: {info['cuda_module']['devices']}")
    if info["triton"] is not None:
        print(f"triton {info['triton']}")
    else:
        print("triton: not installed (GPU kernels fall back to the CUDA module)")
    return 0
