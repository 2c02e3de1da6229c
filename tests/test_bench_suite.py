"""The benchmark suite's convention (bench/README.md), checked without running any benchmark:
every module in bench/ is a ``bm_*.py`` that ``make bench`` collects, script benchmarks carry
their quick and full arguments, ``benchutil`` switches mode and output folder as documented, and
bench/results/ holds summaries only."""
import ast
import importlib.util
import os
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
HELPERS = {"benchutil.py", "conftest.py"}


def _benchutil():
    spec = importlib.util.spec_from_file_location("benchutil_under_test", BENCH / "benchutil.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _modules():
    return sorted(p for p in BENCH.glob("*.py") if p.name not in HELPERS)


def test_bench_holds_only_bm_modules():
    strays = [p.name for p in _modules() if not p.name.startswith("bm_")]
    assert not strays, f"bench/ modules must be bm_<name>.py (bench/README.md); convert or move to tools/: {strays}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_module_follows_the_convention(path):
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path.name}: needs a docstring saying what it compares"
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    tests = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    assert tests, f"{path.name}: make bench collects nothing (no test_* function)"
    assert "benchutil" in path.read_text(), f"{path.name}: write the table with benchutil.Report"
    if "main" in names:  # a script benchmark: quick and full arguments for make bench
        assert "QUICK_ARGS" in names and ({"FULL_ARGS", "FULL_RUNS"} & names), \
            f"{path.name}: a script benchmark defines QUICK_ARGS and FULL_ARGS"


def test_mode_and_output_folder(monkeypatch, tmp_path):
    bu = _benchutil()
    monkeypatch.delenv("FE_FAST_BENCH_FULL", raising=False)
    monkeypatch.setenv("FE_FAST_BENCH_OUT", str(tmp_path / "out"))
    assert bu.pick("q", "f") == "q" and bu.mode() == "quick"
    monkeypatch.setenv("FE_FAST_BENCH_FULL", "0")
    assert bu.pick("q", "f") == "q"
    monkeypatch.setenv("FE_FAST_BENCH_FULL", "1")
    assert bu.pick("q", "f") == "f" and bu.mode() == "full"
    report = bu.Report("demo_table", "A table", "python bench/bm_demo.py --n 2")
    report.add("| a | b |")
    path = report.write()
    assert path == tmp_path / "out" / "demo_table.md"
    text = path.read_text()
    assert text.startswith("# A table (full mode)")
    for field in ("- Command: `python bench/bm_demo.py --n 2`", "- Date: ", "- Machine: ", "- Load average"):
        assert field in text
    assert text.rstrip().endswith("| a | b |")


def test_results_are_summaries_only():
    files = [p for p in (BENCH / "results").iterdir() if p.is_file()]
    raw = [p.name for p in files if p.suffix != ".md"]
    assert not raw, f"bench/results/ keeps summary tables only; raw rows go to bench/out/: {raw}"
    total = sum(p.stat().st_size for p in files)
    assert total < 300 * 1024, f"bench/results/ is {total / 1024:.0f} KB (budget 300 KB)"


def test_make_bench_runs_the_suite_with_the_full_switch():
    make = (BENCH.parent / "Makefile").read_text()
    rule = make[make.index("\nbench:"):].split("\n\n")[0]
    assert "pytest bench" in rule and "--full" in rule and "FULL" in rule
    assert "--benchmark-only" not in rule  # it would skip the script benchmarks
    assert os.path.basename(str(BENCH / "out")) + "/" in (BENCH.parent / ".gitignore").read_text()
