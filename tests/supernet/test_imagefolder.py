"""Image folders are streamed: a few hundred generated JPEGs read lazily through DataLoader workers with OFA's
preprocessing; the validation split is a fixed random subset; an unreadable JPEG is skipped with a warning naming
it (never a crash)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imagefiles import write_image_folder
from supernet.data import DataConfig, ImageFiles, load_splits, make_loader
from supernet.errors import DataError
from supernet.imagefolder import IMAGENET_MEAN, IMAGENET_STD

pytest.importorskip("torchvision", reason="torchvision is not installed")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("imgs"), {"train": 70, "test": 10}, classes=3, size=40)


def test_splits_are_file_lists_with_a_random_validation_subset(folder):
    cfg = DataConfig(name="imagefolder", data_dir=str(folder), val_size=30, image_size=32, seed=3)
    s = load_splits(cfg)
    assert isinstance(s.train, ImageFiles) and (len(s.train), len(s.val), len(s.test)) == (180, 30, 30)
    assert s.num_classes == 3 and s.in_channels == 3 and s.preprocessing["mean"] == list(IMAGENET_MEAN)
    assert not {p for p, _ in s.train.samples} & {p for p, _ in s.val.samples}
    # the first 10 validation images (what --val-images 10 takes) span the classes: a random subset, not a prefix
    assert len({y for _, y in s.val.samples[:10]}) > 1
    assert load_splits(cfg).val.samples == s.val.samples  # fixed by the seed
    x, y = next(iter(make_loader(s.val, 8, shuffle=False, workers=2)))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.long
    # eval preprocessing: Resize(ceil(r / 0.875)) + CenterCrop(r), then ImageNet normalisation
    big = s.at_resolution(56)
    assert big.val[0][0].shape == (3, 56, 56) and big.image_size == 56 and big.val.samples == s.val.samples
    raw = (big.val[0][0] * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1))
    assert 0 <= raw.min() and raw.max() <= 1 + 1e-6
    assert s.train.train and not s.val.train and s.flip is False and s.pad == 0  # augmentation is the transform's


def test_an_unreadable_jpeg_is_skipped_with_a_warning_naming_it(folder, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(folder, root)
    bad = sorted((root / "test").rglob("*.jpg"))[0]
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    s = load_splits(DataConfig(name="imagefolder", data_dir=str(root), val_size=30, image_size=32))
    with pytest.warns(UserWarning, match=f"skipping unreadable image {bad}"):
        batches = list(make_loader(s.test, 16, shuffle=False))
    assert sum(len(y) for _, y in batches) == len(s.test) - 1


def test_imagenet_layout_and_missing_folders(folder, tmp_path, monkeypatch):
    with pytest.raises(DataError, match="data.data_dir.*val/<class>"):
        load_splits(DataConfig(name="imagenet", data_dir=str(folder)))  # train/ and test/, not ImageNet's val/
    inet = write_image_folder(tmp_path / "imagenet", {"train": 4, "val": 2}, classes=2, size=24)
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path))
    s = load_splits(DataConfig(name="imagenet", val_size=2, image_size=24))  # $NAS_DATA_DIR/imagenet
    assert (len(s.train), len(s.val), len(s.test)) == (6, 2, 4) and s.test.classes == ["n00000000", "n00000001"]
    assert np.all([p.startswith(str(inet / "val")) for p, _ in s.test.samples])
