"""Latency and memory predictors: fidelity on this CPU, fitting from 100 measurements, throughput, time to profile.

    .venv/bin/python benchmarks/bench_latency.py            # full run (~10 min on 2 shared cores)
    .venv/bin/python benchmarks/bench_latency.py --quick    # smoke run, figures not written
    .venv/bin/python benchmarks/bench_latency.py --runs 5   # cpu-host fidelity of 5 profiling runs, each beside
                                                            # a CPU-bound training loop (--no-companion: alone)

Fidelity is measured honestly on held-out subnets timed end to end on this machine (batch 1, one thread, thread
CPU time, interleaved rounds, preemption and drift removed, outliers rejected). ofa-mbv3-w1.0 is
measured at small resolutions only (full-size subnets take too long to time here); one resolution is left out
of the table entirely so the learned per-op model must predict shapes it never saw.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import table, write_section  # noqa: E402
from hw_profiles import load_profile  # noqa: E402
from hw_profiles.measure import TimingConfig, measure_archs, sample_codes_at  # noqa: E402
from predictors import LearnedLatency, Predictors, RooflineLatency, fidelity, latency_predictor  # noqa: E402
from predictors.profiling import calibrate_profile  # noqa: E402
from supernet import SearchSpace  # noqa: E402


def _row(space: str, kind: str, fid: dict, n: int, note: str = "") -> dict:
    return {"space": space, "predictor": kind, "n held out": n, "Spearman": round(fid["spearman"], 3),
            "Kendall": round(fid["kendall"], 3), "MAPE %": round(100 * fid["mape"], 1),
            "within ±10% %": round(100 * fid["within_10pct"], 1), "note": note}


def bench_cpu(space_name: str, resolutions: list[int], unseen: list[int], n_fit: int, n_test: int, n_unseen: int,
              cfg: TimingConfig) -> tuple[list[dict], dict, object]:
    space = SearchSpace.preset(space_name)
    base = load_profile("cpu-host")
    t0 = time.perf_counter()
    prof, rep = calibrate_profile(space, base, cfg, resolutions=resolutions, n_fit=n_fit, n_test=n_test, seed=0,
                                  progress=None)
    total = time.perf_counter() - t0
    res_txt = ",".join(map(str, resolutions))
    rows = [_row(space_name, k, f, n_test, f"r in {{{res_txt}}}") for k, f in rep.fidelity.items()]
    timing = {"space": space_name, "resolutions": res_txt, "ops measured": rep.ops,
              "subnets measured": n_fit + n_test, "ops s": round(rep.seconds["ops"], 1),
              "subnets s": round(rep.seconds["subnets"], 1), "total s": round(total, 1)}
    # Whole-subnet-only fitting (what `nas latency fit` does with a user's CSV), cross-validated on the same
    # held-out measurements: no per-op table at all.
    codes, ys = rep.held_out_codes, rep.held_out_ms
    cv = LearnedLatency(space).cross_validate(codes, ys, folds=5)
    rows.append(_row(space_name, "learned from subnets only (5-fold CV)", cv, len(ys), "no op table"))
    # The noise ceiling: the same held-out subnets timed again, compared with their first timing.
    again = measure_archs(space, codes, cfg, seed=0)
    rows.append(_row(space_name, "re-measurement (noise ceiling)", fidelity(again, ys), len(ys),
                     "same subnets timed twice"))
    if unseen:
        uc = sample_codes_at(space, n_unseen, unseen, 1)
        uy = measure_archs(space, uc, cfg, seed=1)
        lat = latency_predictor(space, prof)  # table + learned fallback for the unmeasured shapes
        rows.append(_row(space_name, "lookup-table + learned fallback", fidelity(lat.predict(uc), uy), n_unseen,
                         f"r in {{{','.join(map(str, unseen))}}}: no op measured"))
        learned = LearnedLatency.from_model(space, prof.latency.learned,
                                            prof.latency.corrections.get(f"{space_name}:learned"))
        rows.append(_row(space_name, "learned", fidelity(learned.predict(uc), uy), n_unseen,
                         f"r in {{{','.join(map(str, unseen))}}}: no op measured"))
    return rows, timing, prof


def bench_synthetic_gpu(n_fit: int = 100, n_test: int = 2000) -> list[dict]:
    """Fit from 100 'measured' large-batch GPU latencies (roofline at batch 256 with wave quantisation,
    kernel-dependent depthwise efficiency, a power law and 3% noise), rank the rest."""
    from predictors.ops import scalar_tables

    rows = []
    for name in ("tiny-mbv3", "ofa-mbv3-w1.0"):
        space = SearchSpace.preset(name)
        rf = RooflineLatency.from_profile(space, "nvidia-t4", batch_size=256)

        def layer_ms(layer, rf=rf):  # noqa: ANN001
            q = np.ceil(layer.cout / 64) * 64 / layer.cout
            return rf.layer_ms(layer) * q * (1.0 + (0.15 * layer.kernel if layer.kind == "depthwise" else 0.0))

        codes = space.sample_codes(n_fit + n_test, 7)
        y = scalar_tables(space, lambda op: sum(layer_ms(x) for x in op.layers))(codes)[:, 0] ** 1.05
        y = y * np.exp(np.random.default_rng(0).normal(0, 0.03, len(y)))
        model = LearnedLatency(space).fit(codes[:n_fit], y[:n_fit])
        rows.append(_row(name, f"learned from {n_fit} subnets", fidelity(model.predict(codes[n_fit:]), y[n_fit:]),
                         n_test, "synthetic T4 batch-256 latencies, 3% noise"))
        rows.append(_row(name, "roofline (spec sheet, uncalibrated)", fidelity(rf.predict(codes[n_fit:]), y[n_fit:]),
                         n_test, "same data"))
    return rows


def bench_throughput(measured: dict, n: int = 100_000) -> list[dict]:
    """Archs per second of one `predict` call on n archs, per space and device (`measured`: space -> the
    cpu-host profile measured above, so its lookup table is timed too)."""
    rows = []
    for name in ("tiny-mbv3", "ofa-mbv3-w1.0"):
        space = SearchSpace.preset(name)
        codes = space.sample_codes(n, 0)
        devices = ([measured[name]] if name in measured else []) + ["nvidia-h100", "jetson-orin-nano", "stm32f746"]
        for device in devices:
            p = Predictors(space, device)
            p.predict(codes[:1000])  # build the per-resolution tables once
            t0 = time.perf_counter()
            p.latency.predict(codes)
            t_lat = time.perf_counter() - t0
            t0 = time.perf_counter()
            p.predict(codes)
            t_all = time.perf_counter() - t0
            rows.append({"space": name, "device": p.device, "latency model": p.latency_source,
                         "latency archs/s": f"{n / t_lat:,.0f}", "full table archs/s": f"{n / t_all:,.0f}"})
    return rows


_COMPANION = """
import torch
torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 16, 3, padding=1))
opt = torch.optim.SGD(net.parameters(), lr=1e-3)
x = torch.randn(8, 16, 32, 32)
while True:
    opt.zero_grad(); net(x).pow(2).mean().backward(); opt.step()
"""


IDLE_TARGET = {"spearman": 0.97, "within_10pct": 0.95}  # issue 21: the same figures on an idle machine
_HISTORY = """ Before this change (8 interleaved
rounds for ops and subnets, the fastest run of each burst, no preemption correction) 4 of 5 such runs met the
target (the fifth 0.948 / 97% at load average 18–20); before interleaving (fastest of 3 passes × 8 back-to-back
runs, no drift removal) the demo's profile reached held-out Spearman 0.89 in one clean run and 0.69 in another."""


def bench_under_load(runs: int, companion: bool, n_fit: int = 20, n_test: int = 100) -> None:
    """`nas profile cpu-host` on tiny-mbv3 `runs` times (a fresh sample of subnets each), each beside a CPU-bound
    training loop of our own (one thread: with 2 cores, the profile competes for the machine); held-out fidelity
    of the lookup table (what the profile serves) and the learned model against the run's noise ceiling."""
    import os
    import subprocess

    from predictors.profiling import TARGET

    space = SearchSpace.preset("tiny-mbv3")
    target = TARGET if companion else IDLE_TARGET
    rows, t_all = [], time.perf_counter()
    for k in range(runs):
        proc = subprocess.Popen([sys.executable, "-c", _COMPANION]) if companion else None
        try:
            time.sleep(2.0 if companion else 0.0)
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            _, rep = calibrate_profile(space, load_profile("cpu-host"), TimingConfig(), n_fit=n_fit, n_test=n_test,
                                       seed=k)
            seconds = time.perf_counter() - t0
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()
        lut, learned, ceil = rep.fidelity["lookup-table"], rep.fidelity["learned"], rep.noise_ceiling
        ok = all(lut[m] >= v for m, v in target.items())
        rows.append({"run": k + 1, "load avg (1 min)": f"{load0:.1f} → {os.getloadavg()[0]:.1f}",
                     "lookup-table Spearman": round(lut["spearman"], 3),
                     "lookup-table ±10% %": round(100 * lut["within_10pct"], 1),
                     "learned Spearman": round(learned["spearman"], 3),
                     "learned ±10% %": round(100 * learned["within_10pct"], 1),
                     "noise ceiling Spearman": round(ceil["spearman"], 3),
                     "noise ceiling ±10% %": round(100 * ceil["within_10pct"], 1),
                     "subnets re-timed": rep.remeasured, "runs rejected": rep.rejected,
                     "subnet runs preempted %": round(100 * rep.preempted["subnets"]),
                     "meets target": "yes" if ok else "no", "s": round(seconds)})
        print(table(rows[-1:]), file=sys.stderr)
    met = sum(r["meets target"] == "yes" for r in rows)
    cfg = TimingConfig()
    where = ("each beside a one-thread training loop of this script's own (conv forward/backward/SGD), on top of "
             "whatever else the shared machine ran" if companion else "with no companion process of ours")
    body = f"""
`nas profile cpu-host --space tiny-mbv3` (all 3 resolutions, {n_fit} subnets to fit the end-to-end correction,
{n_test} held out; the thread's CPU clock; {cfg.rounds} interleaved rounds for subnets and {cfg.for_ops().rounds} for
ops, each a burst of a warm-up run and {cfg.repeats} timed runs, every timed run a sample; the slowdown of runs
preempted 1, 2, 3, 4+ times (involuntary context switches) estimated from all items and divided out, drift
divided out, outliers rejected, subnets whose half-runs disagree by > {cfg.remeasure_above:.0%} re-timed in passes
of {max(4, cfg.rounds // 2)} rounds, at most {cfg.remeasure_passes}) {runs} times, a fresh sample of
subnets each run (seed = run − 1), {where}. Target{" (idle machine)" if not companion else ""}: lookup table (what
the profile serves) Spearman ≥ {target['spearman']} and ≥ {target['within_10pct']:.0%} within ±10% on the held-out
subnets. The noise ceiling is the
run's own: each held-out subnet's two half-runs (alternate bursts) scored against each other, so it describes
timings made with half the bursts; a predictor scored against the full timings can exceed it.

{table(rows)}

**{met} of {runs} runs meet the target.** The load average column shows what else ran on the 2 cores{
" (the companion counts 1)" if companion else ""}.{_HISTORY if companion else ""}
Whole benchmark: {time.perf_counter() - t_all:.0f} s.
"""
    print(body)
    key, title = ("latency-load", "cpu-host latency fidelity under load (5 profiling runs)") if companion else \
        ("latency-idle", "cpu-host latency fidelity without a companion process")
    write_section(key, title, body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few measurements, print only")
    ap.add_argument("--runs", type=int, default=0, help="only profile cpu-host RUNS times beside a CPU-bound "
                    "process and report each run's fidelity and noise ceiling")
    ap.add_argument("--no-companion", action="store_true", help="with --runs: no CPU-bound process of ours")
    args = ap.parse_args()
    if args.runs:
        bench_under_load(args.runs, not args.no_companion)
        return
    cfg = TimingConfig(backend="torch", threads=1)
    n_test, n_fit, n_unseen = (10, 5, 5) if args.quick else (100, 20, 40)
    fid_rows, timings, measured = [], [], {}
    t0 = time.perf_counter()
    for name, res, unseen in (("tiny-mbv3", [20, 24, 28], []), ("ofa-mbv3-w1.0", [128, 144], [136])):
        print(f"measuring {name} ...", file=sys.stderr)
        rows, timing, measured[name] = bench_cpu(name, res, unseen, n_fit, n_test, n_unseen, cfg)
        fid_rows += rows
        timings.append(timing)
        print(table(rows), file=sys.stderr)
    syn = bench_synthetic_gpu()
    thr = bench_throughput(measured, 10_000 if args.quick else 100_000)
    body = f"""
### Fidelity on this CPU (cpu-host, torch, batch 1, 1 thread)

Targets: Spearman ≥ 0.97 and ≥ 90% of subnets within ±10%. Held-out subnets are timed end to end; the lookup
table and learned model were built from ops timed alone, with an end-to-end correction fitted on {n_fit} other
subnets. The machine is shared with other jobs (load average well above its 2 cores while this ran), which
caps how well any predictor can match a single timing: the "re-measurement" row times the same held-out
subnets a second time and scores the first timing against it, the ceiling any predictor can reach here.

{table(fid_rows)}

### Fitting from 100 whole-subnet measurements (large-batch GPU)

{table(syn)}

### Prediction throughput (100,000 archs, one call)

{table(thr)}

### Time to profile this machine (`nas profile cpu-host`, same settings)

{table(timings)}

Whole benchmark: {time.perf_counter() - t0:.0f} s.
"""
    print(body)
    if not args.quick:
        write_section("latency", "Latency and memory predictors", body)


if __name__ == "__main__":
    main()
