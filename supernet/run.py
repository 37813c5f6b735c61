"""A run folder, trained here or imported from once-for-all, loaded for evaluation, prediction, search and export.

Layout of `runs/<name>/`: `experiment.yaml` (the recipe; not in an imported run), `checkpoint.pt` (resumable
state), `supernet.pt` (final state_dict), `run.json` (a `RunInfo`), `metrics.csv`. This module is the one place that
reads and writes run.json.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from supernet._io import save_torch, sha256_file, write_json
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
class RunInfo:
    """What run.json says of a run: its space and data, whether its weights are final and their sha256.

    `config_hash`: the training recipe's (None for an imported run); `imported`: where an imported run's weights
    came from ({"from", "source", "source_sha256", "format", "dataset", "classes"}), None for a run trained here;
    `preprocessing`: what streamed image runs do to an image (resize, crop, mean, std); `extra`: what training adds
    (steps, seconds, final accuracy, ...).
    """

    name: str
    space: dict[str, Any]
    data: dict[str, Any]
    finished: bool = False
    checkpoint_hash: str | None = None
    config_hash: str | None = None
    imported: dict[str, Any] | None = None
    preprocessing: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {k: v for k, v in {**out, **self.extra}.items()
                if v is not None or k in ("checkpoint_hash", "config_hash")}

    @classmethod
    def from_dict(cls, data: Any, name: str = "") -> "RunInfo":
        """The RunInfo that `to_dict` wrote (keys it does not know go to `extra`); `name`: when data has none.
        Raises CheckpointError when `data` is not a run's (no space)."""
        if not isinstance(data, dict) or not isinstance(data.get("space"), dict):
            raise CheckpointError(f"{RUN_JSON} of run '{name}' is malformed: it has no space")
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{"name": name, "data": {}, **{k: v for k, v in data.items() if k in known}},
                   extra={k: v for k, v in data.items() if k not in known})


def read_run_info(run_dir: str | Path) -> RunInfo:
    """What run.json says of the run at `run_dir`. Raises CheckpointError (not a run folder, corrupt file)."""
    p = Path(run_dir) / RUN_JSON
    if not p.is_file():
        raise CheckpointError(f"'{run_dir}' is not a run folder: {RUN_JSON} is missing (train one with `nas train`)")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{p} is corrupt: {exc.msg}") from None
    return RunInfo.from_dict(data, name=Path(run_dir).name)


def write_run_info(run_dir: str | Path, info: RunInfo) -> None:
    """Write run.json whole."""
    write_json(Path(run_dir) / RUN_JSON, info.to_dict())


@dataclass
class TrainedRun:
    """A trained supernet and what it was trained on. `checkpoint_hash`: sha256 of `supernet.pt`; `config`: the
    training recipe (None for a run imported from once-for-all)."""

    run_dir: Path
    space: SearchSpace
    net: Supernet
    config: ExperimentConfig | None
    data: DataConfig
    checkpoint_hash: str
    info: RunInfo
    _splits: Splits | None = field(default=None, repr=False)

    @property
    def seed(self) -> int:
        """The seed that fixes calibration batches (the recipe's; 0 for an imported run)."""
        return self.config.seed if self.config is not None else 0

    def splits(self, data_dir: str | None = None) -> Splits:
        """The run's data splits (read once, then cached); `data_dir` overrides where the files are looked for."""
        if self._splits is None:
            cfg = self.data if data_dir is None else DataConfig.from_dict({**self.data.to_dict(), "data_dir": data_dir})
            self._splits = load_splits(cfg)
        return self._splits


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", *, from_checkpoint: bool = False) -> TrainedRun:
    """Load a finished run: the supernet with its trained weights (eval mode) on `device`, its space, config, data.

    `from_checkpoint`: take the weights of the latest `checkpoint.pt` instead (a run still training, or stopped
    before its end); `checkpoint_hash` is then the checkpoint file's sha256 and `info.extra["checkpoint_progress"]`
    says where training stood. Raises CheckpointError when the folder has no finished weights (no checkpoint with
    `from_checkpoint`) or they do not match run.json's hash.
    """
    run_dir = Path(run_dir)
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device {device!r} is not a torch device; allowed: cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was asked for but no CUDA GPU is available here; use cpu")
    info = read_run_info(run_dir)
    if from_checkpoint:
        state, digest, info = _checkpoint_weights(run_dir, info)
    else:
        state, digest = _final_weights(run_dir, info)
    try:
        space = SearchSpace.from_dict(info.space)
        config = None if info.imported else ExperimentConfig.from_yaml(run_dir / EXPERIMENT)
        data = DataConfig.from_dict(info.data)
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


def _final_weights(run_dir: Path, info: RunInfo) -> tuple[dict[str, torch.Tensor], str]:
    weights = run_dir / WEIGHTS
    if not info.finished or not weights.is_file():
        raise CheckpointError(f"run '{run_dir}' has no finished weights ({WEIGHTS}); finish it with "
                              f"`nas train {run_dir / EXPERIMENT} --out {run_dir} --resume`, or evaluate its latest "
                              f"checkpoint with --from-checkpoint")
    state, digest = _read_hashed(weights)
    if digest != info.checkpoint_hash:
        raise CheckpointError(f"{weights} does not match the checkpoint_hash in {RUN_JSON} (file changed or corrupt)")
    return state, digest


def _checkpoint_weights(run_dir: Path, info: RunInfo) -> tuple[dict[str, torch.Tensor], str, RunInfo]:
    if info.imported:
        raise CheckpointError(f"run '{run_dir}' was imported (from {info.imported.get('from')}): it has no "
                              f"training checkpoint, only its final weights (drop --from-checkpoint)")
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"run '{run_dir}' has no {CHECKPOINT} (it was never checkpointed)")
    ckpt, digest = _read_hashed(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{path} holds no model weights (not a training checkpoint of this project)")
    if ckpt.get("config_hash") != info.config_hash:
        raise CheckpointError(f"{path} belongs to another config than {RUN_JSON} says")
    return ckpt["model"], digest, replace(info, extra={**info.extra, "checkpoint_progress": ckpt.get("progress")})


def _read_hashed(path: Path) -> tuple[Any, str]:
    """(what `path` holds, loaded on the CPU; its sha256), from one read of the file: a training job may replace
    it meanwhile (it writes whole, by rename), and the hash must be that of what was loaded."""
    data = path.read_bytes()
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    return state, hashlib.sha256(data).hexdigest()


def import_ofa_run(checkpoint: str | Path, space_name: str, out_dir: str | Path, *, data_dir: str | None = None,
                   val_size: int = 10000) -> Path:
    """Write a run folder holding once-for-all's released weights (`checkpoint`) for space `space_name`
    (ofa-mbv3-w1.0 or -w1.2), which everything else takes as a finished run on ImageNet (`data_dir`: ImageNet's
    folder with train/ and val/; `val_size` training images held out for validation, OFA's 10,000).

    Every key and shape is checked before anything is written; the folder appears whole or not at all. Raises
    CheckpointError (unreadable file, a missing, unexpected or mis-shaped key, an existing run at `out_dir`).
    """
    from supernet.imagefolder import preprocessing
    from supernet.ofa import OFA_NET_IDS, convert_ofa_state_dict, read_ofa_checkpoint

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"field 'out': '{out}' already exists and is not an empty folder; import into a new one")
    space = SearchSpace.preset(space_name)
    raw, source_sha, fmt = read_ofa_checkpoint(checkpoint)
    state = convert_ofa_state_dict(raw, space)
    data = DataConfig(name="imagenet", data_dir=None if data_dir is None else str(data_dir), val_size=val_size,
                      image_size=max(space.resolutions))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        save_torch(tmp / WEIGHTS, state)
        info = RunInfo(name=out.name, space=space.to_dict(), data=data.to_dict(), finished=True,
                       checkpoint_hash=sha256_file(tmp / WEIGHTS),
                       imported={"from": "once-for-all", "net_id": OFA_NET_IDS[space.name],
                                 "source": str(Path(checkpoint).resolve()), "source_sha256": source_sha,
                                 "format": fmt, "dataset": "ImageNet", "classes": space.num_classes,
                                 "phases": []},
                       preprocessing=preprocessing(data.image_size))
        write_run_info(tmp, info)
        tmp.chmod(0o755)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


__all__ = ["TrainedRun", "RunInfo", "load_run", "read_run_info", "write_run_info", "import_ofa_run", "WEIGHTS",
           "CHECKPOINT", "RUN_JSON", "EXPERIMENT", "METRICS"]
