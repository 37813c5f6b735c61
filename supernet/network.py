"""Supernet: the elastic network of a SearchSpace, and the static subnets extracted from it."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from supernet.arch import ArchConfig
from supernet.layers import ConvBNAct, ElasticMBConv, MBConv
from supernet.space import SearchSpace


class _Head(nn.Module):
    """final expand (1×1, BN, h-swish) → global pool → feature mix (1×1, h-swish) → dropout → classifier."""

    def __init__(self, cin: int, final_expand: int, feature_mix: int, num_classes: int, dropout: float):
        super().__init__()
        self.final_expand = ConvBNAct(cin, final_expand, 1, act="h_swish")
        self.feature_mix = ConvBNAct(final_expand, feature_mix, 1, act="h_swish", bn=False, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_mix, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand(x).mean((2, 3), keepdim=True)
        x = self.feature_mix(x).flatten(1)
        return self.classifier(self.dropout(x))


def _stem_and_first(space: SearchSpace) -> tuple[nn.Module, MBConv]:
    st, fb = space.stem, space.first_block
    stem = ConvBNAct(space.in_channels, st.width, st.kernel, st.stride, act=st.act)
    first = MBConv(st.width, fb.width, fb.kernel, fb.stride, st.width, fb.act,
                   space.se_channels(st.width) if fb.se else None,
                   residual=fb.stride == 1 and st.width == fb.width, expand=False)
    return stem, first


class StaticNet(nn.Module):
    """A plain subnet (no elastic code): stem → first block → MBConv blocks → head. TorchScript/ONNX friendly."""

    def __init__(self, stem: nn.Module, first: nn.Module, blocks: list[nn.Module], head: nn.Module):
        super().__init__()
        self.stem, self.first, self.blocks, self.head = stem, first, nn.Sequential(*blocks), head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.first(self.stem(x))))


class Supernet(nn.Module):
    """The elastic network of `space`: every subnet shares the largest network's weights."""

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        self.stem, self.first = _stem_and_first(space)
        self.blocks = nn.ModuleList(
            ElasticMBConv(s.in_channels, s.out_channels, space.kernel_choices, space.expand_choices, s.stride,
                          s.act, s.se, space.se_reduction, space.channel_divisor)
            for s in space.slots
        )
        self.head = _Head(space.stages[-1].width, space.final_expand, space.feature_mix, space.num_classes,
                          space.dropout)
        self._init_weights()
        self.active: ArchConfig = space.largest()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def set_active(self, arch: ArchConfig) -> None:
        """Make `arch` the subnet that `forward` runs (validated against the space)."""
        self.active = self.space.validate(arch)

    @contextmanager
    def activated(self, arch: ArchConfig) -> Iterator["Supernet"]:
        """Run `arch` inside the block; the previously active arch is restored afterwards."""
        previous = self.active
        self.set_active(arch)
        try:
            yield self
        finally:
            self.active = previous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arch = self.active
        x = self.first(self.stem(x))
        for i in arch.active_blocks():
            x = self.blocks[i](x, arch.ks[i], arch.e[i])
        return self.head(x)

    @torch.no_grad()
    def extract(self, arch: ArchConfig) -> StaticNet:
        """A new static nn.Module with copies of `arch`'s weights; the supernet is left as it was."""
        self.space.validate(arch)
        stem, first, head = copy.deepcopy(self.stem), copy.deepcopy(self.first), copy.deepcopy(self.head)
        blocks = [self.blocks[i].extract(arch.ks[i], arch.e[i]) for i in arch.active_blocks()]
        net = StaticNet(stem, first, blocks, head)
        net.train(self.training)
        return net

    @torch.no_grad()
    def sort_channels(self, expand_stage: int = 0) -> None:
        """Reorder every block's expanded channels by importance (OFA); the largest net's output is unchanged.
        `expand_stage`: see `ElasticMBConv.sort_channels`."""
        for block in self.blocks:
            block.sort_channels(expand_stage)
