"""Ops as once-for-all's latency tables see them, and per-layer features for learned models.

A subnet at resolution r is a fixed list of ops: `Conv` (stem), the first block and every active elastic block
(`expanded_conv`), `Conv_1` (final expand), `AvgPool2D`, `Conv_2` (feature mix) and `Logits` (classifier). Each
op has OFA's key, e.g. `expanded_conv-input:112x112x24-output:56x56x32-expand:144-kernel:3-stride:2-idskip:0-se:0-hs:0`
(`expand` is the expanded channel count, as in OFA's MobileNetV3 tables).

`OpTables` turns any per-op cost (scalar or vector) into (slot, kernel, expand) tables per resolution, so a
batch of archs costs a gather and a sum, like `supernet.counting.BlockTables`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from supernet.counting import Layer, block_layers, feature_sizes, fixed_layers
from supernet.space import SearchSpace

OP_TYPES = ("Conv", "expanded_conv", "Conv_1", "AvgPool2D", "Conv_2", "Logits")
LAYER_KINDS = ("conv", "expand", "depthwise", "se", "project", "pool", "mix", "linear", "add")
LAYER_FEATURES = ("macs", "elems", "params", "ops")
FEATURE_NAMES = tuple(f"{k}.{f}" for k in LAYER_KINDS for f in LAYER_FEATURES)


@dataclass(frozen=True)
class Op:
    """One op of a subnet: its OFA op type, OFA key and the layers it runs."""

    type: str
    key: str
    layers: tuple[Layer, ...]
    r: int = 0  # resolution of the subnet it belongs to (0: unknown); OFA keeps one table per resolution


def _shape(h: int, c: int) -> str:
    return f"{h}x{h}x{c}"


def block_op(layers: list[Layer], r: int = 0) -> Op:
    """The `expanded_conv` op of a block from its layers (as `supernet.counting.block_layers` lists them)."""
    dw = next(layer for layer in layers if layer.kind == "depthwise")
    first, last = layers[0], layers[-1]
    se = any(layer.kind == "se" for layer in layers)
    key = "-".join([
        "expanded_conv", f"input:{_shape(first.hin, first.cin)}", f"output:{_shape(last.hout, last.cout)}",
        f"expand:{dw.cin}", f"kernel:{dw.kernel}", f"stride:{dw.stride}", f"idskip:{int(last.residual > 0)}",
        f"se:{int(se)}", f"hs:{int(dw.act == 'h_swish')}",
    ])
    return Op("expanded_conv", key, tuple(layers), r)


def fixed_ops(pre: list[Layer], post: list[Layer]) -> list[Op]:
    """Stem, first block, final expand, pooling, feature mix and classifier ops at one resolution."""
    stem, first = pre[0], pre[1:]
    fe, pool, mix, lin = post
    r = stem.hin
    return [
        Op("Conv", f"Conv-input:{_shape(stem.hin, stem.cin)}-output:{_shape(stem.hout, stem.cout)}", (stem,), r),
        block_op(first, r),
        Op("Conv_1", f"Conv_1-input:{_shape(fe.hin, fe.cin)}-output:{_shape(fe.hout, fe.cout)}", (fe,), r),
        Op("AvgPool2D", f"AvgPool2D-input:{_shape(pool.hin, pool.cin)}-output:{_shape(1, pool.cout)}", (pool,), r),
        Op("Conv_2", f"Conv_2-input:{_shape(1, mix.cin)}-output:{_shape(1, mix.cout)}", (mix,), r),
        Op("Logits", f"Logits-input:{_shape(1, lin.cin)}-output:{lin.cout}", (lin,), r),
    ]


def arch_ops(space: SearchSpace, ks: list[int], e: list[float], active: list[int], r: int) -> list[Op]:
    """Every op of one subnet in execution order."""
    pre, post = fixed_layers(space, r)
    _, _, sizes, _ = feature_sizes(space, r)
    fixed = fixed_ops(pre, post)
    body = [block_op(block_layers(space, space.slots[i], ks[i], e[i], sizes[i]), r) for i in active]
    return fixed[:2] + body + fixed[2:]


def space_ops(space: SearchSpace, resolutions: list[int] | None = None) -> dict[int, list[Op]]:
    """Every distinct op any subnet of `space` runs, per resolution (what a lookup table must hold)."""
    out = {}
    for r in resolutions or space.resolutions:
        pre, post = fixed_layers(space, r)
        _, _, sizes, _ = feature_sizes(space, r)
        ops = {op.key: op for op in fixed_ops(pre, post)}
        for slot in space.slots:
            for k in space.kernel_choices:
                for e in space.expand_choices:
                    op = block_op(block_layers(space, slot, k, e, sizes[slot.index]), int(r))
                    ops.setdefault(op.key, op)
        out[int(r)] = list(ops.values())
    return out


def layer_features(layer: Layer) -> np.ndarray:
    """Features of one layer laid out as FEATURE_NAMES (its kind's block; a kept residual adds an `add` op)."""
    x = np.zeros(len(FEATURE_NAMES))
    nf = len(LAYER_FEATURES)
    k = LAYER_KINDS.index(layer.kind)
    macs = 0.0 if layer.kind == "pool" else float(layer.macs)
    x[k * nf:(k + 1) * nf] = (macs, float(layer.in_elems + layer.out_elems), float(layer.weight_params), 1.0)
    if layer.kind == "project" and layer.residual:
        a = LAYER_KINDS.index("add") * nf
        x[a:a + nf] += (0.0, 3.0 * layer.out_elems, 0.0, 1.0)
    return x


def op_features(op: Op) -> np.ndarray:
    return np.sum([layer_features(layer) for layer in op.layers], axis=0)


class OpTables:
    """Per-resolution tables of a per-op cost: (B, |ks|, |e|, D) for the elastic blocks plus (D,) for the fixed ops.

    `cost(op)` returns a float or a vector of length `dim`; `reduce` says per column how ops combine: "sum"
    (latency, MACs, Flash) or "max" (peak memory). Calling the tables on codes gives (N, D): one gather of every
    (resolution, slot, kernel, expand) index at once, then a masked sum or max over active slots.
    """

    _CHUNK = 32768

    def __init__(self, space: SearchSpace, cost: Callable[[Op], float | np.ndarray], dim: int = 1,
                 reduce: Sequence[str] | None = None):
        self.space, self.cost, self.dim = space, cost, dim
        self.reduce = tuple(reduce or ("sum",) * dim)
        if len(self.reduce) != dim or set(self.reduce) - {"sum", "max"}:
            raise ValueError(f"reduce must list 'sum' or 'max' for each of the {dim} columns")
        self._sum = np.array([x == "sum" for x in self.reduce])
        self._tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._stacked: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] = {}

    def table(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        r = int(r)
        if r not in self._tables:
            sp = self.space
            _, _, sizes, _ = feature_sizes(sp, r)
            t = np.empty((sp.num_blocks, len(sp.kernel_choices), len(sp.expand_choices), self.dim))
            for slot in sp.slots:
                for ki, k in enumerate(sp.kernel_choices):
                    for ei, e in enumerate(sp.expand_choices):
                        t[slot.index, ki, ei] = self.cost(block_op(block_layers(sp, slot, k, e, sizes[slot.index]), r))
            pre, post = fixed_layers(sp, r)
            costs = np.stack([np.atleast_1d(self.cost(op)).astype(float) for op in fixed_ops(pre, post)])
            fixed = np.where(self._sum, costs.sum(0), costs.max(0))
            self._tables[r] = (t, fixed.reshape(self.dim))
        return self._tables[r]

    def _stack(self, res: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        if res not in self._stacked:
            if len(self._stacked) > 64:
                self._stacked.clear()
            tabs = [self.table(x) for x in res]
            self._stacked[res] = (np.stack([t for t, _ in tabs]).reshape(-1, self.dim), np.stack([f for _, f in tabs]))
        return self._stacked[res]

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        """(N, D) cost of each arch's ops, reduced per column."""
        sp = self.space
        k, e, d, r = sp.split_codes(codes)
        active = sp.active_mask(d)
        res = tuple(int(x) for x in np.unique(r))
        flat, fixed = self._stack(res)
        ri = np.searchsorted(np.asarray(res), r)
        nk, ne, nb = len(sp.kernel_choices), len(sp.expand_choices), sp.num_blocks
        out = np.empty((len(r), self.dim))
        blocks = np.arange(nb)[None, :]
        for lo in range(0, len(r), self._CHUNK):
            sl = slice(lo, lo + self._CHUNK)
            idx = ((ri[sl, None] * nb + blocks) * nk + k[sl]) * ne + e[sl]
            vals = flat[idx]  # (n, B, D)
            act = active[sl]
            if self._sum.all():
                out[sl] = fixed[ri[sl]] + np.einsum("nbd,nb->nd", vals, act.astype(float))
                continue
            s, m = self._sum, ~self._sum
            base = fixed[ri[sl]]
            out[sl, s] = base[:, s] + np.einsum("nbd,nb->nd", vals[:, :, s], act.astype(float))
            # inactive slots never win the max: their values are pushed below any real cost
            masked = vals[:, :, m] - (~act)[:, :, None] * 1e300
            out[sl, m] = np.maximum(base[:, m], masked.max(1))
        return out


def scalar_tables(space: SearchSpace, cost: Callable[[Op], float]) -> OpTables:
    return OpTables(space, lambda op: np.array([cost(op)]), 1)


def feature_tables(space: SearchSpace) -> OpTables:
    """Summed per-layer features (FEATURE_NAMES) of each arch: the design matrix of a learned latency model."""
    return OpTables(space, op_features, len(FEATURE_NAMES))


def active_blocks(space: SearchSpace, codes: np.ndarray) -> np.ndarray:
    """Number of active elastic blocks of each arch."""
    _, _, d, _ = space.split_codes(codes)
    return d.sum(1).astype(float)
