"""Measuring this machine: per-op latencies (OFA's lookup-table ops) and whole subnets, on CPU (torch or
onnxruntime, batch 1, fixed threads) or CUDA (torch, CUDA events).

Measuring on a shared machine: other processes slow every run by an amount that changes from second to
second. With one thread the clock is the thread's own CPU time (`CLOCK_THREAD_CPUTIME_ID`), so the time the
core spent on other processes is left out; with several threads or another process's runtime it is wall time,
and on CUDA, CUDA events. CPU time still grows when a run is preempted (the other process evicts its caches):
each run also records how many times it was taken off the core (involuntary context switches; where the
system does not count them, whether its wall time exceeded its CPU time), and the slowdown each number of
preemptions causes is estimated from all items of the measurement together and divided out of every run.
Items are never timed back to back: each of `rounds` rounds visits every item once, in a fresh random order,
with a short burst (a warm-up run, then `repeats` timed runs, each a sample). Because a round mixes all items,
the runs taken around the same moment tell how slow the machine was then (their median ratio to their items'
own medians), and that drift is divided out too. Per item, runs far from its median (3 robust standard
deviations) are rejected and the rest averaged. Alternate bursts give two independent estimates of every item:
how far they disagree is the run's own noise (the ceiling any predictor can reach against these timings), and
items whose halves disagree by more than `remeasure_above` are timed again, up to `remeasure_passes` times.
That loop and its statistics are `hw_profiles.timing`; this module builds what it times.
"""

from __future__ import annotations

import io
import os
import time
import warnings
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from hw_profiles.schema import LutEntry, ProfileError
from hw_profiles.timing import Progress, Timings, measure_runners
from supernet import SearchSpace, Supernet
from supernet.layers import ConvBNAct, MBConv
from supernet.space import as_rng

try:
    from resource import RUSAGE_THREAD as _RUSAGE_THREAD, getrusage as _getrusage
except ImportError:  # not Linux
    _RUSAGE_THREAD = None
BACKENDS = ("torch", "onnxruntime", "cuda")


@dataclass
class TimingConfig:
    """How to time: threads (CPU), warm-up and timed runs per burst, interleaved rounds of whole subnets (one
    burst per item each) and of ops (`op_rounds`, default twice `rounds`: an op costs a tenth of a subnet), batch
    size, backend, dtype, clock (`auto`: the thread's CPU time with one CPU thread, else wall time), the
    disagreement between an item's two half-estimates above which it is timed again (0: never; needs at least 4
    rounds) and how many times at most (`remeasure_passes`)."""

    backend: str = "torch"
    threads: int = 1
    warmup: int = 1
    repeats: int = 3
    rounds: int = 12
    op_rounds: int | None = None
    batch_size: int = 1
    dtype: str = "fp32"
    clock: str = "auto"
    remeasure_above: float = 0.05
    remeasure_passes: int = 2

    @property
    def cpu_clock(self) -> bool:
        return self.clock == "cpu" or (self.clock == "auto" and self.threads == 1 and self.backend != "cuda")

    @property
    def clock_name(self) -> str:
        """What the timings were read from, as a profile records it."""
        return "cuda-events" if self.backend == "cuda" else "thread-cpu" if self.cpu_clock else "wall"

    def for_ops(self) -> "TimingConfig":
        return replace(self, rounds=self.op_rounds or 2 * self.rounds)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ProfileError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        counts = (self.threads, self.repeats, self.rounds, 1 if self.op_rounds is None else self.op_rounds)
        if min(counts) < 1 or self.warmup < 0 or self.remeasure_above < 0 or self.remeasure_passes < 0:
            raise ProfileError("threads, repeats, rounds and op_rounds must be >= 1, warmup, remeasure_above and "
                               "remeasure_passes >= 0")
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
    """Runs one module on one input with the configured backend; `time(n)` returns n (latency ms, preemptions)
    pairs: with the thread CPU clock, how many times the thread was taken off the core during the run, else 0."""

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
        out = []
        if not self.cfg.cpu_clock:
            for _ in range(n):
                t0 = time.perf_counter_ns()
                self.call()
                out.append(((time.perf_counter_ns() - t0) / 1e6, 0))
            return out
        for _ in range(n):
            s0 = _switches()
            c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
            self.call()
            c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
            s1 = _switches()
            # without a count, a run whose wall time exceeds its CPU time by more than reading the clocks costs
            # (2% and 20 us) was preempted at least once
            pre = s1 - s0 if s0 >= 0 else int((w1 - w0) - (c1 - c0) > 0.02 * (c1 - c0) + 20_000)
            out.append(((c1 - c0) / 1e6, pre))
        return out

    def warm(self) -> None:
        for _ in range(self.cfg.warmup):
            self.call()
        if self.cfg.backend == "cuda":
            torch.cuda.synchronize()


def _switches() -> int:
    """Involuntary context switches of the calling thread so far (Linux), or -1 where not counted."""
    return _getrusage(_RUSAGE_THREAD).ru_nivcsw if _RUSAGE_THREAD is not None else -1


class _Threads:
    """Fix torch's intra-op threads (and flush denormals) for the measurement, restoring both afterwards."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self) -> None:
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)
        torch.set_flush_denormal(True)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.old)
        torch.set_flush_denormal(False)  # torch's default; left on, it changes every later float op of the process


def _measure(runners: Sequence[_Runner], cfg: TimingConfig, progress: Progress | None, stage: str) -> Timings:
    for runner in runners:
        runner.warm()
    return measure_runners(runners, cfg, progress, stage)


def time_ops(ops: Sequence, cfg: TimingConfig, progress: Progress | None = None) -> Timings:
    """Latency of each lookup-table op measured alone (`cfg.for_ops()`: more rounds, ops are cheap)."""
    cfg = cfg.for_ops()
    with _Threads(cfg.threads):
        runners = [_Runner(*op_module(op), cfg) for op in ops]
        return _measure(runners, cfg, progress, "ops")


def measure_ops(ops: Sequence, cfg: TimingConfig, progress: Progress | None = None) -> dict[str, LutEntry]:
    """Latency (ms) of each lookup-table op measured alone, keyed by its OFA key (see `time_ops`)."""
    return {op.key: e for op, e in zip(ops, time_ops(ops, cfg, progress).entries())}


def time_archs(space: SearchSpace, codes: np.ndarray, cfg: TimingConfig, progress: Progress | None = None,
               seed: int = 0) -> Timings:
    """End-to-end latency of each subnet (extracted static net, random weights), per batch of batch_size, with
    the run's own noise (`Timings.half_a`/`half_b`: each subnet timed twice over)."""
    torch.manual_seed(seed)
    with _Threads(cfg.threads):
        net = Supernet(space).eval()
        runners = [_Runner(net.extract(a), (space.in_channels, a.r, a.r), cfg) for a in space.decode(codes)]
        return _measure(runners, cfg, progress, "subnets")


def measure_archs(space: SearchSpace, codes: np.ndarray, cfg: TimingConfig, progress: Progress | None = None,
                  seed: int = 0) -> np.ndarray:
    """End-to-end latency (ms) of each subnet (see `time_archs`)."""
    return time_archs(space, codes, cfg, progress, seed).ms


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
