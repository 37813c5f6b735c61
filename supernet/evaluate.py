"""BN recalibration and top-1 evaluation of a subnet (a Supernet with an arch activated, or a static module)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from supernet.arch import ArchConfig
from supernet.network import Supernet


def resize_to(x: torch.Tensor, r: int) -> torch.Tensor:
    """Images N×C×H×W resized (bilinear) to r×r px; returned as is when already that size."""
    if x.shape[-1] == r and x.shape[-2] == r:
        return x
    return F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False)


def _context(net: nn.Module, arch: ArchConfig | None):  # noqa: ANN202
    return net.activated(arch) if isinstance(net, Supernet) and arch is not None else nullcontext()


def _device(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


@torch.no_grad()
def recalibrate_bn(net: nn.Module, arch: ArchConfig | None, loader: Iterable, n_images: int = 2000) -> None:
    """Recompute the BN running statistics of `arch` (or of a static `net` when `arch` is None) as the exact
    average over the first `n_images` images of `loader`, as OFA does before every subnet evaluation.

    For a Supernet only the channels and blocks `arch` uses are rewritten; the net is left in eval mode.
    """
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    device = _device(net)
    net.eval()
    for m in bns:  # only BN in train mode: dropout would draw from the global RNG (and follows every BN anyway)
        m.train()
    seen, batches = 0, 0
    try:
        with _context(net, arch):
            for x, _ in loader:
                if seen >= n_images:
                    break
                if len(x) == 0:  # every image of the batch was unreadable (skipped with a warning)
                    continue
                x = x[: n_images - seen].to(device)
                batches += 1
                for m in bns:  # cumulative average: batch i enters with weight 1/i
                    m.momentum = 1.0 / batches
                net(resize_to(x, arch.r) if arch is not None else x)
                seen += len(x)
    finally:
        for m, momentum in zip(bns, saved):
            m.momentum = momentum
        net.eval()


@torch.no_grad()
def predict_logits(net: nn.Module, arch: ArchConfig | None, loader: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) over the whole loader, in eval mode, at `arch.r` px when an arch is given."""
    device = _device(net)
    net.eval()
    outs, labels = [], []
    with _context(net, arch):
        for x, y in loader:
            if len(x) == 0:
                continue
            x = x.to(device)
            outs.append(net(resize_to(x, arch.r) if arch is not None else x).float().cpu())
            labels.append(torch.as_tensor(y))
    return torch.cat(outs), torch.cat(labels)


def evaluate(net: nn.Module, arch: ArchConfig | None, loader: Iterable) -> float:
    """Top-1 accuracy in [0, 1] of `arch` (activated on a Supernet; for a static net only its resolution is used)."""
    logits, labels = predict_logits(net, arch, loader)
    if len(labels) == 0:
        return float("nan")
    return float((logits.argmax(1) == labels).float().mean())


__all__ = ["resize_to", "recalibrate_bn", "evaluate", "predict_logits"]
