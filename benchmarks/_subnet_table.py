"""A measured subnet table for the expensive-objective benchmark: the demo supernet's subnets (the accuracy
predictor's plan: largest, smallest, then stratified over resolution x MACs), each BN-recalibrated and scored
on the validation split (top-1), with the latency the demo's measured `cpu-host` profile predicts for it.

Built once from a finished demo run and saved as a small CSV under `benchmarks/data/` (the benchmark then needs
neither the run nor the profile):

    .venv/bin/python benchmarks/_subnet_table.py --run runs/fashion-mnist --profile runs/profiles/cpu-host.yaml

A search over the table asks for any subnet of the space; it gets the measured figures of the table's nearest
subnet (fewest differing choices on the canonical codes; among those, the fewest steps between choices in
their order, e.g. kernel 3 is nearer 5 than 7; then the first in the table), so every answer is a real measurement
and the table's own Pareto front is the true one. (Ties broken by table order alone favoured the table's first two
rows, the largest and the smallest subnet, the ends of the true front.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from supernet import ArchConfig, SearchSpace  # noqa: E402

DEMO_TABLE = Path(__file__).resolve().parent / "data" / "demo-subnets.csv"


def code_columns(space: SearchSpace) -> list[str]:
    nb, ns = space.num_blocks, space.num_stages
    return [f"ks_{i}" for i in range(nb)] + [f"e_{i}" for i in range(nb)] + [f"d_{i}" for i in range(ns)] + ["r"]


def build(run_dir: str | Path, profile: str | Path, out: str | Path, *, samples: int = 500, bn_images: int = 500,
          val_images: int = 2000, seed: int = 0, work: str | Path | None = None, measure: bool = True) -> pd.DataFrame:
    """Measure the plan's first `samples` subnets of the run into the resumable table `work` (started from the
    run's own measured table when its settings match; `measure=False`: take what `work` holds), add the run's
    held-out subnets (measured on the whole validation split), and write the table to `out` (written whole)."""
    from predictors import Predictors
    from predictors.accuracy.dataset import heldout_path, measure_subnets, measured_path, read_measured, table_codes
    from predictors.accuracy.fit import run_measurer
    from supernet.run import load_run

    run = load_run(run_dir)
    work = Path(work or Path(__file__).resolve().parent.parent / "runs" / "bench-search" / "demo-measuring.csv")
    work.parent.mkdir(parents=True, exist_ok=True)
    own = measured_path(run_dir, run.checkpoint_hash)
    if own.is_file() and not work.is_file():  # the demo measured the plan's first subnets already
        shutil.copyfile(own, work)
    if measure:
        t0 = time.perf_counter()
        measure_subnets(run.space, run_measurer(run, bn_images=bn_images, val_images=val_images, seed=seed),
                        samples, work, checkpoint_hash=run.checkpoint_hash, seed=seed, bn_images=bn_images,
                        val_images=val_images, progress=True)
        print(f"measured in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    tab = read_measured(work)
    held = read_measured(heldout_path(run_dir, run.checkpoint_hash))
    held = held[~held["arch"].isin(tab["arch"])]
    n_plan = len(tab)
    tab = pd.concat([tab, held], ignore_index=True)
    codes, acc = table_codes(run.space, tab)
    preds = Predictors(run.space, str(profile))
    df = pd.DataFrame(np.column_stack(_values(run.space, codes)), columns=code_columns(run.space))
    df["val_accuracy"] = np.round(acc, 5)
    df["latency_ms"] = np.round(preds.latency.predict(codes), 5)
    df["macs"] = tab["macs"].to_numpy()
    df["val_images"] = tab["val_images"].to_numpy()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    name = json.loads((Path(run_dir) / "run.json").read_text())["name"]
    also = f", and the run's {len(held)} held-out subnets" if len(held) else ""
    header = (f"# {len(df)} subnets of run {name} (checkpoint {run.checkpoint_hash[:12]}), space "
              f"{run.space.name} (the accuracy predictor's plan, its first {n_plan}{also}); top-1 on "
              f"{' or '.join(f'{v} ({c} subnets)' for v, c in df['val_images'].value_counts().sort_index().items())} "
              f"validation images after BN recalibration on {bn_images} "
              f"training images; latency_ms from the {preds.latency_source} model of profile {Path(profile).name}\n")
    tmp.write_text(header + df.to_csv(index=False))
    tmp.replace(out)
    return df


def _values(space: SearchSpace, codes: np.ndarray) -> list[np.ndarray]:
    k, e, d, r = space.split_codes(codes)
    return [np.asarray(space.kernel_choices)[k], np.asarray(space.expand_choices)[e], d, r[:, None]]


def load(path: str | Path = DEMO_TABLE, space: str | SearchSpace = "tiny-mbv3") -> tuple[SearchSpace, pd.DataFrame]:
    """(the space, the table) from a saved CSV."""
    space = space if isinstance(space, SearchSpace) else SearchSpace.preset(space)
    return space, pd.read_csv(path, comment="#")


def table_archs(space: SearchSpace, table: pd.DataFrame) -> list[ArchConfig]:
    """The subnets of a table's rows (its code columns hold choice values)."""
    nb, ns = space.num_blocks, space.num_stages
    return [ArchConfig(tuple(c[:nb]), tuple(c[nb:2 * nb]), tuple(c[2 * nb:2 * nb + ns]), int(c[-1]))
            for c in table[code_columns(space)].to_numpy()]


class NearestSubnet:
    """The measured figures of the table subnet nearest to an arch (a per-candidate objective)."""

    def __init__(self, space: SearchSpace, table: pd.DataFrame, names: list[str]):
        self.space = space
        self.codes = self._steps(space.encode(table_archs(space, table)))
        self.values = table[names].to_numpy(dtype=np.float64)
        self.visited: set[int] = set()

    def _steps(self, codes: np.ndarray) -> np.ndarray:
        """Codes with the resolution as its choice index, so that every column counts steps between choices."""
        out = codes.copy()
        out[:, -1] = np.searchsorted(np.asarray(self.space.resolutions), codes[:, -1])
        return out

    def index(self, arch: ArchConfig) -> int:
        code = self._steps(self.space.encode([arch]))[0]
        differ = (self.codes != code).sum(1)
        steps = np.abs(self.codes - code).sum(1)
        return int(np.argmin(differ * (steps.max() + 1) + steps))  # argmin: the first of any tie left

    def __call__(self, arch: ArchConfig) -> tuple[float, ...]:
        i = self.index(arch)
        self.visited.add(i)
        return tuple(float(v) for v in self.values[i])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--profile", required=True, help="the demo's measured cpu-host profile YAML")
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--bn-images", type=int, default=500)
    ap.add_argument("--val-images", type=int, default=2000)
    ap.add_argument("--out", default=str(DEMO_TABLE))
    ap.add_argument("--work", default=None, help="the resumable measuring table (default: runs/bench-search/)")
    ap.add_argument("--no-measure", action="store_true", help="build from what --work holds (no measuring)")
    args = ap.parse_args()
    df = build(args.run, args.profile, args.out, samples=args.samples, bn_images=args.bn_images,
               val_images=args.val_images, work=args.work, measure=not args.no_measure)
    print(df.describe().T[["min", "max"]], file=sys.stderr)


if __name__ == "__main__":
    main()
