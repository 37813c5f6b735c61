import torch

from supernet import SearchSpace, Supernet


def test_largest_extract_matches_supernet():
    space = SearchSpace.preset("tiny-mbv3")
    net = Supernet(space).eval()
    arch = space.largest()
    x = torch.randn(2, space.in_channels, arch.r, arch.r)
    with net.activated(arch):
        y = net(x)
    assert torch.allclose(y, net.extract(arch).eval()(x), atol=1e-5)
