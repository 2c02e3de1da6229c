"""Training data for StyleGAN2 (thesis ch. 5.3.1): an image folder or zip at any resolution
(centre crop + resize), or the toy face world, and the endless sharded stream of real batches."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["IMAGE_EXTS", "ImageFolderDataset", "ToyFaceImages", "make_dataset", "ShardedInfiniteSampler",
           "real_batches"]

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def _to_tensor(img, resolution: int) -> torch.Tensor:
    """PIL image -> centre-cropped square, resized to ``resolution``, [3, R, R] in [-1, 1]."""
    from PIL import Image

    img = img.convert("RGB")
    w, h = img.size
    s = min(w, h)
    if w != h:
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if s != resolution:
        img = img.resize((resolution, resolution), Image.LANCZOS)
    a = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    return a.float().div_(127.5).sub_(1.0)


class ImageFolderDataset(torch.utils.data.Dataset):
    """Every image under a folder (recursively) or inside a .zip, at any size: centre crop to a
    square, resize to ``resolution`` (Lanczos), values in [-1, 1]."""

    def __init__(self, path, resolution: int):
        self.path = os.fspath(path)
        self.resolution = resolution
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"training data not found: {self.path}")
        self._zip = None
        if os.path.isfile(self.path):
            if not zipfile.is_zipfile(self.path):
                raise ValueError(f"data must be a folder of images or a .zip of images, got file {self.path}")
            with zipfile.ZipFile(self.path) as zf:
                self.files = sorted(n for n in zf.namelist() if n.lower().endswith(IMAGE_EXTS))
        else:
            self.files = sorted(str(p.relative_to(self.path)) for p in Path(self.path).rglob("*")
                                if p.suffix.lower() in IMAGE_EXTS)
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTS)}) found in {self.path}")

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        if os.path.isfile(self.path):
            if self._zip is None:
                self._zip = zipfile.ZipFile(self.path)
            with self._zip.open(self.files[i]) as f:
                img = Image.open(io.BytesIO(f.read()))
                img.load()
        else:
            img = Image.open(os.path.join(self.path, self.files[i]))
            img.load()
        return _to_tensor(img, self.resolution)

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_zip"] = None
        return d


class ToyFaceImages(torch.utils.data.Dataset):
    """Images of ``fe_fast.datasets.toyfaces.ToyFaces`` (rendered at max(16, resolution), average
    pooled below 16). All ``n`` faces are rendered once, up front (``progress`` shows a bar), and kept
    as one uint8 tensor ``images`` [n, 3, R, R]: rendering on first access cost about 1-15 ms per
    face inside the timed training loop; :meth:`batch` gathers a whole minibatch with one index."""

    def __init__(self, n: int, resolution: int, seed: int = 0, progress: bool = False):
        from fe_fast.datasets.toyfaces import BINARY_ATTRIBUTES, ToyFaces  # lazy: another package, heavy import

        self.resolution = resolution
        self.faces = ToyFaces(n, size=max(16, resolution), seed=seed)
        size = self.faces.size
        images = torch.empty(len(self.faces), 3, size, size, dtype=torch.uint8)
        it = range(len(self.faces))
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc=f"rendering {len(self.faces)} toy faces", unit="img")
        for i in it:
            images[i] = torch.from_numpy(self.faces.render(i).image).permute(2, 0, 1)
        #: the 13 binary attributes per face (float 0/1), for the critic's optional attribute head
        self.labels = torch.from_numpy(self.faces.attributes[:, :len(BINARY_ATTRIBUTES)]).float()
        if size != resolution:
            pooled = F.adaptive_avg_pool2d(images.float(), resolution)
            images = pooled.round().clamp(0, 255).to(torch.uint8)
        self.images = images

    def __len__(self):
        return len(self.faces)

    def batch(self, indices) -> torch.Tensor:
        """Images ``indices`` as float [len, 3, R, R] in [-1, 1]."""
        return self.images[torch.as_tensor(indices, dtype=torch.long)].float().div_(127.5).sub_(1.0)

    def __getitem__(self, i):
        return self.images[i].float().div(127.5).sub(1.0)


def make_dataset(cfg, progress: bool = False):
    """The dataset of ``cfg`` (a ``TrainConfig``): toy faces or an image folder / zip."""
    data = cfg.dataset
    if data.source == "toyfaces":
        return ToyFaceImages(data.toy_images, data.resolution, seed=cfg.seed, progress=progress)
    return ImageFolderDataset(data.source, data.resolution)


class ShardedInfiniteSampler(torch.utils.data.Sampler):
    """Endless seeded permutations; process ``rank`` of ``world`` takes every world-th index."""

    def __init__(self, n: int, rank: int, world: int, seed: int, start: int = 0):
        self.n, self.rank, self.world, self.seed, self.start = n, rank, world, seed, start

    def __iter__(self):
        epoch, k = divmod(self.start, max(1, self.n // self.world))
        while True:
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
            mine = perm[self.rank::self.world].tolist()[: max(1, self.n // self.world)]
            for i in mine[k:]:
                yield i
            epoch, k = epoch + 1, 0


def real_batches(dataset, cfg, rank: int, world: int, local_batch: int, img_seen: int = 0):
    """A function returning the next (real images [local_batch, 3, R, R], attributes or None) of
    this process's shard, continuing a run that has shown ``img_seen`` images. Pre-rendered toy
    faces (``dataset.batch``) are gathered with one index per batch; other data go through a
    ``DataLoader`` with ``cfg.dataset.workers`` workers."""
    sampler = ShardedInfiniteSampler(len(dataset), rank, world, cfg.seed,
                                     start=img_seen // cfg.opt.batch * local_batch)
    if hasattr(dataset, "batch") and cfg.dataset.workers == 0:
        indices = iter(sampler)
        with_labels = cfg.D.attr_weight > 0

        def next_real():
            idx = [next(indices) for _ in range(local_batch)]
            return dataset.batch(idx), (dataset.labels[idx] if with_labels else None)
    else:
        loader = iter(torch.utils.data.DataLoader(dataset, batch_size=local_batch, sampler=sampler,
                                                  num_workers=cfg.dataset.workers, drop_last=True))

        def next_real():
            return next(loader), None
    return next_real
