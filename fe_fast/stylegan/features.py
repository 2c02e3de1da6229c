"""Image feature networks used by the path loss (thesis eq. 5-6, ``D_VGG``) and by FID (eq. 5-8).

* :class:`VGG16Features`: VGG-16 conv features (torchvision layout ``features.{i}.weight``) loaded
  from a weights file the user supplies (e.g. torchvision's ``vgg16-397923af.pth``); the distance
  of eq. 5-6 is the squared Euclidean distance of the channel-normalised relu1_2 ... relu5_3 maps.
* :class:`InceptionFeatures`: the pytorch-fid Inception-v3 (2048-d pool features) loaded from the
  pytorch-fid weights file ``pt_inception-2015-12-05-6726825d.pth``.
* :class:`ToyFaceFeatures`: a small fixed random-weight CNN (seeded, no download) for the toy face
  world. FID values computed with it are labelled ``fid_toy`` and are NOT comparable to Inception
  FID: they only rank models of the same toy data against each other.

Weights files are read with ``torch.load(weights_only=True)`` (tensors only, no code)."""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VGG16Features", "InceptionFeatures", "ToyFaceFeatures", "load_state_dict_file"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_state_dict_file(path, what: str) -> dict:
    """A tensors-only state dict from ``path`` (clear FileNotFoundError naming ``what``)."""
    if path is None or not os.path.isfile(os.fspath(path)):
        raise FileNotFoundError(f"{what}: weights file not found: {path}")
    sd = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{what}: {path} does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _imagenet_input(img: torch.Tensor) -> torch.Tensor:
    """[-1, 1] RGB -> ImageNet-normalised."""
    x = (img + 1) * 0.5
    mean = torch.tensor(IMAGENET_MEAN, device=img.device, dtype=img.dtype).reshape(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=img.device, dtype=img.dtype).reshape(1, 3, 1, 1)
    return (x - mean) / std


_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_VGG16_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision indices


class VGG16Features(nn.Module):
    """VGG-16 feature extractor for the perceptual path loss ``D_VGG`` of thesis eq. 5-6.

    ``VGG16Features(weights_path)`` expects torchvision's VGG-16 state dict (``features.{i}.*``;
    classifier keys are ignored). ``forward(img)`` returns the list of relu1_2..relu5_3 maps;
    :meth:`distance` gives the per-sample squared Euclidean distance of the unit-normalised maps."""

    def __init__(self, weights_path):
        super().__init__()
        sd = load_state_dict_file(weights_path, "VGG-16 (path loss, thesis eq. 5-6)")
        layers, cin = [], 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
                cin = v
        self.features = nn.Sequential(*layers)
        feats = {k: v for k, v in sd.items() if k.startswith("features.")}
        missing = [k for k in self.state_dict() if k not in feats]
        if missing:
            raise ValueError(f"{weights_path}: not a torchvision VGG-16 state dict (missing {missing[:3]})")
        self.load_state_dict(feats, strict=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        x = _imagenet_input(img)
        out = []
        for i, layer in enumerate(self.features):
            if isinstance(layer, nn.MaxPool2d) and min(x.shape[-2:]) < 2:
                break
            x = layer(x)
            if i in _VGG16_TAPS:
                out.append(x)
        return out

    @staticmethod
    def distance(fa: list[torch.Tensor], fb: list[torch.Tensor], weights=None) -> torch.Tensor:
        """sum over layers of the mean over positions of ||f_a/|f_a| - f_b/|f_b|||^2, per sample;
        ``weights`` (one [1, C, 1, 1] tensor per layer, e.g. LPIPS's linear layers) weight the
        channels of the squared difference."""
        d = 0
        for i, (a, b) in enumerate(zip(fa, fb)):
            a = a * torch.rsqrt(a.square().sum(1, keepdim=True) + 1e-10)
            b = b * torch.rsqrt(b.square().sum(1, keepdim=True) + 1e-10)
            sq = (a - b).square()
            if weights is not None:
                sq = sq * weights[i].to(sq.device, sq.dtype)
            d = d + sq.sum(1).mean(dim=[1, 2])
        return d


class ToyFaceFeatures(nn.Module):
    """Fixed random-weight CNN (seed 0, no training, no download) mapping [-1, 1] images of any
    size to 512-d features (resized to 64x64 first). For FID on the toy face world only
    (``fid_toy``): random conv features still separate image distributions, but the numbers are
    not comparable to Inception FID."""

    label = "fid_toy (random-weight CNN features, seed 0; not comparable to Inception FID)"

    def __init__(self, seed: int = 0, dim: int = 256):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        chans = (3, 32, 64, 128, dim)
        convs = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            c = nn.Conv2d(cin, cout, 3, padding=1)
            with torch.no_grad():
                c.weight.copy_(torch.randn(c.weight.shape, generator=g) * (2.0 / (cin * 9)) ** 0.5)
                c.bias.zero_()
            convs.append(c)
        self.convs = nn.ModuleList(convs)
        self.dim = 2 * dim  # mean- and max-pooled last conv map
        self.requires_grad_(False)
        self.eval()

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(img, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
        for i, c in enumerate(self.convs):
            x = F.leaky_relu(c(x), 0.2)
            if i < len(self.convs) - 1:
                x = F.avg_pool2d(x, 2)
        return torch.cat([x.mean(dim=[2, 3]), x.amax(dim=[2, 3])], dim=1)

    def distance(self, fa, fb):
        return (fa - fb).square().sum(1)


# ------------------------------------------------------------------------------------------------
# pytorch-fid Inception-v3 (FID of thesis eq. 5-8)
# ------------------------------------------------------------------------------------------------
class _BasicConv(nn.Module):
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class _InceptionA(nn.Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = _BasicConv(cin, 64, kernel_size=1)
        self.branch5x5_1 = _BasicConv(cin, 48, kernel_size=1)
        self.branch5x5_2 = _BasicConv(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = _BasicConv(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = _BasicConv(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = _BasicConv(96, 96, kernel_size=3, padding=1)
        self.branch_pool = _BasicConv(cin, pool_features, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b5, b3, bp], 1)


class _InceptionB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = _BasicConv(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = _BasicConv(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = _BasicConv(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = _BasicConv(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2)], 1)


class _InceptionC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = _BasicConv(cin, 192, kernel_size=1)
        self.branch7x7_1 = _BasicConv(cin, c7, kernel_size=1)
        self.branch7x7_2 = _BasicConv(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = _BasicConv(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _BasicConv(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = _BasicConv(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _BasicConv(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _BasicConv(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _BasicConv(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = _BasicConv(cin, 192, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for m in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                  self.branch7x7dbl_5):
            bd = m(bd)
        bp = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b7, bd, bp], 1)


class _InceptionD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = _BasicConv(cin, 192, kernel_size=1)
        self.branch3x3_2 = _BasicConv(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = _BasicConv(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = _BasicConv(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _BasicConv(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _BasicConv(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class _InceptionE(nn.Module):
    def __init__(self, cin, max_pool):
        super().__init__()
        self.max_pool = max_pool  # pytorch-fid: FIDInceptionE_1 avg-pools, FIDInceptionE_2 max-pools
        self.branch1x1 = _BasicConv(cin, 320, kernel_size=1)
        self.branch3x3_1 = _BasicConv(cin, 384, kernel_size=1)
        self.branch3x3_2a = _BasicConv(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = _BasicConv(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _BasicConv(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = _BasicConv(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = _BasicConv(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _BasicConv(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = _BasicConv(cin, 192, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.max_pool:
            bp = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            bp = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([b1, b3, bd, self.branch_pool(bp)], 1)


class InceptionFeatures(nn.Module):
    """The FID Inception-v3 of pytorch-fid (2048-d pool3 features, inputs resized to 299x299
    bilinearly and scaled to [-1, 1]). ``InceptionFeatures(weights_path)`` loads
    ``pt_inception-2015-12-05-6726825d.pth`` (torchvision Inception3 key names, 1008 classes)."""

    label = "fid (pytorch-fid Inception-v3 pool3)"
    WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"

    def __init__(self, weights_path=None, load: bool = True):
        super().__init__()
        self.Conv2d_1a_3x3 = _BasicConv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = _BasicConv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = _BasicConv(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = _BasicConv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = _BasicConv(80, 192, kernel_size=3)
        self.Mixed_5b = _InceptionA(192, 32)
        self.Mixed_5c = _InceptionA(256, 64)
        self.Mixed_5d = _InceptionA(288, 64)
        self.Mixed_6a = _InceptionB(288)
        self.Mixed_6b = _InceptionC(768, 128)
        self.Mixed_6c = _InceptionC(768, 160)
        self.Mixed_6d = _InceptionC(768, 160)
        self.Mixed_6e = _InceptionC(768, 192)
        self.Mixed_7a = _InceptionD(768)
        self.Mixed_7b = _InceptionE(1280, max_pool=False)
        self.Mixed_7c = _InceptionE(2048, max_pool=True)
        if load:
            if weights_path is None:
                raise FileNotFoundError(
                    f"Inception FID needs the pytorch-fid weights file {self.WEIGHTS_NAME}; pass its path "
                    "(or use the toy-face features for the toy face world)")
            sd = load_state_dict_file(weights_path, f"pytorch-fid Inception ({self.WEIGHTS_NAME})")
            own = self.state_dict()
            missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
            if missing:
                raise ValueError(f"{weights_path}: not the pytorch-fid Inception weights (missing {missing[:3]})")
            self.load_state_dict({k: sd.get(k, v) for k, v in own.items()}, strict=True)
        self.dim = 2048
        self.requires_grad_(False)
        self.eval()

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(img, size=(299, 299), mode="bilinear", align_corners=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return x.mean(dim=[2, 3])
