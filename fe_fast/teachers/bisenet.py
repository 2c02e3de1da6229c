"""The thesis's region teacher: BiSeNet face parsing (Yu et al., "BiSeNet: Bilateral Segmentation
Network for Real-time Semantic Segmentation", ECCV 2018; thesis ch. 6 uses it to produce eye,
nose, hair, ... masks).

Decision: instead of loading TorchScript or pickled modules (which execute code), this module
defines the architecture of the widely used face-parsing BiSeNet (ResNet-18 context path with
attention refinement modules, the stride-8 ResNet feature in place of the spatial path, a
feature fusion module and three output heads; 19 CelebAMask-HQ classes) with the parameter names
of its public checkpoints (``cp.resnet.*``, ``cp.arm16.*``, ``cp.arm32.*``, ``cp.conv_head16/32``,
``cp.conv_avg``, ``ffm.*``, ``conv_out.*``, ``conv_out16.*``, ``conv_out32.*``), and
:func:`load_bisenet` loads a plain ``state_dict`` with ``weights_only=True``, checking every key
and shape. A file that does not match is rejected with the list of differences.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from fe_fast.teachers.preprocess import resize_for_teacher
from fe_fast.teachers.resnet50 import _load_strict, read_state_dict

__all__ = ["BISENET_CLASSES", "BISENET_TO_TOY", "BiSeNet", "BiSeNetParser", "load_bisenet"]

#: The 19 CelebAMask-HQ classes in the order of the face-parsing BiSeNet outputs.
BISENET_CLASSES = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
                   "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
#: BiSeNet class -> toy class (:data:`fe_fast.datasets.toyfaces.MASK_CLASSES`); BiSeNet has no
#: beard class, and ears and neck count as skin, clothes and accessories as background.
BISENET_TO_TOY = {
    "background": "background", "skin": "skin", "l_brow": "brows", "r_brow": "brows", "l_eye": "left_eye",
    "r_eye": "right_eye", "eye_g": "glasses", "l_ear": "skin", "r_ear": "skin", "ear_r": "background",
    "nose": "nose", "mouth": "mouth", "u_lip": "mouth", "l_lip": "mouth", "neck": "skin", "neck_l": "background",
    "cloth": "background", "hair": "hair", "hat": "background",
}


class _ConvBNReLU(nn.Module):
    def __init__(self, cin, cout, ks=3, stride=1, padding=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ks, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class _BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        r = F.relu(self.bn1(self.conv1(x)))
        r = self.bn2(self.conv2(r))
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(s + r)


class _ResNet18(nn.Module):
    def __init__(self, w=64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(_BasicBlock(w, w), _BasicBlock(w, w))
        self.layer2 = nn.Sequential(_BasicBlock(w, 2 * w, 2), _BasicBlock(2 * w, 2 * w))
        self.layer3 = nn.Sequential(_BasicBlock(2 * w, 4 * w, 2), _BasicBlock(4 * w, 4 * w))
        self.layer4 = nn.Sequential(_BasicBlock(4 * w, 8 * w, 2), _BasicBlock(8 * w, 8 * w))

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        f8 = self.layer2(self.layer1(x))
        f16 = self.layer3(f8)
        return f8, f16, self.layer4(f16)


class _ARM(nn.Module):
    """Attention refinement: features re-weighted by a channel attention from global pooling."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = _ConvBNReLU(cin, cout)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x):
        f = self.conv(x)
        a = torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(f, 1))))
        return f * a


class _ContextPath(nn.Module):
    def __init__(self, w=64):
        super().__init__()
        self.resnet = _ResNet18(w)
        c = 2 * w
        self.arm16 = _ARM(4 * w, c)
        self.arm32 = _ARM(8 * w, c)
        self.conv_head32 = _ConvBNReLU(c, c)
        self.conv_head16 = _ConvBNReLU(c, c)
        self.conv_avg = _ConvBNReLU(8 * w, c, ks=1, padding=0)

    def forward(self, x):
        f8, f16, f32 = self.resnet(x)
        avg = self.conv_avg(F.adaptive_avg_pool2d(f32, 1))
        s32 = self.arm32(f32) + F.interpolate(avg, size=f32.shape[-2:], mode="nearest")
        up32 = self.conv_head32(F.interpolate(s32, size=f16.shape[-2:], mode="nearest"))
        s16 = self.arm16(f16) + up32
        up16 = self.conv_head16(F.interpolate(s16, size=f8.shape[-2:], mode="nearest"))
        return f8, up16, up32


class _FFM(nn.Module):
    """Feature fusion: concatenation, 1x1 conv, squeeze-excitation style attention, residual."""

    def __init__(self, cin, cout):
        super().__init__()
        self.convblk = _ConvBNReLU(cin, cout, ks=1, padding=0)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, fsp, fcp):
        f = self.convblk(torch.cat([fsp, fcp], 1))
        a = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(f, 1)))))
        return f * a + f


class _Output(nn.Module):
    def __init__(self, cin, mid, n_classes):
        super().__init__()
        self.conv = _ConvBNReLU(cin, mid)
        self.conv_out = nn.Conv2d(mid, n_classes, 1, bias=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """Face-parsing BiSeNet. ``forward`` returns ``(out, out16, out32)`` logits upsampled to the
    input size (``out`` is the prediction; the others are the auxiliary heads used in training).
    ``width`` (64 = the published network) exists so tests can build a small copy."""

    def __init__(self, n_classes: int = 19, width: int = 64):
        super().__init__()
        if int(n_classes) < 2 or int(width) < 4:
            raise ValueError(f"n_classes must be >= 2 and width >= 4, got {n_classes}, {width}")
        w = int(width)
        self.cp = _ContextPath(w)
        self.ffm = _FFM(4 * w, 4 * w)
        self.conv_out = _Output(4 * w, 4 * w, n_classes)
        self.conv_out16 = _Output(2 * w, w, n_classes)
        self.conv_out32 = _Output(2 * w, w, n_classes)

    def forward(self, x):
        size = x.shape[-2:]
        f8, cp8, cp16 = self.cp(x)
        fuse = self.ffm(f8, cp8)
        up = lambda t: F.interpolate(t, size=size, mode="bilinear", align_corners=True)  # noqa: E731
        return up(self.conv_out(fuse)), up(self.conv_out16(cp8)), up(self.conv_out32(cp16))


class BiSeNetParser(nn.Module):
    """Region teacher from real weights: images (B, 3, H, W) in [-1, 1] of any size (a
    generator's 1024x1024 included) are brought to ``input_size`` x ``input_size`` (512 for the
    public checkpoint) with :func:`~fe_fast.teachers.preprocess.resize_for_teacher` (whole frame,
    antialiased bilinear), ImageNet-normalised and parsed; the main logits go back to (H, W)
    through the same resize: returns (B, 19, H, W) in :data:`BISENET_CLASSES` order.
    :meth:`toy_logits` merges them into the toy classes by ``logsumexp`` (beard gets -inf)."""

    def __init__(self, net: BiSeNet, input_size: int = 512):
        super().__init__()
        self.net = net
        self.input_size = int(input_size)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W) in [-1, 1], got {tuple(x.shape)}")
        y = resize_for_teacher(x, self.input_size)
        out = self.net(((y + 1.0) * 0.5 - self.mean) / self.std)[0]
        return resize_for_teacher(out, tuple(x.shape[-2:]))

    def toy_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits over :data:`fe_fast.datasets.toyfaces.MASK_CLASSES` (B, 10, H, W)."""
        from fe_fast.datasets.toyfaces import MASK_CLASSES

        logits = self(x)
        if logits.shape[1] != len(BISENET_CLASSES):
            raise ValueError(f"toy_logits needs the 19-class network, this one has {logits.shape[1]} classes")
        out = torch.full((logits.shape[0], len(MASK_CLASSES), *logits.shape[-2:]), float("-inf"), dtype=logits.dtype)
        for t, name in enumerate(MASK_CLASSES):
            src = [i for i, b in enumerate(BISENET_CLASSES) if BISENET_TO_TOY[b] == name]
            if src:
                out[:, t] = torch.logsumexp(logits[:, src], dim=1)
        return out


def load_bisenet(path, n_classes: int = 19, input_size: int = 512, width: int = 64) -> BiSeNetParser:
    """Load a user's face-parsing BiSeNet ``state_dict`` (e.g. the public 19-class CelebAMask-HQ
    checkpoint) from ``path`` and wrap it in :class:`BiSeNetParser` (eval mode; images of any
    size are resized to ``input_size`` and the logits back, see
    :func:`~fe_fast.teachers.preprocess.resize_for_teacher`). Raises
    ``FileNotFoundError`` naming ``path`` when it is missing and ``ValueError`` listing missing or
    unexpected keys and shape mismatches when it is not this architecture."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"BiSeNet face-parsing weights not found at {path}: place the 19-class face-parsing BiSeNet "
            f"state_dict there, or use the toy face parser (fe-fast teachers train)")
    net = BiSeNet(n_classes=n_classes, width=width)
    _load_strict(net, read_state_dict(path, "BiSeNet"), path, "BiSeNet")
    return BiSeNetParser(net, input_size=input_size).eval()
