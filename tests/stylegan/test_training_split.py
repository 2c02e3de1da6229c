"""The training code split by concern (fe_fast.stylegan.training) trains exactly as the single
module it came from: seeded runs give bit-identical weights, optimiser states, losses, metrics and
output files, and checkpoints written by the old code resume in the new code.

The old code is the pre-split commit ``PRE_SPLIT`` of this repository, extracted with ``git
archive`` and run in a subprocess next to the current code (same compiled extension, one thread
each), so both fingerprints come from this machine in this test."""
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import fe_fast

PRE_SPLIT = "9f5610ce9148c3d7afcf96d756c0242871b8dd4d"  # last commit with the 814-line train.py
ROOT = Path(__file__).resolve().parents[2]

TINY = dict(resolution=16, toy_images=48, z_dim=32, w_dim=32, n_mlp=2, channel_max=16, batch=8,
            progress=False, sample_every=0, checkpoint_every=0, log_every=1)
RUNS = {  # together they take every branch of the loop
    "wgan_pl_xflip_rampdown": dict(total_img=8 * 3, xflip=True, lr_rampdown=0.5, path_every=2,
                                   sample_every=8, snapshot_every=16, checkpoint_every=8),
    "logistic_r1_attr_plain": dict(total_img=8 * 3, loss="logistic", r1_every=2, path="none",
                                   d_attr_weight=1.0, d_arch="plain", d_lr=0.001, noise_mode="none",
                                   style_mixing=0.0),
    "logistic_multiscale_fid": dict(total_img=8 * 2, loss="logistic", r1_every=1, d_scales=2,
                                    fid_every=16, fid_images=8),
    "vgg_path_feature_net": dict(total_img=8 * 2, path="vgg", vgg_weights="(unused)", path_every=1),
}

# Runs every RUNS entry with ``train`` (flat keyword names: the API both versions share), then
# resumes the first run's checkpoint for two more steps; prints one JSON object of fingerprints.
SCRIPT = r'''
import hashlib, json, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from fe_fast.stylegan.train import train

class PixelFeatures(torch.nn.Module):
    def forward(self, x):
        return [x, torch.nn.functional.avg_pool2d(x, 2)]
    def distance(self, fa, fb):
        return sum((a - b).square().flatten(1).sum(1) for a, b in zip(fa, fb))

def digest(obj):
    h = hashlib.sha256()
    def walk(o):
        if isinstance(o, torch.Tensor):
            h.update(str((o.dtype, tuple(o.shape))).encode()); h.update(o.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(o, dict):
            for k in sorted(o, key=str):
                h.update(str(k).encode()); walk(o[k])
        elif isinstance(o, (list, tuple)):
            for v in o:
                walk(v)
        else:
            h.update(repr(o).encode())
    walk(obj)
    return h.hexdigest()

def file_digest(p):
    if p.suffix != ".safetensors":
        return hashlib.sha256(p.read_bytes()).hexdigest()
    from safetensors import safe_open  # its header's metadata order varies from run to run

    with safe_open(str(p), framework="pt") as f:
        return digest([f.metadata(), {k: f.get_tensor(k) for k in f.keys()}])

def fingerprint(out, r):
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    recs = [{k: v for k, v in json.loads(line).items() if k not in ("time_s", "img_per_s")}
            for line in open(out / "metrics.jsonl")]
    files = {str(p.relative_to(out)): file_digest(p)
             for p in sorted(out.rglob("*")) if p.is_file() and p.name not in ("metrics.jsonl", "checkpoint.pt")}
    return {"weights": digest({k: ck[k] for k in ("G", "D", "G_ema")}), "optimisers": digest([ck["opt_G"], ck["opt_D"]]),
            "pl_mean": digest(ck["pl_mean"]), "counters": [ck["step"], ck["img_seen"]],
            "train_config": ck["train_config"], "configs": [ck["G_config"], ck["D_config"]],
            "losses": [r["d_losses"], r["g_losses"]], "metrics": recs, "files": files}

tiny, runs = json.loads(sys.argv[1]), json.loads(sys.argv[2])  # output folders relative to the cwd
result = {}
for name, kw in runs.items():
    out = Path(name)
    extra = {"feature_net": PixelFeatures()} if kw.get("path") == "vgg" else {}
    r = train(out_dir=str(out), **{**tiny, **kw}, **extra)
    result[name] = fingerprint(out, r)
if len(sys.argv) > 3:  # resume a checkpoint (written by either version) for two more steps
    ck, kw = Path(sys.argv[3]), json.loads(sys.argv[4])
    out = Path("resumed")
    r = train(out_dir=str(out), **{**tiny, **kw, "total_img": kw["total_img"] + 16}, resume=str(ck))
    result["resumed"] = fingerprint(out, r)
print(json.dumps(result))
'''


def _old_tree(tmp_path) -> Path:
    """The pre-split package, extracted from git, with this build's compiled extension."""
    so_files = list(Path(fe_fast.__file__).parent.glob("_C*.so"))
    if shutil.which("git") is None or not so_files:
        pytest.skip("needs git and the compiled fe_fast/_C*.so next to the package")
    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", PRE_SPLIT + "^{commit}"],
                      capture_output=True).returncode != 0:
        pytest.skip(f"the pre-split commit {PRE_SPLIT} is not in this checkout's history")
    tree = tmp_path / "pre_split"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", PRE_SPLIT, "fe_fast", "kernels"],
                             capture_output=True, check=True).stdout
    archive_path = tmp_path / "pre_split.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(tree, filter="data")
    if not (tree / "fe_fast" / "kernels").exists():
        (tree / "fe_fast" / "kernels").symlink_to("../kernels")
    for so in so_files:
        shutil.copy2(so, tree / "fe_fast" / so.name)
    return tree


def _fingerprints(pythonpath: Path, out: Path, runs: dict, resume_from: Path | None = None) -> dict:
    """Fingerprints of ``runs`` and, with ``resume_from``, of the first RUNS entry resumed from it."""
    out.mkdir()
    args = [sys.executable, "-c", SCRIPT, json.dumps(TINY), json.dumps(runs)]
    if resume_from is not None:
        args += [str(resume_from), json.dumps(next(iter(RUNS.values())))]
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_split_training_is_bit_identical_to_the_pre_split_code_and_resumes_its_checkpoints(tmp_path):
    old_tree = _old_tree(tmp_path)
    old = _fingerprints(old_tree, tmp_path / "old", RUNS)
    first = tmp_path / "old" / next(iter(RUNS)) / "checkpoint.pt"  # written by the pre-split code
    new = _fingerprints(ROOT, tmp_path / "new", RUNS, resume_from=first)
    old_resumed = _fingerprints(old_tree, tmp_path / "old_resumed", {}, resume_from=first)["resumed"]
    for name in RUNS:
        for key in old[name]:
            assert new[name][key] == old[name][key], (name, key)
    # the runs differ from each other (the fingerprint sees what each option changes)
    assert len({old[name]["weights"] for name in RUNS}) == len(RUNS)
    assert new["logistic_multiscale_fid"]["metrics"][-1]["fid"] > 0
    # an old checkpoint resumes in the new code exactly as in the old one
    assert new["resumed"]["counters"] == [5, 40]
    for key in old_resumed:
        assert new["resumed"][key] == old_resumed[key], ("resumed", key)
    assert new["resumed"]["weights"] != old[next(iter(RUNS))]["weights"]
