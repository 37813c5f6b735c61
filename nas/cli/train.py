"""`nas train`: train a supernet once (resumable; data parallel under torchrun)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from nas.cli._common import emit


def train_command(
    experiment: Path = typer.Argument(..., help="experiment YAML (e.g. experiments/fashion-mnist.yaml)"),
    out: Optional[Path] = typer.Option(None, "--out", help="run folder (default runs/<experiment name>)"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run folder's checkpoint.pt"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="folder holding the data set's files"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="progress bar on stderr"),
    threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                          help="CPU threads for torch (overrides train.threads; 1 on a busy machine)"),
) -> None:
    """Train the experiment's supernet once (progressive shrinking + distillation); prints the run folder as JSON.

    Data parallel: torchrun --nproc-per-node K -m nas train EXPERIMENT.yaml
    """
    from supernet.config import ExperimentConfig
    from supernet.run import read_run_info
    from supernet.train import train

    config = ExperimentConfig.from_yaml(experiment).with_data_dir(data_dir)
    if threads is not None:
        config = replace(config, train=replace(config.train, threads=threads))
    run_dir = train(config, out or Path("runs") / config.name, resume=resume, progress=progress and sys.stderr.isatty())
    if os.environ.get("RANK", "0") != "0":  # under torchrun only the first process reports
        return
    info = read_run_info(run_dir)
    emit({"run_dir": str(run_dir), "finished": info.finished, "checkpoint_hash": info.checkpoint_hash,
          "final": info.extra.get("final")})


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
