"""Independent StyleGAN2 reference for the tests, written from the paper's equations (thesis ch. 5,
StyleGAN2 config-f) on a neutral parameter layout, plus builders of synthetic checkpoints in the
public rosinality (.pt) and NVlabs stylegan2-ada-pytorch (.pkl) layouts.

Nothing here imports fe_fast: the reference builds the per-sample modulated weights explicitly,
runs one sample at a time, implements the stride-2 transposed convolution as zero insertion + true
convolution, and the FIR up-sampling by explicit zero insertion."""
from __future__ import annotations

import math
import sys
import types
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F


def fir(gain):
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    k = k[:, None] * k[None, :]
    return k / k.sum() * gain


def make_params(resolution=16, z_dim=32, w_dim=32, n_mlp=8, channels=None, seed=0, lr_mul=0.01):
    """Random parameters in a neutral layout (float64). ``layers`` is in thesis Table 6-2 order."""
    g = torch.Generator().manual_seed(seed)
    # values representable in float32, so that a float32 checkpoint holds them exactly
    rn = lambda *s: torch.randn(*s, generator=g).double()  # noqa: E731
    if channels is None:
        channels = {4: 32, 8: 32, 16: 16, 32: 16, 64: 8}
    channels = {r: c for r, c in channels.items() if r <= resolution}
    P = dict(resolution=resolution, z_dim=z_dim, w_dim=w_dim, lr_mul=lr_mul, channels=channels)
    P["mapping"] = [(rn(w_dim, z_dim if i == 0 else w_dim) * 128, rn(w_dim) * 0.125) for i in range(n_mlp)]
    P["w_avg"] = rn(w_dim) * 0.25
    P["const"] = rn(channels[4], 4, 4)
    layers = []
    res_list = sorted(channels)
    for k, r in enumerate(res_list):
        cin = channels[res_list[k - 1]] if k else channels[4]
        specs = [("conv", cin if k == 0 else cin, 1)] if k == 0 else [("conv", cin, 2), ("conv", channels[r], 1)]
        wis = [0] if k == 0 else [2 * k - 1, 2 * k]
        for (kind, i, up), wi in zip(specs, wis):
            o = channels[r]
            layers.append(dict(kind="conv", res=r, up=up, k=3, w_index=wi, weight=rn(o, i, 3, 3),
                               affine_w=rn(i, w_dim), affine_b=1 + 0.125 * rn(i), bias=0.125 * rn(o),
                               noise_strength=0.25 * rn(()), noise=rn(r, r)))
        i = channels[r]
        layers.append(dict(kind="torgb", res=r, up=1, k=1, w_index=2 * k + 1 if k else 1, weight=rn(3, i, 1, 1),
                           affine_w=rn(i, w_dim), affine_b=1 + 0.125 * rn(i), bias=0.125 * rn(3)))
    P["layers"] = layers
    # round every value to float32 so that a float32 checkpoint holds the parameters exactly
    r32 = lambda t: t.float().double()  # noqa: E731
    P["mapping"] = [(r32(W), r32(b)) for W, b in P["mapping"]]
    P["w_avg"], P["const"] = r32(P["w_avg"]), r32(P["const"])
    for L in layers:
        for key, v in L.items():
            if isinstance(v, torch.Tensor):
                L[key] = r32(v)
    return P


def lrelu(x):
    return F.leaky_relu(x, 0.2) * math.sqrt(2)


def ref_mapping(P, z):
    """w = f(z / ||z||_rms) through equalised-lr FC layers (lr multiplier ``lr_mul``)."""
    x = z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8)
    for W, b in P["mapping"]:
        x = lrelu(x @ (W * P["lr_mul"] / math.sqrt(W.shape[1])).t() + b * P["lr_mul"])
    return x


def _conv_up(x, w):
    """One sample: stride-2 transposed convolution == zero insertion + true convolution (pad k-1),
    then the [1,3,3,1] blur (times 4) with pads (1, 1)."""
    c, h, wd = x.shape
    k = w.shape[-1]
    z = torch.zeros(c, 2 * h - 1, 2 * wd - 1, dtype=x.dtype)
    z[:, ::2, ::2] = x
    y = F.conv2d(F.pad(z[None], [k - 1] * 4), w.flip([2, 3]))
    y = F.pad(y, [1, 1, 1, 1])
    kb = fir(4.0).to(x.dtype)[None, None].expand(y.shape[1], 1, 4, 4)
    return F.conv2d(y, kb, groups=y.shape[1])[0]


def _up_rgb(img):
    b, c, h, w = img.shape
    z = torch.zeros(b, c, 2 * h, 2 * w, dtype=img.dtype)
    z[:, :, ::2, ::2] = img
    z = F.pad(z, [2, 1, 2, 1])
    kb = fir(4.0).to(img.dtype)[None, None].expand(c, 1, 4, 4)
    return F.conv2d(z, kb, groups=c)


def ref_styles(P, ws):
    """s^i = A_i(w^{j(i)}) with A an equalised-lr affine map (bias initialised around 1)."""
    out = []
    for L in P["layers"]:
        A = L["affine_w"]
        out.append(ws[:, L["w_index"]] @ (A / math.sqrt(A.shape[1])).t() + L["affine_b"])
    return out


def ref_synthesis(P, ws=None, s=None, use_noise=True):
    """StyleGAN2 synthesis: w'_{oik} = s_i w_{oik} / sqrt(I k^2); sigma_o = sqrt(sum_{ik} w'^2 + 1e-8);
    y = conv(x, w'/sigma) + strength * noise; lrelu(y + b) sqrt 2; ToRGB: no demodulation, skip sum."""
    if s is None:
        s = ref_styles(P, ws)
    B = s[0].shape[0]
    x = P["const"][None].expand(B, -1, -1, -1)
    img = None
    for L, st in zip(P["layers"], s):
        W = L["weight"]
        o, i, k, _ = W.shape
        outs = []
        for b in range(B):
            wm = W / math.sqrt(i * k * k) * st[b].reshape(1, i, 1, 1)
            if L["kind"] == "conv":
                wm = wm / torch.sqrt(wm.pow(2).sum([1, 2, 3], keepdim=True) + 1e-8)
            if L["up"] == 2:
                y = _conv_up(x[b], wm)
            else:
                y = F.conv2d(x[b:b + 1], wm, padding=k // 2)[0]
            outs.append(y)
        y = torch.stack(outs)
        if L["kind"] == "conv":
            if use_noise:
                y = y + L["noise_strength"] * L["noise"]
            x = lrelu(y + L["bias"].reshape(1, -1, 1, 1))
        else:
            y = y + L["bias"].reshape(1, -1, 1, 1)
            img = y if img is None else _up_rgb(img) + y
    return img


def num_ws(P):
    return 2 * int(math.log2(P["resolution"])) - 2


def ref_generate(P, z, psi=1.0):
    w = ref_mapping(P, z)
    if psi != 1:
        w = P["w_avg"] + psi * (w - P["w_avg"])
    ws = w[:, None].expand(-1, num_ws(P), -1)
    return ref_synthesis(P, ws)


# ------------------------------------------------------------------------------------------
# rosinality layout
# ------------------------------------------------------------------------------------------
def to_rosinality(P, dtype=torch.float32):
    sd = OrderedDict()
    t = lambda x: x.to(dtype).clone()  # noqa: E731
    for i, (W, b) in enumerate(P["mapping"]):
        sd[f"style.{i + 1}.weight"] = t(W)
        sd[f"style.{i + 1}.bias"] = t(b)
    sd["input.input"] = t(P["const"])[None]
    convs = [L for L in P["layers"] if L["kind"] == "conv"]
    rgbs = [L for L in P["layers"] if L["kind"] == "torgb"]

    def conv_keys(prefix, L, blur):
        sd[f"{prefix}.conv.weight"] = t(L["weight"])[None]
        sd[f"{prefix}.conv.modulation.weight"] = t(L["affine_w"])
        sd[f"{prefix}.conv.modulation.bias"] = t(L["affine_b"])
        if blur:
            sd[f"{prefix}.conv.blur.kernel"] = t(fir(4.0))
        sd[f"{prefix}.noise.weight"] = t(L["noise_strength"]).reshape(1)
        sd[f"{prefix}.activate.bias"] = t(L["bias"])

    def rgb_keys(prefix, L, up):
        if up:
            sd[f"{prefix}.upsample.kernel"] = t(fir(4.0))
        sd[f"{prefix}.bias"] = t(L["bias"]).reshape(1, 3, 1, 1)
        sd[f"{prefix}.conv.weight"] = t(L["weight"])[None]
        sd[f"{prefix}.conv.modulation.weight"] = t(L["affine_w"])
        sd[f"{prefix}.conv.modulation.bias"] = t(L["affine_b"])

    conv_keys("conv1", convs[0], False)
    rgb_keys("to_rgb1", rgbs[0], False)
    for j, L in enumerate(convs[1:]):
        conv_keys(f"convs.{j}", L, L["up"] == 2)
    for j, L in enumerate(rgbs[1:]):
        rgb_keys(f"to_rgbs.{j}", L, True)
    for j, L in enumerate(convs):
        sd[f"noises.noise_{j}"] = t(L["noise"]).reshape(1, 1, L["res"], L["res"])
    return sd


# ------------------------------------------------------------------------------------------
# NVlabs layouts (stylegan2-ada-pytorch, stylegan3): pickled torch_utils.persistence objects
# ------------------------------------------------------------------------------------------
SOURCE_SENTINEL = "FE_FAST_TEST_MODULE_SRC_EXECUTED"

# A persistence record is {type, version, module_src, class_name, state}: the *source* of the
# class's module travels with it (no module name). Stand-ins for that source: a first line that
# would create the sentinel file if anything ran it, then the constructor signatures that
# distinguish the repositories' modules, as their documentation gives them (bodies elided).
_MODULE_SIGNATURES = {
    # stylegan2-ada-pytorch training/networks.py: synthesis options nested, no clamp by default
    "training.networks": (
        "class SynthesisBlock(torch.nn.Module):\n"
        "    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last,\n"
        "                 architecture='skip', resample_filter=[1, 3, 3, 1], conv_clamp=None, use_fp16=False,\n"
        "                 fp16_channels_last=False, **layer_kwargs):\n"
        "        ...\n"
        "class Generator(torch.nn.Module):\n"
        "    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={},\n"
        "                 synthesis_kwargs={}):\n"
        "        ...\n"),
    # stylegan3 training/networks_stylegan2.py: synthesis options flat, clamp 256 by default
    "training.networks_stylegan2": (
        "class SynthesisBlock(torch.nn.Module):\n"
        "    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels, is_last,\n"
        "                 architecture='skip', resample_filter=[1, 3, 3, 1], conv_clamp=256, use_fp16=False,\n"
        "                 fp16_channels_last=False, fused_modconv_default=True, **layer_kwargs):\n"
        "        ...\n"
        "class Generator(torch.nn.Module):\n"
        "    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={},\n"
        "                 **synthesis_kwargs):\n"
        "        ...\n"),
    # stylegan3 training/networks_stylegan3.py: the alias-free generator (Fourier-feature input)
    "training.networks_stylegan3": (
        "class SynthesisInput(torch.nn.Module):\n"
        "    def __init__(self, w_dim, channels, size, sampling_rate, bandwidth):\n"
        "        ...\n"
        "class Generator(torch.nn.Module):\n"
        "    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs={},\n"
        "                 **synthesis_kwargs):\n"
        "        ...\n"),
}


def nvlabs_module_source(module, sentinel_path) -> str:
    """Stand-in module source for ``module`` (a key of ``_MODULE_SIGNATURES`` or None: only the
    sentinel line). Running it would write the sentinel file at ``sentinel_path``."""
    src = f"open({sentinel_path!r}, 'w').write({SOURCE_SENTINEL!r})\n"
    return src if module is None else src + "import torch\n" + _MODULE_SIGNATURES[module]


class FakeNVlabsModules:
    """Context manager that registers stand-ins of ``torch_utils.persistence`` and ``dnnlib.util``
    in ``sys.modules`` so that pickle can *write* references to them; they are removed on exit so
    that loading cannot import them."""

    names = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")

    def __enter__(self):
        self.saved = {n: sys.modules.get(n) for n in self.names}
        tu, tup = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
        dn, dnu = types.ModuleType("dnnlib"), types.ModuleType("dnnlib.util")

        def _reconstruct_persistent_obj(meta):  # the real one execs meta["module_src"]
            raise AssertionError("the fake persistence module must never be called while loading")

        _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
        _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
        tup._reconstruct_persistent_obj = _reconstruct_persistent_obj

        class EasyDict(dict):
            pass

        EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
        dnu.EasyDict = EasyDict
        tu.persistence, dn.util = tup, dnu
        sys.modules.update({"torch_utils": tu, "torch_utils.persistence": tup, "dnnlib": dn, "dnnlib.util": dnu})
        self.reconstruct, self.EasyDict = _reconstruct_persistent_obj, EasyDict
        return self

    def __exit__(self, *exc):
        for n, m in self.saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def _persistent_class(fake: FakeNVlabsModules, src: str):
    class Persistent(torch.nn.Module):
        def __init__(self, class_name, **init_kwargs):
            super().__init__()
            self._nv_class = class_name
            self._init_args = ()
            self._init_kwargs = fake.EasyDict(init_kwargs)

        def __reduce__(self):
            state = dict(self.__dict__)
            cls = state.pop("_nv_class")
            meta = dict(type="class", version=6, module_src=src, class_name=cls, state=state)
            return (fake.reconstruct, (meta,))

    return Persistent


def build_nvlabs_pickle(P, path, module_src_path, dtype=torch.float32, module="training.networks",
                        synthesis_kwargs=None, generator_kwargs=None, mapping_kwargs=None, layout=None):
    """Write an NVlabs ``.pkl`` (G, D, G_ema, augment_pipe, training_set_kwargs) for params P, as
    the repository of ``module`` writes it (see ``_MODULE_SIGNATURES``; None: a source that names
    no module). The generator's init kwargs are z_dim, c_dim, w_dim, img_resolution,
    img_channels, mapping_kwargs (``mapping_kwargs``, default num_layers) and the synthesis
    options ``synthesis_kwargs`` (default: channel_base/channel_max of P, conv_clamp=None and
    architecture='skip' for stylegan2-ada-pytorch, what stylegan3's train.py passes for
    ``--cfg=stylegan2`` otherwise), nested under ``synthesis_kwargs`` (``layout="nested"``, the
    default for ``training.networks``) or flat (``layout="flat"``, stylegan3's Generator);
    ``generator_kwargs`` updates the top level last. Executing the stored module source would
    create ``module_src_path``."""
    import pickle

    if layout is None:
        layout = "nested" if module in ("training.networks", None) else "flat"
    if synthesis_kwargs is None:
        synthesis_kwargs = (dict(channel_base=256, channel_max=32, conv_clamp=None, architecture="skip")
                            if module == "training.networks" else
                            dict(channel_base=256, channel_max=32, fused_modconv_default="inference_only"))
    g_kwargs = dict(z_dim=P["z_dim"], c_dim=0, w_dim=P["w_dim"], img_resolution=P["resolution"], img_channels=3)
    src = nvlabs_module_source(module, module_src_path)

    t = lambda x: torch.nn.Parameter(x.to(dtype).clone())  # noqa: E731
    with FakeNVlabsModules() as fake:
        Persistent = _persistent_class(fake, src)

        def fc(W, b, lr, act):
            m = Persistent("FullyConnectedLayer", in_features=W.shape[1], out_features=W.shape[0],
                           lr_multiplier=lr, activation=act)
            m.weight, m.bias = t(W), t(b)
            m.weight_gain = np.float64(lr / np.sqrt(W.shape[1]))  # numpy scalars, as in NVlabs
            m.bias_gain = lr
            m.activation = act
            return m

        def G():
            kw = dict(g_kwargs, mapping_kwargs=fake.EasyDict(mapping_kwargs if mapping_kwargs is not None
                                                             else dict(num_layers=len(P["mapping"]))))
            if layout == "nested":
                kw["synthesis_kwargs"] = fake.EasyDict(synthesis_kwargs)
            else:
                kw.update(synthesis_kwargs)
            kw.update(generator_kwargs or {})
            g = Persistent("Generator", **kw)
            mp = Persistent("MappingNetwork", z_dim=P["z_dim"], w_dim=P["w_dim"])
            for i, (W, b) in enumerate(P["mapping"]):
                setattr(mp, f"fc{i}", fc(W, b, P["lr_mul"], "lrelu"))
            mp.register_buffer("w_avg", P["w_avg"].to(dtype).clone())
            sy = Persistent("SynthesisNetwork", w_dim=P["w_dim"], img_resolution=P["resolution"])
            by_res = {}
            for L in P["layers"]:
                by_res.setdefault(L["res"], []).append(L)
            for r, Ls in sorted(by_res.items()):
                blk = Persistent("SynthesisBlock", resolution=r)
                if r == 4:
                    blk.const = t(P["const"])
                blk.register_buffer("resample_filter", fir(1.0).to(dtype))
                names = ["conv1", "torgb"] if r == 4 else ["conv0", "conv1", "torgb"]
                for name, L in zip(names, Ls):
                    if L["kind"] == "conv":
                        lay = Persistent("SynthesisLayer", resolution=r, up=L["up"])
                        lay.affine = fc(L["affine_w"], L["affine_b"], 1.0, "linear")
                        lay.register_buffer("resample_filter", fir(1.0).to(dtype))
                        lay.weight = t(L["weight"])
                        lay.register_buffer("noise_const", L["noise"].to(dtype).clone())
                        lay.noise_strength = t(L["noise_strength"].reshape([]))
                        lay.bias = t(L["bias"])
                    else:
                        lay = Persistent("ToRGBLayer")
                        lay.affine = fc(L["affine_w"], L["affine_b"], 1.0, "linear")
                        lay.weight = t(L["weight"])
                        lay.bias = t(L["bias"])
                        lay.weight_gain = 1 / np.sqrt(L["weight"].shape[1])
                    setattr(blk, name, lay)
                setattr(sy, f"b{r}", blk)
            g.mapping, g.synthesis = mp, sy
            return g

        D = Persistent("Discriminator", c_dim=0, img_resolution=P["resolution"])
        D.b4 = Persistent("DiscriminatorEpilogue")
        D.b4.out = fc(torch.randn(1, 8, dtype=torch.float64), torch.zeros(1, dtype=torch.float64), 1.0, "linear")
        data = dict(G=G(), D=D, G_ema=G(), augment_pipe=None,
                    training_set_kwargs=fake.EasyDict(path="ffhq.zip", resolution=P["resolution"]))
        with open(path, "wb") as f:
            pickle.dump(data, f)
