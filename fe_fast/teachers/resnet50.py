"""The thesis's attribute teacher: a ResNet-50 with 40 outputs trained on CelebA (thesis ch. 6,
"we trained 40 binary classifiers of face attributes on CelebA with a ResNet50 backbone").

torchvision is not a dependency, so :class:`ResNet50` re-implements the architecture (He et al.,
"Deep Residual Learning for Image Recognition", CVPR 2016; bottleneck blocks [3, 4, 6, 3], stride
on the 3x3 conv as in torchvision >= 0.13) with exactly torchvision's ``state_dict`` keys and
shapes (``conv1``, ``bn1``, ``layer{1-4}.{i}.conv{1-3}/bn{1-3}``, ``layer{k}.0.downsample.{0,1}``,
``fc``), so a checkpoint saved from ``torchvision.models.resnet50(num_classes=40)`` loads
unchanged. :func:`load_celeba_resnet50` wraps it as :class:`CelebAResNet50`, which takes images
in [-1, 1] and returns 40 logits in CelebA's attribute order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

from fe_fast.teachers.preprocess import resize_for_teacher

__all__ = ["CELEBA_ATTRIBUTES", "CelebAResNet50", "ResNet50", "load_celeba_resnet50", "read_state_dict"]

#: The 40 CelebA attributes in the order of ``list_attr_celeba.txt``.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + idt)


class ResNet50(nn.Module):
    """ResNet-50 with torchvision's parameter names. ``width`` (64 = the real network) scales
    every stage and exists so tests can build a tiny copy; ``num_classes`` sizes ``fc``."""

    def __init__(self, num_classes: int = 40, width: int = 64, layers: Sequence[int] = (3, 4, 6, 3)):
        super().__init__()
        if int(num_classes) < 1 or int(width) < 1:
            raise ValueError(f"num_classes and width must be >= 1, got {num_classes}, {width}")
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = width
        for k, (n, mult) in enumerate(zip(layers, (1, 2, 4, 8)), start=1):
            blocks = []
            for i in range(n):
                blocks.append(_Bottleneck(inplanes, width * mult, stride=2 if (i == 0 and k > 1) else 1))
                inplanes = width * mult * 4
            setattr(self, f"layer{k}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, int(num_classes))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class CelebAResNet50(nn.Module):
    """Attribute teacher from real weights. Takes images (B, 3, H, W) in [-1, 1] of any size (a
    generator's 1024x1024 included), brings them to ``input_size`` x ``input_size`` with
    :func:`~fe_fast.teachers.preprocess.resize_for_teacher` (whole frame, antialiased bilinear),
    normalises with the ImageNet mean/std (torchvision convention) and returns the ResNet-50
    logits (B, 40) in :data:`CELEBA_ATTRIBUTES` order."""

    def __init__(self, net: ResNet50, input_size: int = 224, attributes: Sequence[str] = CELEBA_ATTRIBUTES):
        super().__init__()
        self.net = net
        self.input_size = int(input_size)
        self.attributes = tuple(attributes)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W) in [-1, 1], got {tuple(x.shape)}")
        x = resize_for_teacher(x, self.input_size)
        return self.net(((x + 1.0) * 0.5 - self.mean) / self.std)


def read_state_dict(path, what: str) -> dict:
    """Load a ``state_dict`` from ``path`` (``torch.load(weights_only=True)``): a plain dict of
    tensors or one nested under ``state_dict`` / ``model`` / ``net``; ``module.`` prefixes
    (DataParallel) are stripped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} weights not found at {path}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "net"):
        if isinstance(blob, dict) and key in blob and isinstance(blob[key], dict):
            blob = blob[key]
            break
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise ValueError(f"{path}: expected a state_dict (dict of tensors), got {type(blob).__name__}")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in blob.items()}


def _load_strict(model: nn.Module, sd: dict, path, what: str):
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    bad = [f"{k}: {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or bad:
        raise ValueError(f"{path} does not match the {what} architecture: missing {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                         f"{'...' if len(unexpected) > 5 else ''}, shape mismatches {bad[:5]}")
    model.load_state_dict(sd)


def load_celeba_resnet50(path, num_outputs: int = 40, input_size: int = 224, width: int = 64) -> CelebAResNet50:
    """Load a user's CelebA attribute ResNet-50 (a torchvision ``resnet50`` state_dict with a
    ``num_outputs``-way ``fc``) from ``path`` and return it wrapped in :class:`CelebAResNet50`,
    in eval mode; it takes images of any size and resizes them to ``input_size`` (see
    :func:`~fe_fast.teachers.preprocess.resize_for_teacher`). Raises ``FileNotFoundError`` naming ``path`` when the file is missing and
    ``ValueError`` listing missing/unexpected keys or shape mismatches."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"CelebA ResNet-50 weights not found at {path}: save a torchvision resnet50(num_classes={num_outputs}) "
            f"state_dict there (torch.save(model.state_dict(), '{path}')) or use the toy attribute classifier "
            f"(fe-fast teachers train)")
    net = ResNet50(num_classes=num_outputs, width=width)
    _load_strict(net, read_state_dict(path, "CelebA ResNet-50"), path, "ResNet-50")
    names = CELEBA_ATTRIBUTES if num_outputs == len(CELEBA_ATTRIBUTES) else tuple(f"attr_{i}" for i in range(num_outputs))
    return CelebAResNet50(net, input_size=input_size, attributes=names).eval()
