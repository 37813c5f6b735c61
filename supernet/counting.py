"""Counting without a forward pass: per-layer shapes of any subnet, and vectorised MACs, params and
activation memory over many archs.

Every per-block cost in an elastic MobileNetV3 depends only on (block slot, kernel, expand, resolution),
so a cost model is a table over those four indices; a batch of archs is then a gather and a sum (or a max)
over active slots. Latency and MCU predictors build their tables from the same `Layer` records.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from supernet.arch import ArchConfig
from supernet.space import BlockSlot, SearchSpace


@dataclass(frozen=True)
class Layer:
    """One operator of a subnet at batch 1. `kind`: conv, expand, depthwise, se, project, pool, mix, linear.

    `in_elems`/`out_elems` are activation elements; `residual` marks a block input kept alive for a skip add.
    """

    kind: str
    cin: int
    cout: int
    hin: int
    hout: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    act: str | None = None
    bias: bool = False
    bn: bool = False
    residual: int = 0  # elements of a kept residual input alive during this layer

    @property
    def macs(self) -> int:
        return self.hout * self.hout * self.cout * (self.cin // self.groups) * self.kernel * self.kernel

    @property
    def weight_params(self) -> int:
        return self.cout * (self.cin // self.groups) * self.kernel * self.kernel

    @property
    def params(self) -> int:
        return self.weight_params + (self.cout if self.bias else 0) + (2 * self.cout if self.bn else 0)

    @property
    def in_elems(self) -> int:
        return self.cin * self.hin * self.hin

    @property
    def out_elems(self) -> int:
        return self.cout * self.hout * self.hout


def _size(r: int, stride: int) -> int:
    return (r - 1) // stride + 1


def feature_sizes(space: SearchSpace, r: int) -> tuple[int, int, list[int], int]:
    """(stem output size, first-block output size, input size of each block slot, final feature size) at `r` px."""
    h_stem = _size(r, space.stem.stride)
    h_first = _size(h_stem, space.first_block.stride)
    sizes, h = [], h_first
    for slot in space.slots:
        sizes.append(h)
        if slot.position == 0:
            h = _size(h, slot.stride)
    return h_stem, h_first, sizes, h


def block_layers(space: SearchSpace, slot: BlockSlot, ks: int, e: float, hin: int) -> list[Layer]:
    """The layers of one elastic block with kernel `ks` and expand ratio `e` on a `hin`×`hin` input."""
    mid = space.mid_channels(slot.in_channels, e)
    hout = _size(hin, slot.stride)
    keep = slot.in_channels * hin * hin if slot.residual else 0
    layers = [
        Layer("expand", slot.in_channels, mid, hin, hin, act=slot.act, bn=True, residual=keep),
        Layer("depthwise", mid, mid, hin, hout, ks, slot.stride, mid, act=slot.act, bn=True, residual=keep),
    ]
    if slot.se:
        se_mid = space.se_channels(mid)
        layers += [Layer("se", mid, se_mid, 1, 1, act="relu", bias=True, residual=keep + mid * hout * hout),
                   Layer("se", se_mid, mid, 1, 1, act="h_sigmoid", bias=True, residual=keep + mid * hout * hout)]
    layers.append(Layer("project", mid, slot.out_channels, hout, hout, bn=True, residual=keep))
    return layers


def fixed_layers(space: SearchSpace, r: int) -> tuple[list[Layer], list[Layer]]:
    """(layers before the elastic blocks, layers after them) at resolution `r`: stem, first block; head."""
    st, fb = space.stem, space.first_block
    h_stem, h_first, _, h_last = feature_sizes(space, r)
    keep = st.width * h_stem * h_stem if (fb.stride == 1 and st.width == fb.width) else 0
    pre = [Layer("conv", space.in_channels, st.width, r, h_stem, st.kernel, st.stride, act=st.act, bn=True),
           Layer("depthwise", st.width, st.width, h_stem, h_first, fb.kernel, fb.stride, st.width, act=fb.act,
                 bn=True, residual=keep)]
    if fb.se:
        se_mid = space.se_channels(st.width)
        pre += [Layer("se", st.width, se_mid, 1, 1, act="relu", bias=True, residual=keep),
                Layer("se", se_mid, st.width, 1, 1, act="h_sigmoid", bias=True, residual=keep)]
    pre.append(Layer("project", st.width, fb.width, h_first, h_first, bn=True, residual=keep))
    cl = space.stages[-1].width
    post = [Layer("expand", cl, space.final_expand, h_last, h_last, act="h_swish", bn=True),
            Layer("pool", space.final_expand, space.final_expand, h_last, 1, h_last, groups=space.final_expand),
            Layer("mix", space.final_expand, space.feature_mix, 1, 1, act="h_swish"),
            Layer("linear", space.feature_mix, space.num_classes, 1, 1, bias=True)]
    return pre, post


def arch_layers(space: SearchSpace, arch: ArchConfig) -> list[Layer]:
    """Every layer of `arch`'s subnet in execution order (batch 1)."""
    space.validate(arch)
    pre, post = fixed_layers(space, arch.r)
    _, _, sizes, _ = feature_sizes(space, arch.r)
    body = [layer for i in arch.active_blocks()
            for layer in block_layers(space, space.slots[i], arch.ks[i], arch.e[i], sizes[i])]
    return pre + body + post


def layer_macs(layer: Layer) -> float:
    # Pooling is not a multiply-accumulate (as OFA's and torch's counters treat it).
    return 0.0 if layer.kind == "pool" else float(layer.macs)


def layer_params(layer: Layer) -> float:
    return 0.0 if layer.kind == "pool" else float(layer.params)


class BlockTables:
    """Cost tables over (slot, kernel idx, expand idx) for each resolution, for one space and one cost function.

    `block_cost(layers)` gives a block's cost from its layers; `fixed_cost(pre, post)` the fixed part's.
    `reduce` is "sum" (MACs, latency, Flash) or "max" (peak memory).
    """

    def __init__(self, space: SearchSpace, block_cost: Callable[[list[Layer]], float],
                 fixed_cost: Callable[[list[Layer], list[Layer]], float], reduce: str = "sum"):
        if reduce not in ("sum", "max"):
            raise ValueError("reduce must be 'sum' or 'max'")
        self.space, self.block_cost, self.fixed_cost, self.reduce = space, block_cost, fixed_cost, reduce
        self._tables: dict[int, tuple[np.ndarray, float]] = {}

    def table(self, r: int) -> tuple[np.ndarray, float]:
        """(B, |ks|, |e|) block costs and the fixed cost at resolution `r` (cached)."""
        if r not in self._tables:
            sp = self.space
            _, _, sizes, _ = feature_sizes(sp, r)
            t = np.empty((sp.num_blocks, len(sp.kernel_choices), len(sp.expand_choices)))
            for slot in sp.slots:
                for ki, k in enumerate(sp.kernel_choices):
                    for ei, e in enumerate(sp.expand_choices):
                        t[slot.index, ki, ei] = self.block_cost(block_layers(sp, slot, k, e, sizes[slot.index]))
            pre, post = fixed_layers(sp, r)
            self._tables[r] = (t, float(self.fixed_cost(pre, post)))
        return self._tables[r]

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        """Cost of each arch in `codes` (compact encoding), vectorised."""
        sp = self.space
        k, e, d, r = sp.split_codes(codes)
        active = sp.active_mask(d)
        out = np.empty(len(r))
        for res in np.unique(r):
            rows = np.nonzero(r == res)[0]
            t, fixed = self.table(int(res))
            vals = t[np.arange(sp.num_blocks)[None, :], k[rows], e[rows]]
            if self.reduce == "sum":
                out[rows] = fixed + (vals * active[rows]).sum(1)
            else:
                out[rows] = np.maximum(fixed, np.where(active[rows], vals, -np.inf).max(1))
        return out


def peak_bytes(layers: Sequence[Layer], bytes_per_elem: int = 4, inplace_depthwise: bool = False) -> float:
    """Peak activation memory over `layers`: input + output buffers alive at once, plus kept residuals.

    With `inplace_depthwise` (MCUNet's TinyEngine) a stride-1 depthwise layer writes over its input."""
    peak = 0
    for layer in layers:
        if layer.kind == "se":
            live = layer.residual + layer.in_elems + layer.out_elems
        elif layer.kind == "depthwise" and inplace_depthwise:
            live = layer.residual + max(layer.in_elems, layer.out_elems)
        else:
            live = layer.residual + layer.in_elems + layer.out_elems
        peak = max(peak, live)
    return float(peak * bytes_per_elem)


@lru_cache(maxsize=64)
def _counters(space: SearchSpace) -> dict[str, BlockTables]:
    return {
        "macs": BlockTables(space, lambda ls: sum(map(layer_macs, ls)),
                            lambda pre, post: sum(map(layer_macs, pre + post))),
        "params": BlockTables(space, lambda ls: sum(map(layer_params, ls)),
                              lambda pre, post: sum(map(layer_params, pre + post))),
        "peak_fp32": BlockTables(space, lambda ls: peak_bytes(ls, 4),
                                 lambda pre, post: max(peak_bytes(pre, 4), peak_bytes(post, 4)), reduce="max"),
        "peak_int8": BlockTables(space, lambda ls: peak_bytes(ls, 1),
                                 lambda pre, post: max(peak_bytes(pre, 1), peak_bytes(post, 1)), reduce="max"),
    }


def count_macs(space: SearchSpace, archs: Sequence[ArchConfig] | np.ndarray) -> np.ndarray:
    """Multiply-accumulates per image (conv + linear, as OFA counts) for each arch."""
    return _counters(space)["macs"](space.codes(archs))


def count_params(space: SearchSpace, archs: Sequence[ArchConfig] | np.ndarray) -> np.ndarray:
    """Parameters of each extracted subnet (weights, biases, BN affine)."""
    return _counters(space)["params"](space.codes(archs))


def peak_activation_bytes(space: SearchSpace, archs: Sequence[ArchConfig] | np.ndarray,
                          dtype: str = "fp32") -> np.ndarray:
    """Peak activation memory in bytes at batch 1 (`fp32`: 4 bytes per element, `int8`: 1), for each arch.

    Layer by layer in execution order, the live set is the layer's input buffer plus its output buffer plus
    whatever must outlive the layer: a block's input kept for its residual add, and around squeeze-excite the
    feature map that the SE scales. BN and activations are taken as fused into their conv (no buffer of their
    own), nothing is computed in place, weights are not counted. The peak is the largest live set over all
    layers (the network input image counts as the stem's input). See `peak_bytes` for the MCU variant with
    in-place depthwise convolutions."""
    if dtype not in ("fp32", "int8"):
        raise ValueError(f"dtype must be 'fp32' or 'int8', got {dtype!r}")
    return _counters(space)[f"peak_{dtype}"](space.codes(archs))


def arch_stats(space: SearchSpace, arch: ArchConfig) -> dict[str, float]:
    """MACs, params and peak activation bytes (fp32, int8) of one arch."""
    codes = space.encode([arch])
    return {"macs": int(count_macs(space, codes)[0]), "params": int(count_params(space, codes)[0]),
            "peak_activation_bytes": int(peak_activation_bytes(space, codes, "fp32")[0]),
            "peak_activation_bytes_int8": int(peak_activation_bytes(space, codes, "int8")[0])}
