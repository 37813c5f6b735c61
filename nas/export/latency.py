"""Batch-1 latency of an exported subnet on this machine: PyTorch eager and onnxruntime, side by side."""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from nas.export.runtime import ort_session


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` intra-op threads in PyTorch (None: leave as is), restoring the previous count."""
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def time_ms(fn: Callable[[], object], *, warmup: int = 10, repeats: int = 50) -> dict[str, float]:
    """Median, mean and standard deviation in ms of `repeats` calls of `fn` after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times),
            "std_ms": statistics.pstdev(times), "repeats": repeats}


@torch.no_grad()
def measure_latency(net: nn.Module, image: torch.Tensor, onnx_paths: dict[str, Path], *, threads: int | None = None,
                    warmup: int = 10, repeats: int = 50) -> dict[str, dict[str, float]]:
    """Latency of one image (1×C×r×r) through `net` in PyTorch (eager) and through each ONNX model in
    `onnx_paths` ({label: path}) with onnxruntime, all with `threads` threads."""
    image = image[:1].contiguous()
    out: dict[str, dict[str, float]] = {}
    with torch_threads(threads):
        net.eval()
        out["torch"] = time_ms(lambda: net(image), warmup=warmup, repeats=repeats)
        feed = image.numpy()
        for label, path in onnx_paths.items():
            session = ort_session(path, threads)
            name = session.get_inputs()[0].name
            out[label] = time_ms(lambda: session.run(None, {name: feed}), warmup=warmup, repeats=repeats)
    for entry in out.values():
        entry["threads"] = threads or torch.get_num_threads()
    return out
