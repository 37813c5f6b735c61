"""The measuring loop's statistics, with fake timers instead of real ops (deterministic, no wall clock):
interleaved order, preemption and drift removal, outlier rejection, the re-measure trigger, and the below-target
warning."""

import numpy as np
import pytest

from hw_profiles.measure import TimingConfig
from hw_profiles.timing import interleaved_order, measure_runners, robust_estimates


class Clock:
    """A fake machine: every burst advances its time by one; `slowdown(t)` is how busy it is at time t."""

    def __init__(self, slowdown=lambda t: 1.0):
        self.t, self.log, self.slowdown = 0, [], slowdown


class FakeTimer:
    """An item of true latency `ms`; `spikes` maps a call number to a factor (an outlier burst); `step` makes
    the runs of a burst differ a little; `preempt(call, run)` gives a run's (times preempted, slowdown)."""

    def __init__(self, clock: Clock, name: int, ms: float, spikes=None, jitter=None, step=0.001, preempt=None):
        self.clock, self.name, self.ms, self.spikes, self.jitter = clock, name, ms, spikes or {}, jitter
        self.step, self.preempt = step, preempt
        self.calls, self.warmed = 0, 0

    def warm(self):
        self.warmed += 1

    def time(self, n):
        self.clock.log.append(self.name)
        factor = self.clock.slowdown(self.clock.t) * self.spikes.get(self.calls, 1.0)
        if self.jitter is not None:
            factor *= self.jitter(self.calls)
        runs = [self.ms * factor * (1 + self.step * k) for k in range(n)]
        if self.preempt is not None:
            pre_slow = [self.preempt(self.calls, k) for k in range(n)]
            runs = [(ms * slow, pre) for ms, (pre, slow) in zip(runs, pre_slow)]
        self.calls += 1
        self.clock.t += 1
        return runs


def test_rounds_are_interleaved_permutations():
    order = interleaved_order(5, 4, seed=0)
    assert len(order) == 4 and all(sorted(p) == list(range(5)) for p in order)
    assert len({tuple(p) for p in order}) > 1  # a fresh order per round
    for seed in range(50):
        flat = np.concatenate(interleaved_order(3, 6, seed))
        assert np.all(flat[1:] != flat[:-1])
    clock = Clock()
    timers = [FakeTimer(clock, i, 1.0 + i) for i in range(5)]
    measure_runners(timers, TimingConfig(rounds=4, repeats=3, remeasure_above=0), seed=0)
    assert len(clock.log) == 20 and [sorted(clock.log[k:k + 5]) for k in range(0, 20, 5)] == [list(range(5))] * 4
    assert all(a != b for a, b in zip(clock.log, clock.log[1:]))  # never the same item twice in a row
    assert all(t.warmed == 4 for t in timers)  # warmed before every burst


def test_every_timed_run_is_a_sample_and_estimates_are_exact_without_noise():
    clock = Clock()
    timers = [FakeTimer(clock, i, ms, step=0.0) for i, ms in enumerate([0.5, 1.0, 2.0, 4.0])]
    t = measure_runners(timers, TimingConfig(rounds=6, repeats=4), seed=1)
    np.testing.assert_allclose(t.ms, [0.5, 1.0, 2.0, 4.0], rtol=1e-9)
    np.testing.assert_allclose(t.half_a, t.half_b, rtol=1e-9)
    assert t.rejected == 0 and t.remeasured == [] and t.samples.shape == (4, 24)
    assert [e.count for e in t.entries()] == [24] * 4
    # the runs of one burst share its time stamp; a plain latency (no preemption count) counts as not preempted
    assert all(len(set(row)) == 6 for row in t.when) and t.preempted == 0.0


def test_drift_of_the_machine_is_divided_out():
    # the machine gets steadily busier (3x slower by the end): an item's raw bursts say when it happened to
    # be timed as much as how fast it is
    clock = Clock(lambda t: 1.0 + t / 60)
    true = np.linspace(1.0, 3.0, 12)
    timers = [FakeTimer(clock, i, ms) for i, ms in enumerate(true)]
    t = measure_runners(timers, TimingConfig(rounds=10, repeats=2, remeasure_above=0), seed=2)
    np.testing.assert_allclose(t.ms / t.ms[0], true / true[0], rtol=0.02)
    raw = np.nanmedian(t.samples, axis=1)
    assert np.abs(raw / raw[0] - true / true[0]).max() > np.abs(t.ms / t.ms[0] - true / true[0]).max()


def test_outlier_bursts_are_rejected():
    clock = Clock()
    timers = [FakeTimer(clock, i, 1.0 + 0.1 * i, jitter=lambda c, i=i: 1 + 0.005 * ((c * 7 + i) % 3))
              for i in range(10)]
    timers[3].spikes = {2: 3.0, 5: 2.5}  # two bursts of item 3 hit by another process
    t = measure_runners(timers, TimingConfig(rounds=8, repeats=2, remeasure_above=0), seed=3)
    assert t.rejected == 2 * 2  # both runs of each of the two bursts
    assert abs(t.ms[3] / 1.3 - 1) < 0.02
    plain_mean = np.nanmean(t.samples[3])
    assert plain_mean / 1.3 - 1 > 0.2  # what the mean of all bursts would have said


def test_items_whose_halves_disagree_are_timed_again():
    clock = Clock()
    # item 2 is slow in all of its early odd bursts: its two halves disagree by ~20% until it is timed again;
    # item 5 is slow in every odd burst: its halves never agree, so it is re-timed until the cap
    timers = [FakeTimer(clock, i, 1.0 + 0.2 * i) for i in range(10)]
    timers[2].jitter = lambda c: 1.2 if c % 2 == 1 and c < 8 else 1.0
    timers[5].jitter = lambda c: 1.2 if c % 2 == 1 else 1.0
    t = measure_runners(timers, TimingConfig(rounds=8, repeats=2, remeasure_above=0.05), seed=4)
    assert t.remeasured == [2, 5]
    # half as many rounds a pass, until the halves agree (item 2, after one pass) or after remeasure_passes (2)
    assert t.disagreement[2] <= 0.05 < t.disagreement[5]
    assert timers[5].calls == 8 + 4 + 4 and np.isfinite(t.samples[5]).sum() == 2 * 16
    untouched = [timers[i].calls for i in range(10) if i not in (2, 5)]
    assert min(untouched) >= 8 and max(untouched) <= 16  # steady items rode along only to track drift
    assert abs(t.ms[2] / 1.4 - 1) < abs(np.nanmean(t.samples[2, :16]) / 1.4 - 1)
    once = [FakeTimer(Clock(), i, 1.0 + 0.2 * i, jitter=timers[5].jitter if i == 5 else None) for i in range(10)]
    assert measure_runners(once, TimingConfig(rounds=8, repeats=2, remeasure_passes=1), seed=4).remeasured == [5]
    assert once[5].calls == 8 + 4
    never = measure_runners([FakeTimer(Clock(), i, 1.0) for i in range(3)], TimingConfig(rounds=3, repeats=1))
    assert never.remeasured == []  # too few rounds to tell halves apart


def test_robust_estimates_ignore_missing_bursts():
    samples = np.array([[1.0, 1.0, np.nan], [2.0, 2.0, 2.0]])
    when = np.array([[0, 2, np.inf], [1, 3, 4]])
    e = robust_estimates(samples, when)
    np.testing.assert_allclose(e.ms, [1.0, 2.0])
    assert e.rejected == 0 and np.isnan(e.drift[0, 2])


def test_preempted_runs_are_scaled_back_to_runs_that_kept_their_core():
    # on a busy machine most runs are preempted (taken off the core), and a preempted run is slower even on the
    # thread's CPU clock (its caches were evicted): 1.3x when preempted once, 1.6x when 5 times (as 4 or more);
    # items are preempted more or less often, so their raw means rank them wrongly
    rng = np.random.default_rng(0)
    true = np.linspace(1.0, 1.5, 12)
    share = np.linspace(0.9, 0.1, 12)  # the slow items happen to be preempted least

    def preempt(i):
        def f(call, run):
            if rng.random() > share[i]:
                return 0, 1.0
            return (1, 1.3) if rng.random() < 0.5 else (5, 1.6)
        return f

    clock = Clock()
    timers = [FakeTimer(clock, i, ms, step=0.0, preempt=preempt(i)) for i, ms in enumerate(true)]
    t = measure_runners(timers, TimingConfig(rounds=10, repeats=3, remeasure_above=0), seed=5)
    np.testing.assert_allclose(t.ms, true, rtol=0.03)
    assert 0.3 < t.preempted < 0.7
    slow = np.unique(np.round(t.slowdown[np.isfinite(t.samples)], 2))
    assert len(slow) == 3 and slow[0] == 1.0 and 1.2 < slow[1] < 1.35 and 1.5 < slow[2] < 1.65  # learnt
    raw = np.nanmean(t.samples, axis=1)
    assert np.corrcoef(raw, true)[0, 1] < 0.9 < 0.99 < np.corrcoef(t.ms, true)[0, 1]


@pytest.mark.parametrize("fid, ceiling, expect", [
    ({"spearman": 0.97, "within_10pct": 0.95}, {"spearman": 0.99, "within_10pct": 1.0}, None),
    ({"spearman": 0.90, "within_10pct": 0.95}, {"spearman": 0.92, "within_10pct": 0.9}, "machine was busy"),
    ({"spearman": 0.96, "within_10pct": 0.80}, {"spearman": 0.99, "within_10pct": 0.99}, "the predictor, not"),
    ({"spearman": 0.90, "within_10pct": 0.95}, {}, "noise ceiling not measured"),
])
def test_warning_when_below_target_names_the_noise_ceiling(fid, ceiling, expect):
    from predictors.profiling import below_target

    w = below_target("tiny-mbv3", "lookup-table", fid, ceiling)
    if expect is None:
        assert w is None
    else:
        assert expect in w and "target 0.95, 90%" in w
        assert not ceiling or f"Spearman {ceiling['spearman']:.3f}" in w
