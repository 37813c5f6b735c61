"""Expensive objectives, one candidate at a time, on measured tables: our `surrogate` sampler against Optuna's TPE
(as Optuna ships it, and multivariate), NSGA-II and random at 100 and 300 evaluations, median over seeds.

Tables (`benchmarks/data/`): `digits-mlp.csv`, every configuration of a small scikit-learn MLP grid on the
bundled digits images (`benchmarks/_table.py`), and `demo-subnets.csv`, the demo supernet's measured subnets
with their cpu-host latency (`benchmarks/_subnet_table.py`; skipped while it is not built). Two held-out cases on
the demo table, on which no strategy was tuned: its accuracy with the `stm32f746` profile's latency instead of
cpu-host's (`demo-subnets-mcu`), and three objectives, accuracy, cpu-host latency and `stm32f746`'s peak SRAM
(`demo-subnets-3obj`); both are predicted for the table's own subnets, so every answer is still a table row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import optuna

from benchmarks._report import table
from nas.search import OptunaSampler, hypervolume_2d, nondominated_mask, run
from nas.search._pareto import as_minimize

DATA = Path(__file__).resolve().parent / "data"
CACHE = Path(__file__).resolve().parent.parent / "runs" / "bench-search"
STRATEGIES = ["surrogate", "optuna-tpe (Optuna's default)", "optuna-nsga2", "optuna-tpe (multivariate)", "random"]


def _strategy(name: str):
    if name == "optuna-tpe (Optuna's default)":
        return OptunaSampler(name, lambda seed: optuna.samplers.TPESampler(seed=seed), 1)
    if name == "optuna-tpe (multivariate)":
        return "optuna-tpe"
    return name


@dataclass
class Bench:
    """One table: its space, a one-objective (or none) and a two- or three-objective per-candidate objective, and
    the truth."""

    name: str
    about: str
    space: Any
    one: Callable[[Any], float] | None
    both: Callable[[Any], tuple[float, ...]]
    directions: list[str]
    best: float  # the table's best value of the first objective
    front: np.ndarray  # the table's true Pareto front of all objectives
    ref: np.ndarray


def hypervolume(values: np.ndarray, ref: np.ndarray, directions: list[str]) -> float:
    """Hypervolume of two or three objectives (three: the sum of 2-D slices between successive third values)."""
    if len(directions) == 2:
        return hypervolume_2d(values, ref, directions)
    v, r = as_minimize(values, directions), as_minimize(np.asarray(ref, dtype=np.float64)[None], directions)[0]
    v = v[(v < r).all(1)]
    zs = np.append(np.unique(v[:, 2]), r[2])
    return float(sum(hypervolume_2d(v[v[:, 2] <= z][:, :2], r[:2], ["minimize", "minimize"]) * (z_next - z)
                     for z, z_next in zip(zs[:-1], zs[1:])))


def _truth(values: np.ndarray, directions: list[str]) -> tuple[float, np.ndarray, np.ndarray]:
    front = values[nondominated_mask(values, directions)]
    worst = np.where(np.array(directions) == "minimize", front.max(0), front.min(0))
    span = front.max(0) - front.min(0)
    # the reference: the true front's worst corner plus a tenth of its span, so the ratio tells fronts apart
    ref = worst + np.where(np.array(directions) == "minimize", 0.1, -0.1) * span
    best = values[:, 0].min() if directions[0] == "minimize" else values[:, 0].max()
    return float(best), front, ref


def digits_bench() -> Bench:
    from benchmarks._table import GRID, digits_mlp_table

    df = digits_mlp_table(DATA / "digits-mlp.csv")
    keys = list(GRID)
    lookup = {tuple(r[k] for k in keys): (r["val_error"], r["fit_s"]) for r in df.to_dict("records")}
    dirs = ["minimize", "minimize"]
    best, front, ref = _truth(df[["val_error", "fit_s"]].to_numpy(), dirs)
    about = (f"every one of the {len(df):,} configurations of a small MLP grid "
             f"({', '.join(f'{k} {v}' for k, v in GRID.items())}) trained with scikit-learn on its bundled `digits` "
             f"images (800 train, 997 held out; 8 epochs); one objective `val_error` (best {best:.4f}), two: "
             f"`val_error` and `fit_s`, the measured training time ({len(front)} configurations on the true front)")
    return Bench("digits-mlp", about, GRID, lambda c: lookup[tuple(c[k] for k in keys)][0],
                 lambda c: lookup[tuple(c[k] for k in keys)], dirs, best, front, ref)


def demo_bench() -> Bench | None:
    from benchmarks._subnet_table import DEMO_TABLE, NearestSubnet, load

    if not DEMO_TABLE.is_file():
        return None
    space, df = load(DEMO_TABLE)
    near = NearestSubnet(space, df, ["val_accuracy", "latency_ms"])
    dirs = ["maximize", "minimize"]
    best, front, ref = _truth(near.values, dirs)
    header = DEMO_TABLE.read_text().splitlines()[0].lstrip("# ")
    about = (f"the demo supernet's measured subnets ({header}); a search asks for any subnet of `{space.name}` and "
             f"gets the figures of the table's nearest subnet (fewest differing choices, then fewest steps between "
             f"choices in their order), so every answer is a "
             f"measurement; one objective `val_accuracy` (best {best:.4f}), two: `val_accuracy` and `latency_ms` "
             f"({len(front)} subnets on the true front)")
    return Bench("demo-subnets", about, space, lambda a: near(a)[0], near, dirs, best, front, ref)


def heldout_benches() -> list[Bench]:
    """The demo table with objectives no strategy was tuned on (two-objective accuracy and `stm32f746` latency,
    three-objective accuracy, cpu-host latency and `stm32f746` peak SRAM); the one-objective search is
    demo-subnets' own, so none here."""
    from benchmarks._subnet_table import DEMO_TABLE, NearestSubnet, load, table_archs
    from predictors import Predictors

    if not DEMO_TABLE.is_file():
        return []
    space, df = load(DEMO_TABLE)
    mcu = Predictors(space, "stm32f746").predict(table_archs(space, df), ["latency_ms", "sram_bytes"])
    df = df.assign(mcu_latency_ms=mcu["latency_ms"].to_numpy(), mcu_sram_bytes=mcu["sram_bytes"].to_numpy())
    out = []
    for name, cols, what in (
            ("demo-subnets-mcu", ["val_accuracy", "mcu_latency_ms"],
             "`val_accuracy` and the `stm32f746` profile's predicted latency (`mcu_latency_ms`)"),
            ("demo-subnets-3obj", ["val_accuracy", "latency_ms", "mcu_sram_bytes"],
             "`val_accuracy`, cpu-host `latency_ms` and the `stm32f746` profile's predicted peak SRAM "
             "(`mcu_sram_bytes`)")):
        near = NearestSubnet(space, df, cols)
        dirs = ["maximize"] + ["minimize"] * (len(cols) - 1)
        best, front, ref = _truth(near.values, dirs)
        about = (f"held out (no strategy was tuned on it): the demo-subnets table and lookup, objectives {what}, "
                 f"predicted for each table subnet ({len(front)} subnets on the true front); no one-objective run "
                 f"(it would be demo-subnets' own)")
        out.append(Bench(name, about, space, None, near, dirs, best, front, ref))
    return out


def _one_seed(b: Bench, name: str, budgets: list[int], seed: int) -> dict[str, Any]:
    """Gap and HV ratio per budget, seconds per evaluation, of one strategy and seed; cached under
    runs/bench-search/ so that tables, strategies and seeds can be measured in separate processes."""
    path = CACHE / f"expensive-{b.name}-{name.replace(' ', '_')}-{budgets[-1]}-s{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    sign = 1.0 if b.directions[0] == "minimize" else -1.0
    true_hv = hypervolume(b.front, b.ref, b.directions)
    t0 = time.perf_counter()
    r1 = None if b.one is None else run(b.space, b.one, directions=b.directions[0], budget=budgets[-1], seed=seed,
                                        strategy=_strategy(name))
    r2 = run(b.space, b.both, directions=b.directions, budget=budgets[-1], seed=seed, strategy=_strategy(name))
    out: dict[str, Any] = {"secs": (time.perf_counter() - t0) / ((1 + (r1 is not None)) * budgets[-1]), "gap": [],
                           "hv": []}
    for n in budgets:
        if r1 is not None:
            found = r1.trials["value"].iloc[:n]
            out["gap"].append(100 * float(found.min() - b.best if sign > 0 else b.best - found.max()))
        pts = r2.trials[[f"value_{j}" for j in range(len(b.directions))]].iloc[:n].to_numpy()
        out["hv"].append(hypervolume(pts, b.ref, b.directions) / true_hv)
    print(b.name, name, seed, out, file=sys.stderr, flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def _one_strategy(b: Bench, name: str, budgets: list[int], seeds: Iterable[int]) -> dict[str, Any]:
    runs = [_one_seed(b, name, budgets, seed) for seed in seeds]
    return {"gap": [[r["gap"][i] for r in runs] for i in range(len(budgets))] if runs and runs[0]["gap"] else None,
            "hv": [[r["hv"][i] for r in runs] for i in range(len(budgets))], "secs": [r["secs"] for r in runs]}


def expensive_part(args: argparse.Namespace) -> str:
    default = [100, 300] if not args.quick else [30, 60]
    per_table = dict(x.split("=") for x in (getattr(args, "expensive_budgets", None) or []))
    budget_of = {k: [int(b) for b in v.split(",")] for k, v in per_table.items()}
    seeds = range(args.expensive_seeds)
    benches = [b for b in (digits_bench(), demo_bench()) if b is not None] + heldout_benches()
    if getattr(args, "expensive_only", None):  # TABLE:STRATEGY[:SEED], measured and cached (a parallel process)
        table_name, name, *seed = args.expensive_only.split(":")
        _one_strategy(next(b for b in benches if b.name == table_name), name, budget_of.get(table_name, default),
                      range(int(seed[0]), int(seed[0]) + 1) if seed else seeds)
        return ""
    parts = []
    for b in benches:
        budgets = budget_of.get(b.name, default)
        used = seeds
        if getattr(args, "expensive_cached", False):  # only the seeds every strategy has in the cache
            have = [{int(f.stem.rsplit("-s", 1)[1]) for f in
                     CACHE.glob(f"expensive-{b.name}-{n.replace(' ', '_')}-{budgets[-1]}-s*.json")} for n in STRATEGIES]
            used = sorted(set.intersection(*have))
        res = {name: _one_strategy(b, name, budgets, used) for name in STRATEGIES}
        gap = {k: v["gap"] for k, v in res.items()}
        hv = {k: v["hv"] for k, v in res.items()}
        secs = {k: v["secs"] for k, v in res.items()}
        rows = []
        for name in STRATEGIES:
            row = {"strategy": name}
            for i, n in enumerate(budgets):
                if gap[name] is not None:
                    row[f"gap pp @{n} (median)"] = float(np.median(gap[name][i]))
                row[f"HV ratio @{n} (median)"] = float(np.median(hv[name][i]))
            row["s per evaluation"] = float(np.median(secs[name]))
            rows.append(row)
        wins = []
        for other in STRATEGIES[1:]:
            row = {"surrogate vs": other}
            for i, n in enumerate(budgets):
                h = np.array(hv["surrogate"][i]) - np.array(hv[other][i])
                if gap[other] is not None:
                    g = np.array(gap["surrogate"][i]) - np.array(gap[other][i])
                    row[f"gap @{n}: better/tie/worse"] = f"{(g < 0).sum()}/{(g == 0).sum()}/{(g > 0).sum()}"
                row[f"HV @{n}: better/tie/worse"] = f"{(h > 0).sum()}/{(h == 0).sum()}/{(h < 0).sum()}"
            wins.append(row)
        per_seed = []
        for name in STRATEGIES:
            row = {"strategy": name}
            for i, n in enumerate(budgets):
                if gap[name] is not None:
                    row[f"gap pp @{n}"] = " ".join(f"{v:.2f}" for v in gap[name][i])
                row[f"HV ratio @{n}"] = " ".join(f"{v:.3f}" for v in hv[name][i])
            per_seed.append(row)
        runs = f"{budgets[-1]} evaluations per run" + (
            f" (the figure at {budgets[0]}: the same runs' first {budgets[0]} trials)" if len(budgets) > 1 else "")
        parts.append(f"""**{b.name}**: {b.about}. {runs}; median of {len(used)} seeds ({", ".join(map(str, used))}).

{table(rows)}

Seed by seed (same seed, same budget), `surrogate` against each:

{table(wins)}

Each seed's figure (seeds in the order above):

{table(per_seed)}
""")
    return f"""### Expensive objectives: measured tables

Each strategy asks for one candidate at a time (a per-candidate objective, as in a training-in-the-loop search),
for the evaluations each table's line says. Gap: the
table's best first objective minus the best found, in percentage points (0: found the best); HV ratio: the
hypervolume of the trials over the true front's (reference: the true front's worst corner plus a tenth of its
span). `optuna-tpe (Optuna's default)` is `TPESampler()` as
Optuna ships it, `optuna-nsga2` is Optuna's NSGA-II at its default population of 50, `optuna-tpe (multivariate)`
is our `optuna-tpe` strategy (`TPESampler(multivariate=True)`). Tables in `benchmarks/data/`.

{chr(10).join(parts)}"""
