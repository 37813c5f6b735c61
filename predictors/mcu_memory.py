"""The memory an int8 subnet needs on a microcontroller as `nas export` ships it (generated C, `nas/export/mcu_c`).

SRAM is one static arena laid out by `arena_plan` (TinyEngine's plan: a layer's input and output alive at once,
a block input kept for its residual add, depthwise convolutions computed in place, channel by channel through a
one-plane scratch buffer), plus that scratch plane, plus the runtime's stack. The predictor takes the arena size
from the same function the code generator places buffers with, so the predicted arena is the shipped one.

Activation buffers sit at either end of the arena: a layer reads from one end and writes to the other; an in-place
depthwise keeps its end (processing channels upward from the low end, downward from the high end, so no unread
input plane is overwritten); a kept residual stays at its end while the block works at the other, its
squeeze-excite vectors and projection output go in the gap between, and the residual add writes over the kept
input. Every buffer's offset follows from the arena size, so a plan is checked for overlaps as it is made.

Flash is every constant array the generated `model.c` holds (int8 weights; per output channel an int32 bias, an
int32 multiplier and an int8 shift; a 256-byte table per hard-swish or hard-sigmoid) plus one op descriptor per
kernel call, plus the kernels' code (the device profile's `flash_runtime`, measured from the Cortex-M build).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from supernet.counting import Layer

# sizeof(nas_op_t) on a 32-bit MCU (4 x uint8, 4 x uint16, 9 x int32, 5 pointers): see mcu_c/nas_runtime.h
OP_DESCRIPTOR_BYTES = 68
LUT_BYTES = 256
LUT_ACTS = ("h_swish", "h_sigmoid")
WEIGHTED = ("conv", "expand", "depthwise", "se", "project", "mix", "linear")


class PlanError(ValueError):
    """An arena plan that would overlap buffers or leave the arena (a bug, never bad input)."""


def reads_residual(layers: Sequence[Layer], i: int) -> bool:
    """Whether layer `i` of a block reads the block input it keeps for the residual add (the block's first layer)."""
    return i == 0 and layers[0].residual > 0


def layer_live_bytes(layers: Sequence[Layer], i: int) -> int:
    """int8 bytes alive in the arena while layer `i` of a block (or of the fixed ops) runs."""
    layer = layers[i]
    if reads_residual(layers, i):  # the kept input is this layer's input: counted once
        return layer.residual + layer.out_elems
    if layer.kind == "depthwise":  # in place
        return layer.residual + layer.in_elems
    return layer.residual + layer.in_elems + layer.out_elems


def block_arena_bytes(layers: Sequence[Layer]) -> int:
    """The arena a block (or a run of fixed layers) needs: its largest live set."""
    return max((layer_live_bytes(layers, i) for i in range(len(layers))), default=0)


def scratch_bytes(layers: Sequence[Layer]) -> int:
    """The depthwise scratch plane: one input channel of the largest depthwise map."""
    return max((layer.hin * layer.hin for layer in layers if layer.kind == "depthwise"), default=0)


def layer_flash_bytes(layer: Layer) -> int:
    """Flash of one layer in the generated code: constant arrays and op descriptors."""
    total = 0
    if layer.kind in WEIGHTED:
        total += layer.weight_params + layer.cout * (4 + 4 + 1) + OP_DESCRIPTOR_BYTES
    elif layer.kind == "pool":
        total += OP_DESCRIPTOR_BYTES
    if layer.act in LUT_ACTS:
        total += LUT_BYTES + OP_DESCRIPTOR_BYTES
    if layer.kind == "se":  # the pooling before the reduce conv, the channel scaling after the expand conv
        total += OP_DESCRIPTOR_BYTES
    if layer.kind == "project" and layer.residual:
        total += OP_DESCRIPTOR_BYTES  # the residual add
    return total


@dataclass(frozen=True)
class Buffer:
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class LayerPlace:
    """Where one layer reads and writes in the arena. `aux`: the SE pool vector (se reduce), the residual add's
    output (project of a residual block, written over the kept input)."""

    layer: Layer
    inp: Buffer
    out: Buffer
    aux: Buffer | None = None


@dataclass
class ArenaPlan:
    """A whole subnet's arena: its size and every layer's placement, in execution order."""

    size: int
    scratch: int
    places: list[LayerPlace] = field(default_factory=list)


def _check(size: int, live: list[Buffer], where: str) -> None:
    spans = sorted((b for b in live if b.size), key=lambda b: b.offset)
    for b in spans:
        if b.offset < 0 or b.end > size:
            raise PlanError(f"{where}: buffer [{b.offset}, {b.end}) outside the {size} B arena")
    for a, b in zip(spans, spans[1:]):
        if a.end > b.offset:
            raise PlanError(f"{where}: buffers [{a.offset}, {a.end}) and [{b.offset}, {b.end}) overlap")


def arena_plan(blocks: Sequence[Sequence[Layer]]) -> ArenaPlan:
    """Place every activation of a subnet, given as its blocks' layer lists in execution order (the stem, the
    first block, each active block, then the head's layers one by one)."""
    size = max((block_arena_bytes(b) for b in blocks), default=0)
    scratch = max((scratch_bytes(b) for b in blocks), default=0)
    plan = ArenaPlan(size, scratch)
    lo = lambda n: Buffer(0, n)  # noqa: E731
    hi = lambda n: Buffer(size - n, n)  # noqa: E731
    other = lambda b, n: hi(n) if b.offset == 0 else lo(n)  # noqa: E731
    cur: Buffer | None = None
    for bi, layers in enumerate(blocks):
        kept = feat = None  # the block input kept for the residual; the feature map SE scales
        for i, layer in enumerate(layers):
            where = f"block {bi} layer {i} ({layer.kind})"
            inp = cur if cur is not None else lo(layer.in_elems)
            aux = None
            if reads_residual(layers, i):
                kept = inp
            if layer.kind == "se":
                if feat is None:
                    raise PlanError(f"{where}: squeeze-excite without a depthwise before it")
                start = kept.end if kept is not None and kept.offset == 0 else (feat.end if feat.offset == 0 else 0)
                if layer.cin > layer.cout:  # reduce: reads the pooled vector, written first into the gap
                    aux = inp = Buffer(start, layer.in_elems)
                    out = Buffer(inp.end, layer.out_elems)
                else:  # expand: over the pooled vector (dead by now), beside its input
                    out = Buffer(start, layer.out_elems)
                live = [feat, inp, out]
            elif layer.kind == "project" and kept is not None:
                out = Buffer(kept.end, layer.out_elems) if kept.offset == 0 else \
                    Buffer(kept.offset - layer.out_elems, layer.out_elems)
                aux = kept  # the residual add writes over the kept input
                live = [inp, out]
            elif layer.kind == "depthwise" and not reads_residual(layers, i):  # in place, keeping its end
                out = Buffer(0 if inp.offset == 0 else size - layer.out_elems, layer.out_elems)
                live = [out]
            else:
                out = other(inp, layer.out_elems)
                live = [inp, out]
            if inp.size != layer.in_elems:
                raise PlanError(f"{where}: input of {inp.size} B, the layer reads {layer.in_elems}")
            if inp.offset != 0 and inp.end != size and layer.kind not in ("se",):
                raise PlanError(f"{where}: input at [{inp.offset}, {inp.end}) is at neither end")
            _check(size, live + ([kept] if kept is not None and kept is not inp else []), where)
            plan.places.append(LayerPlace(layer, inp, out, aux))
            if layer.kind == "depthwise":
                feat = out
            if layer.kind == "se":
                cur = out if layer.cin > layer.cout else feat  # the channel scaling writes over the feature map
            elif aux is not None and layer.kind == "project":
                cur = kept
            else:
                cur = out
    return plan
