"""Toy teachers: the attribute classifier and the face parser trained on the procedural faces.

The thesis (ch. 6, experimental setup) uses two "teachers" to name what a StyleGAN style channel
controls: a ResNet-50 trained on CelebA's 40 binary attributes (attribute teacher) and a BiSeNet
face parser (region teacher, whose masks define the semantic regions). Their weights cannot be
fetched here, so this module trains small networks with the same roles on
:mod:`fe_fast.datasets.toyfaces`, whose labels are exact:

- :class:`AttributeClassifier`: a small CNN, one logit per binary toy attribute (multi-label,
  sigmoid / binary cross-entropy);
- :class:`FaceParser`: a small U-Net returning per-class logits for
  :data:`~fe_fast.datasets.toyfaces.MASK_CLASSES` (softmax cross-entropy).

Both take images as float tensors (B, 3, H, W) in [-1, 1] (the StyleGAN output range) of any
size from 16 to 256. :func:`save_teacher` / :func:`load_teacher` store ``{"format", "kind",
"config", "state_dict", "metrics"}`` in one ``torch.save`` file that loads with
``weights_only=True``.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fe_fast.datasets.toyfaces import BINARY_ATTRIBUTES, MASK_CLASSES, ToyFaces

__all__ = [
    "AttributeClassifier",
    "FaceParser",
    "TEACHER_FORMAT",
    "ATTRIBUTE_CLASSIFIER_FILE",
    "FACE_PARSER_FILE",
    "attribute_accuracy",
    "images_to_tensor",
    "load_teacher",
    "mean_iou",
    "predict_masks",
    "resample_augment",
    "save_teacher",
    "train_attribute_classifier",
    "train_face_parser",
    "train_toy_teachers",
    "ToyTeachers",
]

TEACHER_FORMAT = "fe-fast-teacher/1"
ATTRIBUTE_CLASSIFIER_FILE = "attribute_classifier.pt"
FACE_PARSER_FILE = "face_parser.pt"


def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AttributeClassifier(nn.Module):
    """Multi-label attribute teacher: 7 conv-BN-ReLU layers (four stride-2 stages of widths
    ``width * (1, 2, 4, 6)``), adaptive 4x4 average pooling (keeps where a feature is: beard
    vs hair) and a linear layer with one logit per attribute. ``forward`` returns the logits
    (B, len(attributes)); :meth:`predict_proba` the sigmoid probabilities."""

    def __init__(self, attributes: Sequence[str] = BINARY_ATTRIBUTES, width: int = 16):
        super().__init__()
        attributes = tuple(attributes)
        unknown = [a for a in attributes if a not in BINARY_ATTRIBUTES]
        if unknown or not attributes:
            raise ValueError(f"attributes must be a non-empty subset of {BINARY_ATTRIBUTES}, got unknown {unknown}")
        if int(width) < 4:
            raise ValueError(f"width must be >= 4, got {width}")
        self.attributes = attributes
        self.width = int(width)
        a, b, c, d = (self.width * k for k in (1, 2, 4, 6))
        self.features = nn.Sequential(_cbr(3, a, 2), _cbr(a, a), _cbr(a, b, 2), _cbr(b, b), _cbr(b, c, 2), _cbr(c, c),
                                      _cbr(c, d, 2))
        self.head = nn.Linear(d * 16, len(attributes))

    @property
    def config(self) -> dict:
        return {"attributes": list(self.attributes), "width": self.width}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x)
        return self.head(F.adaptive_avg_pool2d(self.features(x), 4).flatten(1))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Sigmoid probabilities (B, len(attributes)), computed in eval mode."""
        was = self.training
        self.eval()
        try:
            return torch.sigmoid(self(x))
        finally:
            self.train(was)


class FaceParser(nn.Module):
    """Region teacher: a small U-Net. A full-resolution stem (``width/2`` channels), three
    stride-2 encoder stages (``width * (1, 2, 4)``), decoder stages that upsample (bilinear),
    concatenate the skip feature and apply a 3x3 conv-BN-ReLU, and a 1x1 classifier.
    ``forward`` returns per-class logits (B, n_classes, H, W)."""

    def __init__(self, n_classes: int = len(MASK_CLASSES), width: int = 16):
        super().__init__()
        if int(n_classes) < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        if int(width) < 4:
            raise ValueError(f"width must be >= 4, got {width}")
        self.n_classes, self.width = int(n_classes), int(width)
        h, a, b, c = self.width // 2, self.width, 2 * self.width, 4 * self.width
        self.stem = _cbr(3, h)
        self.enc1 = nn.Sequential(_cbr(h, a, 2), _cbr(a, a))
        self.enc2 = nn.Sequential(_cbr(a, b, 2), _cbr(b, b))
        self.enc3 = nn.Sequential(_cbr(b, c, 2), _cbr(c, c))
        self.dec2 = _cbr(c + b, b)
        self.dec1 = _cbr(b + a, a)
        self.dec0 = _cbr(a + h, h)
        self.out = nn.Conv2d(h, self.n_classes, 1)

    @property
    def config(self) -> dict:
        return {"n_classes": self.n_classes, "width": self.width}

    @staticmethod
    def _up(x, ref):
        return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x)
        s = self.stem(x)
        e1 = self.enc1(s)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([self._up(e3, e2), e2], 1))
        d1 = self.dec1(torch.cat([self._up(d2, e1), e1], 1))
        d0 = self.dec0(torch.cat([self._up(d1, s), s], 1))
        return self.out(d0)


def _check_images(x):
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"images must be a float tensor (B, 3, H, W) in [-1, 1], got {shape}")
    if min(x.shape[-2:]) < 16:
        raise ValueError(f"image size must be at least 16x16, got {tuple(x.shape[-2:])}")


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [-1, 1] (a new tensor)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, math.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t.square() / (2 * sigma * sigma))
    k = (k / k.sum()).repeat(x.shape[1], 1, 1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.reshape(-1, 1, 1, 2 * r + 1), groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.reshape(-1, 1, 2 * r + 1, 1), groups=x.shape[1])


def _half_resolution(x: torch.Tensor, sigma: Optional[float] = None) -> torch.Tensor:
    """Area down to half size, optionally Gaussian-blurred there, bicubic back up, clamped to [-1, 1]."""
    size = x.shape[-1]
    y = F.interpolate(x, size=size // 2, mode="area")
    if sigma is not None:
        y = _gaussian_blur(y, sigma)
    return F.interpolate(y, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)


def resample_augment(x: torch.Tensor, gen: torch.Generator, max_sigma: float = 1.0) -> torch.Tensor:
    """Show the classifier images the way a half-resolution generator's images reach it.

    Of a batch ``x`` (B, 3, S, S) in [-1, 1], each image independently: a third stays as rendered;
    a third is area-downsampled to S/2 and resized back (bicubic, as
    :func:`fe_fast.stylegan.metrics.classifier_labels` resizes a 32x32 generator's output for a
    64x64 classifier); a third is also Gaussian-blurred at S/2 with one sigma per batch, uniform
    in (0, ``max_sigma``] pixels. Draws from ``gen`` only; returns a new tensor."""
    out = x.clone()
    u = torch.rand(len(x), generator=gen)
    halved, blurred = (u >= 1 / 3) & (u < 2 / 3), u >= 2 / 3
    if halved.any():
        out[halved] = _half_resolution(x[halved])
    if blurred.any():
        out[blurred] = _half_resolution(x[blurred], float(torch.rand(1, generator=gen)) * max_sigma + 1e-3)
    return out


# ----------------------------------------------------------------------------------------------
# Training and evaluation
# ----------------------------------------------------------------------------------------------

def _batches(n: int, batch_size: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen).numpy()
    for i in range(0, n, batch_size):
        yield perm[i:i + batch_size]


def _check_arrays(images, *others):
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (n, H, W, 3), got {images.dtype} {images.shape}")
    for o in others:
        if len(o) != len(images):
            raise ValueError(f"labels have {len(o)} rows for {len(images)} images")
    if len(images) == 0:
        raise ValueError("need at least one training image")
    return images


def train_attribute_classifier(images: np.ndarray, attributes: np.ndarray, model: Optional[AttributeClassifier] = None,
                               epochs: int = 6, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
                               progress: bool = False, max_steps: Optional[int] = None,
                               augment: bool = False, device=None) -> Tuple[AttributeClassifier, list]:
    """Train (or continue training) an :class:`AttributeClassifier` with binary cross-entropy on
    the logits, Adam and a one-cycle learning-rate schedule.

    ``images``: uint8 (n, H, W, 3); ``attributes``: (n, len(ATTRIBUTES)) toy attribute vectors
    (the columns named by ``model.attributes`` are used) or (n, len(model.attributes)) 0/1
    targets. A new model (``model=None``) is initialised after ``torch.manual_seed(seed)``; batch
    order and updates are seeded by ``seed``, so runs on one machine are bit-identical (another CPU's
    float kernels, e.g. AVX2 against AVX-512, give other weights). ``augment=True`` passes
    every batch through :func:`resample_augment` (robust labels for upsampled or slightly blurred
    generator output). ``device``: train there (None: where the model is). Returns ``(model, losses)``
    with the mean loss of every step."""
    images = _check_arrays(images, attributes)
    if model is None:
        torch.manual_seed(seed)
        model = AttributeClassifier()
    targets = _select_targets(np.asarray(attributes, dtype=np.float32), model.attributes)
    return _fit(model, images, torch.from_numpy(targets), lambda out, y: F.binary_cross_entropy_with_logits(out, y),
                epochs, batch_size, lr, seed, progress, max_steps, "attribute classifier",
                resample_augment if augment else None, device)


def train_face_parser(images: np.ndarray, masks: np.ndarray, model: Optional[FaceParser] = None, epochs: int = 8,
                      batch_size: int = 16, lr: float = 1e-2, seed: int = 0, progress: bool = False,
                      max_steps: Optional[int] = None, class_weights: Optional[Sequence[float]] = "auto",
                      device=None):
    """Train (or continue training) a :class:`FaceParser` with per-pixel softmax cross-entropy,
    Adam and a one-cycle schedule. ``masks``: uint8/int (n, H, W) class indices.
    ``class_weights="auto"`` weights class c by (median frequency / frequency)^0.5 on the
    training masks (small parts such as eyes and brows count more), ``None`` = unweighted.
    ``device``: train there (None: where the model is). Returns ``(model, losses)``."""
    images = _check_arrays(images, masks)
    masks = np.asarray(masks)
    if masks.shape != images.shape[:3]:
        raise ValueError(f"masks must be (n, H, W) matching the images {images.shape[:3]}, got {masks.shape}")
    if model is None:
        torch.manual_seed(seed)
        model = FaceParser()
    if masks.max() >= model.n_classes or masks.min() < 0:
        raise ValueError(f"mask values must lie in [0, {model.n_classes - 1}], got [{masks.min()}, {masks.max()}]")
    if isinstance(class_weights, str) and class_weights == "auto":
        freq = np.bincount(masks.ravel(), minlength=model.n_classes).astype(np.float64)
        freq = np.maximum(freq / freq.sum(), 1e-6)
        w = np.sqrt(np.median(freq[freq > 1e-6]) / freq)
        weight = torch.tensor(np.clip(w, 0.25, 8.0), dtype=torch.float32)
    elif class_weights is None:
        weight = None
    else:
        weight = torch.as_tensor(class_weights, dtype=torch.float32)
        if weight.shape != (model.n_classes,):
            raise ValueError(f"class_weights must have {model.n_classes} entries, got {tuple(weight.shape)}")
    y = torch.from_numpy(masks.astype(np.int64))
    if weight is not None and device is not None:
        weight = weight.to(device)
    return _fit(model, images, y, lambda out, t: F.cross_entropy(out, t, weight=weight), epochs, batch_size, lr, seed,
                progress, max_steps, "face parser", device=device)


def _select_targets(attributes: np.ndarray, names: Sequence[str]) -> np.ndarray:
    from fe_fast.datasets.toyfaces import ATTRIBUTES

    if attributes.ndim != 2:
        raise ValueError(f"attributes must be 2-D (n, k), got shape {attributes.shape}")
    if attributes.shape[1] == len(ATTRIBUTES):
        return attributes[:, [ATTRIBUTES.index(a) for a in names]].copy()
    if attributes.shape[1] == len(names):
        return attributes.copy()
    raise ValueError(f"attributes must have {len(ATTRIBUTES)} (toy attribute vectors) or {len(names)} columns, "
                     f"got {attributes.shape[1]}")


def _fit(model, images, targets, loss_fn, epochs, batch_size, lr, seed, progress, max_steps, what, augment=None,
         device=None):
    if int(epochs) < 1 or int(batch_size) < 1 or not lr > 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0, got {epochs}, {batch_size}, {lr}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n = len(images)
    steps_per_epoch = math.ceil(n / batch_size)
    total = steps_per_epoch * int(epochs)
    if max_steps is not None:
        total = min(total, int(max_steps))
    model.to(device)
    device = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total, 1), pct_start=0.2)
    model.train()
    losses = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"training {what}", unit="step")
    step = 0
    while step < total:
        for idx in _batches(n, batch_size, gen):
            x = images_to_tensor(images[idx])
            if augment is not None:
                x = augment(x, gen)
            loss = loss_fn(model(x.to(device)), targets[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if step >= total:
                break
    if bar is not None:
        bar.close()
    model.eval()
    return model, losses


@torch.no_grad()
def _predict(model, images: np.ndarray, batch_size: int, fn, transform=None):
    model.eval()
    device = next(model.parameters()).device
    outs = []
    for i in range(0, len(images), batch_size):
        x = images_to_tensor(images[i:i + batch_size])
        outs.append(fn(model((x if transform is None else transform(x)).to(device))).cpu())
    return torch.cat(outs) if outs else torch.zeros(0)


def attribute_accuracy(model: AttributeClassifier, images: np.ndarray, attributes: np.ndarray,
                       batch_size: int = 256, half_resolution: bool = False) -> Dict[str, float]:
    """Accuracy per attribute of ``model`` (threshold 0.5 on the sigmoid) on held-out data.
    ``half_resolution=True``: the images pass through half their size first (area down, bicubic
    up), as a half-resolution generator's output reaches the classifier."""
    images = _check_arrays(images, attributes)
    y = torch.from_numpy(_select_targets(np.asarray(attributes, dtype=np.float32), model.attributes))
    pred = _predict(model, images, batch_size, lambda o: (o > 0).float(),
                    _half_resolution if half_resolution else None)
    acc = (pred == y).float().mean(0)
    return {a: float(v) for a, v in zip(model.attributes, acc)}


def predict_masks(model: FaceParser, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Arg-max class map uint8 (n, H, W) of ``model`` on uint8 images (n, H, W, 3)."""
    images = _check_arrays(images)
    return _predict(model, images, batch_size, lambda o: o.argmax(1).to(torch.uint8)).numpy()


def mean_iou(pred: np.ndarray, target: np.ndarray, n_classes: int = len(MASK_CLASSES)) -> Tuple[float, Dict[str, float]]:
    """Intersection over union per class, accumulated over all pixels of all images, and their
    mean over the classes present in ``target`` or ``pred``. Returns ``(mean, {class: iou})``."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {pred.shape} vs {target.shape}")
    k = n_classes
    cm = np.bincount(target.astype(np.int64).ravel() * k + pred.astype(np.int64).ravel(), minlength=k * k).reshape(k, k)
    inter = np.diag(cm).astype(np.float64)
    union = cm.sum(0) + cm.sum(1) - np.diag(cm)
    names = MASK_CLASSES if k == len(MASK_CLASSES) else [str(i) for i in range(k)]
    ious = {names[c]: float(inter[c] / union[c]) for c in range(k) if union[c] > 0}
    return (float(np.mean(list(ious.values()))) if ious else float("nan")), ious


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------

_KINDS = {"attribute_classifier": AttributeClassifier, "face_parser": FaceParser}


def save_teacher(model: Union[AttributeClassifier, FaceParser], path, metrics: Optional[Mapping] = None) -> Path:
    """Write ``{"format", "kind", "config", "state_dict", "metrics"}`` to ``path`` (parents
    created). ``metrics`` (held-out accuracy, IoU, ...) is stored alongside for reference."""
    kind = {AttributeClassifier: "attribute_classifier", FaceParser: "face_parser"}.get(type(model))
    if kind is None:
        raise ValueError(f"model must be an AttributeClassifier or a FaceParser, got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": TEACHER_FORMAT, "kind": kind, "config": model.config,
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "metrics": dict(metrics or {})}, path)
    return path


def load_teacher(path, kind: Optional[str] = None, map_location="cpu"):
    """Load a teacher written by :func:`save_teacher` (in eval mode). ``path`` may be the file
    or a directory holding ``attribute_classifier.pt`` / ``face_parser.pt`` (then ``kind`` picks
    which). ``kind`` ("attribute_classifier" or "face_parser"), when given, must match the file."""
    if kind is not None and kind not in _KINDS:
        raise ValueError(f"kind must be one of {list(_KINDS)}, got {kind!r}")
    path = Path(path)
    if path.is_dir():
        if kind is None:
            raise ValueError(f"{path} is a directory: pass kind='attribute_classifier' or 'face_parser'")
        path = path / (ATTRIBUTE_CLASSIFIER_FILE if kind == "attribute_classifier" else FACE_PARSER_FILE)
    if not path.exists():
        raise FileNotFoundError(f"no teacher file at {path} (train one with `fe-fast teachers train --out DIR`)")
    blob = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != TEACHER_FORMAT:
        raise ValueError(f"{path} is not an fe-fast teacher file (expected format {TEACHER_FORMAT!r})")
    if kind is not None and blob["kind"] != kind:
        raise ValueError(f"{path} holds a {blob['kind']}, not a {kind}")
    model = _KINDS[blob["kind"]](**blob["config"])
    model.load_state_dict(blob["state_dict"])
    model.eval()
    model.metrics = blob.get("metrics", {})
    return model


@dataclass
class ToyTeachers:
    """Both toy teachers with their held-out scores and per-stage (wall, CPU) seconds."""

    classifier: AttributeClassifier
    parser: FaceParser
    accuracy: Dict[str, float]
    iou: Dict[str, float]
    mean_iou: float
    parser_n: int
    seconds: Dict[str, Tuple[float, float]] = field(default_factory=dict)  # render / classifier / parser
    accuracy_half: Dict[str, float] = field(default_factory=dict)  # held-out faces through half resolution


def _clock() -> Tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t: Tuple[float, float]) -> Tuple[float, float]:
    w, c = _clock()
    return w - t[0], c - t[1]


def train_toy_teachers(n: int = 8000, n_val: int = 1000, size: int = 64, epochs: int = 8, parser_n: int = 3000,
                       parser_epochs: int = 8, width: int = 16, seed: int = 0, progress: bool = True,
                       augment: bool = False, device=None) -> ToyTeachers:
    """Render ``n`` training and ``n_val`` held-out toy faces, train the attribute classifier on all
    training faces and the face parser on the first ``parser_n``, and score both on the held-out
    faces (accuracy per binary attribute, as rendered and through half resolution; IoU per mask
    class). ``augment``: train the classifier with :func:`resample_augment`. Each model is
    initialised right after ``torch.manual_seed(seed)``, so the result is deterministic for a seed on
    one machine; across CPUs the weights differ, and so do their labels of off-manifold (generated) images.
    ``device``: where both train and are scored (None: the CPU); the teachers are returned on the CPU."""
    t = _clock()
    train = ToyFaces(n, size=size, seed=seed)
    val = ToyFaces(n_val, size=size, seed=seed + 1_000_003)
    xi, xm, _ = train.arrays(progress=progress)
    vi, vm, _ = val.arrays(progress=progress)
    seconds = {"render": _since(t)}

    t = _clock()
    torch.manual_seed(seed)
    clf, _ = train_attribute_classifier(xi, train.attributes, AttributeClassifier(width=width),
                                        epochs=epochs, seed=seed, progress=progress, augment=augment, device=device)
    seconds["classifier"] = _since(t)
    acc = attribute_accuracy(clf, vi, val.attributes)
    acc_half = attribute_accuracy(clf, vi, val.attributes, half_resolution=True)

    t = _clock()
    torch.manual_seed(seed)
    k = min(parser_n, n)
    parser, _ = train_face_parser(xi[:k], xm[:k], FaceParser(width=width), epochs=parser_epochs,
                                  seed=seed, progress=progress, device=device)
    seconds["parser"] = _since(t)
    miou, ious = mean_iou(predict_masks(parser, vi), vm)
    clf, parser = clf.cpu(), parser.cpu()
    return ToyTeachers(clf, parser, acc, ious, miou, k, seconds, acc_half)
