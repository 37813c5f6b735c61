"""A finished training run folder, loaded for evaluation, prediction, search and export.

Layout of `runs/<name>/`: `experiment.yaml` (the recipe), `checkpoint.pt` (resumable state), `supernet.pt` (final
state_dict), `run.json` ({space, checkpoint_hash, data, finished, ...}), `metrics.csv`.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from supernet.config import ConfigError, ExperimentConfig
from supernet.data import DataConfig, Splits, load_splits
from supernet.errors import CheckpointError, NasError
from supernet.network import Supernet
from supernet.space import SearchSpace

WEIGHTS = "supernet.pt"
CHECKPOINT = "checkpoint.pt"
RUN_JSON = "run.json"
EXPERIMENT = "experiment.yaml"
METRICS = "metrics.csv"


@dataclass
class TrainedRun:
    """A trained supernet and what it was trained on. `checkpoint_hash`: sha256 of `supernet.pt`."""

    run_dir: Path
    space: SearchSpace
    net: Supernet
    config: ExperimentConfig
    data: DataConfig
    checkpoint_hash: str
    info: dict[str, Any] = field(default_factory=dict)
    _splits: Splits | None = field(default=None, repr=False)

    def splits(self, data_dir: str | None = None) -> Splits:
        """The run's data splits (read once, then cached); `data_dir` overrides where the files are looked for."""
        if self._splits is None:
            cfg = self.data if data_dir is None else DataConfig.from_dict({**self.data.to_dict(), "data_dir": data_dir})
            self._splits = load_splits(cfg)
        return self._splits


def read_run_json(run_dir: str | Path) -> dict[str, Any]:
    p = Path(run_dir) / RUN_JSON
    if not p.is_file():
        raise CheckpointError(f"'{run_dir}' is not a run folder: {RUN_JSON} is missing (train one with `nas train`)")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{p} is corrupt: {exc.msg}") from None


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", *, from_checkpoint: bool = False) -> TrainedRun:
    """Load a finished run: the supernet with its trained weights (eval mode) on `device`, its space, config, data.

    `from_checkpoint`: take the weights of the latest `checkpoint.pt` instead (a run still training, or stopped
    before its end); `checkpoint_hash` is then the checkpoint file's sha256 and `info["checkpoint_progress"]` says
    where training stood. Raises CheckpointError when the folder has no finished weights (no checkpoint with
    `from_checkpoint`) or they do not match run.json's hash.
    """
    run_dir = Path(run_dir)
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device {device!r} is not a torch device; allowed: cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was asked for but no CUDA GPU is available here; use cpu")
    info = read_run_json(run_dir)
    if from_checkpoint:
        state, digest, info = _checkpoint_weights(run_dir, info)
    else:
        state, digest = _final_weights(run_dir, info)
    try:
        space = SearchSpace.from_dict(info["space"])
        config = ExperimentConfig.from_yaml(run_dir / EXPERIMENT)
        data = DataConfig.from_dict(info["data"])
    except (KeyError, NasError) as exc:
        raise CheckpointError(f"run '{run_dir}' has a malformed {RUN_JSON} or {EXPERIMENT}: {exc}") from None
    net = Supernet(space)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"the weights of '{run_dir}' do not fit space '{space.name}': "
                              f"{str(exc).splitlines()[0]}") from None
    net.to(device, memory_format=torch.channels_last).eval()  # 1.5x faster forward on CPU (oneDNN) and GPU
    return TrainedRun(run_dir, space, net, config, data, digest, info)


def _final_weights(run_dir: Path, info: dict[str, Any]) -> tuple[dict[str, torch.Tensor], str]:
    weights = run_dir / WEIGHTS
    if not info.get("finished") or not weights.is_file():
        raise CheckpointError(f"run '{run_dir}' has no finished weights ({WEIGHTS}); finish it with "
                              f"`nas train {run_dir / EXPERIMENT} --out {run_dir} --resume`, or evaluate its latest "
                              f"checkpoint with --from-checkpoint")
    state, digest = _read_hashed(weights)
    if digest != info.get("checkpoint_hash"):
        raise CheckpointError(f"{weights} does not match the checkpoint_hash in {RUN_JSON} (file changed or corrupt)")
    return state, digest


def _checkpoint_weights(run_dir: Path, info: dict[str, Any]) -> tuple[dict[str, torch.Tensor], str, dict[str, Any]]:
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"run '{run_dir}' has no {CHECKPOINT} (it was never checkpointed)")
    ckpt, digest = _read_hashed(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{path} holds no model weights (not a training checkpoint of this project)")
    if ckpt.get("config_hash") != info.get("config_hash"):
        raise CheckpointError(f"{path} belongs to another config than {RUN_JSON} says")
    return ckpt["model"], digest, {**info, "checkpoint_progress": ckpt.get("progress")}


def _read_hashed(path: Path) -> tuple[Any, str]:
    """(what `path` holds, loaded on the CPU; its sha256), from one read of the file: a training job may replace
    it meanwhile (it writes whole, by rename), and the hash must be that of what was loaded."""
    data = path.read_bytes()
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    return state, hashlib.sha256(data).hexdigest()


__all__ = ["TrainedRun", "load_run", "read_run_json", "WEIGHTS", "CHECKPOINT", "RUN_JSON", "EXPERIMENT", "METRICS"]
