"""``fe-fast locate`` killed (SIGKILL) in the middle of its gradient pass and started again with the
same arguments finishes with the channels of an uninterrupted run; ``torchrun --nproc_per_node 2
-m fe_fast locate`` (gloo, localhost) prints the channels and scores of one process."""
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fe_fast.cli import main

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny networks


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from fe_fast.stylegan import Generator
    from fe_fast.stylegan.io import save_generator
    from fe_fast.teachers.toy import AttributeClassifier, save_teacher

    d = tmp_path_factory.mktemp("cli_locate_scale")
    save_generator(Generator(16, z_dim=16, w_dim=16, n_mlp=2, channel_base=256, channel_max=16, seed=0),
                   d / "G.safetensors")
    torch.manual_seed(0)
    save_teacher(AttributeClassifier(width=4), d / "C.pt")
    return d


def _args(d, *extra):
    return ["locate", "--generator", str(d / "G.safetensors"), "--classifier", str(d / "C.pt"),
            "--attribute", "smiling", "--n-samples", "16", "--channels-per-layer", "3", "--threshold", "0", "--max-positives", "7",
            "--batch-size", "2", "--layers", "all", "--json", "--no-progress", *extra]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    if "GLOO_SOCKET_IFNAME" not in env and Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"  # localhost only: containers whose hostname resolves elsewhere
    return env


def test_killed_locate_resumes_with_the_same_channels(files, tmp_path, capsys):
    d = files
    assert main(_args(d)) == 0
    full = json.loads(capsys.readouterr().out)["channels"]
    cache = tmp_path / "cache"
    # a process that SIGKILLs itself when it starts its second gradient chunk (7 positives: 4 chunks)
    script = textwrap.dedent("""
        import importlib, os, signal, sys
        L = importlib.import_module("fe_fast.editing.locate")
        real, n = L.per_sample_grads, [0]
        def dying(*a, **kw):
            n[0] += 1
            if n[0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **kw)
        L.per_sample_grads = dying
        from fe_fast.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    r = subprocess.run([sys.executable, "-c", script, *_args(d, "--cache-dir", str(cache))], env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert [p.name for p in sorted(cache.glob("grads_*.pt"))] == ["grads_000000.pt"]
    assert (cache / "manifest.json").exists() and list(cache.glob("teacher_*.pt"))
    assert main(_args(d, "--cache-dir", str(cache))) == 0
    assert json.loads(capsys.readouterr().out)["channels"] == full
    assert len(list(cache.glob("grads_*.pt"))) == 4
    # the same cache with other arguments: one clear error, exit status 2
    assert main(_args(d, "--cache-dir", str(cache), "--seed", "1")) == 2
    err = capsys.readouterr().err
    assert "other arguments (seed: cached 0, now 1)" in err and err.count("\n") == 1


def test_torchrun_two_processes_equal_one(files, tmp_path, capsys):
    d = files
    extra = ["--teacher-batch-size", "5", "--batch-size", "3", "--max-positives", "9"]  # 4 + 3 chunks, uneven
    assert main(_args(d, *extra)) == 0
    one = json.loads(capsys.readouterr().out)["channels"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fe_fast", *_args(d, *extra, "--cache-dir", str(tmp_path / "c"))]
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, r.stdout  # rank 0 prints, rank 1 does not
    two = json.loads(lines[0])["channels"]
    assert [(c["layer"], c["channel"], c["rank"]) for c in two] == [(c["layer"], c["channel"], c["rank"]) for c in one]
    for a, b in zip(two, one):
        assert abs(a["score"] - b["score"]) <= 1e-6 * abs(b["score"])
    # both ranks wrote their chunks into the shared cache: one process now reads them all
    assert main(_args(d, *extra, "--cache-dir", str(tmp_path / "c"))) == 0
    assert json.loads(capsys.readouterr().out)["channels"] == one


def test_bad_max_positives_is_one_line_and_exit_2(files, capsys):
    assert main(_args(files, "--max-positives", "-1")) == 2
    err = capsys.readouterr().err
    assert "max_positives must be a positive int or None" in err and err.count("\n") == 1
