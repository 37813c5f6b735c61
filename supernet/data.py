"""Data sets for supernet training: Fashion-MNIST (IDX .gz), scikit-learn digits, CIFAR-10 (python batches), and
image folders (`imagefolder`, `imagenet`); a fixed seeded validation split; batch augmentation; resumable loaders.

The small sets are held in memory as uint8 tensors (N, C, H, W), a sample normalised to float on access; image
folders are streamed from disk (`supernet.imagefolder`). Nothing is downloaded: a missing data set raises
`DataError` saying where the files were looked for and how to get them.
"""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from supernet.errors import DataError
from supernet.imagefolder import (LAYOUTS, ImageFiles, collate_skipping, image_root, preprocessing,
                                  require_torchvision, scan)

DATASETS = ("fashion-mnist", "digits", "cifar10", "imagefolder", "imagenet")
STREAMED = tuple(LAYOUTS)  # read from disk per sample, never held in memory
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
_FMNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


@dataclass(frozen=True)
class DataConfig:
    """Which data set, where it lives, and how it is split and augmented.

    `val_size`: images held out of the training set (fixed by `seed`) for BN recalibration, validation and search;
    `limit_train` / `limit_test`: keep only the first N (after shuffling by `seed`) for quick runs;
    `image_size`: side in px that image-folder images are preprocessed to (other data sets keep their native size).
    """

    name: str = "fashion-mnist"
    data_dir: str | None = None
    val_size: int = 5000
    seed: int = 0
    limit_train: int | None = None
    limit_test: int | None = None
    augment: bool = True
    image_size: int = 32

    def __post_init__(self) -> None:
        if self.name not in DATASETS:
            raise DataError(f"field 'data.name' = {self.name!r} is not allowed; allowed: {', '.join(DATASETS)}")
        for key in ("val_size", "seed"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise DataError(f"field 'data.{key}' must be an integer >= 0, got {v!r}")
        for key in ("limit_train", "limit_test"):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise DataError(f"field 'data.{key}' must be a positive integer or null, got {v!r}")
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 8:
            raise DataError(f"field 'data.image_size' must be an integer >= 8 px, got {self.image_size!r}")
        if not isinstance(self.augment, bool):
            raise DataError(f"field 'data.augment' must be true or false, got {self.augment!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "DataConfig":
        data = dict(data or {})
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise DataError(f"data has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        if data.get("data_dir") is not None:
            data["data_dir"] = str(data["data_dir"])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ImageTensors(Dataset):
    """In-memory images (uint8, N×C×H×W) and labels; a sample is (normalised float image, label)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise DataError(f"images must be a uint8 N×C×H×W tensor, got {images.dtype} {tuple(images.shape)}")
        self.images, self.labels = images, labels.long()
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return (self.images[i].float().div_(255) - self.mean) / self.std, int(self.labels[i])

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch at once (the DataLoader uses this and skips per-sample collation)."""
        index = torch.as_tensor(idx, dtype=torch.long)
        return (self.images[index].float().div_(255) - self.mean) / self.std, self.labels[index]

    def subset(self, index: torch.Tensor) -> "ImageTensors":
        out = ImageTensors.__new__(ImageTensors)
        out.images, out.labels, out.mean, out.std = self.images[index], self.labels[index], self.mean, self.std
        return out


@dataclass
class Splits:
    """Train / validation (held out of train, fixed by seed) / test data sets and what the model needs to know."""

    train: Dataset
    val: Dataset
    test: Dataset
    in_channels: int
    num_classes: int
    image_size: int
    flip: bool  # horizontal flips are label-preserving (clothes, objects; not digits)
    pad: int  # random-crop padding in px for augmentation
    preprocessing: dict[str, Any] | None = None  # streamed image folders: what is done to an image (resize, crop, norm)

    @property
    def mean(self) -> tuple[float, ...]:
        return tuple(self.train.mean.reshape(-1).tolist()) if torch.is_tensor(self.train.mean) else self.train.mean

    @property
    def std(self) -> tuple[float, ...]:
        return tuple(self.train.std.reshape(-1).tolist()) if torch.is_tensor(self.train.std) else self.train.std

    def at_resolution(self, r: int) -> "Splits":
        """These splits with streamed images preprocessed for `r` px (in-memory sets are resized per batch)."""
        if self.preprocessing is None:
            return self
        return Splits(*(at_resolution(d, r) for d in (self.train, self.val, self.test)), self.in_channels,
                      self.num_classes, r, self.flip, self.pad, {**self.preprocessing, "image_size": r})


def at_resolution(dataset: Dataset, r: int) -> Dataset:
    """`dataset` preprocessed for `r` px where it is streamed (OFA's crop per resolution); otherwise as it is."""
    return dataset.at_resolution(r) if isinstance(dataset, ImageFiles) else dataset


# ------------------------------------------------------------------------------------------------ readers
def _read_idx_gz(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(dims)


def fashion_mnist_dir(data_dir: str | None) -> Path:
    """The first folder holding the four Fashion-MNIST files: `data_dir`, $NAS_DATA_DIR, Debian's folder."""
    candidates = [data_dir, os.environ.get("NAS_DATA_DIR"), *FASHION_MNIST_DIRS]
    tried = []
    for c in candidates:
        if not c:
            continue
        for p in (Path(c), Path(c) / "fashion-mnist"):
            tried.append(str(p))
            if all((p / f).is_file() for pair in _FMNIST_FILES.values() for f in pair):
                return p
    need = ", ".join(f for pair in _FMNIST_FILES.values() for f in pair)
    raise DataError(f"Fashion-MNIST not found (looked in: {', '.join(tried)}). Install Debian's package "
                    f"(apt-get install dataset-fashion-mnist), or put the four files {need} from "
                    f"https://github.com/zalandoresearch/fashion-mnist into a folder and pass --data-dir or set "
                    f"NAS_DATA_DIR")


def _fashion_mnist(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    root = fashion_mnist_dir(cfg.data_dir)
    out = []
    for split in ("train", "test"):
        images, labels = (_read_idx_gz(root / f) for f in _FMNIST_FILES[split])
        out += [images[:, None], labels.astype(np.int64)]
    return out[0], out[1], out[2], out[3]


def _digits(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    # 8×8 images with values 0..16, upsampled once to 28×28 so the tiny spaces see MNIST-sized inputs.
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False).clamp_(0, 1)
    images = (x * 255).round().to(torch.uint8).numpy()
    labels = d.target.astype(np.int64)
    perm = np.random.default_rng(1797).permutation(len(labels))  # fixed test split, independent of cfg.seed
    test, train = perm[:360], perm[360:]
    return images[train], labels[train], images[test], labels[test]


def _cifar10(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    roots = [Path(p) for p in (cfg.data_dir, os.environ.get("NAS_DATA_DIR")) if p]
    for root in roots:
        for p in (root, root / "cifar-10-batches-py"):
            if (p / "data_batch_1").is_file() and (p / "test_batch").is_file():
                def load(name: str) -> tuple[np.ndarray, np.ndarray]:
                    with open(p / name, "rb") as f:
                        batch = pickle.load(f, encoding="bytes")
                    return (np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32),
                            np.asarray(batch[b"labels"], dtype=np.int64))

                parts = [load(f"data_batch_{i}") for i in range(1, 6)]
                tx, ty = load("test_batch")
                return (np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts]), tx, ty)
    raise DataError(f"CIFAR-10 python batches not found (looked in: {', '.join(map(str, roots)) or 'nothing'}); "
                    "unpack cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and pass "
                    "--data-dir (or data.data_dir) pointing at cifar-10-batches-py")


# ------------------------------------------------------------------------------------------------ splits
def _stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.astype(np.float32) / 255.0
    return tuple(float(v) for v in x.mean((0, 2, 3))), tuple(float(v) for v in x.std((0, 2, 3)) + 1e-6)


def _split_indices(cfg: DataConfig, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) positions: validation a random `val_size` of the training set, fixed by the seed
    (in random order); `limit_train` / `limit_test` keep a seeded random share."""
    if cfg.val_size >= n_train:
        raise DataError(f"field 'data.val_size' = {cfg.val_size} must be below the {n_train} training images")
    perm = np.random.default_rng(cfg.seed).permutation(n_train)
    val_idx, train_idx = perm[:cfg.val_size], perm[cfg.val_size:]
    if cfg.limit_train:
        train_idx = train_idx[:cfg.limit_train]
    test_idx = np.arange(n_test)
    if cfg.limit_test:
        test_idx = np.random.default_rng(cfg.seed + 1).permutation(n_test)[:cfg.limit_test]
    return train_idx, val_idx, test_idx


def load_splits(cfg: DataConfig) -> Splits:
    """Read the data set named by `cfg` and split it: train (minus val), val (fixed by `cfg.seed`), test."""
    if cfg.name in STREAMED:
        return _streamed_splits(cfg)
    flip, pad = True, 4
    if cfg.name == "fashion-mnist":
        tx, ty, sx, sy = _fashion_mnist(cfg)
        pad = 2
    elif cfg.name == "digits":
        tx, ty, sx, sy = _digits(cfg)
        flip, pad = False, 2
    else:
        tx, ty, sx, sy = _cifar10(cfg)
    train_idx, val_idx, test_idx = _split_indices(cfg, len(ty), len(sy))
    mean, std = _stats(tx[train_idx])

    def ds(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> ImageTensors:
        idx = np.sort(idx)
        return ImageTensors(torch.from_numpy(np.ascontiguousarray(x[idx])), torch.from_numpy(y[idx]), mean, std)

    num_classes = int(max(ty.max(), sy.max())) + 1
    return Splits(ds(tx, ty, train_idx), ds(tx, ty, val_idx), ds(sx, sy, test_idx), int(tx.shape[1]),
                  num_classes, int(tx.shape[-1]), flip, pad)


def _streamed_splits(cfg: DataConfig) -> Splits:
    """Image folders as file lists: validation a fixed random subset of train (by index), nothing decoded yet."""
    require_torchvision()
    root = image_root(cfg.name, cfg.data_dir)
    train_split, test_split = LAYOUTS[cfg.name]
    train, classes = scan(root, train_split)
    test, test_classes = scan(root, test_split)
    if test_classes != classes:
        raise DataError(f"field 'data.data_dir': {root / train_split} and {root / test_split} list different classes")
    train_idx, val_idx, test_idx = _split_indices(cfg, len(train), len(test))
    train_idx = np.sort(train_idx)  # the validation files stay in random order: its first N are a random subset
    r = cfg.image_size

    def files(samples: list, idx: np.ndarray, train_mode: bool) -> ImageFiles:
        return ImageFiles([samples[i] for i in idx], classes, r, train=train_mode and cfg.augment)

    # augmentation is the train transform's (RandomResizedCrop + flip), so no padding or flips per batch
    return Splits(files(train, train_idx, True), files(train, val_idx, False), files(test, test_idx, False), 3,
                  len(classes), r, False, 0, preprocessing(r))


# ------------------------------------------------------------------------------------------------ loading
class EpochBatchSampler(Sampler[list[int]]):
    """Batches of one epoch, shuffled by (seed, epoch) alone, so a resumed run sees the same batches.

    With `world_size` > 1 each rank takes its contiguous share of every global batch (`batch_size` is the global
    batch); `start_batch` skips the batches an interrupted run already did; `max_batches` caps the epoch.
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int = 0, epoch: int = 0,
                 start_batch: int = 0, max_batches: int | None = None, drop_last: bool = False,
                 rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise DataError(f"batch size {batch_size} must be divisible by the {world_size} processes")
        self.n, self.batch_size, self.shuffle, self.seed, self.epoch = n, batch_size, shuffle, seed, epoch
        self.start_batch, self.max_batches, self.drop_last = start_batch, max_batches, drop_last
        self.rank, self.world_size = rank, world_size

    def num_batches(self) -> int:
        full = self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)
        return full if self.max_batches is None else min(full, self.max_batches)

    def __len__(self) -> int:
        return max(0, self.num_batches() - self.start_batch)

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        share = self.batch_size // self.world_size
        for b in range(self.start_batch, self.num_batches()):
            batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield batch[self.rank * share:(self.rank + 1) * share] if self.world_size > 1 else batch


def _identity(batch):  # noqa: ANN001, ANN202
    return batch


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, seed: int = 0, workers: int = 0,
                epoch: int = 0, start_batch: int = 0, max_batches: int | None = None, drop_last: bool = False,
                rank: int = 0, world_size: int = 1, pin_memory: bool = False) -> DataLoader:
    """A DataLoader yielding (images float N×C×H×W, labels) batches in an order fixed by (seed, epoch)."""
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                                start_batch=start_batch, max_batches=max_batches, drop_last=drop_last,
                                rank=rank, world_size=world_size)
    batched = hasattr(dataset, "__getitems__")
    collate = _identity if batched else collate_skipping if isinstance(dataset, ImageFiles) else None
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      collate_fn=collate, persistent_workers=False)


def augment_batch(x: torch.Tensor, generator: torch.Generator, *, pad: int, flip: bool, offset: int = 0,
                  total: int | None = None) -> torch.Tensor:
    """Random crop after zero padding by `pad` px and (if `flip`) random horizontal flips, per image.

    The draws are made for a global batch of `total` images (default: this batch) and images `offset`... of it are
    augmented here, so K data-parallel processes sharing one generator seed augment as one process would.
    """
    n, _, h, w = x.shape
    total = n if total is None else total
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (total,), generator=generator)[offset:offset + n]
        dx = torch.randint(0, 2 * pad + 1, (total,), generator=generator)[offset:offset + n]
        rows = (dy[:, None] + torch.arange(h)[None, :]).to(x.device)  # (n, h)
        cols = (dx[:, None] + torch.arange(w)[None, :]).to(x.device)  # (n, w)
        idx_n = torch.arange(n, device=x.device)[:, None, None, None]
        idx_c = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[idx_n, idx_c, rows[:, None, :, None], cols[:, None, None, :]]
    if flip:
        mask = (torch.rand(total, generator=generator)[offset:offset + n] < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x


__all__ = ["DataConfig", "Splits", "ImageTensors", "ImageFiles", "load_splits", "make_loader", "augment_batch",
           "at_resolution", "EpochBatchSampler", "fashion_mnist_dir", "DATASETS", "STREAMED"]
