"""The agreement check between an exported ONNX model and the PyTorch net it came from, on real images."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nas.export.errors import ExportError
from nas.export.runtime import ort_logits, ort_session

MAX_ABS_DIFF = 1e-4  # on logits


@dataclass(frozen=True)
class OnnxAgreement:
    """How closely onnxruntime reproduced PyTorch on `images` real validation images."""

    images: int
    max_abs_diff: float
    top1_agreement: float  # fraction of images with the same top-1 class
    top1_mismatches: int  # images whose top-1 differs although PyTorch's margin exceeds 2 × the tolerance
    tolerance: float = MAX_ABS_DIFF

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.top1_mismatches == 0

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


@torch.no_grad()
def check_onnx(path: Path, net: nn.Module, images: torch.Tensor, tolerance: float = MAX_ABS_DIFF) -> OnnxAgreement:
    """Run `images` (N×C×r×r, at the model's resolution) through onnxruntime and `net`; raise ExportError unless
    every logit agrees within `tolerance` and the top-1 classes match."""
    expected = net.eval()(images).float().numpy()
    got = ort_logits(ort_session(path, torch.get_num_threads()), images)
    if got.shape != expected.shape:
        raise ExportError(f"ONNX model gives logits of shape {got.shape}, PyTorch {expected.shape}")
    diff = float(np.abs(got - expected).max()) if got.size else 0.0
    same = got.argmax(1) == expected.argmax(1)
    # A top-1 flip is only a disagreement when PyTorch's own top-2 margin is wider than the allowed logit error:
    # two classes tied within the tolerance may legitimately swap.
    top2 = np.sort(expected, axis=1)[:, -2:] if expected.shape[1] > 1 else np.zeros((len(expected), 2))
    margin = top2[:, 1] - top2[:, 0]
    result = OnnxAgreement(images=len(images), max_abs_diff=diff, top1_agreement=float(same.mean()),
                           top1_mismatches=int((~same & (margin > 2 * tolerance)).sum()), tolerance=tolerance)
    if not result.ok:
        raise ExportError(f"ONNX model disagrees with PyTorch on {len(images)} validation images: max abs logit "
                          f"difference {diff:.3g} (allowed {tolerance:g}), {result.top1_mismatches} top-1 "
                          f"mismatches (allowed 0)")
    return result
