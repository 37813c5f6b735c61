"""Accuracy predictor fidelity on the demo run: every model kind fitted on the same measured subnets and scored on
the same held-out ones (Spearman, Kendall, RMSE), plus what measuring costs.

    .venv/bin/python benchmarks/bench_accuracy_predictor.py                      # runs/fashion-mnist, 500 subnets
    .venv/bin/python benchmarks/bench_accuracy_predictor.py --samples 200 --bn-images 500 --val-images 2000

The split is `nas accuracy fit`'s: the plan's first (1 - holdout) share measured on --val-images to fit, the rest
held out and measured on --holdout-val-images (default: the whole validation split). Measuring reuses (and
extends) the run's tables, the ones `nas accuracy fit` writes, so `nas demo` or `nas accuracy fit` beforehand
makes this quick. Skipped (nothing written) when the
run is not there or not finished.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import table, write_section  # noqa: E402
from predictors.accuracy import compare_models  # noqa: E402
from predictors.accuracy.dataset import table_codes  # noqa: E402
from predictors.accuracy.fit import measure_run_tables  # noqa: E402
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
    ap.add_argument("--holdout-val-images", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--curve", default=None,
                    help="comma-separated fitted-set sizes (e.g. 128,256): each kind also fitted on the plan's first "
                         "N fitted subnets and scored on the same held-out ones (a learning curve)")
    ap.add_argument("--no-write", action="store_true", help="print figures only")
    ap.add_argument("--section", default="accuracy-predictor", help="BENCHMARKS.md section to write")
    ap.add_argument("--title", default="Accuracy predictor fidelity (demo run)")
    args = ap.parse_args()

    try:
        run = load_run(args.run)
    except CheckpointError as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return
    t0 = time.perf_counter()
    tab, held, images = measure_run_tables(run, args.run, samples=args.samples, holdout=args.holdout,
                                           seed=args.seed, bn_images=args.bn_images, val_images=args.val_images,
                                           holdout_val_images=args.holdout_val_images, progress=True)
    print(f"measured tables ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    codes, y = table_codes(run.space, tab)
    h_codes, h_y = table_codes(run.space, held)

    rows = compare_models(run.space, codes, y, seed=args.seed, heldout=(h_codes, h_y))
    auto = next(r for r in rows if r["model"] == "auto")
    selection = auto["selection"]
    out = []
    for r in rows:
        ok = r["kendall"] >= TARGETS["kendall"] and r["spearman"] >= TARGETS["spearman"]
        if r["model"] == r["chosen"] or r["chosen"].startswith(r["model"] + "("):
            name = r["chosen"]  # gbr[blocks]; ensemble(mlp+gbr+rf+gp)
        else:
            name = f"{r['model']}: {r['chosen']}"  # auto: what it chose
        out.append({"model": name, "Spearman": round(r["spearman"], 3), "Kendall": round(r["kendall"], 3),
                    "RMSE (pp)": round(100 * r["rmse"], 3), "MAPE %": round(100 * r["mape"], 2),
                    "within ±10% %": round(100 * r["within_10pct"], 1), "fit s": r["fit_s"],
                    "targets met": "yes" if ok else "no"})
    for line in out:
        print(line)
    sel = [{"candidate": s["candidate"], "CV Kendall": round(s["kendall"], 3), "CV Spearman": round(s["spearman"], 3)}
           for s in selection]
    per_subnet, per_held = tab["seconds"].to_numpy(), held["seconds"].to_numpy()
    body = (
        f"Run `{args.run}` (checkpoint {run.checkpoint_hash[:12]}…), {len(y) + len(h_y)} measured subnets "
        f"(largest, smallest, then stratified over resolution × MACs quantiles), each BN-recalibrated on "
        f"{args.bn_images} training images. The first {len(y)} of the plan are fitted on, each scored on "
        f"{images['val_images']} validation images (top-1 {y.min():.4f} to {y.max():.4f}); the next {len(h_y)} are held "
        f"out, each scored on {images['heldout_val_images']} validation images (top-1 {h_y.min():.4f} to {h_y.max():.4f}), so the "
        f"fidelity below is measured against precise labels. Measuring took {per_subnet.mean():.2f} s per fitted "
        f"subnet and {per_held.mean():.2f} s per held-out one on this shared machine.\n\n"
        f"Every candidate fitted on the same {len(y)} subnets and scored on the same {len(h_y)} held out. "
        f"Targets: Kendall ≥ {TARGETS['kendall']}, Spearman ≥ {TARGETS['spearman']}.\n\n"
        + table(out) +
        f"\n\n`--model auto` (the row above; choosing and fitting took {auto['fit_s']:.0f} s) picks by 3-fold "
        f"cross-validated Kendall τ on the fitting share: each candidate alone, then the mean of the best 2, 3, … "
        f"(`ensemble` in the table above is the four kinds' mean, the default of `--model ensemble`); "
        f"it chose **{auto['chosen']}**.\n\n" + table(sel)
    )
    if args.curve:
        sizes = sorted({int(n) for n in args.curve.split(",") if 0 < int(n) < len(y)} | {len(y)})
        curve = []
        for n in sizes:
            scored = {r["model"]: r for r in compare_models(run.space, codes[:n], y[:n], seed=args.seed,
                                                             heldout=(h_codes, h_y))}
            curve.append({"fitted subnets": n, **{f"{m} S / K": f"{r['spearman']:.3f} / {r['kendall']:.3f}"
                                                   for m, r in scored.items()},
                          "auto chose": scored["auto"]["chosen"]})
            print(curve[-1])
        body += (f"\n\nLearning curve: each kind fitted on the plan's first N fitted subnets, scored on the same "
                 f"{len(h_y)} held out (Spearman / Kendall).\n\n" + table(curve))
    if not args.no_write:
        write_section(args.section, args.title, body)


if __name__ == "__main__":
    main()
