"""The fe-fast entry point: help, info, demo stage selection, error convention."""
import pytest

from fe_fast.cli import main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("info", "demo"):
        assert cmd in out


def test_info_reports_backends(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "C++ module: fe_fast._C" in out and "OpenMP threads" in out


def test_demo_kernel_stage_writes_summary(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--only", "kernels"]) == 0
    text = (tmp_path / "summary.md").read_text()
    assert "fe_fast.ops.knn" in text and "max |difference|" in text
    diff = float(text.split("squared distances: ")[1].split()[0])
    assert diff < 1e-4


def test_unknown_demo_stage_is_a_one_line_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown demo stage" in err and err.count("\n") == 1
