"""The accuracy data set of a trained run: subnets sampled across the space, each BN-recalibrated and measured
(top-1 on the validation split), kept in one CSV per checkpoint in the run folder.

Sampling is stratified: after the largest and the smallest subnet, resolutions take turns and, within a
resolution, MACs quantiles are visited in van der Corput order (½, ¼, ¾, ⅛, …), so every prefix of the plan
spreads over the MACs range. The plan does not depend on how many subnets are asked for, so a job asked
for more later extends the same sequence. Measuring is resumable: rows are flushed every few subnets (the
table rewritten whole), and a restarted job skips what the table already holds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from predictors.accuracy._features import AccuracyPredictorError
from predictors.accuracy.models import write_bytes_atomic
from supernet.arch import ArchConfig
from supernet.counting import count_macs, count_params
from supernet.space import SearchSpace

PREDICTOR_DIR = "accuracy_predictor"
COLUMNS = ["arch", "accuracy", "macs", "params", "r", "seconds", "bn_images", "val_images", "checkpoint_hash"]
_POOL = 8192  # candidate subnets per plan; the plan is nested for any n up to about half of it


def measured_path(run_dir: str | Path, checkpoint_hash: str) -> Path:
    """Where the measured table of `checkpoint_hash` lives in `run_dir`."""
    return Path(run_dir) / PREDICTOR_DIR / f"measured-{checkpoint_hash[:16]}.csv"


def heldout_path(run_dir: str | Path, checkpoint_hash: str) -> Path:
    """Where the held-out subnets of `checkpoint_hash` (measured on more validation images) live in `run_dir`."""
    return Path(run_dir) / PREDICTOR_DIR / f"heldout-{checkpoint_hash[:16]}.csv"


def arch_key(arch: ArchConfig) -> str:
    """The table's `arch` column: OFA's JSON keys, compact and key-sorted (one string per distinct subnet)."""
    return json.dumps(arch.to_dict(), sort_keys=True, separators=(",", ":"))


def _van_der_corput(i: int) -> float:
    out, denom = 0.0, 1.0
    while i:
        denom *= 2
        i, bit = divmod(i, 2)
        out += bit / denom
    return out


def plan_subnets(space: SearchSpace, n: int, seed: int = 0) -> np.ndarray:
    """`n` distinct subnets (compact codes) to measure: largest, smallest, then stratified over resolution and
    MACs quantiles. Deterministic in `seed`; `plan_subnets(space, m)` starts with `plan_subnets(space, n)` for
    m > n (while n stays below a few thousand)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise AccuracyPredictorError(f"field 'samples' must be an integer >= 1, got {n!r}")
    rng = np.random.default_rng(seed)
    pool = np.unique(space.sample_codes(max(_POOL, 4 * n), rng), axis=0)
    pool = pool[rng.permutation(len(pool))]
    res = list(space.resolutions)
    by_res = []
    for r in res:
        codes = pool.copy()
        codes[:, -1] = r
        by_res.append(codes[np.argsort(count_macs(space, codes), kind="stable")])
    offsets = rng.random(len(res))  # a random rotation of the quantile sequence per resolution
    taken = [np.zeros(len(pool), dtype=bool) for _ in res]
    out = [space.encode([space.largest(), space.smallest()])[: min(n, 2)]]
    seen = {c.tobytes() for c in out[0]}
    turn, order = 0, rng.permutation(len(res))
    while sum(len(o) for o in out) < n:
        if turn and turn % len(res) == 0:
            order = rng.permutation(len(res))
        j = int(order[turn % len(res)])
        q = (_van_der_corput(turn // len(res) + 1) + offsets[j]) % 1.0
        turn += 1
        pos = min(int(q * len(pool)), len(pool) - 1)
        free = np.flatnonzero(~taken[j])
        if free.size == 0:
            if all(t.all() for t in taken):
                break
            continue
        k = free[np.argmin(np.abs(free - pos))]
        taken[j][k] = True
        code = by_res[j][k]
        if code.tobytes() in seen:
            continue
        seen.add(code.tobytes())
        out.append(code[None])
    return np.concatenate(out)[:n]


def read_measured(path: str | Path) -> pd.DataFrame:
    """The measured table at `path` (empty with the right columns when absent)."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    try:
        df = pd.read_csv(path, dtype={"arch": str, "checkpoint_hash": str})
    except (OSError, ValueError) as exc:
        raise AccuracyPredictorError(f"cannot read the measured table {path}: {exc}") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise AccuracyPredictorError(f"{path} is not a measured table: missing column(s) {', '.join(missing)}")
    return df[COLUMNS]


def write_measured(path: str | Path, df: pd.DataFrame) -> None:
    """Write the table whole (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, df[COLUMNS].to_csv(index=False).encode())


def measure_subnets(space: SearchSpace, measure: Callable[[ArchConfig], float], n: int, path: str | Path, *,
                    checkpoint_hash: str, seed: int = 0, bn_images: int = 0, val_images: int = 0, first: int = 0,
                    flush_every: int = 10, progress: bool = False) -> pd.DataFrame:
    """Measure the plan's subnets `first` to `first + n` with `measure(arch) -> top-1` (those the table at `path`
    lacks) and return the table's rows for them, in plan order. Rows are flushed every `flush_every` subnets, and
    on any exit (a killed job keeps what it measured); other rows in the table are kept."""
    if isinstance(first, bool) or not isinstance(first, int) or first < 0:
        raise AccuracyPredictorError(f"field 'first' must be an integer >= 0, got {first!r}")
    table = read_measured(path)
    if len(table):
        other = table[(table["checkpoint_hash"] != checkpoint_hash) | (table["bn_images"] != bn_images)
                      | (table["val_images"] != val_images)]
        if len(other):
            raise AccuracyPredictorError(
                f"{path} holds subnets measured with other settings (checkpoint, bn_images or val_images "
                f"differ from {checkpoint_hash[:12]}, {bn_images}, {val_images}); use the same settings or "
                "remove the file")
    done = set(table["arch"])
    plan = space.decode(plan_subnets(space, first + max(n, 1), seed)[first:])
    wanted = [arch_key(a) for a in plan]
    todo = [a for a, key in zip(plan, wanted) if key not in done]
    rows: list[dict] = []

    def flush() -> None:
        nonlocal table
        if rows:
            table = pd.concat([table, pd.DataFrame(rows, columns=COLUMNS)], ignore_index=True) if len(table) \
                else pd.DataFrame(rows, columns=COLUMNS)
            rows.clear()
            write_measured(path, table)

    bar = _progress(len(todo), len(wanted) - len(todo), len(wanted), progress)
    try:
        for arch in todo:
            codes = space.encode([arch])
            t0 = time.perf_counter()
            acc = float(measure(arch))
            rows.append({"arch": arch_key(arch), "accuracy": acc, "macs": int(count_macs(space, codes)[0]),
                         "params": int(count_params(space, codes)[0]), "r": arch.r,
                         "seconds": round(time.perf_counter() - t0, 4), "bn_images": bn_images,
                         "val_images": val_images, "checkpoint_hash": checkpoint_hash})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(acc=f"{acc:.4f}")
            if len(rows) >= flush_every:
                flush()
    finally:
        flush()
        if bar is not None:
            bar.close()
    return table.set_index("arch", drop=False).loc[wanted].reset_index(drop=True)


def table_codes(space: SearchSpace, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(codes, accuracy) of a measured table."""
    archs = [space.arch_from_dict(json.loads(a)) for a in table["arch"]]
    return space.encode(archs), table["accuracy"].to_numpy(dtype=np.float64)


def _progress(total: int, initial: int, n: int, enabled: bool):  # noqa: ANN202
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=n, initial=initial, desc="measuring subnets", unit="subnet", dynamic_ncols=True)


def run_measurer(run, *, bn_images: int = 2000, val_images: int = 5000, batch_size: int = 500,
                 seed: int = 0, workers: int = 0) -> Callable[[ArchConfig], float]:  # noqa: ANN001
    """`measure(arch) -> top-1` for a trained run: recalibrate BN on `bn_images` training images (OFA: 2,000),
    then evaluate on the first `val_images` of the validation split (a fixed random subset: the split is drawn
    by index). In-memory data: batches are built once and reused; streamed image folders are read again for each
    subnet, preprocessed at its resolution by `workers` DataLoader processes (memory stays flat)."""
    import torch

    from supernet.data import make_loader
    from supernet.evaluate import evaluate, recalibrate_bn

    for name, v in (("bn_images", bn_images), ("val_images", val_images), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise AccuracyPredictorError(f"field '{name}' must be an integer >= 1, got {v!r}")
    splits = run.splits()
    device = next(run.net.parameters()).device
    if splits.preprocessing is not None:
        def measure_streamed(arch: ArchConfig) -> float:
            at_r = splits.at_resolution(arch.r)
            val = at_r.val if val_images >= len(at_r.val) else at_r.val.subset(range(val_images))
            bn = make_loader(at_r.train, min(batch_size, 200), shuffle=True, seed=seed, workers=workers)
            recalibrate_bn(run.net, arch, bn, n_images=bn_images)
            return evaluate(run.net, arch, make_loader(val, batch_size, shuffle=False, workers=workers))

        return measure_streamed

    def batches(ds, limit: int, shuffle: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out, seen = [], 0
        for x, y in make_loader(ds, batch_size, shuffle=shuffle, seed=seed):
            out.append((x[: limit - seen].to(device), torch.as_tensor(y)[: limit - seen]))
            seen += len(out[-1][1])
            if seen >= limit:
                break
        return out

    bn_batches = batches(splits.train, bn_images, True)
    val_batches = batches(splits.val, val_images, False)

    def measure(arch: ArchConfig) -> float:
        recalibrate_bn(run.net, arch, bn_batches, n_images=bn_images)
        return evaluate(run.net, arch, val_batches)

    return measure


__all__ = ["plan_subnets", "measure_subnets", "run_measurer", "read_measured", "write_measured", "measured_path",
           "heldout_path", "table_codes", "arch_key", "PREDICTOR_DIR", "COLUMNS"]
