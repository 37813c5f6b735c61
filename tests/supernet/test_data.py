import gzip
import struct

import numpy as np
import pytest
import torch

from supernet.data import (DataConfig, EpochBatchSampler, augment_batch, fashion_mnist_dir, load_splits,
                           make_loader)
from supernet.errors import DataError


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_fmnist(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (120, 28, 28)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(120) % 10)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (30, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(30) % 10)
    return tmp_path


def test_fashion_mnist_idx_files_are_read_and_split(fake_fmnist):
    s = load_splits(DataConfig(name="fashion-mnist", data_dir=str(fake_fmnist), val_size=20, seed=3))
    assert (len(s.train), len(s.val), len(s.test)) == (100, 20, 30)
    assert (s.in_channels, s.num_classes, s.image_size) == (1, 10, 28)
    x, y = s.train[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= y < 10


def test_fashion_mnist_found_through_env(fake_fmnist, monkeypatch):
    monkeypatch.setenv("NAS_DATA_DIR", str(fake_fmnist))
    assert fashion_mnist_dir(None) == fake_fmnist


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("NAS_DATA_DIR", raising=False)
    monkeypatch.setattr("supernet.data.FASHION_MNIST_DIRS", (str(tmp_path / "nowhere"),))
    with pytest.raises(DataError, match="dataset-fashion-mnist.*NAS_DATA_DIR"):
        load_splits(DataConfig(name="fashion-mnist", data_dir=str(tmp_path)))


def test_validation_split_is_fixed_by_seed_and_disjoint():
    a = load_splits(DataConfig(name="digits", val_size=200, seed=0))
    b = load_splits(DataConfig(name="digits", val_size=200, seed=0))
    c = load_splits(DataConfig(name="digits", val_size=200, seed=1))
    assert torch.equal(a.val.images, b.val.images) and not torch.equal(a.val.images, c.val.images)
    assert len(a.train) + len(a.val) == 1797 - 360 and torch.equal(a.test.images, c.test.images)
    flat_train = {bytes(img.numpy()) for img in a.train.images}
    overlap = sum(bytes(img.numpy()) in flat_train for img in a.val.images)
    assert overlap <= 2  # digits has a few duplicate images, not a shared split


@pytest.mark.parametrize("field,value,match", [("name", "mnist", "data.name"), ("val_size", -1, "data.val_size"),
                                               ("limit_train", 0, "data.limit_train")])
def test_bad_data_config_names_the_field(field, value, match):
    with pytest.raises(DataError, match=match):
        DataConfig.from_dict({field: value})


def test_unknown_data_key_is_refused():
    with pytest.raises(DataError, match="unknown key.*colour"):
        DataConfig.from_dict({"colour": True})


def test_loader_resumes_mid_epoch_and_ranks_share_global_batches():
    full = list(EpochBatchSampler(50, 8, shuffle=True, seed=1, epoch=2, drop_last=True))
    tail = list(EpochBatchSampler(50, 8, shuffle=True, seed=1, epoch=2, start_batch=3, drop_last=True))
    assert tail == full[3:] and len(full) == 6
    other_epoch = list(EpochBatchSampler(50, 8, shuffle=True, seed=1, epoch=3, drop_last=True))
    assert other_epoch != full
    r0 = list(EpochBatchSampler(50, 8, shuffle=True, seed=1, epoch=2, drop_last=True, rank=0, world_size=2))
    r1 = list(EpochBatchSampler(50, 8, shuffle=True, seed=1, epoch=2, drop_last=True, rank=1, world_size=2))
    assert [a + b for a, b in zip(r0, r1)] == full


def test_make_loader_yields_batches():
    s = load_splits(DataConfig(name="digits", val_size=100, limit_train=70))
    batches = list(make_loader(s.train, 32, shuffle=False, max_batches=2))
    assert [len(y) for _, y in batches] == [32, 32] and batches[0][0].shape == (32, 1, 28, 28)


def test_augmentation_is_seeded_and_keeps_shape():
    x = torch.randn(16, 1, 28, 28)
    a = augment_batch(x, torch.Generator().manual_seed(0), pad=2, flip=True)
    b = augment_batch(x, torch.Generator().manual_seed(0), pad=2, flip=True)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    assert torch.equal(augment_batch(x, torch.Generator(), pad=0, flip=False), x)


def test_imagefolder_without_torchvision_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name.startswith("torchvision"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    with pytest.raises(DataError, match="torchvision"):
        load_splits(DataConfig(name="imagefolder", data_dir=str(tmp_path)))
