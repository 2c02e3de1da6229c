"""``fe-fast demo``: a cheap stage end to end (the full demo runs in `make demo`, not in CI)."""
from fe_fast.cli import main


def test_demo_kernels_stage_writes_the_summary(tmp_path, capsys):
    assert main(["demo", "--only", "kernels", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "summary.md").read_text()
    assert "## kernels" in text and "fe_fast.ops.knn" in text
    assert main(["demo", "--only", "nope", "--out", str(tmp_path)]) == 2
    assert "faces" in capsys.readouterr().err  # the error lists the stages


def test_demo_calls_the_library_not_the_command_line_parser():
    import inspect

    import fe_fast.cli.demo as demo

    src = inspect.getsource(demo)
    assert "build_parser" not in src and "parse_args" not in src and "args.func" not in src
