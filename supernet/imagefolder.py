"""Image folders streamed from disk (torchvision `ImageFolder`'s file list, decoded per sample in DataLoader
workers), with once-for-all's ImageNet preprocessing: memory stays flat however many images there are.

Layouts: `imagefolder` is `train/<class>/...` and `test/<class>/...`; `imagenet` is ImageNet's standard
`train/<wnid>/...` and `val/<wnid>/...` (the `val` folder is the test split here; the validation split that BN
recalibration and search use is a fixed random subset of `train`, drawn by index, as OFA does).

Preprocessing (OFA's `ImagenetDataProvider`): evaluation Resize(ceil(r / 0.875)) + CenterCrop(r); training
RandomResizedCrop(r) + horizontal flip; then the fixed ImageNet mean and std. An image that cannot be decoded (a
truncated or corrupt file) is skipped with a warning naming the file; its batch is one image shorter.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from supernet.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_RATIO = 0.875  # OFA: evaluation resizes to r / 0.875, then crops r
LAYOUTS = {"imagefolder": ("train", "test"), "imagenet": ("train", "val")}


def preprocessing(image_size: int) -> dict[str, Any]:
    """What a streamed run does to an image, as recorded in the run, its bundles' cards and ONNX metadata."""
    return {"name": "ofa-imagenet", "eval": f"Resize(ceil(r / {CROP_RATIO})) + CenterCrop(r)",
            "train": "RandomResizedCrop(r) + RandomHorizontalFlip", "image_size": image_size,
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "color": "RGB", "scale": "1/255"}


def require_torchvision():  # noqa: ANN202
    try:
        from torchvision import transforms
    except ImportError:
        raise DataError("streamed image folders need torchvision: pip install torchvision (the torch/torchvision "
                        "pair `make setup` installs)") from None
    return transforms


class ImageFiles(Dataset):
    """Labelled image files, decoded and preprocessed at `resolution` px when a sample is read.

    `train`: training augmentation (RandomResizedCrop + flip) instead of the evaluation crop. `mean`/`std`: the
    normalisation applied (ImageNet's). A sample whose file cannot be decoded is None (see `collate_skipping`).
    """

    mean = IMAGENET_MEAN
    std = IMAGENET_STD

    def __init__(self, samples: list[tuple[str, int]], classes: list[str], resolution: int, *, train: bool):
        self.samples, self.classes, self.resolution, self.train = samples, classes, int(resolution), train
        self._tf = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self) -> dict[str, Any]:  # the transform is rebuilt in each worker
        return {**self.__dict__, "_tf": None}

    def transform(self):  # noqa: ANN201
        if self._tf is None:
            t = require_torchvision()
            r = self.resolution
            size = [t.RandomResizedCrop(r), t.RandomHorizontalFlip()] if self.train else \
                [t.Resize(int(math.ceil(r / CROP_RATIO))), t.CenterCrop(r)]
            self._tf = t.Compose([*size, t.ToTensor(), t.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
        return self._tf

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int] | None:
        path, label = self.samples[i]
        try:
            from PIL import Image

            with open(path, "rb") as f:
                image = Image.open(f).convert("RGB")
        except (OSError, ValueError, SyntaxError) as exc:  # PIL raises these for truncated or corrupt files
            warnings.warn(f"skipping unreadable image {path}: {exc}", stacklevel=2)
            return None
        return self.transform()(image), label

    def subset(self, index: Any) -> "ImageFiles":
        """The samples at `index` (a tensor, array or list of positions), same preprocessing."""
        picked = [self.samples[int(i)] for i in torch.as_tensor(index).reshape(-1).tolist()]
        return ImageFiles(picked, self.classes, self.resolution, train=self.train)

    def at_resolution(self, r: int) -> "ImageFiles":
        """The same images preprocessed for `r` px (OFA resizes and crops per resolution, it never rescales)."""
        return self if r == self.resolution else ImageFiles(self.samples, self.classes, r, train=self.train)


def collate_skipping(batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (image, label) samples, leaving out the unreadable ones (None)."""
    kept = [s for s in batch if s is not None]
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.stack([x for x, _ in kept]), torch.tensor([y for _, y in kept], dtype=torch.long)


def image_root(name: str, data_dir: str | None) -> Path:
    """The folder holding `name`'s split folders: `data_dir`, else $NAS_DATA_DIR (or its `imagenet/`)."""
    split = LAYOUTS[name][0]
    candidates = [Path(data_dir)] if data_dir else []
    if not data_dir and os.environ.get("NAS_DATA_DIR"):
        env = Path(os.environ["NAS_DATA_DIR"])
        candidates += [env / "imagenet", env] if name == "imagenet" else [env]
    for c in candidates:
        if (c / split).is_dir():
            return c
    layout = "/".join(f"{s}/<class>/<image>" for s in LAYOUTS[name])
    where = ", ".join(map(str, candidates)) or "nowhere (no --data-dir / data.data_dir, no $NAS_DATA_DIR)"
    raise DataError(f"field 'data.data_dir': {name} data needs {layout} (looked in: {where})")


def scan(root: Path, split: str) -> tuple[list[tuple[str, int]], list[str]]:
    """(path, class index) of every image under `root/split/<class>/`, and the class names (torchvision's scan)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    folder = root / split
    if not folder.is_dir():
        raise DataError(f"field 'data.data_dir': {folder} is missing (needs {split}/<class>/<image>)")
    try:
        classes, to_idx = find_classes(str(folder))
        samples = make_dataset(str(folder), to_idx, extensions=IMG_EXTENSIONS)
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"field 'data.data_dir': {folder}: {exc}") from None
    return samples, classes


__all__ = ["ImageFiles", "require_torchvision", "collate_skipping", "image_root", "scan", "preprocessing", "IMAGENET_MEAN", "IMAGENET_STD",
           "LAYOUTS", "CROP_RATIO"]
