"""Search engine benchmark on predictor objectives: candidates/s per strategy, hypervolume vs budget against the
best-known front (random beside), and time to the best feasible arch under a latency budget.

    .venv/bin/python benchmarks/bench_search.py [--device stm32f746] [--run runs/NAME] [--quick]

Objectives: accuracy (with `--run`, a trained run with a fitted accuracy predictor) or, without one, params as
a capacity stand-in, maximised; latency_ms on the device, minimised.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import table, write_section  # noqa: E402
from nas.experiment import PredictorObjective  # noqa: E402
from nas.search import hypervolume_2d, nondominated_mask, run  # noqa: E402
from predictors import Predictors  # noqa: E402

STRATEGIES = ["random", "evolution", "optuna-nsga2", "optuna-tpe"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="tiny-mbv3")
    ap.add_argument("--device", default="stm32f746")
    ap.add_argument("--run", default=None, help="trained run folder (accuracy objective)")
    ap.add_argument("--latency-ms", type=float, default=40.0, help="latency budget for time-to-best")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smaller budgets (a smoke run, not for the table)")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    preds = Predictors.for_run(args.run, args.device) if args.run else Predictors(args.space, args.device)
    first = "accuracy" if args.run else "params"
    dirs = {first: "maximize", "latency_ms": "minimize"}
    space = preds.space
    budgets = [200, 1000, 5000] if not args.quick else [100, 300]
    top = budgets[-1]

    # 1. candidates per second, in memory and with SQLite storage
    speed = []
    for strategy in STRATEGIES:
        n = top if not strategy.startswith("optuna") else min(top, 1000)
        t0 = time.perf_counter()
        res = run(space, PredictorObjective(preds, list(dirs)), directions=dirs, budget=n, seed=0, strategy=strategy)
        dt = time.perf_counter() - t0
        row = {"strategy": strategy, "evaluations": n, "in memory /s": n / dt}
        if strategy != "optuna-tpe":  # TPE's own ~30/s dwarfs any storage cost
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                run(space, PredictorObjective(preds, list(dirs)), directions=dirs, budget=n, seed=0,
                    strategy=strategy, storage=Path(tmp) / "s.db", study_name="b")
                row["SQLite storage /s"] = n / (time.perf_counter() - t0)
        speed.append(row)
        print(row, file=sys.stderr)
    raw = space.sample_codes(100_000, 0)
    t0 = time.perf_counter()
    preds.predict(raw)
    pred_rate = len(raw) / (time.perf_counter() - t0)

    # 2. hypervolume after n evaluations, against the best-known front
    runs: dict[tuple[str, int], np.ndarray] = {}
    for strategy in STRATEGIES:
        for seed in range(args.seeds):
            n = top if strategy != "optuna-tpe" else min(top, 1000)
            res = run(space, PredictorObjective(preds, list(dirs)), directions=dirs, budget=n, seed=seed,
                      strategy=strategy)
            runs[(strategy, seed)] = res.trials[list(dirs)].to_numpy()
    pool = np.concatenate([v for v in runs.values()] +
                          [preds.predict(space.sample_codes(200_000, 99))[list(dirs)].to_numpy()])
    known = pool[nondominated_mask(pool, list(dirs.values()))]
    ref = [pool[:, 0].min(), pool[:, 1].max()]  # the worst capacity and the slowest latency seen
    hv_known = hypervolume_2d(known, ref, list(dirs.values()))
    quality = []
    for strategy in STRATEGIES:
        row = {"strategy": strategy}
        for n in budgets:
            hv = [hypervolume_2d(runs[(strategy, s)][:n], ref, list(dirs.values())) / hv_known
                  for s in range(args.seeds) if len(runs[(strategy, s)]) >= n]
            row[f"HV@{n}"] = f"{np.mean(hv):.4f}" if hv else "-"
        quality.append(row)
        print(row, file=sys.stderr)

    # 3. time to the best feasible arch under a latency budget (one objective), until within 0.5% of the best known
    con = {"latency_ms": args.latency_ms}
    pool_all = preds.predict(space.sample_codes(200_000, 7))
    feasible_best = pool_all.loc[pool_all["latency_ms"] <= args.latency_ms, first].max()
    timing = []
    for strategy in ["random", "evolution", "optuna-nsga2"]:
        marks: list[tuple[float, int, float]] = []
        t0 = time.perf_counter()
        res = run(space, PredictorObjective(preds, [first]), directions={first: "maximize"}, budget=top, seed=0,
                  strategy=strategy, constraints=con,
                  progress=lambda done, total, best: marks.append((time.perf_counter() - t0, done,
                                                                   (best or {}).get(first, -np.inf))))
        best_known = max(feasible_best, res.best_values[first])
        target = best_known - 0.005 * abs(best_known)
        hit = next(((t, d) for t, d, b in marks if b >= target), None)
        timing.append({"strategy": strategy, "best found": res.best_values[first],
                       "evaluations to within 0.5%": hit[1] if hit else f"not in {top}",
                       "seconds to within 0.5%": hit[0] if hit else "-",
                       "seconds for all": marks[-1][0]})
        print(timing[-1], file=sys.stderr)

    note = ("accuracy from the run's fitted predictor" if args.run else
            "params (capacity) stands in for accuracy: no trained run with an accuracy predictor was given")
    body = f"""Space `{space.name}`, device `{args.device}` ({preds.latency_source} latency), objectives: {first} max,
latency_ms min ({note}). The predictors alone score {pred_rate:,.0f} archs/s in one batch of 100k.

**Candidates evaluated per second** (whole search: sampling, predictors, bookkeeping; SQLite: every trial
written to an Optuna study in one transaction per batch, resumable):

{table(speed)}

**Hypervolume after n evaluations**, as a fraction of the best-known front's (the union of every run here and
200k random archs; reference point: the least capacity and the slowest latency seen), mean of {args.seeds} seeds
(TPE and NSGA-II speed, TPE quality to 1000 evaluations only: Optuna's own per-trial cost dominates them):

{table(quality)}

**Time to the best feasible arch** at latency_ms <= {args.latency_ms:g} on {args.device} (one objective,
{first}; "best" = within 0.5% of the best known feasible value, {feasible_best:.6g} from 200k random archs or
better if a search found it):

{table(timing)}
"""
    write_section("search", "Search engine (nas.search)", body)
    print(body)


if __name__ == "__main__":
    main()
