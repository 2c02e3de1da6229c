"""The shared option set of the compute commands (fe_fast/cli/_common.py): every option does what
it says on every converted command, the CLI's defaults are the library's, old spellings still work
with a deprecation line.

Cheap: the library call is replaced by a fake that records its arguments (and the global state the
options set) and stops the command; ``--json`` and ``--out`` run each command for real on tiny inputs."""
import dataclasses
import functools
import importlib
import inspect
import json

import numpy as np
import pytest
import torch

from fe_fast.cli import build_parser, main
from fe_fast.cli._common import COMMANDS, COMMON_OPTIONS


class _Stop(Exception):
    """Raised by the fake library call once it has recorded its arguments."""


@pytest.fixture()
def inputs(tmp_path):
    """Tiny inputs for every command: a cloud and a pair list, a toy face photo with landmarks."""
    from PIL import Image

    from fe_fast.datasets.bunny import bundled_pair
    from fe_fast.datasets.toyfaces import render_with_labels, sample_params

    np.save(tmp_path / "src.npy", bundled_pair()["P"][:100])
    (tmp_path / "pairs.csv").write_text("name,src,tgt\na,src.npy,src.npy\n")
    np.save(tmp_path / "imgs.npy", np.random.default_rng(0).random((24, 8, 8)).astype(np.float32))
    params, _ = sample_params(1, seed=2, attributes={"yaw": 10.0})
    r = render_with_labels(params[0], 96)
    Image.fromarray(r.image).save(tmp_path / "face.png")
    np.save(tmp_path / "lm.npy", r.landmarks)
    from fe_fast.stylegan import Generator
    from fe_fast.stylegan.io import save_generator
    from fe_fast.teachers.toy import AttributeClassifier, save_teacher

    save_generator(Generator(16, z_dim=16, w_dim=16, n_mlp=1, channel_max=16, seed=0), tmp_path / "G.safetensors")
    save_teacher(AttributeClassifier(width=4), tmp_path / "C.pt")
    return tmp_path


def _teacher(d):
    return ["--generator", str(d / "G.safetensors"), "--classifier", str(d / "C.pt"), "--attribute", "smiling",
            "--n", "4", "--threshold", "0"]


def _on(G):
    return next(G.parameters()).device.type


def _stop():
    raise _Stop


# command -> (arguments before the shared options, (module, function) doing the work,
#             extract(args, kwargs) -> dict(seed, device, progress), cheap real-run options, files in --out)
SPECS = {
    "register": (lambda d: ["register", str(d / "src.npy"), str(d / "src.npy")], ("fe_fast.registration", "houv"),
                 lambda a, k: dict(seed=k["seed"], device=k.get("device"), progress=k["progress"]),
                 ["--preset", "thesis", "--iters", "5", "--groups", "2"], ["result.json", "transform.json", "aligned.npy"]),
    "register-batch": (lambda d: ["register-batch", str(d / "pairs.csv")], ("fe_fast.registration", "register_pairs"),
                       lambda a, k: dict(seed=k["seed"], device=k.get("device"), progress=k["progress"]),
                       ["--preset", "thesis", "--iters", "5", "--groups", "2"], ["results.jsonl", "summary.json"]),
    "cluster": (lambda d: ["cluster", str(d / "imgs.npy"), "--k", "2"], ("fe_fast.clustering", "DERC"),
                lambda a, k: dict(seed=k["random_state"], device=k.get("device"), progress=k["verbose"]),
                ["--epochs", "1", "--rounds", "0", "--reducer", "none"], ["labels.npy", "embedding.npy"]),
    "align": (lambda d: ["align", str(d / "face.png"), "--landmarks", str(d / "lm.npy")], ("fe_fast.align", "align_face"),
              lambda a, k: dict(seed=k["seed"], device=k.get("device"), progress=None),
              ["--size", "32"], ["crop.png", "align.json"]),
    "teachers train": (lambda d: ["teachers", "train"], ("fe_fast.teachers.toy", "train_toy_teachers"),
                       lambda a, k: dict(seed=k["seed"], device=k.get("device"), progress=k["progress"]),
                       ["--size", "16", "--n", "24", "--n-val", "8", "--epochs", "1", "--parser-epochs", "1",
                        "--width", "4"], ["attribute_classifier.pt", "face_parser.pt"]),
    "train-gan": (lambda d: ["train-gan"], ("fe_fast.stylegan.train", "train"),
                  lambda a, k: {n: a[0].to_dict()[n] for n in ("seed", "device", "progress")},  # flat names
                  ["--resolution", "8", "--toy-images", "8", "--z-dim", "8", "--w-dim", "8", "--n-mlp", "1",
                   "--channel-max", "8", "--batch-size", "4", "--max-steps", "1", "--sample-every", "0"],
                  ["G_ema.safetensors", "metrics.jsonl", "checkpoint.pt"]),
    "locate": (lambda d: ["locate", *_teacher(d)], ("fe_fast.editing.locate", "locate"),
               lambda a, k: dict(seed=k["seed"], device=_on(a[0]), progress=k["progress"]),
               ["--channels-per-layer", "2"], ["channels.json"]),
    "edit": (lambda d: ["edit", "--sample-seeds", "1,2", *_teacher(d)], ("fe_fast.editing.locate", "locate"),
             lambda a, k: dict(seed=k["seed"], device=_on(a[0]), progress=k["progress"]),
             ["--alphas", "0,5"], ["grid.png", "edit.json"]),
    "edit-image": (lambda d: ["edit-image", str(d / "face.png"), "--landmarks", str(d / "lm.npy"), *_teacher(d)],
                   ("fe_fast.editing.pipeline", "edit_photo"),
                   lambda a, k: dict(seed=k["seed"], device=k.get("device"), progress=k["progress"]),
                   ["--steps", "2"], ["edited.png", "grid.png", "edit.json"]),
}
assert set(SPECS) == set(COMMANDS)


@pytest.fixture()
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _record(monkeypatch, cmd):
    """Replace the command's library call by a recorder; returns the list it fills."""
    module, name = SPECS[cmd][1]
    calls = []

    def fake(*args, **kwargs):
        calls.append({**SPECS[cmd][2](args, kwargs), "threads": torch.get_num_threads(),
                      "draw": torch.rand(1).item(), "np_draw": float(np.random.rand())})
        raise _Stop

    mod = importlib.import_module(module)
    monkeypatch.setattr(mod, name, functools.wraps(getattr(mod, name))(fake))  # keeps the signature
    return calls


def _run(monkeypatch, cmd, d, *extra):
    calls = _record(monkeypatch, cmd)
    with pytest.raises(_Stop):
        main([*SPECS[cmd][0](d), "--out", str(d / "out"), *extra])
    return calls[-1]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_seed_reaches_the_library_and_seeds_the_global_generators(monkeypatch, inputs, cmd):
    a = _run(monkeypatch, cmd, inputs, "--seed", "7")
    b = _run(monkeypatch, cmd, inputs, "--seed", "7")
    c = _run(monkeypatch, cmd, inputs, "--seed", "8")
    assert a["seed"] == 7 and c["seed"] == 8
    assert (a["draw"], a["np_draw"]) == (b["draw"], b["np_draw"]) and a["draw"] != c["draw"]
    assert _run(monkeypatch, cmd, inputs)["seed"] == 0


@pytest.mark.parametrize("cmd", COMMANDS)
def test_device_reaches_the_library(monkeypatch, inputs, capsys, cmd):
    assert _run(monkeypatch, cmd, inputs, "--device", "cpu")["device"] == "cpu"
    module, name = SPECS[cmd][1]
    default = _run(monkeypatch, cmd, inputs)["device"]
    assert default in (None, "auto", "cpu")  # not given: the library's default (the generator where it loads)
    capsys.readouterr()  # progress bars of the runs above
    assert main([*SPECS[cmd][0](inputs), "--out", str(inputs / "out"), "--device", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--device: not a device: 'nope'" in err and len(err.splitlines()) == 1
    if not torch.cuda.is_available():
        assert main([*SPECS[cmd][0](inputs), "--out", str(inputs / "out"), "--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", COMMANDS)
def test_threads_sets_torch_threads(monkeypatch, inputs, capsys, restore_threads, cmd):
    torch.set_num_threads(2)
    assert _run(monkeypatch, cmd, inputs, "--threads", "1")["threads"] == 1
    assert main([*SPECS[cmd][0](inputs), "--out", str(inputs / "out"), "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", COMMANDS)
def test_no_progress_and_json_hide_progress(monkeypatch, inputs, cmd):
    shown = _run(monkeypatch, cmd, inputs)["progress"]
    if shown is None:  # align draws no progress bar: the option is accepted and changes nothing
        assert _run(monkeypatch, cmd, inputs, "--no-progress")["progress"] is None
        return
    assert shown is True
    assert _run(monkeypatch, cmd, inputs, "--no-progress")["progress"] is False
    assert _run(monkeypatch, cmd, inputs, "--json")["progress"] is False


@pytest.mark.parametrize("cmd", COMMANDS)
def test_out_is_a_folder(monkeypatch, inputs, capsys, cmd):
    (inputs / "a_file").write_text("x")
    calls = _record(monkeypatch, cmd)
    assert main([*SPECS[cmd][0](inputs), "--out", str(inputs / "a_file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err and not calls


@pytest.mark.parametrize("cmd", COMMANDS)
def test_json_prints_one_object_and_out_receives_the_files(inputs, capsys, restore_threads, cmd):
    out = inputs / "run"
    rc = main([*SPECS[cmd][0](inputs), *SPECS[cmd][3], "--json", "--out", str(out), "--threads", "1"])
    assert rc == 0
    text = capsys.readouterr().out
    assert len(text.strip().splitlines()) == 1
    assert isinstance(json.loads(text), dict)
    assert all((out / f).is_file() for f in SPECS[cmd][4]), sorted(p.name for p in out.iterdir())


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_lists_the_shared_options(capsys, cmd):
    with pytest.raises(SystemExit) as e:
        main([*cmd.split(), "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    missing = [o for o in COMMON_OPTIONS if o not in text.split()]
    assert not missing, f"{cmd} --help lacks {missing}"


# ------------------------------------------------------------------------------------------------
# Every default in one place: the CLI passes the library's defaults on
# ------------------------------------------------------------------------------------------------
def _subparser(cmd):
    p = build_parser()
    for word in cmd.split():
        p = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction").choices[word]
    return p


@pytest.mark.parametrize("cmd", COMMANDS)
def test_library_options_name_real_parameters_and_default_to_none(cmd):
    from fe_fast.cli._common import library_default, library_options

    p = _subparser(cmd)
    for dest, (source, param) in library_options(p).items():
        library_default(source, param)  # raises if the library has no such parameter
        assert p.get_default(dest) is None, dest


def _signature_defaults(fn):
    return {k: v.default for k, v in inspect.signature(fn).parameters.items()}


def test_register_without_options_runs_the_default_config(monkeypatch, inputs):
    from fe_fast.registration import DEFAULT_CONFIG

    calls = []
    monkeypatch.setattr(importlib.import_module("fe_fast.registration"), "houv",
                        lambda P, Q, config, **k: calls.append((config, k)) or _stop())
    with pytest.raises(_Stop):
        main(["register", str(inputs / "src.npy"), str(inputs / "src.npy")])
    config, kw = calls[0]
    assert config == DEFAULT_CONFIG
    assert kw["seed"] == 0 and kw["device"] is None


def test_register_batch_defaults_are_the_default_config_and_register_pairs_defaults(monkeypatch, inputs):
    from fe_fast.registration import DEFAULT_CONFIG, register_pairs

    calls = []
    monkeypatch.setattr(importlib.import_module("fe_fast.registration"), "register_pairs",
                        lambda *a, **k: calls.append((a, k)) or _stop())
    with pytest.raises(_Stop):
        main(["register-batch", str(inputs / "pairs.csv"), "--out", str(inputs / "o")])
    (pairs, config), kw = calls[0]
    assert config == DEFAULT_CONFIG
    rp = _signature_defaults(register_pairs)
    assert all({**rp, **kw}[k] == rp[k] for k in ("accept_score", "pairs_per_call", "seed", "device"))


def test_align_defaults_are_align_face_defaults(monkeypatch, inputs):
    from fe_fast.align import align_face

    lib, calls = _signature_defaults(align_face), []
    monkeypatch.setattr(importlib.import_module("fe_fast.align"), "align_face",
                        lambda *a, **k: calls.append(k) or _stop())
    with pytest.raises(_Stop):
        main(SPECS["align"][0](inputs))
    assert {**lib, **calls[0]} == lib


def test_teachers_defaults_are_train_toy_teachers_defaults(monkeypatch, tmp_path):
    from fe_fast.teachers.toy import train_toy_teachers

    lib, calls = _signature_defaults(train_toy_teachers), []
    monkeypatch.setattr(importlib.import_module("fe_fast.teachers.toy"), "train_toy_teachers",
                        functools.wraps(train_toy_teachers)(lambda **k: calls.append(k) or _stop()))
    with pytest.raises(_Stop):
        main(["teachers", "train", "--out", str(tmp_path / "t")])
    assert {**lib, **calls[0]} == lib


def test_train_gan_defaults_are_train_config_defaults(monkeypatch):
    """No options: exactly the library's default TrainConfig (out folder included)."""
    from fe_fast.stylegan.train import TrainConfig

    calls = []
    monkeypatch.setattr(importlib.import_module("fe_fast.stylegan.train"), "train",
                        lambda cfg: calls.append(cfg) or _stop())
    with pytest.raises(_Stop):
        main(["train-gan"])
    assert dataclasses.asdict(calls[0]) == dataclasses.asdict(TrainConfig())


# ------------------------------------------------------------------------------------------------
# Old spellings: still work for one release, with a deprecation line on stderr
# ------------------------------------------------------------------------------------------------
def test_train_gan_batch_is_a_deprecated_spelling_of_batch_size(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(importlib.import_module("fe_fast.stylegan.train"), "train",
                        lambda cfg: calls.append(cfg) or _stop())
    with pytest.raises(_Stop):
        main(["train-gan", "--batch", "8"])
    assert calls[-1].to_dict()["batch"] == 8
    err = capsys.readouterr().err
    assert "--batch is deprecated" in err and "--batch-size" in err
    with pytest.raises(_Stop):
        main(["train-gan", "--batch-size", "6", "--preset", "toy32"])  # explicit value wins over the preset's
    assert calls[-1].to_dict()["batch"] == 6 and calls[-1].to_dict()["loss"] == "logistic"
    assert "deprecated" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train-gan", "--help"])
    assert "--batch " not in capsys.readouterr().out  # hidden from --help


def test_register_batch_out_file_is_a_deprecated_spelling(monkeypatch, inputs, capsys):
    monkeypatch.setattr(importlib.import_module("fe_fast.registration"), "register_pairs",
                        lambda *a, **k: [{"row": 0, "name": "a"}])
    assert main(["register-batch", str(inputs / "pairs.csv"), "--out", str(inputs / "r.jsonl")]) == 0
    assert json.loads((inputs / "r.jsonl").read_text())["name"] == "a"
    assert "--out FILE.jsonl is deprecated" in capsys.readouterr().err


def test_align_out_image_is_a_deprecated_spelling(inputs, capsys):
    assert main([*SPECS["align"][0](inputs), "--size", "32", "--out", str(inputs / "c.png")]) == 0
    assert (inputs / "c.png").is_file() and not (inputs / "align.json").exists()
    assert "--out FILE.png is deprecated" in capsys.readouterr().err


def test_a_library_warning_is_one_stderr_line(inputs, capsys, monkeypatch):
    """A very large cloud is subsampled with a note, not refused (here 'large' is lowered to 60)."""
    import fe_fast.registration.io as rio

    monkeypatch.setattr(rio.read_cloud, "__kwdefaults__", {**rio.read_cloud.__kwdefaults__, "max_points": 60})
    assert main(["register", str(inputs / "src.npy"), str(inputs / "src.npy"), "--preset", "thesis", "--iters", "2",
                 "--groups", "1",
                 "--json"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"fe-fast register: CloudSubsampled: {inputs / 'src.npy'}: 100 points, registering a random 60 "
                   "of them"] * 2


@pytest.mark.parametrize("cmd, target, names", [
    ("locate", ("fe_fast.editing.locate", "locate"),
     ("k", "n_samples", "layers", "n_layers", "selection", "threshold", "max_positives", "batch_size",
      "teacher_batch_size", "seed", "cache_dir")),
    ("edit", ("fe_fast.editing.edit", "sweep_grid"), ("mode", "sigma")),
    ("edit-image", ("fe_fast.editing.pipeline", "edit_photo"),
     ("mode", "space", "steps", "vgg_weights", "lpips_weights", "seed", "device", "landmarks")),
])
def test_editing_defaults_are_the_library_defaults(monkeypatch, inputs, cmd, target, names):
    """locate / edit / edit-image with no tuning options call the library with its own defaults."""
    module = importlib.import_module(target[0])
    original = getattr(module, target[1])
    calls = []
    monkeypatch.setattr(module, target[1], functools.wraps(original)(lambda *a, **k: calls.append((a, k)) or _stop()))
    argv = {"locate": ["locate", *_teacher(inputs)],
            "edit": ["edit", "--sample-seeds", "1", "--channels", "1:3", "--generator", str(inputs / "G.safetensors"),
                     "--out", str(inputs / "o")],
            "edit-image": ["edit-image", str(inputs / "face.png"), "--generator", str(inputs / "G.safetensors"),
                           "--channels", "1:3", "--out", str(inputs / "o")]}[cmd]
    if cmd == "locate":  # the tiny-run options of _teacher are not defaults: compare without them
        argv = argv[:7]
    with pytest.raises(_Stop):
        main(argv)
    a, k = calls[0]
    bound = inspect.signature(original).bind(*a, **k)
    bound.apply_defaults()
    lib = _signature_defaults(original)
    assert {n: bound.arguments[n] for n in names} == {n: lib[n] for n in names}
