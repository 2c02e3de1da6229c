"""Checkpoint I/O for the StyleGAN2 generator (thesis ch. 5) without executing code from the file.

Formats read:

* rosinality ``.pt`` (``torch.save``, zip or legacy): ``{"g_ema", "latent_avg", optional "g", "d",
  "args", ...}`` with keys ``style.{i}.weight``, ``input.input``, ``conv1.conv.weight``,
  ``convs.{k}.*``, ``to_rgb1.*``, ``to_rgbs.{i}.*``, ``noises.noise_{i}``;
* NVlabs ``.pkl`` (plain pickle of ``torch_utils.persistence`` objects: ``{"G", "D", "G_ema",
  ...}``) with keys ``mapping.fc{i}.*``, ``mapping.w_avg``, ``synthesis.b4.const``,
  ``synthesis.b{res}.{conv0,conv1,torgb}.*``, written by stylegan2-ada-pytorch
  (``training.networks``: synthesis options nested under ``synthesis_kwargs``, no clamp by
  default) or by stylegan3 for its StyleGAN2 config (``training.networks_stylegan2``: synthesis
  options flat in the init kwargs, ``conv_clamp`` 256 by default). :func:`nvlabs_module` tells
  them apart from the module source the record carries (parsed, never run); stylegan3's
  alias-free generator (``training.networks_stylegan3``) is refused. Every init kwarg is
  honoured, checked against the tensors, refused, or ignored and reported
  (:data:`SYNTHESIS_INIT_KWARGS` and the tables beside it);
* our own format: a ``.safetensors`` file whose metadata holds the JSON config.

Security: every pickle goes through :class:`RestrictedUnpickler`, whose ``find_class`` allows only
torch's tensor/storage rebuild functions, dtypes, plain containers and numpy scalars/arrays.
Classes of the pickled model code (``torch_utils.*``, ``dnnlib.*``, ``training.*``, ``torch.nn``
modules, ``argparse.Namespace``) become inert :class:`PickledObject` placeholders that only collect
their state; NVlabs' ``_reconstruct_persistent_obj`` (which would ``exec`` the source stored in the
file) is replaced by a function that builds such a placeholder and never looks at the source.
Anything else (``os.system``, ``builtins.eval``, ...) raises :class:`UnsafePickleError`.
TorchScript archives are refused (loading them runs TorchScript code).
"""
from __future__ import annotations

import ast
import collections
import io
import json
import os
import pickle
import types
import zipfile
from dataclasses import dataclass, field

import torch

from fe_fast.stylegan.layers import fir_kernel
from fe_fast.stylegan.networks import Generator

__all__ = ["UnsafePickleError", "RestrictedUnpickler", "PickledObject", "restricted_load", "load_raw",
           "LoadReport", "load_generator", "save_generator", "rosinality_to_generator",
           "nvlabs_to_generator", "nvlabs_module", "placeholder_state_dict", "InitKwarg", "NVLABS_MODULES",
           "GENERATOR_INIT_KWARGS", "MAPPING_INIT_KWARGS", "SYNTHESIS_INIT_KWARGS", "NVLABS_CLASS_DEFAULTS"]

FORMAT_NAME = "fe-fast-stylegan2"
FORMAT_VERSION = 1


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks the unpickler for a global that is not on the allow-list."""


# --------------------------------------------------------------------------------------------
# Inert placeholders
# --------------------------------------------------------------------------------------------
class PickledObject:
    """Stand-in for an object of a class we refuse to import (model code stored in a checkpoint).

    It never runs code of the original class: it only keeps the constructor arguments (``args``)
    and the pickled state (``state``, for torch modules a dict with ``_parameters``, ``_buffers``,
    ``_modules``, ...). ``pickled_module``/``pickled_name`` say what it stands for."""

    pickled_module = "?"
    pickled_name = "?"

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"<inert {self.pickled_module}.{self.pickled_name}>"


class PickledDict(dict):
    """Placeholder for dict subclasses such as ``dnnlib.EasyDict``: just a dict."""

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.update(state)


_PLACEHOLDER_CACHE: dict[tuple[str, str], type] = {}


def _placeholder_class(module: str, name: str) -> type:
    key = (module, name)
    if key not in _PLACEHOLDER_CACHE:
        base = PickledDict if name == "EasyDict" else PickledObject
        _PLACEHOLDER_CACHE[key] = type(name, (base,), {"pickled_module": module, "pickled_name": name,
                                                       "__module__": __name__})
    return _PLACEHOLDER_CACHE[key]


def _inert_persistent_obj(meta):
    """Replacement for ``torch_utils.persistence._reconstruct_persistent_obj``: the original
    imports ``meta["module_src"]`` (source code stored in the pickle) with ``exec``; we only keep
    the class name and the state."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or "state" not in meta:
        raise UnsafePickleError("unexpected torch_utils.persistence record (expected type 'class' with a state)")
    cls = _placeholder_class("torch_utils.persistence:" + str(meta.get("class_name", "?")),
                             str(meta.get("class_name", "?")))
    obj = cls.__new__(cls)
    obj.args, obj.kwargs = (), {}
    obj.state = dict(meta["state"])
    # kept as text only, to recognise which NVlabs module the class came from (never executed)
    obj.module_src = meta.get("module_src") if isinstance(meta.get("module_src"), str) else None
    return obj


def _safe_reconstructor(cls, base, state):
    """``copyreg._reconstructor`` restricted to placeholder classes and plain containers."""
    if isinstance(cls, type) and issubclass(cls, (PickledObject, PickledDict)) and base in (object, dict):
        obj = cls.__new__(cls)
        if isinstance(obj, PickledObject):
            obj.args, obj.kwargs, obj.state = (), {}, None
        return obj
    if cls in (collections.OrderedDict, dict, list, set, tuple) and base is cls:
        return cls() if state is None else cls(state)
    raise UnsafePickleError(f"refusing copyreg._reconstructor for {cls!r}")


_RESTRICTED_MODULE = None  # set below (a module-like object with Unpickler/load for torch.load)


def _safe_load_from_bytes(b):
    """Replacement for ``torch.storage._load_from_bytes`` (which calls an unrestricted
    ``torch.load``): the nested legacy archive goes through the same restricted unpickler."""
    if not isinstance(b, (bytes, bytearray)):
        raise UnsafePickleError("storage record is not bytes")
    return torch.load(io.BytesIO(b), map_location="cpu", pickle_module=_RESTRICTED_MODULE, weights_only=False)


def _safe_rebuild_from_type_v2(func, new_type, args, state):
    if func not in (_safe_rebuild_tensor_v2, _safe_rebuild_parameter, _safe_rebuild_from_type_v2):
        raise UnsafePickleError(f"refusing tensor rebuild function {func!r}")
    if new_type not in (torch.Tensor, torch.nn.Parameter):
        raise UnsafePickleError(f"refusing tensor subclass {new_type!r}")
    ret = func(*args)
    if type(ret) is not new_type:
        ret = ret.as_subclass(new_type)
    if state:
        raise UnsafePickleError("refusing tensor with extra Python state")
    return ret


def _safe_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """``torch._utils._rebuild_tensor_v2`` refusing backward hooks (callables) in the file."""
    if backward_hooks:
        raise UnsafePickleError("refusing a tensor with backward hooks")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                                           collections.OrderedDict(), metadata)


def _safe_rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    """``torch._utils._rebuild_parameter(_with_state)`` without hooks or extra Python state."""
    if backward_hooks or state:
        raise UnsafePickleError("refusing a parameter with backward hooks or extra Python state")
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("parameter data is not a tensor")
    return torch.nn.Parameter(data, requires_grad)


def _safe_set(*args):
    return set(*args)


def _safe_frozenset(*args):
    return frozenset(*args)


def _numpy_allowed(module: str, name: str):
    import numpy as np

    if module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        if name == "scalar":
            return np._core.multiarray.scalar
        if name == "_reconstruct":
            return np._core.multiarray._reconstruct
    if module == "numpy" and name in ("dtype", "ndarray"):
        return getattr(np, name)
    if module == "numpy.dtypes" and name.endswith("DType"):
        return getattr(np.dtypes, name)
    return None


# Packages whose *classes* are model code: mapped to inert placeholders, never imported.
_MODEL_CODE_PACKAGES = ("torch_utils", "dnnlib", "training", "torch.nn.modules")


def _is_model_code_module(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in _MODEL_CODE_PACKAGES)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` is an allow-list (see the module docstring).

    Allowed: torch tensor/parameter rebuild functions, ``torch.Size``, torch dtypes and devices,
    ``collections.OrderedDict``, ``builtins.set/frozenset``, ``_codecs.encode`` (bytes in protocol
    2), numpy scalars/dtypes/arrays. Mapped to placeholders: classes of ``torch_utils``, ``dnnlib``,
    ``training``, ``torch.nn.modules``, ``argparse.Namespace``. Everything else raises
    :class:`UnsafePickleError` naming the refused global."""

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _safe_rebuild_tensor_v2
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _safe_rebuild_parameter
        if module == "torch._tensor" and name == "_rebuild_from_type_v2":
            return _safe_rebuild_from_type_v2
        if module == "torch.storage" and name == "_load_from_bytes":
            return _safe_load_from_bytes
        if module == "torch" and name == "Size":
            return torch.Size
        if module == "torch" and name == "device":
            return torch.device
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module in ("builtins", "__builtin__") and name == "set":
            return _safe_set
        if module in ("builtins", "__builtin__") and name == "frozenset":
            return _safe_frozenset
        if module == "_codecs" and name == "encode":
            import _codecs

            return _codecs.encode
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":
            return _safe_reconstructor
        if module == "torch_utils.persistence" and name == "_reconstruct_persistent_obj":
            return _inert_persistent_obj
        if module == "argparse" and name == "Namespace":
            return _placeholder_class(module, name)
        if module.startswith("numpy"):
            fn = _numpy_allowed(module, name)
            if fn is not None:
                return fn
        if _is_model_code_module(module) and name[:1].isupper():
            return _placeholder_class(module, name)
        raise UnsafePickleError(
            f"refusing to load global '{module}.{name}': this checkpoint asks to import or run code that "
            "is not a tensor or a plain container (fe_fast.stylegan.io never executes code from a file)")


def _restricted_pickle_load(file, **kwargs):
    return RestrictedUnpickler(file, **kwargs).load()


_RESTRICTED_MODULE = types.SimpleNamespace(__name__="fe_fast_restricted_pickle", Unpickler=RestrictedUnpickler,
                                           load=_restricted_pickle_load)


def _check_file(path) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint is not a file: {path}")
    return path


def restricted_load(path):
    """Unpickle ``path`` (a ``torch.save`` archive, zip or legacy, or a plain pickle) with the
    restricted unpickler. Returns the loaded object; model objects come back as placeholders."""
    path = _check_file(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            raise UnsafePickleError(f"{path} is a TorchScript archive; loading it would run TorchScript code")
        return torch.load(path, map_location="cpu", pickle_module=_RESTRICTED_MODULE, weights_only=False)
    with open(path, "rb") as f:
        obj = _restricted_pickle_load(f)
    legacy_magic = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER: a legacy torch.save file
    if isinstance(obj, int) and obj == legacy_magic:
        return torch.load(path, map_location="cpu", pickle_module=_RESTRICTED_MODULE, weights_only=False)
    return obj


def placeholder_state_dict(obj, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a pickled torch module placeholder into ``{name: tensor}`` (parameters and
    persistent buffers, recursively through ``_modules``)."""
    out: dict[str, torch.Tensor] = {}

    def visit(o, pre):
        st = getattr(o, "state", None)
        if not isinstance(st, dict):
            raise ValueError(f"{o!r} does not look like a pickled torch module (no state dict)")
        non_persistent = st.get("_non_persistent_buffers_set", set()) or set()
        for k, v in (st.get("_parameters") or {}).items():
            if v is not None:
                out[pre + k] = v.detach()
        for k, v in (st.get("_buffers") or {}).items():
            if v is not None and k not in non_persistent:
                out[pre + k] = v.detach()
        for k, m in (st.get("_modules") or {}).items():
            if m is not None:
                visit(m, pre + k + ".")

    visit(obj, prefix)
    return out


# --------------------------------------------------------------------------------------------
# Mapping external layouts onto our Generator
# --------------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What happened while loading: source format, the keys of the file that were not used, and
    notes (e.g. an average w computed because the file had none)."""

    format: str
    source: str = ""
    unused_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: NVlabs pickles: the module the generator came from (a key of NVLABS_MODULES), and the init
    #: kwargs that were ignored or unknown ({qualified name: value}; see nvlabs_to_generator).
    module: str = ""
    ignored_kwargs: dict = field(default_factory=dict)
    unknown_kwargs: dict = field(default_factory=dict)

    def __str__(self):
        s = f"loaded {self.format} generator from {self.source}"
        if self.unused_keys:
            s += f"; {len(self.unused_keys)} unused keys: {', '.join(self.unused_keys[:8])}"
            s += " ..." if len(self.unused_keys) > 8 else ""
        for n in self.notes:
            s += f"; {n}"
        return s


def _infer_channel_config(channels: dict[int, int], resolution: int) -> dict:
    cmax = channels[4]
    base = None
    for r in sorted(channels):
        if channels[r] < cmax:
            base = channels[r] * r
            break
    if base is None:
        base = cmax * resolution
    derived = {r: max(1, min(base // r, cmax)) for r in channels}
    if derived != channels:
        raise ValueError(f"unsupported channel layout {channels}: not of the form min(base // res, max)")
    return dict(channel_base=base, channel_max=cmax)


def _assign(G: Generator, values: dict[str, torch.Tensor], what: str):
    """Copy ``values`` (our state-dict names) into G; every persistent entry of G must be given."""
    sd = G.state_dict()
    missing = [k for k in sd if k not in values]
    if missing:
        raise ValueError(f"{what}: the checkpoint does not provide {len(missing)} generator tensors, e.g. "
                         f"{missing[:5]}")
    for k, v in values.items():
        if k not in sd:
            raise AssertionError(f"internal key map produced unknown name {k}")
        if tuple(v.shape) != tuple(sd[k].shape):
            raise ValueError(f"{what}: tensor for {k} has shape {list(v.shape)}, expected {list(sd[k].shape)}")
    G.load_state_dict({k: v.to(sd[k].dtype) for k, v in values.items()}, strict=True)


def _check_filter(t: torch.Tensor, gain: float, key: str):
    ref = fir_kernel(gain=gain, dtype=t.dtype)
    if t.shape != ref.shape or not torch.allclose(t.float(), ref.float(), atol=1e-6):
        raise ValueError(f"{key}: only the [1,3,3,1] resampling filter is supported")


def _taker(sd: dict, used: set, source: str):
    """``take(key)``: ``sd[key]``, recorded in ``used`` (the converters report the keys they did not
    use), or a ValueError naming the ``source`` checkpoint format when the key is missing."""

    def take(key):
        if key not in sd:
            raise ValueError(f"{source} checkpoint lacks '{key}'")
        used.add(key)
        return sd[key]

    return take


def rosinality_to_generator(sd: dict, latent_avg: torch.Tensor | None = None, conv_clamp=None):
    """Build a Generator from a rosinality ``g_ema`` state dict. Returns (G, used_keys, notes)."""
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in sd:
        n_mlp += 1
    if n_mlp == 0 or "input.input" not in sd or "conv1.conv.weight" not in sd:
        raise ValueError("not a rosinality generator state dict (missing style.1.weight / input.input / conv1)")
    w_dim, z_dim = sd["style.1.weight"].shape
    lr_mlp = 0.01
    n_rgb = 0
    while f"to_rgbs.{n_rgb}.conv.weight" in sd:
        n_rgb += 1
    resolution = 2 ** (n_rgb + 2)
    channels = {4: sd["conv1.conv.weight"].shape[1]}
    for i in range(n_rgb):
        channels[2 ** (i + 3)] = sd[f"convs.{2 * i}.conv.weight"].shape[1]
    cfg = _infer_channel_config(channels, resolution)
    G = Generator(resolution, z_dim=z_dim, w_dim=w_dim, n_mlp=n_mlp, lr_mlp=lr_mlp, conv_clamp=conv_clamp, **cfg)
    vals, used, notes = {}, set(), []
    take = _taker(sd, used, "rosinality")

    for i in range(n_mlp):
        vals[f"mapping.fcs.{i}.weight"] = take(f"style.{i + 1}.weight")
        vals[f"mapping.fcs.{i}.bias"] = take(f"style.{i + 1}.bias")
    vals["synthesis.const"] = take("input.input")[0]
    noise_idx = 0
    for k, block in enumerate(G.synthesis.blocks):
        pre = f"synthesis.blocks.{k}."
        convs = [("conv1", "conv1")] if k == 0 else [("conv0", f"convs.{2 * (k - 1)}"), ("conv1", f"convs.{2 * k - 1}")]
        for ours, theirs in convs:
            vals[pre + ours + ".weight"] = take(theirs + ".conv.weight")[0]
            vals[pre + ours + ".affine.weight"] = take(theirs + ".conv.modulation.weight")
            vals[pre + ours + ".affine.bias"] = take(theirs + ".conv.modulation.bias")
            vals[pre + ours + ".bias"] = take(theirs + ".activate.bias").reshape(-1)
            vals[pre + ours + ".noise_strength"] = take(theirs + ".noise.weight").reshape([])
            key = f"noises.noise_{noise_idx}"
            if key in sd:
                vals[pre + ours + ".noise_const"] = take(key).reshape(block.resolution, block.resolution)
            else:
                vals[pre + ours + ".noise_const"] = getattr(block, ours).noise_const
                notes.append(f"{key} missing: kept a random constant noise")
            noise_idx += 1
            if ours == "conv0" and theirs + ".conv.blur.kernel" in sd:
                _check_filter(take(theirs + ".conv.blur.kernel"), 4.0, theirs + ".conv.blur.kernel")
        theirs = "to_rgb1" if k == 0 else f"to_rgbs.{k - 1}"
        vals[pre + "torgb.weight"] = take(theirs + ".conv.weight")[0]
        vals[pre + "torgb.affine.weight"] = take(theirs + ".conv.modulation.weight")
        vals[pre + "torgb.affine.bias"] = take(theirs + ".conv.modulation.bias")
        vals[pre + "torgb.bias"] = take(theirs + ".bias").reshape(-1)
        if theirs + ".upsample.kernel" in sd:
            _check_filter(take(theirs + ".upsample.kernel"), 4.0, theirs + ".upsample.kernel")
    if latent_avg is not None:
        vals["mapping.w_avg"] = latent_avg.reshape(-1)
    else:
        vals["mapping.w_avg"] = G.mapping.w_avg  # replaced below after the weights are in
    _assign(G, vals, "rosinality")
    if latent_avg is None:
        G.mapping.w_avg.copy_(G.mean_w())
        notes.append("no latent_avg in the file: average w computed from 4096 samples (seed 0)")
    return G, used, notes


# --------------------------------------------------------------------------------------------
# NVlabs pickles: which repository wrote the generator, and how each init kwarg is handled
# --------------------------------------------------------------------------------------------
#: NVlabs modules with a StyleGAN generator, by their name in the repository, and the format name
#: the :class:`LoadReport` gives. The alias-free one is recognised only to be refused clearly.
NVLABS_MODULES = {
    "training.networks": "NVlabs stylegan2-ada-pytorch",
    "training.networks_stylegan2": "NVlabs stylegan3 (StyleGAN2 generator)",
    "training.networks_stylegan3": "NVlabs stylegan3 (alias-free StyleGAN3 generator)",
}


def nvlabs_module(module_src) -> str | None:
    """Which NVlabs module (a key of :data:`NVLABS_MODULES`) a persistence record's class is from.

    A ``torch_utils.persistence`` record is ``{type, version, module_src, class_name, state}``: it
    carries the *source* of the class's module, not the module's name. The module is recognised
    from the definitions in that source, parsed with :func:`ast.parse` (never compiled or run):

    * a class ``SynthesisInput``: ``training.networks_stylegan3`` (stylegan3, alias-free);
    * ``Generator.__init__`` taking ``**synthesis_kwargs``: ``training.networks_stylegan2``
      (stylegan3's StyleGAN2: the synthesis options are stored flat in the init kwargs);
    * ``Generator.__init__`` with a ``synthesis_kwargs`` parameter: ``training.networks``
      (stylegan2-ada-pytorch: the synthesis options are nested under ``synthesis_kwargs``).

    Returns None when there is no source or it matches none of these."""
    if not isinstance(module_src, str):
        return None
    try:
        tree = ast.parse(module_src)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    if "SynthesisInput" in classes:
        return "training.networks_stylegan3"
    gen = classes.get("Generator")
    init = next((f for f in (gen.body if gen else []) if isinstance(f, ast.FunctionDef) and f.name == "__init__"),
                None)
    if init is None:
        return None
    a = init.args
    if "synthesis_kwargs" in [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]:
        return "training.networks"
    if a.kwarg is not None and a.kwarg.arg == "synthesis_kwargs":
        return "training.networks_stylegan2"
    return None


@dataclass(frozen=True)
class InitKwarg:
    """How :func:`nvlabs_to_generator` handles one init kwarg of an NVlabs StyleGAN2 generator.

    ``handling``: "honoured" (configures our generator), "checked" (must agree with the tensors
    of the file, else ``ValueError``) or "ignored" (no effect on our float32 forward; listed in
    :attr:`LoadReport.ignored_kwargs`). ``supported``: the values we reproduce; any other value
    is refused with a ``ValueError`` naming the kwarg (None: no restriction). ``why``: the reason."""

    handling: str
    why: str
    supported: tuple | None = None


#: ``Generator(...)`` init kwargs (the same five in both repositories, plus the nested dicts).
GENERATOR_INIT_KWARGS = {
    "z_dim": InitKwarg("checked", "must equal the input width of mapping.fc0"),
    "c_dim": InitKwarg("checked", "conditional generators (c_dim > 0) are not supported", (0, None)),
    "w_dim": InitKwarg("checked", "must equal the output width of the mapping layers"),
    "img_resolution": InitKwarg("checked", "must equal the resolution of the last synthesis block"),
    "img_channels": InitKwarg("checked", "our generator writes 3-channel images", (3,)),
    "mapping_kwargs": InitKwarg("honoured", "options of the mapping network (MAPPING_INIT_KWARGS)"),
    "synthesis_kwargs": InitKwarg("honoured", "stylegan2-ada-pytorch only: options of the synthesis network "
                                              "(SYNTHESIS_INIT_KWARGS); stylegan3 stores them flat"),
}
#: ``mapping_kwargs`` entries (MappingNetwork).
MAPPING_INIT_KWARGS = {
    "num_layers": InitKwarg("checked", "must equal the number of mapping.fc{i} layers"),
    "lr_multiplier": InitKwarg("honoured", "learning-rate multiplier = weight and bias gain of the mapping layers"),
    "activation": InitKwarg("honoured", "our mapping layers use leaky ReLU", ("lrelu",)),
    "layer_features": InitKwarg("checked", "the hidden mapping width must equal w_dim"),
    "embed_features": InitKwarg("ignored", "width of the label embedding, absent when c_dim == 0"),
    "w_avg_beta": InitKwarg("ignored", "decay of the training-time w average; the stored mapping.w_avg is used"),
}
#: Synthesis options (``synthesis_kwargs`` in stylegan2-ada-pytorch, flat in stylegan3), i.e.
#: the keyword arguments of SynthesisNetwork, SynthesisBlock and SynthesisLayer.
SYNTHESIS_INIT_KWARGS = {
    "channel_base": InitKwarg("checked", "channels min(channel_base // res, channel_max) must match the weights"),
    "channel_max": InitKwarg("checked", "channels min(channel_base // res, channel_max) must match the weights"),
    "conv_clamp": InitKwarg("honoured", "every conv and ToRGB output is clamped to +-conv_clamp"),
    "architecture": InitKwarg("honoured", "only config-f's 'skip' generator is implemented", ("skip",)),
    "resample_filter": InitKwarg("honoured", "only the [1,3,3,1] up-sampling filter is implemented",
                                 ((1, 3, 3, 1),)),
    "kernel_size": InitKwarg("honoured", "only 3x3 convolutions are implemented", (3,)),
    "use_noise": InitKwarg("honoured", "the noise inputs (noise_const, noise_strength) are required", (True,)),
    "activation": InitKwarg("honoured", "the synthesis layers use leaky ReLU", ("lrelu",)),
    "num_fp16_res": InitKwarg("ignored", "fp16 blocks are a CUDA speed option; fe_fast computes in float32"),
    "fp16_channels_last": InitKwarg("ignored", "memory layout of the fp16 blocks only"),
    "fused_modconv_default": InitKwarg("ignored", "fused (grouped) or separate modulated convolution: "
                                                  "the same arithmetic, only the kernel differs"),
}
#: Class defaults that change the numbers, per module: applied when the kwarg is absent from the
#: init kwargs. stylegan3's SynthesisBlock clamps at 256 by default (its train.py passes
#: conv_clamp only as None, with --fp32); stylegan2-ada-pytorch's does not clamp.
NVLABS_CLASS_DEFAULTS = {
    "training.networks": {"conv_clamp": None, "lr_multiplier": 0.01},
    "training.networks_stylegan2": {"conv_clamp": 256, "lr_multiplier": 0.01},
}
_GENERATOR_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")


def _same_value(v, ref) -> bool:
    if isinstance(ref, tuple):
        try:
            return [float(x) for x in v] == [float(x) for x in ref]
        except (TypeError, ValueError):
            return False
    if ref is None or isinstance(ref, str):
        return v is ref or v == ref
    try:
        return v is not None and not isinstance(v, str) and float(v) == float(ref)
    except (TypeError, ValueError):
        return False


def _resolve_nvlabs_kwargs(init_kwargs: dict, module: str | None, init_args=()):
    """Split the init kwargs of an NVlabs generator by :data:`GENERATOR_INIT_KWARGS`,
    :data:`MAPPING_INIT_KWARGS` and :data:`SYNTHESIS_INIT_KWARGS`, refuse unsupported values and
    apply the module's class defaults. Returns ``(module, values, ignored, unknown, notes)``:
    ``values`` the honoured/checked kwargs by plain name (``mapping.`` / ``synthesis.`` prefixed),
    ``ignored``/``unknown`` ``{qualified name: value}``."""
    kw = dict(init_kwargs or {})
    if init_args:
        if len(init_args) > len(_GENERATOR_POSITIONAL):
            raise ValueError(f"NVlabs generator record has {len(init_args)} positional init args, expected at most "
                             f"{len(_GENERATOR_POSITIONAL)}")
        for name, v in zip(_GENERATOR_POSITIONAL, init_args):
            if name in kw:
                raise ValueError(f"NVlabs generator record gives {name} both positionally and as a keyword")
            kw[name] = v
    notes = []
    flat = sorted(k for k in kw if k in SYNTHESIS_INIT_KWARGS)
    nested = "synthesis_kwargs" in kw
    if module == "training.networks" and flat:
        raise ValueError(f"the pickle's module is stylegan2-ada-pytorch's training.networks, whose Generator nests the "
                         f"synthesis options under synthesis_kwargs, but its init kwargs hold {flat} at the top level")
    if module == "training.networks_stylegan2" and nested:
        raise ValueError("the pickle's module is stylegan3's training.networks_stylegan2, whose Generator takes the "
                         "synthesis options flat (**synthesis_kwargs), but its init kwargs nest them under "
                         "synthesis_kwargs")
    if module is None:
        if nested and not flat:
            module = "training.networks"
        elif flat and not nested:
            module = "training.networks_stylegan2"
        else:
            what = "both nest and flatten" if nested else "hold no"
            raise ValueError("cannot tell which NVlabs repository wrote this generator: the module source stored in "
                             f"the pickle is not recognised and the init kwargs {what} synthesis options "
                             "(stylegan2-ada-pytorch does not clamp by default, stylegan3 clamps at 256)")
        notes.append(f"module source not recognised: {module} assumed from the layout of the init kwargs")
    if module == "training.networks":
        syn, top = dict(kw.get("synthesis_kwargs") or {}), {k: v for k, v in kw.items() if k != "synthesis_kwargs"}
        syn_prefix = "synthesis_kwargs."
    else:
        syn = {k: v for k, v in kw.items() if k not in GENERATOR_INIT_KWARGS}
        top = {k: v for k, v in kw.items() if k in GENERATOR_INIT_KWARGS}
        syn_prefix = ""
    values, ignored, unknown = {}, {}, {}

    def sort(table, items, prefix, out_prefix):
        for k, v in items.items():
            spec = table.get(k)
            if spec is None:
                unknown[prefix + k] = v
                continue
            if spec.supported is not None and not any(_same_value(v, s) for s in spec.supported):
                ok = ", ".join(repr(list(s) if isinstance(s, tuple) else s) for s in spec.supported)
                raise ValueError(f"NVlabs generator init kwarg {prefix}{k}={v!r} is not supported: {spec.why} "
                                 f"(supported: {ok})")
            if spec.handling == "ignored":
                ignored[prefix + k] = v
            else:
                values[out_prefix + k] = v

    sort({k: s for k, s in GENERATOR_INIT_KWARGS.items() if k not in ("mapping_kwargs", "synthesis_kwargs")},
         {k: v for k, v in top.items() if k != "mapping_kwargs"}, "", "")
    sort(MAPPING_INIT_KWARGS, dict(top.get("mapping_kwargs") or {}), "mapping_kwargs.", "mapping.")
    sort(SYNTHESIS_INIT_KWARGS, syn, syn_prefix, "synthesis.")
    for k, default in NVLABS_CLASS_DEFAULTS[module].items():
        key = ("mapping." if k == "lr_multiplier" else "synthesis.") + k
        if key in values:
            if k == "conv_clamp":
                notes.append(f"conv_clamp={values[key]} from the init kwargs")
        else:
            values[key] = default
            if k == "conv_clamp":
                notes.append(f"conv_clamp={default}: absent from the init kwargs, the class default of {module}")
    return module, values, ignored, unknown, notes


def nvlabs_to_generator(sd: dict, init_kwargs: dict | None = None, module: str | None = None,
                        report: "LoadReport | None" = None, init_args=()):
    """Build a Generator from a flattened NVlabs StyleGAN2 ``G_ema`` state dict (``mapping.fc{i}.*``,
    ``synthesis.b{res}.*``; the same keys in stylegan2-ada-pytorch and stylegan3) and the
    record's init kwargs. ``module`` (see :func:`nvlabs_module`) says where the synthesis options
    are (nested or flat) and which class defaults apply; None: inferred from the init kwargs.
    Every init kwarg is handled as :data:`GENERATOR_INIT_KWARGS`, :data:`MAPPING_INIT_KWARGS` and
    :data:`SYNTHESIS_INIT_KWARGS` say; kwargs in none of them are reported as unknown. With a
    ``report``, fills its ``module``, ``ignored_kwargs`` and ``unknown_kwargs``. Returns
    (G, used_keys, notes)."""
    if module == "training.networks_stylegan3" or any(k.startswith("synthesis.input.") for k in sd):
        raise ValueError("this is an alias-free StyleGAN3 generator (stylegan3's training.networks_stylegan3): not "
                         "supported, only StyleGAN2 generators (stylegan3 --cfg=stylegan2, stylegan2-ada-pytorch, "
                         "rosinality) load")
    if module is not None and module not in NVLABS_CLASS_DEFAULTS:
        raise ValueError(f"module must be one of {sorted(NVLABS_CLASS_DEFAULTS)} or None, got {module!r}")
    module, kv, ignored, unknown, kw_notes = _resolve_nvlabs_kwargs(dict(init_kwargs or {}), module, init_args)
    if kv.get("c_dim") or "mapping.embed.weight" in sd:
        raise ValueError("conditional NVlabs generators (c_dim > 0, mapping.embed) are not supported")
    n_mlp = 0
    while f"mapping.fc{n_mlp}.weight" in sd:
        n_mlp += 1
    if n_mlp == 0 or "synthesis.b4.const" not in sd:
        raise ValueError("not an NVlabs StyleGAN2 generator (missing mapping.fc0 / synthesis.b4.const)")
    z_dim = sd["mapping.fc0.weight"].shape[1]
    w_dim = sd[f"mapping.fc{n_mlp - 1}.weight"].shape[0]
    hidden = {sd[f"mapping.fc{i}.weight"].shape[0] for i in range(n_mlp - 1)}
    res = 4
    while f"synthesis.b{res * 2}.conv0.weight" in sd:
        res *= 2
    resolution = res
    channels = {4: sd["synthesis.b4.const"].shape[0]}
    r = 8
    while r <= resolution:
        channels[r] = sd[f"synthesis.b{r}.conv0.weight"].shape[0]
        r *= 2

    def check(key, actual):
        if kv.get(key) is not None and int(kv[key]) != int(actual):
            raise ValueError(f"NVlabs generator init kwarg {key.split('.')[-1]}={kv[key]} does not match the "
                             f"weights, which have {actual}")

    check("z_dim", z_dim)
    check("w_dim", w_dim)
    check("img_resolution", resolution)
    check("mapping.num_layers", n_mlp)
    check("mapping.layer_features", w_dim)
    if hidden - {w_dim}:
        raise ValueError(f"mapping layers of width {sorted(hidden)} differ from w_dim={w_dim}: not supported")
    if "synthesis.channel_base" in kv or "synthesis.channel_max" in kv:
        base, cmax = int(kv.get("synthesis.channel_base", 32768)), int(kv.get("synthesis.channel_max", 512))
        derived = {r: min(base // r, cmax) for r in channels}
        if derived != channels:
            raise ValueError(f"NVlabs generator init kwargs channel_base={base}, channel_max={cmax} give channels "
                             f"{derived}, the weights have {channels}")
    cfg = _infer_channel_config(channels, resolution)
    lr_mlp = float(kv["mapping.lr_multiplier"])
    conv_clamp = kv["synthesis.conv_clamp"]
    conv_clamp = None if conv_clamp is None else float(conv_clamp)
    G = Generator(resolution, z_dim=z_dim, w_dim=w_dim, n_mlp=n_mlp, lr_mlp=lr_mlp, conv_clamp=conv_clamp, **cfg)
    vals, used, notes = {}, set(), []
    take = _taker(sd, used, "NVlabs")

    for i in range(n_mlp):
        vals[f"mapping.fcs.{i}.weight"] = take(f"mapping.fc{i}.weight")
        vals[f"mapping.fcs.{i}.bias"] = take(f"mapping.fc{i}.bias")
    vals["synthesis.const"] = take("synthesis.b4.const")
    for k, block in enumerate(G.synthesis.blocks):
        r = block.resolution
        pre, src = f"synthesis.blocks.{k}.", f"synthesis.b{r}."
        if f"{src}resample_filter" in sd:
            _check_filter(take(f"{src}resample_filter"), 1.0, f"{src}resample_filter")
        for name in (["conv1"] if k == 0 else ["conv0", "conv1"]):
            for p in ("weight", "bias", "affine.weight", "affine.bias", "noise_strength", "noise_const"):
                vals[f"{pre}{name}.{p}"] = take(f"{src}{name}.{p}")
            if f"{src}{name}.resample_filter" in sd:
                _check_filter(take(f"{src}{name}.resample_filter"), 1.0, f"{src}{name}.resample_filter")
        for p in ("weight", "bias", "affine.weight", "affine.bias"):
            vals[f"{pre}torgb.{p}"] = take(f"{src}torgb.{p}")
    if "mapping.w_avg" in sd:
        vals["mapping.w_avg"] = take("mapping.w_avg")
    else:
        vals["mapping.w_avg"] = G.mapping.w_avg
    _assign(G, vals, "NVlabs")
    if "mapping.w_avg" not in sd:
        G.mapping.w_avg.copy_(G.mean_w())
        notes.append("no mapping.w_avg in the file: average w computed from 4096 samples (seed 0)")
    notes.extend(kw_notes)
    if ignored:
        notes.append("init kwargs ignored: " + ", ".join(
            f"{k}={v!r} ({_spec_of(k).why})" for k, v in sorted(ignored.items())))
    if unknown:
        notes.append("unknown init kwargs, not read: " + ", ".join(f"{k}={v!r}" for k, v in sorted(unknown.items())))
    if report is not None:
        report.module, report.ignored_kwargs, report.unknown_kwargs = module, dict(ignored), dict(unknown)
    return G, used, notes


def _spec_of(qualified: str) -> InitKwarg:
    if qualified.startswith("mapping_kwargs."):
        return MAPPING_INIT_KWARGS[qualified.split(".", 1)[1]]
    name = qualified.split(".", 1)[1] if qualified.startswith("synthesis_kwargs.") else qualified
    return SYNTHESIS_INIT_KWARGS.get(name) or GENERATOR_INIT_KWARGS[name]

# --------------------------------------------------------------------------------------------
# Our own format
# --------------------------------------------------------------------------------------------
def save_generator(G: Generator, path) -> None:
    """Save G as one ``.safetensors`` file: weights (incl. ``mapping.w_avg`` and the constant
    noises) plus the JSON config in the metadata (key ``fe_fast_config``)."""
    from safetensors.torch import save_file

    meta = {"format": FORMAT_NAME, "version": str(FORMAT_VERSION), "fe_fast_config": json.dumps(G.config)}
    tensors = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    save_file(tensors, os.fspath(path), metadata=meta)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)  # safetensors writes 0600; a model file is shared like any other


def _is_safetensors(path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < n < os.path.getsize(path)


def _load_ours(path):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT_NAME:
            raise ValueError(f"{path}: a safetensors file, but not an fe-fast StyleGAN2 generator "
                             f"(metadata format={meta.get('format')!r})")
        cfg = json.loads(meta["fe_fast_config"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    G = Generator(**cfg)
    _assign(G, tensors, "fe-fast safetensors")
    return G


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------
def load_raw(path):
    """The restricted-unpickled content of ``path`` (for inspection)."""
    return restricted_load(path)


def load_generator(path, which: str | None = None, return_report: bool = False):
    """Load a StyleGAN2 generator from ``path``: our ``.safetensors``, a rosinality ``.pt`` or an
    NVlabs ``.pkl`` (stylegan2-ada-pytorch, or stylegan3 for its StyleGAN2 config), detected from
    the content. ``which`` picks the network
    ("g_ema"/"g" for rosinality, "G_ema"/"G" for NVlabs; default: the EMA one). With
    ``return_report=True`` returns ``(G, LoadReport)``. Raises FileNotFoundError for a missing file,
    :class:`UnsafePickleError` for a pickle that would run code, ValueError for other layouts."""
    path = _check_file(path)
    if _is_safetensors(path):
        G = _load_ours(path)
        report = LoadReport("fe-fast", path)
    else:
        obj = restricted_load(path)
        G, report = _generator_from_object(obj, which, path)
    G.eval()
    return (G, report) if return_report else G


def _generator_from_object(obj, which, path):
    if isinstance(obj, dict) and any(isinstance(obj.get(k), PickledObject) for k in ("G_ema", "G")):
        key = which or ("G_ema" if "G_ema" in obj else "G")
        if key not in obj:
            raise ValueError(f"{path}: no '{key}' in the pickle (has {sorted(map(str, obj))})")
        net = obj[key]
        sd = placeholder_state_dict(net)
        init_kwargs = (net.state or {}).get("_init_kwargs") or {}
        init_args = tuple((net.state or {}).get("_init_args") or ())
        module = nvlabs_module(getattr(net, "module_src", None))
        report = LoadReport("NVlabs", path)
        try:
            G, used, notes = nvlabs_to_generator(sd, dict(init_kwargs), module, report, init_args)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        report.format, report.unused_keys, report.notes = NVLABS_MODULES[report.module], sorted(set(sd) - used), notes
        others = sorted(str(k) for k in obj if k != key)
        if others:
            report.notes.append(f"other entries not loaded: {', '.join(others)}")
        return G, report
    if isinstance(obj, dict) and ("g_ema" in obj or "g" in obj or "style.1.weight" in obj):
        if "style.1.weight" in obj:
            sd, key = obj, "(state dict)"
        else:
            key = which or ("g_ema" if "g_ema" in obj else "g")
            if key not in obj:
                raise ValueError(f"{path}: no '{key}' in the checkpoint (has {sorted(map(str, obj))})")
            sd = obj[key]
        latent_avg = obj.get("latent_avg") if isinstance(obj.get("latent_avg"), torch.Tensor) else None
        G, used, notes = rosinality_to_generator(dict(sd), latent_avg)
        unused = sorted(k for k in sd if k not in used)
        report = LoadReport("rosinality", path, unused, notes)
        if key != "(state dict)":
            others = sorted(str(k) for k in obj if k not in (key, "latent_avg"))
            if others:
                report.notes.append(f"other entries not loaded: {', '.join(others)}")
        return G, report
    raise ValueError(f"{path}: unrecognised checkpoint layout (expected rosinality 'g_ema'/'g', NVlabs 'G_ema'/'G' "
                     "or an fe-fast .safetensors file)")


def describe_config(G: Generator) -> str:
    c = G.config
    return (f"StyleGAN2 {c['resolution']}x{c['resolution']}, z {c['z_dim']}, w {c['w_dim']}, "
            f"{c['n_mlp']} mapping layers, {len(G.s_layers)} style layers "
            f"({sum(t.channels for t in G.s_layers)} S channels), "
            f"{sum(p.numel() for p in G.parameters()) / 1e6:.2f} M parameters")

