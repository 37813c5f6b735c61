"""Running exported ONNX models with onnxruntime: sessions, logits over a loader, top-1 accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from supernet.evaluate import resize_to


def ort_session(path: Path, threads: int | None = None):  # noqa: ANN201
    """A CPU onnxruntime session for the model at `path` (`threads` intra-op threads; None: onnxruntime's choice).

    Callers pass PyTorch's thread count, so both runtimes get the same share of a (possibly shared) machine."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def ort_logits(session, images: torch.Tensor) -> np.ndarray:  # noqa: ANN001
    """Logits of a batch of images (already at the model's resolution) from an onnxruntime session."""
    name = session.get_inputs()[0].name
    return session.run(None, {name: images.detach().cpu().numpy().astype(np.float32, copy=False)})[0]


def ort_predict(session, loader: Iterable, r: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """(logits, labels) of every batch of `loader`, images resized to `r` px as for the PyTorch net."""
    outs, labels = [], []
    for x, y in loader:
        outs.append(ort_logits(session, resize_to(x, r)))
        labels.append(np.asarray(y))
    return np.concatenate(outs), np.concatenate(labels)
