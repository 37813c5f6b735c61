"""The measuring loop and its statistics, whatever is timed (`hw_profiles.measure` times ops and subnets with
it): interleaved rounds, preemption and drift divided out, outliers rejected, the run's own noise from its two
halves, re-timing what disagrees. See `hw_profiles.measure` for why each step is there."""

from __future__ import annotations

import gc
import warnings
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Protocol, Sequence

import numpy as np

from hw_profiles.schema import LutEntry
from supernet.space import as_rng

Progress = Callable[[str, int, int], None]


class Rounds(Protocol):
    """How the loop times (`hw_profiles.measure.TimingConfig` is one): bursts of `repeats` timed runs (after the
    timer's own warm-up), `rounds` interleaved rounds, re-timing above `remeasure_above` for up to
    `remeasure_passes` passes."""

    repeats: int
    rounds: int
    remeasure_above: float
    remeasure_passes: int


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


def measure_runners(runners: Sequence[Timer], cfg: Rounds, progress: Progress | None = None,
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
