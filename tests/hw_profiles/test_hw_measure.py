"""Measuring code: op modules compute the right shapes; timings are positive; bad settings are refused."""

import numpy as np
import pytest
import torch

from hw_profiles import ProfileError
from hw_profiles.measure import TimingConfig, measure_archs, measure_ops, op_module, sample_codes_at
from predictors.ops import space_ops
from supernet import SearchSpace


@pytest.fixture(scope="module")
def tiny():
    return SearchSpace.preset("tiny-mbv3")


def test_op_modules_match_op_shapes(tiny):
    ops = space_ops(tiny, [24])[24]
    # every fixed op, and blocks with and without SE, residual, stride 2, each kernel size
    for op in [o for o in ops if o.type != "expanded_conv"] + [o for o in ops if o.type == "expanded_conv"][::7]:
        module, shape = op_module(op)
        with torch.no_grad():
            y = module.eval()(torch.randn(1, *shape))
        last = op.layers[-1]
        want = (1, last.cout) if op.type == "Logits" else (1, last.cout, last.hout, last.hout)
        assert tuple(y.shape) == want, op.key


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_measure_ops_and_archs(tiny, backend):
    cfg = TimingConfig(backend=backend, threads=1, warmup=1, repeats=2, rounds=1)
    ops = space_ops(tiny, [24])[24][:3]
    table = measure_ops(ops, cfg)
    assert set(table) == {op.key for op in ops}
    assert all(e.mean > 0 and e.count == 2 * 2 for e in table.values())  # ops get twice the rounds
    codes = sample_codes_at(tiny, 2, [24], 0)
    assert np.all(codes[:, -1] == 24)
    ms = measure_archs(tiny, codes, cfg)
    assert ms.shape == (2,) and np.all(np.isfinite(ms)) and np.all(ms > 0)


def test_runs_report_their_clock_and_preemptions(tiny):
    """One CPU thread in process: the thread's CPU clock, each run with how many times it was preempted (a count,
    >= 0); several threads or onnxruntime's own threads: wall time; CUDA: CUDA events."""
    from hw_profiles.measure import _Runner

    op = space_ops(tiny, [24])[24][1]
    for cfg, clock in ((TimingConfig(), "thread-cpu"), (TimingConfig(threads=2), "wall"),
                       (TimingConfig(clock="wall"), "wall")):
        assert cfg.clock_name == clock
        runs = _Runner(*op_module(op), cfg).time(3)
        assert len(runs) == 3 and all(ms > 0 and pre >= 0 and float(pre).is_integer() for ms, pre in runs)
        assert clock == "thread-cpu" or all(pre == 0 for _, pre in runs)
    assert TimingConfig(rounds=5).for_ops().rounds == 10 and TimingConfig(rounds=5, op_rounds=7).for_ops().rounds == 7


def test_bad_timing_settings():
    with pytest.raises(ProfileError, match="backend must be one of"):
        TimingConfig(backend="tpu")
    with pytest.raises(ProfileError, match="threads, repeats"):
        TimingConfig(threads=0)
    with pytest.raises(ProfileError, match="op_rounds"):
        TimingConfig(op_rounds=0)
    if not torch.cuda.is_available():
        with pytest.raises(ProfileError, match="needs a CUDA GPU"):
            TimingConfig(backend="cuda")
