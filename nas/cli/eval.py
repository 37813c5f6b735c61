"""`nas eval RUN_DIR --arch ...`: top-1 of subnets of a trained run, after BN recalibration (JSON lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from nas.cli._common import emit, read_archs
from supernet.arch import ArchConfig
from supernet.errors import InvalidArchError, NasError


def _archs(space, spec: str, seed: int) -> list[ArchConfig]:  # noqa: ANN001
    if spec == "largest":
        return [space.largest()]
    if spec == "smallest":
        return [space.smallest()]
    if spec.startswith("random:"):
        n = spec.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise InvalidArchError(f"--arch random:N needs a positive integer N, got {spec!r}")
        return space.sample_many(int(n), seed)
    return read_archs(space, spec)


def eval_command(
    run_dir: Path = typer.Argument(..., help="a run folder (runs/<name>): finished, or see --from-checkpoint"),
    arch: str = typer.Option(..., "--arch", help="FILE.json (or .jsonl) | largest | smallest | random:N"),
    split: str = typer.Option("val", "--split", help="val or test"),
    seed: int = typer.Option(0, "--seed", help="seed for random:N"),
    bn_images: int = typer.Option(2000, "--bn-images", min=1, help="training images for BN recalibration"),
    batch_size: int = typer.Option(500, "--batch-size", min=1),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="folder holding the data set's files"),
    from_checkpoint: bool = typer.Option(False, "--from-checkpoint",
                                         help="the latest checkpoint's weights (a run still training or stopped)"),
    workers: int = typer.Option(0, "--workers", min=0, help="DataLoader worker processes decoding images "
                                "(image folders; 0: in this process)"),
    val_images: Optional[int] = typer.Option(None, "--val-images", min=1,
                                             help="evaluate on a fixed random subset of this many images"),
) -> None:
    """Top-1 of each arch after BN recalibration, one JSON line per arch."""
    from supernet.counting import arch_stats
    from supernet.data import make_loader
    from nas.cli._common import progress_bar
    from supernet.evaluate import evaluate, recalibrate_bn
    from supernet.run import load_run

    if split not in ("val", "test"):
        raise NasError(f"--split must be val or test, got {split!r}")
    run = load_run(run_dir, from_checkpoint=from_checkpoint)
    progress = run.info.extra.get("checkpoint_progress") or {}
    where = {"checkpoint_step": progress.get("global_step")} if from_checkpoint else {}
    archs = _archs(run.space, arch, seed)
    splits = run.splits(data_dir)
    for a in archs:
        at_r = splits.at_resolution(a.r)  # streamed images: OFA's resize and crop for this resolution
        data = getattr(at_r, split)
        if val_images is not None and val_images < len(data):
            data = data.subset(_fixed_subset(len(data), val_images, seed))
        calib = make_loader(at_r.train, min(200, bn_images), shuffle=True, seed=run.seed + 1, workers=workers)
        loader = make_loader(data, batch_size, shuffle=False, workers=workers)
        recalibrate_bn(run.net, a, progress_bar(calib, f"BN recalibration r={a.r}", bn_images, "img"), bn_images)
        top1 = evaluate(run.net, a, progress_bar(loader, f"evaluating {split} r={a.r}", len(data), "img"))
        emit({"arch": a.to_dict(), "split": split, "top1": round(top1, 5),
              "macs": int(arch_stats(run.space, a)["macs"]), "checkpoint_hash": run.checkpoint_hash,
              **where})


def _fixed_subset(n: int, k: int, seed: int):  # noqa: ANN202
    import numpy as np

    return np.sort(np.random.default_rng(seed).permutation(n)[:k])


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
