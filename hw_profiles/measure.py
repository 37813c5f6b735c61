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
"""

from __future__ import annotations

import gc
import io
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, NamedTuple, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from hw_profiles.schema import LutEntry, ProfileError
from supernet import SearchSpace, Supernet
from supernet.layers import ConvBNAct, MBConv
from supernet.space import as_rng

Progress = Callable[[str, int, int], None]
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
        if (self.threads < 1 or self.repeats < 1 or self.rounds < 1 or (self.op_rounds is not None and self.op_rounds < 1)
                or self.warmup < 0 or self.remeasure_above < 0 or self.remeasure_passes < 0):
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


class Timer(Protocol):
    """What the measuring loop times: `warm()` runs it untimed, `time(n)` returns n latencies in ms, or n
    (latency ms, times preempted) pairs."""

    def warm(self) -> None: ...

    def time(self, n: int) -> Sequence[float] | Sequence[tuple[float, float]]: ...


@dataclass
class Timings:
    """Robust latencies (ms) of items timed in interleaved rounds, and how much the run's own noise moved them.

    `samples[i, k]` is item i's k-th timed run (NaN where there is none), `when[i, k]` the sequence number of
    the burst it belongs to, `preemptions[i, k]` how many times it was taken off the core; `ms` the estimate
    (preemption and drift divided out, outliers rejected), `half_a`/`half_b` the same estimate from alternate
    bursts only (two independent re-timings of every item), `spread` the relative MAD of an item's normalised
    runs, `rejected` the runs dropped as outliers, `remeasured` the items timed again because their halves
    disagreed, `slowdown[i, k]` the factor preemption was estimated to have cost each run."""

    samples: np.ndarray
    when: np.ndarray
    ms: np.ndarray
    half_a: np.ndarray
    half_b: np.ndarray
    spread: np.ndarray
    rejected: int
    remeasured: list[int] = field(default_factory=list)
    drift: np.ndarray | None = None
    preemptions: np.ndarray | None = None
    slowdown: np.ndarray | None = None

    @property
    def disagreement(self) -> np.ndarray:
        """|half_a - half_b| / ms per item: what re-timing the item moved it by."""
        return np.abs(self.half_a - self.half_b) / np.maximum(self.ms, 1e-12)

    @property
    def preempted(self) -> float:
        """Share of the timed runs during which the thread was taken off the core."""
        ok = np.isfinite(self.samples)
        if self.preemptions is None or not ok.any():
            return 0.0
        return float((self.preemptions[ok] > 0).mean())

    def entries(self) -> list[LutEntry]:
        std = [float(np.nanstd(row)) for row in self.samples]
        return [LutEntry(mean=float(m), std=s, count=int(np.isfinite(row).sum()))
                for m, s, row in zip(self.ms, std, self.samples)]


def interleaved_order(n_items: int, rounds: int, seed: int | np.random.Generator = 0) -> list[np.ndarray]:
    """One fresh random permutation of the items per round: each item is timed once per round, never twice in a
    row, and never always after the same neighbour (whose cache footprint it would inherit)."""
    rng = as_rng(seed)
    order = [rng.permutation(n_items) for _ in range(rounds)]
    for prev, perm in zip(order, order[1:]):
        if n_items > 1 and perm[0] == prev[-1]:  # across a round's boundary too
            perm[[0, 1]] = perm[[1, 0]]
    return order


MAX_PREEMPTIONS = 4  # runs preempted this many times or more share one class


def preemption_slowdown(x: np.ndarray, classes: np.ndarray, ok: np.ndarray, *, iters: int = 6, prior: float = 5.0
                        ) -> np.ndarray:
    """Per class (times preempted), the log slowdown of a run relative to one that kept its core, from all items
    together.

    Fixed effects: log run = item's own level + its class's effect; fitted by alternating least squares, each
    class's effect shrunk towards 0 by `prior` pseudo-runs (a class seen a few times barely moves). The class of
    runs that kept their core is the reference (or, if none did, the least preempted class seen)."""
    k = int(classes[ok].max()) + 1 if ok.any() else 1
    f = np.zeros(k)
    cls = np.where(ok, classes, 0)
    counts = np.bincount(cls[ok], minlength=k)
    ref = int(np.flatnonzero(counts)[0]) if counts.any() else 0
    for _ in range(iters):
        level = np.nanmean(np.where(ok, x - f[cls], np.nan), axis=1, keepdims=True)
        r = np.where(ok, x - level, 0.0)
        f = np.bincount(cls[ok], weights=r[ok], minlength=k) / (counts + prior)
        f -= f[ref]
    return f


class Estimates(NamedTuple):
    """What `robust_estimates` makes of an item × run matrix (see `Timings` for the fields)."""

    ms: np.ndarray
    half_a: np.ndarray
    half_b: np.ndarray
    spread: np.ndarray
    rejected: int
    drift: np.ndarray
    slowdown: np.ndarray


def robust_estimates(samples: np.ndarray, when: np.ndarray, *, preemptions: np.ndarray | None = None,
                     window: int = 0, reject: float = 3.0) -> Estimates:
    """Estimates from runs `samples[i, k]` of bursts `when[i, k]` (runs of one burst share it), each taken off
    the core `preemptions[i, k]` times.

    Preempted runs are slower even on the thread's CPU clock (another process evicted their caches): the
    slowdown of each degree of preemption is estimated from all items together (`preemption_slowdown`) and
    divided out. The machine's speed also drifts as other processes come and go; because rounds are interleaved,
    the runs timed around the same moment belong to many different items, so the median of their ratios to their
    items' own medians is the machine's slowdown at that moment (`drift`), which is divided out too. Then per
    item, runs more than `reject` robust standard deviations (1.4826 MAD, at least 1%) from its median are
    dropped, and the rest averaged in log space; `half_a`/`half_b` do the same over alternate bursts."""
    x = np.log(np.where(samples > 0, samples, np.nan))
    ok = np.isfinite(x)
    n_items = x.shape[0]
    slow = np.zeros_like(x)
    if preemptions is not None and ok.any():
        classes = np.minimum(np.nan_to_num(preemptions), MAX_PREEMPTIONS).astype(int)
        if (classes[ok] > 0).any():
            slow = np.where(ok, preemption_slowdown(x, classes, ok)[np.where(ok, classes, 0)], 0.0)
    x = x - slow
    centre = np.nanmedian(x, axis=1, keepdims=True)
    resid = x - centre
    seq = np.argsort(np.where(ok, when, np.inf), axis=None, kind="stable")[:int(ok.sum())]
    r_seq = resid.ravel()[seq]
    per_burst = ok.sum() / max(1, len(np.unique(when[ok])))
    w = window or int(round(max(9, 2 * n_items // 3 + 1) * per_burst))
    half = w // 2
    drift_seq = np.array([np.median(r_seq[max(0, j - half):j + half + 1]) for j in range(len(r_seq))])
    drift = np.full(x.size, np.nan)
    drift[seq] = drift_seq
    drift = drift.reshape(x.shape)
    norm = x - np.nan_to_num(drift)
    med = np.nanmedian(norm, axis=1, keepdims=True)
    mad = np.maximum(1.4826 * np.nanmedian(np.abs(norm - med), axis=1, keepdims=True), 0.01)
    keep = ok & (np.abs(norm - med) <= reject * mad)
    rejected = int(ok.sum() - keep.sum())

    def est(mask: np.ndarray) -> np.ndarray:
        kept = np.where(mask, norm, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = np.nanmean(kept, axis=1)
        return np.exp(np.where(np.isfinite(out), out, med[:, 0]))

    alt = np.zeros_like(keep)  # alternate bursts of each item (its runs of one burst stay together)
    for i in range(n_items):
        _, idx = np.unique(np.where(ok[i], when[i], np.inf), return_inverse=True)
        alt[i] = idx % 2 == 0
    return Estimates(est(keep), est(keep & alt), est(keep & ~alt), mad[:, 0], rejected, np.exp(drift), np.exp(slow))


def measure_runners(runners: Sequence[Timer], cfg: "TimingConfig", progress: Progress | None = None,
                    stage: str = "items", seed: int = 0) -> Timings:
    """Time every runner in `cfg.rounds` interleaved rounds (one burst each: `cfg.warmup` untimed runs, then
    `cfg.repeats` timed ones), estimate robustly, then time again, interleaved among themselves and a few steady
    items, those whose two half-estimates disagree by more than `cfg.remeasure_above` (half as many rounds a
    pass, until none disagrees or after `cfg.remeasure_passes` passes)."""
    n = len(runners)
    rng = np.random.default_rng(seed)
    runs: list[list[tuple[int, float, int]]] = [[] for _ in range(n)]  # (burst, ms, preemptions) per item
    clock = [0]
    remeasure = cfg.remeasure_above > 0 and cfg.rounds >= 4 and n >= 2
    total = n * cfg.rounds
    done = [0]

    def run(order: list[np.ndarray], count: bool) -> None:
        for perm in order:
            for i in perm:
                runners[i].warm()
                for call in runners[i].time(cfg.repeats):
                    ms, pre = (call, 0) if np.ndim(call) == 0 else call
                    runs[i].append((clock[0], float(ms), int(pre)))
                clock[0] += 1
                if count:
                    done[0] += 1
                    if progress:
                        progress(stage, done[0], total)

    def estimate() -> Timings:
        width = max(len(r) for r in runs)
        samples, when, pre = np.full((n, width), np.nan), np.full((n, width), np.inf), np.zeros((n, width), int)
        for i, r in enumerate(runs):
            for k, (t, v, c) in enumerate(r):
                samples[i, k], when[i, k], pre[i, k] = v, t, c
        e = robust_estimates(samples, when, preemptions=pre)
        return Timings(samples, when, e.ms, e.half_a, e.half_b, e.spread, e.rejected, drift=e.drift, preemptions=pre,
                       slowdown=e.slowdown)

    gc_was = gc.isenabled()
    gc.disable()  # a collection inside a timed run is noise (timeit does the same)
    try:
        run(interleaved_order(n, cfg.rounds, rng), True)
        t = estimate()
        again: list[int] = []
        for _ in range(cfg.remeasure_passes if remeasure else 0):
            worse = [int(i) for i in np.flatnonzero(t.disagreement > cfg.remeasure_above)]
            if not worse:
                break
            again += [i for i in worse if i not in again]
            steady = [int(i) for i in np.argsort(t.disagreement) if i not in worse][:max(8, len(worse))]
            group = np.array(worse + steady)
            run([group[p] for p in interleaved_order(len(group), max(4, cfg.rounds // 2), rng)], False)
            t = estimate()
        t.remeasured = again
    finally:
        if gc_was:
            gc.enable()
    return t


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
