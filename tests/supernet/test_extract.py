"""Extraction: a static subnet computes exactly what the supernet computes for that arch; sorting, the kernel
transformation, elastic BN and the "no hidden state changes" rule."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from supernet import SearchSpace, Supernet
from supernet.layers import ElasticMBConv, MBConv


pytestmark = pytest.mark.usefixtures("one_thread")


def randomise(net: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial state everywhere extraction must copy: BN running stats and affine, SE and classifier
    biases, and kernel-transformation matrices away from identity (else equality would prove little)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
            elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            if isinstance(m, ElasticMBConv):
                for p in m.kernel_transforms.values():
                    p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return net


@pytest.fixture(scope="module")
def tiny():
    space = SearchSpace.preset("tiny-mbv3")
    return space, randomise(Supernet(space), 1).eval()


def _max_diff(net: Supernet, arch, x: torch.Tensor) -> float:
    with torch.no_grad(), net.activated(arch):
        y = net(x)
        z = net.extract(arch).eval()(x)
    assert y.shape == z.shape == (x.shape[0], net.space.num_classes)
    return float((y - z).abs().max())


def test_extract_matches_supernet_on_largest_smallest_and_random_tiny_archs(tiny):
    space, net = tiny
    archs = [space.largest(), space.smallest()] + space.sample_many(52, 7)
    assert len(set(archs)) > 50
    for arch in archs:
        x = torch.randn(2, space.in_channels, arch.r, arch.r, generator=torch.Generator().manual_seed(arch.r))
        assert _max_diff(net, arch, x) <= 1e-5, arch


@pytest.mark.parametrize("name", ["ofa-mbv3-w1.0", "ofa-mbv3-w1.2"])
def test_extract_matches_supernet_on_ofa_spaces(name):
    space = SearchSpace.preset(name)
    net = randomise(Supernet(space), 2).eval()
    # Small resolutions keep this fast; the function of the weights does not depend on the input size.
    archs = [space.largest(r=64), space.smallest(r=48)] + [a.__class__(a.ks, a.e, a.d, 40)
                                                            for a in space.sample_many(3, 3)]
    for arch in archs:
        x = torch.randn(1, 3, arch.r, arch.r)
        assert _max_diff(net, arch, x) <= 1e-5, arch


def test_extracted_model_is_static_and_owns_its_weights(tiny):
    space, net = tiny
    arch = space.sample(11)
    sub = net.extract(arch)
    assert not any(isinstance(m, ElasticMBConv) for m in sub.modules())
    assert sum(isinstance(m, MBConv) for m in sub.blocks) == sum(arch.d)
    supernet_ptrs = {p.data_ptr() for p in net.parameters()}
    assert all(p.data_ptr() not in supernet_ptrs for p in sub.parameters())
    # Expanded widths are OFA's make_divisible(round(cin * e), 8).
    for block, i in zip(sub.blocks, arch.active_blocks()):
        slot = space.slots[i]
        assert block.depthwise[0].weight.shape[0] == space.mid_channels(slot.in_channels, arch.e[i])
        assert block.depthwise[0].weight.shape[-1] == arch.ks[i]


def test_extract_leaves_supernet_unchanged_and_activated_restores(tiny):
    space, net = tiny
    before = {k: v.clone() for k, v in net.state_dict().items()}
    active, training = net.active, net.training
    arch = space.sample(5)
    net.extract(arch)
    with net.activated(arch):
        assert net.active == arch
    assert net.active == active and net.training == training
    with pytest.raises(RuntimeError):
        with net.activated(space.smallest()):
            raise RuntimeError("boom")
    assert net.active == active
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_set_active_validates():
    space = SearchSpace.preset("tiny-mbv3")
    net = Supernet(space)
    bad = space.largest().__class__((4,) * space.num_blocks, space.largest().e, space.largest().d, 28)
    with pytest.raises(ValueError, match="ks"):
        net.set_active(bad)
    assert net.active == space.largest()


def test_kernel_transformation_matches_ofa():
    """OFA's DynamicSeparableConv2d: start from the 7x7 weight, take the centre 5x5, flatten it and apply
    F.linear(x, M_7to5) (x @ M.T), then the centre 3x3 of that through M_5to3."""
    torch.manual_seed(0)
    block = ElasticMBConv(16, 16, (3, 5, 7), (3, 4, 6), 1, "relu", False)
    with torch.no_grad():
        for p in block.kernel_transforms.values():
            p.copy_(torch.randn(p.shape))
    w = block.dw_weight.detach()
    m75, m53 = block.kernel_transforms["7to5"].detach(), block.kernel_transforms["5to3"].detach()
    k5 = (w[:, :, 1:6, 1:6].reshape(-1, 25) @ m75.T).reshape(-1, 1, 5, 5)
    k3 = (k5[:, :, 1:4, 1:4].reshape(-1, 9) @ m53.T).reshape(-1, 1, 3, 3)
    assert torch.allclose(block.depthwise_kernel(5), k5, atol=1e-6)
    assert torch.allclose(block.depthwise_kernel(3), k3, atol=1e-6)
    assert torch.equal(block.depthwise_kernel(7), block.dw_weight)
    # The matrices start as identity: a fresh block's 3x3 kernel is the plain centre crop.
    fresh = ElasticMBConv(16, 16, (3, 5, 7), (3, 4, 6), 1, "relu", False)
    assert torch.equal(fresh.depthwise_kernel(3), fresh.dw_weight[:, :, 2:5, 2:5])
    # Gradients reach both the 7x7 weight and the transformation matrices.
    block.depthwise_kernel(3).sum().backward()
    assert block.dw_weight.grad is not None and block.kernel_transforms["5to3"].grad.abs().sum() > 0


def test_sort_channels_keeps_largest_function_and_permutes(tiny):
    space, _ = tiny
    net = randomise(Supernet(space), 3).eval()
    x = torch.randn(2, space.in_channels, 28, 28)
    largest = space.largest(r=28)
    small = space.smallest(r=28)
    with torch.no_grad(), net.activated(largest):
        y0 = net(x)
    with torch.no_grad(), net.activated(small):
        s0 = net(x)
    w0 = net.blocks[0].project_conv.weight.clone()
    net.sort_channels()
    w1 = net.blocks[0].project_conv.weight
    assert not torch.equal(w0, w1)  # it really reordered channels
    imp = w1.abs().sum(dim=(0, 2, 3))
    assert torch.all(imp[:-1] >= imp[1:])  # most important first
    with torch.no_grad(), net.activated(largest):
        assert torch.allclose(net(x), y0, atol=1e-5)
    with torch.no_grad(), net.activated(small):
        assert not torch.allclose(net(x), s0, atol=1e-3)  # smaller subnets now keep other channels
    # Extraction still matches after sorting.
    assert _max_diff(net, space.sample(4), torch.randn(1, space.in_channels, 28, 28)) <= 1e-5


def test_elastic_bn_updates_only_active_channels_in_training():
    space = SearchSpace.preset("tiny-mbv3")
    net = Supernet(space).train()
    arch = space.smallest(r=28)
    block = net.blocks[0]
    mid = space.mid_channels(space.slots[0].in_channels, arch.e[0])
    assert mid < block.expand_bn.num_features
    mean0, var0 = block.expand_bn.running_mean.clone(), block.expand_bn.running_var.clone()
    tracked0 = int(block.expand_bn.num_batches_tracked)
    with net.activated(arch):
        net(torch.randn(4, space.in_channels, 28, 28))
    mean1, var1 = block.expand_bn.running_mean, block.expand_bn.running_var
    assert not torch.allclose(mean1[:mid], mean0[:mid]) and not torch.allclose(var1[:mid], var0[:mid])
    assert torch.equal(mean1[mid:], mean0[mid:]) and torch.equal(var1[mid:], var0[mid:])
    assert int(block.expand_bn.num_batches_tracked) == tracked0 + 1
    # With momentum None, sliced BN keeps a cumulative average as nn.BatchNorm2d does.
    block.expand_bn.momentum = None
    x = torch.randn(4, space.in_channels, 28, 28)
    before = block.expand_bn.running_mean[:mid].clone()
    n = int(block.expand_bn.num_batches_tracked) + 1
    with net.activated(arch):
        net.stem.train()
        feats = net.first(net.stem(x))
        batch_mean = F.conv2d(feats, block.expand_conv.weight[:mid]).mean((0, 2, 3))
        block(feats, arch.ks[0], arch.e[0])
    expected = before + (batch_mean - before) / n
    assert torch.allclose(block.expand_bn.running_mean[:mid], expected, atol=1e-5)


def test_extract_keeps_bn_hyperparameters():
    space = SearchSpace.preset("tiny-mbv3")
    net = Supernet(space)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps, m.momentum = 1e-3, 0.01
    sub = net.extract(space.sample(0))
    bns = [m for m in sub.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 and m.momentum == 0.01 for m in bns)


def test_training_mode_forward_and_backward_reach_shared_weights():
    space = SearchSpace.preset("tiny-mbv3")
    net = Supernet(space).train()
    arch = space.sample(np.random.default_rng(0))
    with net.activated(arch):
        loss = net(torch.randn(3, space.in_channels, arch.r, arch.r)).logsumexp(1).mean()
    loss.backward()
    i = arch.active_blocks()[0]
    mid = space.mid_channels(space.slots[i].in_channels, arch.e[i])
    g = net.blocks[i].expand_conv.weight.grad
    assert g[:mid].abs().sum() > 0 and torch.count_nonzero(g[mid:]) == 0
    inactive = [j for j in range(space.num_blocks) if j not in set(arch.active_blocks())]
    if inactive:
        assert net.blocks[inactive[0]].expand_conv.weight.grad is None


def test_sort_channels_within_bands_for_later_shrinking_phases():
    """OFA's re_organize_middle_weights(expand_ratio_stage=1): channels of the e=4 width stay in it."""
    torch.manual_seed(0)
    block = ElasticMBConv(16, 16, (3, 5, 7), (3, 4, 6), 1, "relu", True)
    w4, w6 = block.mid_channels(4), block.mid_channels(6)
    tag = torch.arange(w6, dtype=torch.float32)
    with torch.no_grad():
        block.dw_bn.running_mean.copy_(tag)  # follows the permutation
        block.project_conv.weight[:, w4:] *= 100  # the outer band looks most important
    block.sort_channels(expand_stage=1)
    moved = block.dw_bn.running_mean
    assert set(moved[:w4].tolist()) == set(range(w4))  # nothing crossed the e=4 boundary
    assert not torch.equal(moved, tag)
    imp = block.project_conv.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(imp[:w4 - 1] >= imp[1:w4]) and torch.all(imp[w4:-1] >= imp[w4 + 1:])
    block.sort_channels()  # a plain sort does move the outer band to the front
    assert set(block.dw_bn.running_mean[:w6 - w4].tolist()) == set(range(w4, w6))
    with pytest.raises(ValueError, match="expand_stage"):
        block.sort_channels(expand_stage=3)
