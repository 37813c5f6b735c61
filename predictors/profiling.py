"""Calibrating a device profile from measurements on the machine at hand (what `nas profile` runs).

Measure every lookup-table op of a space (batch 1 on CPU, the profile's batch on CUDA), fit the learned per-op
model on them, measure whole subnets: some to fit each predictor's end-to-end correction, the rest held out to
report fidelity, beside the run's own noise ceiling (the held-out subnets' two independent half-timings scored
against each other) and a warning when the lookup table misses TARGET. The result is merged into the device
profile (other spaces' tables and corrections are kept).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from hw_profiles.measure import Progress, TimingConfig, quick_calibration, sample_codes_at, time_archs, time_ops
from hw_profiles.schema import DeviceProfile, Fidelity, Figure, LatencySection, LookupTable, ProfileError
from supernet import SearchSpace

from predictors.api import correction_key
from predictors.learned import LearnedLatency
from predictors.lookup import LookupTableLatency
from predictors.metrics import fidelity
from predictors.ops import space_ops
from predictors.roofline import RooflineLatency


# What a calibrated latency predictor should reach on held-out subnets of this machine (the under-load target;
# an idle machine should do better). Below it the profile, the report and the CLI say so, beside the noise ceiling.
TARGET = {"spearman": 0.95, "within_10pct": 0.90}
NOISE_CEILING = "noise-ceiling"


@dataclass
class ProfileReport:
    """What a calibration measured and how well each predictor did on held-out subnets."""

    space: str
    resolutions: list[int]
    ops: int
    fit_archs: int
    test_archs: int
    seconds: dict[str, float] = field(default_factory=dict)
    fidelity: dict[str, dict[str, float]] = field(default_factory=dict)
    calibration: dict[str, float] = field(default_factory=dict)
    noise_ceiling: dict[str, float] = field(default_factory=dict)
    remeasured: int = 0
    rejected: int = 0
    clock: str = "wall"
    preempted: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    held_out_codes: np.ndarray | None = field(default=None, repr=False)
    held_out_ms: np.ndarray | None = field(default=None, repr=False)


def below_target(space: str, predictor: str, fid: dict[str, float], ceiling: dict[str, float]) -> str | None:
    """A warning when `fid` misses TARGET, with the run's noise ceiling beside it; None when it meets it."""
    if all(fid[k] >= v for k, v in TARGET.items()):
        return None
    head = (f"{space}: {predictor} latency on held-out subnets is below target: Spearman {fid['spearman']:.3f}, "
            f"{fid['within_10pct']:.0%} within ±10% (target {TARGET['spearman']}, {TARGET['within_10pct']:.0%}); ")
    if not ceiling:
        return head + "noise ceiling not measured (it needs --rounds 2 or more)"
    why = ("the timings themselves disagree that much (the machine was busy): re-run `nas profile` on a quieter "
           "machine or with more --rounds" if any(ceiling[k] < v for k, v in TARGET.items())
           else "the timings agree better than the predictor does: the predictor, not the measuring, is short")
    return (head + f"noise ceiling of this run (its two half-runs scored against each other): Spearman "
            f"{ceiling['spearman']:.3f}, {ceiling['within_10pct']:.0%} within ±10%; {why}")


def _points(predicted: np.ndarray, measured: np.ndarray) -> list[tuple[float, float]]:
    return [(round(float(p), 5), round(float(m), 5)) for p, m in zip(predicted, measured)]


def calibrate_profile(space: SearchSpace, base: DeviceProfile, cfg: TimingConfig, *,
                      resolutions: Sequence[int] | None = None, n_fit: int = 30, n_test: int = 100, seed: int = 0,
                      progress: Progress | None = None) -> tuple[DeviceProfile, ProfileReport]:
    """Measure `space` on this machine and return `base` updated with the measured table, the learned model, the
    end-to-end corrections and the held-out fidelity of each predictor."""
    res = sorted(int(r) for r in (resolutions or space.resolutions))
    if n_test < 2 or n_fit < 3:
        raise ProfileError("need at least 3 subnets to fit the corrections and 2 held out")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    calib = quick_calibration(cfg.threads) if cfg.backend != "cuda" else {}
    seconds["calibration"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    per_res = space_ops(space, res)
    unique = {op.key: op for ops in per_res.values() for op in ops}
    op_timings = time_ops(list(unique.values()), cfg, progress)
    measured = dict(zip(unique, op_timings.entries()))
    seconds["ops"] = time.perf_counter() - t0

    lat = base.latency.model_copy(deep=True) if base.latency else LatencySection()
    old = lat.lookup_table.tables if lat.lookup_table else {}
    tables = {int(r): dict(t) for r, t in old.items()}
    for r, ops in per_res.items():
        tables.setdefault(r, {}).update({op.key: measured[op.key] for op in ops})
    all_ops = unique

    t0 = time.perf_counter()
    codes = sample_codes_at(space, n_fit + n_test, res, seed)
    timed = time_archs(space, codes, cfg, progress, seed=seed)
    y = timed.ms
    seconds["subnets"] = time.perf_counter() - t0
    fit_c, fit_y, test_c, test_y = codes[:n_fit], y[:n_fit], codes[n_fit:], y[n_fit:]

    learned = LearnedLatency(space)
    learned.fit_ops([all_ops[k] for k in all_ops], np.array([measured[k].mean for k in all_ops]))
    learned_fb = LearnedLatency(space, coef=learned.coef)
    learned.fit_correction(fit_c, fit_y)
    lut = LookupTableLatency(space, tables, fallback=learned_fb).fit(fit_c, fit_y)

    specs = dict(base.specs)
    if calib:
        specs["peak_fp32"] = Figure(value=round(calib["peak_gflops"], 2), unit="GFLOPS", source="measured",
                                    note=f"512x512 fp32 matmul, {cfg.threads} thread(s)")
        specs["memory_bandwidth"] = Figure(value=round(calib["bandwidth_gbs"], 2), unit="GB/s", source="measured",
                                           note="32 MiB tensor copy (read + write)")
        specs["launch_overhead"] = Figure(value=round(calib["launch_us"], 2), unit="us", source="measured",
                                          note="one trivial eager torch op")
        specs["cores"] = Figure(value=calib["cores"], unit="count", source="measured", note="os.cpu_count()")
    prof = base.model_copy(update={"specs": specs})
    roof = RooflineLatency.from_profile(space, prof, batch_size=cfg.batch_size)

    # the two halves of a run are independent timings only with 2 rounds or more
    ceiling = fidelity(timed.half_a[n_fit:], timed.half_b[n_fit:]) if cfg.rounds >= 2 else {}
    report = ProfileReport(space.name, res, len(unique), n_fit, n_test, seconds=seconds, calibration=calib,
                           noise_ceiling=ceiling, remeasured=len(timed.remeasured), rejected=timed.rejected,
                           clock=cfg.clock_name, preempted={"ops": op_timings.preempted,
                                                            "subnets": timed.preempted},
                           held_out_codes=test_c, held_out_ms=test_y)
    entries = []
    for name, pred in (("lookup-table", lut), ("learned", learned), ("roofline", roof)):
        predicted = pred.predict(test_c)
        fid = fidelity(predicted, test_y)
        report.fidelity[name] = fid
        entries.append(Fidelity(predictor=name, n=len(test_y), resolutions=res, source="measured",
                                points=_points(predicted, test_y), **{k: round(v, 5) for k, v in fid.items()}))
    if ceiling:  # its scatter: one half of the run's timings against the other
        entries.append(Fidelity(predictor=NOISE_CEILING, n=len(test_y), resolutions=res, source="measured",
                                points=_points(timed.half_a[n_fit:], timed.half_b[n_fit:]),
                                **{k: round(v, 5) for k, v in ceiling.items()}))
    # the lookup table is what `latency_predictor` serves for this profile, so it is the one held to the target
    warning = below_target(space.name, "lookup-table", report.fidelity["lookup-table"], ceiling)
    report.warnings = [warning] if warning else []
    lat.lookup_table = LookupTable(source="measured", tables=tables)
    lat.learned = learned.to_model(note=f"fitted on {len(all_ops)} ops measured with {cfg.backend}")
    lat.corrections[correction_key(space, "lookup-table")] = lut.correction
    lat.corrections[correction_key(space, "learned")] = learned.correction
    lat.fidelity[space.name] = entries
    lat.warnings.pop(space.name, None)
    if report.warnings:
        lat.warnings[space.name] = report.warnings
    lat.threads = cfg.threads if cfg.backend != "cuda" else None
    lat.backend, lat.batch_size, lat.clock = cfg.backend, cfg.batch_size, cfg.clock_name
    if cfg.backend == "cuda":
        lat.dtype = cfg.dtype
    desc = prof.description
    if prof.state == "unmeasured" or not desc:
        desc = f"{prof.name}: measured here with {cfg.backend}, {cfg.threads if cfg.backend != 'cuda' else 'CUDA'} " \
               f"thread(s), batch {cfg.batch_size}, {cfg.clock_name} clock"
    prof = prof.model_copy(update={"latency": lat, "state": "measured", "description": desc})
    return DeviceProfile.model_validate(prof.model_dump()), report
