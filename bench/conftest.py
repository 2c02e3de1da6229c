"""pytest set-up of ``make bench`` (bench/README.md): the ``--full`` option (the full protocol;
quick sizes otherwise), and the import paths the ``bm_*`` modules use (``benchutil`` from this
folder, ``tests.*`` helpers and ``fe_fast`` from the repository root)."""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (str(HERE.parent), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true", default=False,
                     help="fe-fast benchmarks: run the full protocol (default: quick sizes); "
                          "same as FE_FAST_BENCH_FULL=1")


def pytest_configure(config):
    # set before the bm_* modules are imported: they read the mode at import time
    if config.getoption("--full"):
        os.environ["FE_FAST_BENCH_FULL"] = "1"


def pytest_report_header(config):
    import benchutil

    return f"fe-fast benchmarks: {benchutil.mode()} mode, tables in {benchutil.out_dir()}"
