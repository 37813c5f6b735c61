"""Reusable layers: static MobileNetV3 blocks and their elastic (weight-shared) twins.

An elastic block holds the largest weights; a forward pass takes the active kernel size and expand
ratio as arguments and slices (channels) or transforms (kernels, OFA's kernel transformation) them.
`ElasticMBConv.extract(ks, e)` builds the static `MBConv` that computes the same function.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from supernet.space import make_divisible


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {name!r}; allowed: relu, h_swish")


class ConvBNAct(nn.Sequential):
    """conv → BN → activation (the stem, the final expand layer)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: str | None = "relu", bn: bool = True, bias: bool | None = None):
        bias = (not bn) if bias is None else bias
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=bias)]
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        if act:
            layers.append(activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """MobileNetV3's SE: global pool → 1×1 reduce (bias) → ReLU → 1×1 expand (bias) → hard sigmoid → scale."""

    def __init__(self, channels: int, mid: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, mid, 1)
        self.expand = nn.Conv2d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = F.hardsigmoid(self.expand(F.relu(self.reduce(s), inplace=True)), inplace=True)
        return x * s


class MBConv(nn.Module):
    """Static inverted bottleneck: [1×1 expand → BN → act] → k×k depthwise → BN → act → [SE] → 1×1 project → BN."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, mid: int, act: str,
                 se_mid: int | None, residual: bool, expand: bool = True):
        super().__init__()
        self.expand = ConvBNAct(cin, mid, 1, act=act) if expand else None
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid, act=act)
        self.se = SqueezeExcite(mid, se_mid) if se_mid else None
        self.project = ConvBNAct(mid, cout, 1, act=None)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d, c: int) -> torch.Tensor:
    """BatchNorm on the first `c` channels (OFA's DynamicBatchNorm2d); in training mode the running stats of
    those channels update in place (the sliced buffers are views), the others are left as they were."""
    if c == bn.num_features:
        return bn(x)
    factor = 0.0
    if bn.training and bn.track_running_stats:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    use_batch = bn.training or not bn.track_running_stats
    running = bn.running_mean is not None
    return F.batch_norm(x, bn.running_mean[:c] if running else None, bn.running_var[:c] if running else None,
                        bn.weight[:c] if bn.affine else None, bn.bias[:c] if bn.affine else None,
                        use_batch, factor, bn.eps)


def _first(t: torch.Tensor, n: int | None, dim: int = 0) -> torch.Tensor:
    """The first `n` entries of `t` along `dim` (0 or 1); `t` itself when that is all of them (or `n` is None)."""
    if n is None or n == t.shape[dim]:
        return t
    return t[:n] if dim == 0 else t[:, :n]


def _act(x: torch.Tensor, name: str) -> torch.Tensor:
    return F.relu(x, inplace=True) if name == "relu" else F.hardswish(x, inplace=True)


@functools.lru_cache(maxsize=64)
def _dense_taps(h: int, w: int, k: int, stride: int) -> tuple[torch.Tensor, int, int]:
    """For a k×k depthwise conv (padding k//2) on an h×w map: the tap index (0..k*k-1, or k*k for none) that
    joins each output position to each input position, and the output size."""
    pad = k // 2
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    oh, ow = torch.arange(ho).repeat_interleave(wo), torch.arange(wo).repeat(ho)
    ih, iw = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)
    i = ih[None, :] - (oh[:, None] * stride - pad)
    j = iw[None, :] - (ow[:, None] * stride - pad)
    valid = (i >= 0) & (i < k) & (j >= 0) & (j < k)
    return torch.where(valid, i * k + j, k * k), ho, wo


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """`F.conv2d(x, weight, stride=stride, padding=k//2, groups=C)`, computed as one batched matmul per channel
    when training a large kernel on a small map on the CPU.

    oneDNN's depthwise backward for k ≥ 5 on maps of 8×8 or less is 5-15× slower than its forward (a 7×7 kernel
    on a 4×4 map mostly multiplies padding). There the conv is the same as multiplying each channel's
    flattened map by an (HW_out × HW_in) matrix gathered from its kernel, whose forward and backward are plain
    matmuls: the same function, several times faster to train. Elsewhere (GPU, inference, small kernels, large
    maps) the library's conv is used."""
    c, k = x.shape[1], weight.shape[-1]
    h, w = x.shape[-2:]
    if x.is_cuda or k < 5 or h * w > 64 or not torch.is_grad_enabled():
        return F.conv2d(x, weight, None, stride, k // 2, 1, c)
    idx, ho, wo = _dense_taps(h, w, k, stride)
    taps = torch.cat([weight.reshape(c, k * k), weight.new_zeros(c, 1)], 1)
    matrix = taps[:, idx.to(x.device)]  # (C, HW_out, HW_in)
    y = torch.bmm(x.reshape(x.shape[0], c, h * w).transpose(0, 1), matrix.transpose(1, 2))  # (C, N, HW_out)
    return y.transpose(0, 1).reshape(x.shape[0], c, ho, wo)


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, idx: slice) -> None:
    dst.eps, dst.momentum = src.eps, src.momentum
    dst.weight.data.copy_(src.weight.data[idx])
    dst.bias.data.copy_(src.bias.data[idx])
    dst.running_mean.copy_(src.running_mean[idx])
    dst.running_var.copy_(src.running_var[idx])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)


class ElasticMBConv(nn.Module):
    """An inverted bottleneck with elastic kernel (OFA kernel transformation) and elastic expand ratio."""

    def __init__(self, cin: int, cout: int, kernel_choices: tuple[int, ...], expand_choices: tuple[int, ...],
                 stride: int, act: str, se: bool, se_reduction: int = 4, divisor: int = 8):
        super().__init__()
        self.cin, self.cout, self.stride, self.act = cin, cout, stride, act
        self.kernel_choices = tuple(sorted(kernel_choices))
        self.expand_choices = tuple(sorted(expand_choices))
        self.divisor, self.se_reduction = divisor, se_reduction
        self.residual = stride == 1 and cin == cout
        max_mid = self.mid_channels(max(self.expand_choices))
        kmax = max(self.kernel_choices)
        self.expand_conv = nn.Conv2d(cin, max_mid, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(max_mid)
        self.dw_weight = nn.Parameter(torch.empty(max_mid, 1, kmax, kmax))
        nn.init.kaiming_normal_(self.dw_weight, mode="fan_out")
        # OFA's kernel transformation: k_small = M(k→small) · centre(k_large), M initialised to identity.
        self.kernel_transforms = nn.ParameterDict({
            f"{big}to{small}": nn.Parameter(torch.eye(small * small))
            for big, small in zip(self.kernel_choices[::-1][:-1], self.kernel_choices[::-1][1:])
        })
        self.dw_bn = nn.BatchNorm2d(max_mid)
        if se:
            se_mid = make_divisible(max_mid // se_reduction, divisor)
            self.se_reduce = nn.Conv2d(max_mid, se_mid, 1)
            self.se_expand = nn.Conv2d(se_mid, max_mid, 1)
        else:
            self.se_reduce = self.se_expand = None
        self.project_conv = nn.Conv2d(max_mid, cout, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(cout)

    def mid_channels(self, expand: float) -> int:
        return make_divisible(round(self.cin * expand), self.divisor)

    def depthwise_kernel(self, ks: int, channels: int | None = None) -> torch.Tensor:
        """The active k×k depthwise weight of the first `channels` channels (default: all): centre crops of the
        largest kernel, chained through the transforms. (The transforms run on all channels before the first
        `channels` are taken: the same numbers to the bit as ever, so a recipe trains the same weights.)"""
        w = self.dw_weight
        kmax = w.shape[-1]
        if ks == kmax:
            return _first(w, channels)
        if ks not in self.kernel_choices:
            raise ValueError(f"kernel {ks} is not one of {self.kernel_choices}")
        for big, small in zip(self.kernel_choices[::-1][:-1], self.kernel_choices[::-1][1:]):
            start = (big - small) // 2
            centre = w[:, :, start:start + small, start:start + small]
            flat = centre.reshape(centre.shape[0], small * small)
            w = F.linear(flat, self.kernel_transforms[f"{big}to{small}"]).reshape(centre.shape)
            if small == ks:
                break
        return _first(w, channels)

    def forward(self, x: torch.Tensor, ks: int, e: float) -> torch.Tensor:
        mid = self.mid_channels(e)
        # Slices only where the subnet takes part of a tensor: each one costs a call and, in training, a
        # zero-filled full-size gradient in backward (what bounds a small net's step on a GPU)
        y = F.conv2d(x, _first(self.expand_conv.weight, mid))
        y = _act(_bn(y, self.expand_bn, mid), self.act)
        y = depthwise_conv(y, self.depthwise_kernel(ks, mid), self.stride)
        y = _act(_bn(y, self.dw_bn, mid), self.act)
        if self.se_reduce is not None:
            se_mid = make_divisible(mid // self.se_reduction, self.divisor)
            s = y.mean((2, 3), keepdim=True)
            s = F.relu(F.conv2d(s, _first(_first(self.se_reduce.weight, se_mid), mid, 1),
                                _first(self.se_reduce.bias, se_mid)), inplace=True)
            s = F.hardsigmoid(F.conv2d(s, _first(_first(self.se_expand.weight, mid), se_mid, 1),
                                       _first(self.se_expand.bias, mid)))
            y = y * s
        y = F.conv2d(y, _first(self.project_conv.weight, mid, 1))
        y = _bn(y, self.project_bn, self.cout)
        return x + y if self.residual else y

    @torch.no_grad()
    def extract(self, ks: int, e: float) -> MBConv:
        """A static MBConv with copies of the active weights (same eval-mode function)."""
        mid = self.mid_channels(e)
        se_mid = make_divisible(mid // self.se_reduction, self.divisor) if self.se_reduce is not None else None
        block = MBConv(self.cin, self.cout, ks, self.stride, mid, self.act, se_mid, self.residual)
        block.expand[0].weight.copy_(self.expand_conv.weight[:mid])
        _copy_bn(block.expand[1], self.expand_bn, slice(0, mid))
        block.depthwise[0].weight.copy_(self.depthwise_kernel(ks, mid))
        _copy_bn(block.depthwise[1], self.dw_bn, slice(0, mid))
        if block.se is not None:
            block.se.reduce.weight.copy_(self.se_reduce.weight[:se_mid, :mid])
            block.se.reduce.bias.copy_(self.se_reduce.bias[:se_mid])
            block.se.expand.weight.copy_(self.se_expand.weight[:mid, :se_mid])
            block.se.expand.bias.copy_(self.se_expand.bias[:mid])
        block.project[0].weight.copy_(self.project_conv.weight[:, :mid])
        _copy_bn(block.project[1], self.project_bn, slice(None))
        return block

    @torch.no_grad()
    def sort_channels(self, expand_stage: int = 0) -> None:
        """Reorder expanded channels by importance (L1 norm of the projection weights), most important first,
        so smaller expand ratios keep the best ones; the largest block's function is unchanged.

        `expand_stage` > 0 is OFA's `re_organize_middle_weights(expand_ratio_stage)` for later progressive
        shrinking phases: channels are sorted only within the bands between the widths of the largest
        `expand_stage + 1` expand ratios, so the channels each already-trained width uses stay in it."""
        importance = self.project_conv.weight.abs().sum(dim=(0, 2, 3))
        if expand_stage > 0:
            widths = [self.mid_channels(e) for e in sorted(self.expand_choices, reverse=True)]
            if expand_stage >= len(widths):
                raise ValueError(f"expand_stage must be below {len(widths)} (the number of expand choices)")
            importance = importance.clone()
            right, base = len(importance), -len(widths) * 1e5
            for left in widths[:expand_stage + 1]:
                importance[left:right] += base
                base += 1e5
                right = left
        order = torch.argsort(importance, descending=True)
        self.project_conv.weight.copy_(self.project_conv.weight[:, order])
        self.expand_conv.weight.copy_(self.expand_conv.weight[order])
        self.dw_weight.copy_(self.dw_weight[order])
        for bn in (self.expand_bn, self.dw_bn):
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                t.copy_(t[order])
        if self.se_reduce is not None:
            self.se_reduce.weight.copy_(self.se_reduce.weight[:, order])
            self.se_expand.weight.copy_(self.se_expand.weight[order])
            self.se_expand.bias.copy_(self.se_expand.bias[order])
            se_imp = self.se_expand.weight.abs().sum(dim=(0, 2, 3))
            se_order = torch.argsort(se_imp, descending=True)
            self.se_expand.weight.copy_(self.se_expand.weight[:, se_order])
            self.se_reduce.weight.copy_(self.se_reduce.weight[se_order])
            self.se_reduce.bias.copy_(self.se_reduce.bias[se_order])
