"""Measuring this machine: per-op latencies (OFA's lookup-table ops) and whole subnets, on CPU (torch or
onnxruntime, batch 1, fixed threads) or CUDA (torch, CUDA events).

Each item is timed in `rounds` passes over all items (warm-up runs, then `repeats` timed runs per pass) and
its figure is the fastest run: other processes on a shared machine only ever add time, so the minimum is the
estimate least spoiled by them (timeit's advice). With one thread the clock is the thread's CPU time, which
leaves out the time the core spent on other processes; with several threads, or on CUDA, it is wall time.
"""

from __future__ import annotations

import io
import os
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from hw_profiles.schema import LutEntry, ProfileError
from supernet import SearchSpace, Supernet
from supernet.layers import ConvBNAct, MBConv
from supernet.space import as_rng

Progress = Callable[[str, int, int], None]
BACKENDS = ("torch", "onnxruntime", "cuda")


@dataclass
class TimingConfig:
    """How to time: threads (CPU), warm-up and timed runs per pass, passes, batch size, backend, dtype, clock
    (`auto`: thread CPU time with one CPU thread, else wall time)."""

    backend: str = "torch"
    threads: int = 1
    warmup: int = 2
    repeats: int = 8
    rounds: int = 3
    batch_size: int = 1
    dtype: str = "fp32"
    clock: str = "auto"

    @property
    def cpu_clock(self) -> bool:
        return self.clock == "cpu" or (self.clock == "auto" and self.threads == 1 and self.backend != "cuda")

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ProfileError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.threads < 1 or self.repeats < 1 or self.rounds < 1 or self.warmup < 0:
            raise ProfileError("threads, repeats and rounds must be >= 1 and warmup >= 0")
        if self.backend == "cuda" and not torch.cuda.is_available():
            raise ProfileError("backend 'cuda' needs a CUDA GPU and a CUDA build of torch; none is available here")
        if self.clock not in ("auto", "wall", "cpu") or (self.clock == "cpu" and self.backend == "cuda"):
            raise ProfileError(f"clock must be auto, wall or cpu (not on cuda), got {self.clock!r}")
        if self.dtype not in ("fp32", "fp16"):
            raise ProfileError(f"dtype must be fp32 or fp16, got {self.dtype!r}")


# ---------------------------------------------------------------------------------------------- op modules
class _Pool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


def op_module(op) -> tuple[nn.Module, tuple[int, ...]]:  # noqa: ANN001 - predictors.ops.Op (no import cycle)
    """A module computing one lookup-table op with random weights, and its input shape (without batch)."""
    layers = op.layers
    first = layers[0]
    if op.type == "Conv":
        return ConvBNAct(first.cin, first.cout, first.kernel, first.stride, act=first.act), (first.cin, first.hin,
                                                                                          first.hin)
    if op.type == "expanded_conv":
        dw = next(layer for layer in layers if layer.kind == "depthwise")
        se = [layer for layer in layers if layer.kind == "se"]
        proj = layers[-1]
        block = MBConv(first.cin, proj.cout, dw.kernel, dw.stride, dw.cin, dw.act, se[0].cout if se else None,
                       residual=proj.residual > 0, expand=first.kind == "expand")
        return block, (first.cin, first.hin, first.hin)
    if op.type == "Conv_1":
        return ConvBNAct(first.cin, first.cout, 1, act="h_swish"), (first.cin, first.hin, first.hin)
    if op.type == "AvgPool2D":
        return _Pool(), (first.cin, first.hin, first.hin)
    if op.type == "Conv_2":
        return ConvBNAct(first.cin, first.cout, 1, act="h_swish", bn=False, bias=False), (first.cin, 1, 1)
    if op.type == "Logits":
        return nn.Linear(first.cin, first.cout), (first.cin,)
    raise ProfileError(f"cannot build a module for op type {op.type!r}")


# ---------------------------------------------------------------------------------------------- timing
class _Runner:
    """Runs one module on one input with the configured backend; `time(n)` returns n latencies in ms."""

    def __init__(self, module: nn.Module, shape: tuple[int, ...], cfg: TimingConfig):
        self.cfg = cfg
        module = module.eval()
        x = torch.randn(cfg.batch_size, *shape)
        if cfg.backend == "onnxruntime":
            import onnxruntime as ort

            buf = io.BytesIO()
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"])
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = cfg.threads, 1
            opts.log_severity_level = 3
            self.session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
            self.feed = {"x": x.numpy()}
            self.call = lambda: self.session.run(None, self.feed)
        else:
            dev = "cuda" if cfg.backend == "cuda" else "cpu"
            dtype = torch.float16 if cfg.dtype == "fp16" else torch.float32
            self.module = module.to(dev, dtype)
            self.x = x.to(dev, dtype)
            self.call = self._torch_call

    def _torch_call(self) -> None:
        with torch.inference_mode():
            self.module(self.x)

    def time(self, n: int) -> list[float]:
        if self.cfg.backend == "cuda":
            out = []
            for _ in range(n):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                self.call()
                end.record()
                torch.cuda.synchronize()
                out.append(start.elapsed_time(end))
            return out
        clock = time.thread_time if self.cfg.cpu_clock else time.perf_counter
        out = []
        for _ in range(n):
            t0 = clock()
            self.call()
            out.append((clock() - t0) * 1e3)
        return out

    def warm(self) -> None:
        for _ in range(self.cfg.warmup):
            self.call()
        if self.cfg.backend == "cuda":
            torch.cuda.synchronize()


class _Threads:
    """Fix torch's intra-op threads for the measurement, restoring them afterwards."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self) -> None:
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)
        torch.set_flush_denormal(True)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.old)


def _measure(runners: Sequence[_Runner], cfg: TimingConfig, progress: Progress | None, stage: str
             ) -> list[LutEntry]:
    """Latency of each runner: the fastest of `rounds` × `repeats` runs (stored as OFA's `mean`, with the std and
    count of all runs)."""
    times: list[list[float]] = [[] for _ in runners]
    total, done = len(runners) * cfg.rounds, 0
    for _ in range(cfg.rounds):
        for i, runner in enumerate(runners):
            runner.warm()
            times[i] += runner.time(cfg.repeats)
            done += 1
            if progress:
                progress(stage, done, total)
    return [LutEntry(mean=min(t), std=statistics.pstdev(t), count=len(t)) for t in times]


def measure_ops(ops: Sequence, cfg: TimingConfig, progress: Progress | None = None) -> dict[str, LutEntry]:
    """Latency (ms) of each lookup-table op measured alone, keyed by its OFA key."""
    with _Threads(cfg.threads):
        runners = [_Runner(*op_module(op), cfg) for op in ops]
        entries = _measure(runners, cfg, progress, "ops")
    return {op.key: e for op, e in zip(ops, entries)}


def measure_archs(space: SearchSpace, codes: np.ndarray, cfg: TimingConfig, progress: Progress | None = None,
                  seed: int = 0) -> np.ndarray:
    """End-to-end latency (ms) of each subnet (extracted static net, random weights), per batch of batch_size."""
    torch.manual_seed(seed)
    with _Threads(cfg.threads):
        net = Supernet(space).eval()
        runners = [_Runner(net.extract(a), (space.in_channels, a.r, a.r), cfg) for a in space.decode(codes)]
        entries = _measure(runners, cfg, progress, "subnets")
    return np.array([e.mean for e in entries])


def sample_codes_at(space: SearchSpace, n: int, resolutions: Sequence[int], seed: int | np.random.Generator
                    ) -> np.ndarray:
    """n random archs with resolutions drawn from `resolutions` only."""
    rng = as_rng(seed)
    codes = space.sample_codes(n, rng)
    codes[:, -1] = rng.choice(np.asarray(resolutions), n)
    return codes


# ---------------------------------------------------------------------------------------------- calibration
def quick_calibration(threads: int = 1, seconds: float = 0.3) -> dict[str, float]:
    """Rough figures of this CPU in about a second: fp32 matmul GFLOPS, copy bandwidth (GB/s) and the cost of a
    trivial torch op (us), at `threads` threads."""
    with _Threads(threads):
        a, b = torch.randn(512, 512), torch.randn(512, 512)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            n += 1
        gflops = 2 * 512 ** 3 * n / (time.perf_counter() - t0) / 1e9
        src, dst = torch.empty(8 * 1024 * 1024), torch.empty(8 * 1024 * 1024)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            dst.copy_(src)
            n += 1
        gbs = 2 * src.numel() * 4 * n / (time.perf_counter() - t0) / 1e9
        tiny = torch.randn(8)
        t0 = time.perf_counter()
        for _ in range(2000):
            torch.relu(tiny)
        launch_us = (time.perf_counter() - t0) / 2000 * 1e6
    return {"peak_gflops": gflops, "bandwidth_gbs": gbs, "launch_us": launch_us, "cores": float(os.cpu_count() or 1)}
