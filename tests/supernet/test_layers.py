"""The depthwise conv the elastic blocks train with is the library's conv, forward and backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from supernet.layers import depthwise_conv


@pytest.mark.parametrize("h, k, stride", [(4, 7, 1), (4, 5, 1), (7, 7, 1), (7, 5, 2), (8, 7, 2), (3, 7, 1),
                                          (14, 7, 1), (7, 3, 1)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_depthwise_conv_matches_conv2d_forward_and_backward(h, k, stride, channels_last):
    torch.manual_seed(0)
    x = torch.randn(5, 12, h, h)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(12, 1, k, k)
    x1, w1 = x.clone().requires_grad_(), w.clone().requires_grad_()
    x2, w2 = x.clone().requires_grad_(), w.clone().requires_grad_()
    ours = depthwise_conv(x1, w1, stride)
    ref = F.conv2d(x2, w2, None, stride, k // 2, 1, 12)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    g = torch.randn_like(ref)
    ours.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(w1.grad, w2.grad, rtol=1e-4, atol=1e-3)


def test_depthwise_conv_without_grad_is_the_library_conv():
    x, w = torch.randn(2, 8, 4, 4), torch.randn(8, 1, 7, 7)
    with torch.no_grad():
        assert torch.equal(depthwise_conv(x, w, 1), F.conv2d(x, w, None, 1, 3, 1, 8))
