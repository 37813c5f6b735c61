"""Accuracy predictor fidelity on the demo run: every model kind fitted on the same measured subnets and scored on
the same held-out ones (Spearman, Kendall, RMSE), plus what measuring costs.

    .venv/bin/python benchmarks/bench_accuracy_predictor.py                      # runs/fashion-mnist, 500 subnets
    .venv/bin/python benchmarks/bench_accuracy_predictor.py --samples 200 --val-images 2000

Measuring reuses (and extends) the run's measured table, the same one `nas accuracy fit` writes, so a run of
`nas accuracy fit runs/fashion-mnist --samples 500` beforehand makes this quick. Skipped (nothing written) when the
run is not there or not finished.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import table, write_section  # noqa: E402
from predictors.accuracy import compare_models, measure_subnets, measured_path, run_measurer, select_model  # noqa: E402
from predictors.accuracy.dataset import table_codes  # noqa: E402
from supernet.errors import CheckpointError  # noqa: E402
from supernet.run import load_run  # noqa: E402

TARGETS = {"kendall": 0.75, "spearman": 0.9}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/fashion-mnist")
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--bn-images", type=int, default=2000)
    ap.add_argument("--val-images", type=int, default=5000)
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print figures only")
    args = ap.parse_args()

    try:
        run = load_run(args.run)
    except CheckpointError as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return
    path = measured_path(args.run, run.checkpoint_hash)
    measure = run_measurer(run, bn_images=args.bn_images, val_images=args.val_images, seed=args.seed)
    t0 = time.perf_counter()
    tab = measure_subnets(run.space, measure, args.samples, path, checkpoint_hash=run.checkpoint_hash,
                          seed=args.seed, bn_images=args.bn_images, val_images=args.val_images, progress=True)
    print(f"measured table ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    tab = tab.iloc[:args.samples]
    codes, y = table_codes(run.space, tab)

    rows = compare_models(run.space, codes, y, holdout=args.holdout, seed=args.seed)
    n_hold = int(round(args.holdout * len(y)))
    train = np.random.default_rng(args.seed).permutation(len(y))[n_hold:]
    t1 = time.perf_counter()
    chosen, members, selection = select_model(run.space, codes[train], y[train], seed=args.seed)
    select_s = time.perf_counter() - t1
    out = []
    for r in rows:
        ok = r["kendall"] >= TARGETS["kendall"] and r["spearman"] >= TARGETS["spearman"]
        out.append({"model": r["model"], "Spearman": round(r["spearman"], 3), "Kendall": round(r["kendall"], 3),
                    "RMSE (pp)": round(100 * r["rmse"], 3), "MAPE %": round(100 * r["mape"], 2),
                    "within ±10% %": round(100 * r["within_10pct"], 1), "fit s": r["fit_s"],
                    "targets met": "yes" if ok else "no"})
    for line in out:
        print(line)
    sel = [{"candidate": s["candidate"], "CV Kendall": round(s["kendall"], 3), "CV Spearman": round(s["spearman"], 3)}
           for s in selection]
    per_subnet = tab["seconds"].to_numpy()
    body = (
        f"Run `{args.run}` (checkpoint {run.checkpoint_hash[:12]}…), {len(y)} measured subnets (largest, smallest, "
        f"then stratified over resolution × MACs quantiles), each BN-recalibrated on {args.bn_images} training "
        f"images and scored on {args.val_images} validation images; measured top-1 from {y.min():.4f} to "
        f"{y.max():.4f} (spread {100 * (y.max() - y.min()):.2f} pp). Measuring took {per_subnet.mean():.2f} s per "
        f"subnet (median {np.median(per_subnet):.2f} s) on this shared machine.\n\n"
        f"Every kind fitted on the same {len(y) - n_hold} subnets and scored on the same {n_hold} held out. "
        f"Targets: Kendall ≥ {TARGETS['kendall']}, Spearman ≥ {TARGETS['spearman']}.\n\n"
        + table(out) +
        f"\n\n`--model auto` picks by {3}-fold cross-validated Kendall τ on the training share "
        f"({select_s:.0f} s): **{chosen}{'(' + '+'.join(members) + ')' if members else ''}**.\n\n" + table(sel)
    )
    if not args.no_write:
        write_section("accuracy-predictor", "Accuracy predictor fidelity (demo run)", body)


if __name__ == "__main__":
    main()
