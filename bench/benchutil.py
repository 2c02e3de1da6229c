"""What every ``bench/bm_*.py`` shares: the run mode (quick or full), the output folder, and the
header that makes a result table reproducible (command, date, machine, load).

* Mode: quick (small sizes, the default of ``make bench``) or full (the protocol the committed
  results in ``bench/results/`` were measured with): ``make bench FULL=1``, ``pytest bench --full``
  or ``FE_FAST_BENCH_FULL=1``.
* Output: ``bench/out/`` (git-ignored), or ``$FE_FAST_BENCH_OUT``. Each benchmark writes
  ``<name>.md`` (its summary table with the header below) and, where it has them, raw rows
  (``<name>.jsonl`` / ``.json``) next to it. Raw rows are never committed.

The convention is written out in ``bench/README.md``.
"""
from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


def full() -> bool:
    """True in full-protocol mode (``--full`` / ``FULL=1`` / ``FE_FAST_BENCH_FULL=1``)."""
    return os.environ.get("FE_FAST_BENCH_FULL", "").strip() not in ("", "0")


def mode() -> str:
    return "full" if full() else "quick"


def pick(quick, full_value):
    """``quick`` in quick mode, ``full_value`` in full mode."""
    return full_value if full() else quick


def out_dir() -> Path:
    """The (created) output folder: ``$FE_FAST_BENCH_OUT`` or ``bench/out``."""
    d = Path(os.environ.get("FE_FAST_BENCH_OUT") or BENCH_DIR / "out")
    d.mkdir(parents=True, exist_ok=True)
    return d


def out_path(filename: str) -> Path:
    """``out_dir() / filename``."""
    return out_dir() / filename


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line: CPU model, logical CPUs, OS, Python, torch (and the GPU when CUDA is present)."""
    parts = [_cpu_model(), f"{os.cpu_count()} logical CPUs", f"{platform.system()} {platform.machine()}",
             f"Python {platform.python_version()}"]
    try:
        import torch

        parts.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
        if torch.cuda.is_available():
            parts.append("GPU " + torch.cuda.get_device_name(0))
    except ImportError:  # pragma: no cover
        pass
    omp = os.environ.get("OMP_NUM_THREADS")
    if omp:
        parts.append(f"OMP_NUM_THREADS={omp}")
    return ", ".join(parts)


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on this platform
        return "n/a"


def script_command(script: str, argv) -> str:
    """The shell command that reruns a script benchmark with these arguments."""
    rel = Path(script).resolve().relative_to(ROOT) if Path(script).resolve().is_relative_to(ROOT) else Path(script)
    return " ".join(["python", str(rel), *(shlex.quote(str(a)) for a in argv)])


def header(title: str, command: str, started: str | None = None, load_start: str | None = None) -> str:
    """The lines every result file starts with."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {title} ({mode()} mode)", "",
             f"- Command: `{command}`",
             f"- Date: {started or now}" + (f" to {now}" if started and started != now else ""),
             f"- Machine: {machine()}",
             f"- Load average (1, 5, 15 min): {load_start + ' at start, ' if load_start else ''}{load()} at end", "", ""]
    return "\n".join(lines)


class Report:
    """Collects a benchmark's markdown and writes ``<out>/<name>.md`` with the standard header.

    ``started``/``load_start`` are taken at construction, so create it before the timed work."""

    def __init__(self, name: str, title: str, command: str):
        self.name, self.title, self.command = name, title, command
        self.started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        self.load_start = load()
        self.lines: list[str] = []

    def add(self, text: str = "") -> None:
        self.lines.append(text)

    def write(self, path: str | os.PathLike | None = None) -> Path:
        path = Path(path) if path else out_path(f"{self.name}.md")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = header(self.title, self.command, self.started, self.load_start) + "\n".join(self.lines).rstrip() + "\n"
        path.write_text(text)
        print(f"\n[bench] {self.name}: wrote {path}", file=sys.stderr)
        return path


def pytest_command(module_file: str) -> str:
    """The command that reruns one pytest-benchmark module in the current mode."""
    rel = Path(module_file).resolve().relative_to(ROOT)
    return f"python -m pytest {rel} -p no:xdist -s" + (" --full" if full() else "")
