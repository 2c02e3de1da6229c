"""Checkpoint loading (rosinality .pt, NVlabs .pkl, our safetensors) and the restricted unpickler."""
import argparse
import os
import pickle

import pytest
import torch

from fe_fast.stylegan import Generator
from fe_fast.stylegan.io import (LoadReport, UnsafePickleError, load_generator, restricted_load,
                                 save_generator)
from stylegan_reference import (SOURCE_SENTINEL, build_nvlabs_pickle, make_params, ref_generate,
                                ref_mapping, ref_synthesis, to_rosinality)


@pytest.fixture(scope="module")
def params():
    return make_params(resolution=16, z_dim=32, w_dim=32, n_mlp=8, seed=1)


def _compare_with_reference(G, P, atol=1e-9):
    G = G.double()
    z = torch.randn(3, P["z_dim"], generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    with torch.no_grad():
        w = G.mapping(z)
        torch.testing.assert_close(w, ref_mapping(P, z), atol=atol, rtol=1e-7)
        img = G(z, noise_mode="const")
        torch.testing.assert_close(img, ref_generate(P, z), atol=atol, rtol=1e-7)
        img_t = G(z, truncation_psi=0.5, noise_mode="const")
        torch.testing.assert_close(img_t, ref_generate(P, z, psi=0.5), atol=atol, rtol=1e-7)
        img_nn = G(z, noise_mode="none")
        ws = ref_mapping(P, z)[:, None].expand(-1, G.num_ws, -1)
        torch.testing.assert_close(img_nn, ref_synthesis(P, ws, use_noise=False), atol=atol, rtol=1e-7)


@pytest.mark.parametrize("zipfmt", [True, False], ids=["zip", "legacy"])
def test_rosinality_checkpoint_loads_completely_and_matches_reference(tmp_path, params, zipfmt):
    P = params
    sd = to_rosinality(P, dtype=torch.float64)
    path = tmp_path / "rosinality.pt"
    ckpt = {"g_ema": sd, "latent_avg": P["w_avg"].clone(), "g": sd,
            "d": {"convs.0.0.weight": torch.zeros(8, 3, 1, 1)},
            "args": argparse.Namespace(size=16, channel_multiplier=2, latent=32, n_mlp=8)}
    torch.save(ckpt, path, _use_new_zipfile_serialization=zipfmt)
    G, report = load_generator(path, return_report=True)
    assert isinstance(report, LoadReport) and report.format == "rosinality"
    assert report.unused_keys == []  # every key of g_ema was mapped (the blur kernels are verified)
    assert any("args" in n and "d" in n for n in report.notes)
    assert G.resolution == 16 and len(G.s_layers) == 3 * 3 - 1
    _compare_with_reference(G, P)


def test_rosinality_unused_keys_are_reported(tmp_path, params):
    sd = to_rosinality(params)
    sd["extra.weight"] = torch.zeros(2)
    path = tmp_path / "r.pt"
    torch.save({"g_ema": sd, "latent_avg": params["w_avg"].float()}, path)
    _, report = load_generator(path, return_report=True)
    assert report.unused_keys == ["extra.weight"]


def test_rosinality_missing_key_is_a_clear_error(tmp_path, params):
    sd = to_rosinality(params)
    del sd["convs.1.activate.bias"]
    path = tmp_path / "r.pt"
    torch.save({"g_ema": sd}, path)
    with pytest.raises(ValueError, match="convs.1.activate.bias"):
        load_generator(path)


def test_nvlabs_pickle_loads_without_running_its_code(tmp_path, params):
    P = params
    path = tmp_path / "network-snapshot.pkl"
    marker = tmp_path / "module_src_ran.txt"
    build_nvlabs_pickle(P, path, str(marker), dtype=torch.float64)
    import sys

    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    G, report = load_generator(path, return_report=True)
    assert not marker.exists(), f"the module source stored in the pickle was executed ({SOURCE_SENTINEL})"
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    assert report.format.startswith("NVlabs")
    assert report.unused_keys == []
    assert any("D" in n for n in report.notes)
    _compare_with_reference(G, P)


def test_nvlabs_and_rosinality_give_the_same_generator(tmp_path, params):
    P = params
    pk, pt = tmp_path / "a.pkl", tmp_path / "b.pt"
    build_nvlabs_pickle(P, pk, str(tmp_path / "m"))
    torch.save({"g_ema": to_rosinality(P), "latent_avg": P["w_avg"].float()}, pt)
    Ga, Gb = load_generator(pk), load_generator(pt)
    sa, sb = Ga.state_dict(), Gb.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], msg=k)


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G_ema": _Evil(marker)}, f)
    with pytest.raises(UnsafePickleError, match="system"):
        restricted_load(path)
    with pytest.raises(UnsafePickleError):
        load_generator(path)
    assert not marker.exists()
    # the same payload inside a torch.save archive (rosinality-style .pt)
    path2 = tmp_path / "evil.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(1)}, "x": _Evil(marker)}, path2)
    with pytest.raises(UnsafePickleError, match="system"):
        load_generator(path2)
    assert not marker.exists()
    # builtins other than set/frozenset are refused too
    with open(path, "wb") as f:
        pickle.dump({"f": eval}, f)
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        restricted_load(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_generator(tmp_path / "nope.pt")


def test_own_format_round_trip(tmp_path):
    G = Generator(16, z_dim=16, w_dim=16, n_mlp=2, channel_max=16, seed=3)
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        for blk in G.synthesis.blocks:
            blk.conv1.noise_strength.fill_(0.3)
    path = tmp_path / "g.safetensors"
    old = os.umask(0o022)
    try:
        save_generator(G, path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644  # the umask's mode, not safetensors' 0600
    H = load_generator(path)
    assert H.config == G.config
    for k, v in G.state_dict().items():
        torch.testing.assert_close(H.state_dict()[k], v, rtol=0, atol=0)
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(H(z, noise_mode="const"), G(z, noise_mode="const"), rtol=0, atol=0)


def test_torchscript_archives_and_tensor_hooks_are_refused(tmp_path):
    import zipfile

    path = tmp_path / "scripted.pt"
    with zipfile.ZipFile(path, "w") as zf:  # the layout torch.jit.save writes
        zf.writestr("archive/data.pkl", b"")
        zf.writestr("archive/constants.pkl", b"")
        zf.writestr("archive/code/__torch__.py", "")
    with pytest.raises(UnsafePickleError, match="TorchScript"):
        load_generator(path)
    # torch drops hooks when pickling, but a hand-made file could carry callables as "hooks"
    from fe_fast.stylegan.io import RestrictedUnpickler

    assert RestrictedUnpickler.find_class(None, "torch._utils", "_rebuild_tensor_v2")(
        torch.zeros(2)._typed_storage(), 0, (2,), (1,), False, {}).shape == (2,)
    with pytest.raises(UnsafePickleError, match="hooks"):
        RestrictedUnpickler.find_class(None, "torch._utils", "_rebuild_tensor_v2")(
            torch.zeros(2)._typed_storage(), 0, (2,), (1,), False, {"h": print})
