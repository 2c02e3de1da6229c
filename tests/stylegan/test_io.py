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


# ------------------------------------------------------------------------------------------
# NVlabs pickles from both repositories: stylegan2-ada-pytorch and stylegan3 (StyleGAN2 config)
# ------------------------------------------------------------------------------------------
ADA, SG3, SG3_AF = "training.networks", "training.networks_stylegan2", "training.networks_stylegan3"


def test_nvlabs_module_is_recognised_from_the_stored_source(tmp_path):
    from fe_fast.stylegan.io import nvlabs_module
    from stylegan_reference import nvlabs_module_source

    marker = str(tmp_path / "ran")
    for module in (ADA, SG3, SG3_AF):
        assert nvlabs_module(nvlabs_module_source(module, marker)) == module
    assert nvlabs_module(nvlabs_module_source(None, marker)) is None
    assert nvlabs_module("def broken(:\n") is None and nvlabs_module(None) is None
    assert not (tmp_path / "ran").exists()


def test_stylegan3_pickle_loads_flat_kwargs_and_reports_its_format(tmp_path, params):
    """stylegan3's train.py --cfg=stylegan2 (no --fp32): flat channel_base/channel_max and
    fused_modconv_default, no conv_clamp (the class default 256 applies), num_fp16_res absent."""
    P = params
    path, marker = tmp_path / "sg3.pkl", tmp_path / "module_src_ran.txt"
    build_nvlabs_pickle(P, path, str(marker), dtype=torch.float64, module=SG3)
    G, report = load_generator(path, return_report=True)
    assert not marker.exists()
    assert report.format == "NVlabs stylegan3 (StyleGAN2 generator)" and report.module == SG3
    assert "stylegan2-ada" not in str(report)
    assert G.config["conv_clamp"] == 256
    assert any("conv_clamp=256" in n and "class default" in n for n in report.notes)
    assert report.ignored_kwargs == {"fused_modconv_default": "inference_only"}
    assert report.unknown_kwargs == {} and report.unused_keys == []
    _compare_with_reference(G.double(), P)  # activations of these params stay far below 256
    # the same tensors through stylegan2-ada-pytorch's layout: no clamp by default
    ada = tmp_path / "ada.pkl"
    build_nvlabs_pickle(P, ada, str(marker), module=ADA,
                        synthesis_kwargs=dict(channel_base=256, channel_max=32, num_fp16_res=4))
    Ga, ra = load_generator(ada, return_report=True)
    assert ra.format == "NVlabs stylegan2-ada-pytorch" and ra.module == ADA and Ga.config["conv_clamp"] is None
    assert ra.ignored_kwargs == {"synthesis_kwargs.num_fp16_res": 4}
    assert any("num_fp16_res=4" in n and "float32" in n for n in ra.notes)


def _loud_params(P):
    """P with one conv bias far beyond the clamp (lrelu * sqrt(2) * 400 > 256)."""
    import copy

    Q = copy.deepcopy(P)
    Q["layers"][0]["bias"][:4] = 400.0
    return Q


def test_stylegan3_file_without_conv_clamp_equals_a_generator_clamped_at_256(tmp_path, params):
    Q = _loud_params(params)
    sg3, marker = tmp_path / "sg3.pkl", str(tmp_path / "m")
    build_nvlabs_pickle(Q, sg3, marker, module=SG3)
    G = load_generator(sg3)
    # a generator built with conv_clamp=256 explicitly (stylegan2-ada layout saying so), and None
    clamped, unclamped = tmp_path / "c.pkl", tmp_path / "u.pkl"
    build_nvlabs_pickle(Q, clamped, marker, module=ADA,
                        synthesis_kwargs=dict(channel_base=256, channel_max=32, conv_clamp=256))
    build_nvlabs_pickle(Q, unclamped, marker, module=ADA)
    G256, Gnone = load_generator(clamped), load_generator(unclamped)
    assert (G.config["conv_clamp"], G256.config["conv_clamp"], Gnone.config["conv_clamp"]) == (256, 256, None)
    built = Generator(16, z_dim=32, w_dim=32, n_mlp=8, channel_base=256, channel_max=32, conv_clamp=256)
    built.load_state_dict(G.state_dict())
    z = torch.randn(4, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        img, img256, imgnone, imgbuilt = (g(z, noise_mode="const") for g in (G, G256, Gnone, built))
        ws = G.mapping(z)
        first = G.synthesis.blocks[0].conv1(G.synthesis.const[None].expand(4, -1, -1, -1),
                                            G.synthesis.w_to_s(ws)[0], noise_mode="const")
    assert float(first.abs().max()) == 256.0  # the activations reach the clamp ...
    torch.testing.assert_close(img, img256, rtol=0, atol=0)
    torch.testing.assert_close(img, imgbuilt, rtol=0, atol=0)
    assert float((img - imgnone).abs().max()) > 1e-2  # ... and the unclamped file gives other images
    # stylegan3's --fp32 passes conv_clamp=None explicitly: honoured
    fp32 = tmp_path / "fp32.pkl"
    build_nvlabs_pickle(Q, fp32, marker, module=SG3,
                        synthesis_kwargs=dict(channel_base=256, channel_max=32, num_fp16_res=0, conv_clamp=None))
    G32, r32 = load_generator(fp32, return_report=True)
    assert G32.config["conv_clamp"] is None and any("conv_clamp=None from the init kwargs" in n for n in r32.notes)
    with torch.no_grad():
        torch.testing.assert_close(G32(z, noise_mode="const"), imgnone, rtol=0, atol=0)


def test_every_init_kwarg_is_honoured_refused_or_reported(tmp_path, params):
    from fe_fast.stylegan.io import GENERATOR_INIT_KWARGS, MAPPING_INIT_KWARGS, SYNTHESIS_INIT_KWARGS

    # the constructor arguments of the two repositories' Generator, MappingNetwork (user-settable
    # ones), SynthesisNetwork, SynthesisBlock and SynthesisLayer, from their documented signatures
    documented = {
        "generator": {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs",
                      "synthesis_kwargs"},
        "mapping": {"num_layers", "embed_features", "layer_features", "activation", "lr_multiplier", "w_avg_beta"},
        "synthesis": {"channel_base", "channel_max", "num_fp16_res", "architecture", "resample_filter",
                      "conv_clamp", "fp16_channels_last", "fused_modconv_default", "kernel_size", "use_noise",
                      "activation"},
    }
    assert set(GENERATOR_INIT_KWARGS) == documented["generator"]
    assert set(MAPPING_INIT_KWARGS) == documented["mapping"]
    assert set(SYNTHESIS_INIT_KWARGS) == documented["synthesis"]
    for table in (GENERATOR_INIT_KWARGS, MAPPING_INIT_KWARGS, SYNTHESIS_INIT_KWARGS):
        assert all(spec.handling in ("honoured", "checked", "ignored") and spec.why for spec in table.values())

    P, marker = params, str(tmp_path / "m")
    path = tmp_path / "g.pkl"
    base = dict(channel_base=256, channel_max=32)
    # supported values of every honoured kwarg load; ignored and unknown ones are reported
    build_nvlabs_pickle(P, path, marker, module=SG3, synthesis_kwargs=dict(
        base, num_fp16_res=4, conv_clamp=128, architecture="skip", resample_filter=[1, 3, 3, 1], kernel_size=3,
        use_noise=True, activation="lrelu", fp16_channels_last=False, fused_modconv_default=True, magic=7),
        mapping_kwargs=dict(num_layers=8, lr_multiplier=0.01, activation="lrelu", layer_features=None,
                            embed_features=None, w_avg_beta=0.998, freeze_layers=2))
    G, report = load_generator(path, return_report=True)
    assert G.config["conv_clamp"] == 128
    assert report.ignored_kwargs == {"num_fp16_res": 4, "fp16_channels_last": False, "fused_modconv_default": True,
                                     "mapping_kwargs.embed_features": None, "mapping_kwargs.w_avg_beta": 0.998}
    assert report.unknown_kwargs == {"magic": 7, "mapping_kwargs.freeze_layers": 2}
    assert any("unknown init kwargs" in n and "magic=7" in n for n in report.notes)
    # lr_multiplier is honoured: another value gives another mapping
    build_nvlabs_pickle(P, path, marker, module=SG3, mapping_kwargs=dict(num_layers=8, lr_multiplier=0.5))
    assert load_generator(path).config["lr_mlp"] == 0.5

    refused = [
        (SG3, dict(base, architecture="resnet"), None, None, "architecture='resnet'"),
        (ADA, dict(base, architecture="orig"), None, None, "synthesis_kwargs.architecture='orig'"),
        (SG3, dict(base, resample_filter=[1, 2, 1]), None, None, "resample_filter"),
        (SG3, dict(base, kernel_size=1), None, None, "kernel_size"),
        (SG3, dict(base, use_noise=False), None, None, "use_noise"),
        (SG3, dict(base, activation="relu"), None, None, "activation"),
        (SG3, base, dict(num_layers=8, activation="relu"), None, "mapping_kwargs.activation"),
        (SG3, base, None, dict(c_dim=10), "c_dim"),
        (SG3, base, None, dict(img_channels=1), "img_channels"),
        (SG3, dict(base, channel_base=512), None, None, "channel_base=512"),
        (SG3, base, dict(num_layers=4), None, "num_layers=4"),
        (SG3, base, dict(num_layers=8, layer_features=64), None, "layer_features=64"),
        (SG3, base, None, dict(z_dim=64), "z_dim=64"),
        (SG3, base, None, dict(img_resolution=32), "img_resolution=32"),
    ]
    for module, syn, mapping, top, match in refused:
        build_nvlabs_pickle(P, path, marker, module=module, synthesis_kwargs=syn, mapping_kwargs=mapping,
                            generator_kwargs=top)
        with pytest.raises(ValueError, match=match.replace("[", r"\[").replace("(", r"\(")):
            load_generator(path)


def test_alias_free_and_inconsistent_nvlabs_pickles_are_refused(tmp_path, params):
    from fe_fast.stylegan.io import nvlabs_to_generator, placeholder_state_dict

    P, marker = params, str(tmp_path / "m")
    path = tmp_path / "g.pkl"
    build_nvlabs_pickle(P, path, marker, module=SG3_AF)
    with pytest.raises(ValueError, match="alias-free StyleGAN3"):
        load_generator(path)
    # without a recognisable source, the alias-free synthesis input gives it away
    build_nvlabs_pickle(P, path, marker, module=SG3)
    sd = placeholder_state_dict(restricted_load(path)["G_ema"])
    sd["synthesis.input.freqs"] = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="alias-free"):
        nvlabs_to_generator(sd, {})
    # a module and an init-kwargs layout that cannot go together
    build_nvlabs_pickle(P, path, marker, module=SG3, layout="nested")
    with pytest.raises(ValueError, match="flat"):
        load_generator(path)
    build_nvlabs_pickle(P, path, marker, module=ADA, layout="flat")
    with pytest.raises(ValueError, match="nests"):
        load_generator(path)
    assert not (tmp_path / "m").exists()


def test_unrecognised_module_source_falls_back_on_the_kwargs_layout(tmp_path, params):
    P, marker = params, str(tmp_path / "m")
    path = tmp_path / "g.pkl"
    build_nvlabs_pickle(P, path, marker, module=None, layout="flat",
                        synthesis_kwargs=dict(channel_base=256, channel_max=32))
    G, report = load_generator(path, return_report=True)
    assert report.module == SG3 and G.config["conv_clamp"] == 256
    assert any("not recognised" in n for n in report.notes)
    build_nvlabs_pickle(P, path, marker, module=None, layout="nested")
    G, report = load_generator(path, return_report=True)
    assert report.module == ADA and G.config["conv_clamp"] is None
    # nothing says which repository: the clamp default would be a guess, so it is refused
    build_nvlabs_pickle(P, path, marker, module=None, layout="flat", synthesis_kwargs={})
    with pytest.raises(ValueError, match="cannot tell which NVlabs repository"):
        load_generator(path)


def test_positional_init_args_are_read_as_the_generator_signature(tmp_path, params):
    from fe_fast.stylegan.io import nvlabs_to_generator, placeholder_state_dict

    path = tmp_path / "g.pkl"
    build_nvlabs_pickle(params, path, str(tmp_path / "m"), module=SG3)
    sd = placeholder_state_dict(restricted_load(path)["G_ema"])
    syn = dict(channel_base=256, channel_max=32)
    G, _, notes = nvlabs_to_generator(sd, syn, SG3, init_args=(32, 0, 32, 16, 3))
    assert G.resolution == 16 and G.config["conv_clamp"] == 256
    with pytest.raises(ValueError, match="z_dim=64"):
        nvlabs_to_generator(sd, syn, SG3, init_args=(64,))
    with pytest.raises(ValueError, match="both positionally and as a keyword"):
        nvlabs_to_generator(sd, dict(syn, z_dim=32), SG3, init_args=(32,))
