import pytest
import torch
from torch import nn

from supernet import SearchSpace, Supernet
from supernet.data import DataConfig, load_splits, make_loader
from supernet.evaluate import evaluate, predict_logits, recalibrate_bn, resize_to


@pytest.fixture(scope="module")
def digits():
    return load_splits(DataConfig(name="digits", val_size=100, limit_train=256))


def test_resize_to():
    x = torch.randn(2, 1, 28, 28)
    assert resize_to(x, 28) is x and resize_to(x, 24).shape == (2, 1, 24, 24)


def test_recalibration_is_the_exact_average_over_images():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    data = torch.randn(96, 1, 8, 8)
    loader = [(data[i:i + 32], torch.zeros(32)) for i in range(0, 96, 32)]
    recalibrate_bn(net, None, loader, n_images=96)
    feats = net[0](data)
    assert torch.allclose(net[1].running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    assert not net.training and net[1].momentum == 0.1


def test_supernet_and_extracted_subnet_agree_after_recalibration(digits):
    torch.manual_seed(0)
    space = SearchSpace.preset("tiny-mbv3")
    net = Supernet(space)
    arch = space.sample(3)
    calib = make_loader(digits.train, 64, shuffle=False)
    val = make_loader(digits.val, 50, shuffle=False)
    recalibrate_bn(net, arch, calib, n_images=128)
    static = net.extract(arch)
    a, _ = predict_logits(net, arch, val)
    b, labels = predict_logits(static, arch, val)
    assert torch.allclose(a, b, atol=1e-4)
    acc = evaluate(net, arch, val)
    assert 0.0 <= acc <= 1.0 and acc == pytest.approx(float((a.argmax(1) == labels).float().mean()))
    assert net.active == space.largest()  # the active arch is restored


def test_recalibration_changes_only_the_arch_channels(digits):
    space = SearchSpace.preset("tiny-mbv3")
    net = Supernet(space)
    small = space.smallest()
    before = net.blocks[0].expand_bn.running_mean.clone()
    recalibrate_bn(net, small, make_loader(digits.train, 64, shuffle=False), n_images=64)
    after = net.blocks[0].expand_bn.running_mean
    mid = net.blocks[0].mid_channels(small.e[0])
    assert not torch.equal(after[:mid], before[:mid]) and torch.equal(after[mid:], before[mid:])


def test_load_run_refuses_a_device_it_cannot_use(trained_tiny_run):
    from supernet.config import ConfigError
    from supernet.run import load_run

    with pytest.raises(ConfigError, match="not a torch device; allowed: cpu, cuda"):
        load_run(trained_tiny_run, "gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is available here; use cpu"):
            load_run(trained_tiny_run, "cuda")
