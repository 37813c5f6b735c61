"""A fitted accuracy predictor bound to the supernet checkpoint it was measured on, stored in the run folder:
`runs/<name>/accuracy_predictor/manifest.json` (checkpoint hash, space, model spec, fidelity, selection) beside
the model's files. Loading against another checkpoint is refused."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from predictors.accuracy._features import AccuracyPredictorError
from predictors.accuracy._ofa import read_ofa_predictor
from predictors.accuracy.dataset import PREDICTOR_DIR
from predictors.accuracy.models import AccuracyModel, model_name, write_bytes_atomic
from supernet.arch import ArchConfig
from supernet.errors import CheckpointError, NasError
from supernet.space import SearchSpace

MANIFEST = "manifest.json"
FORMAT = 1


@dataclass
class AccuracyPredictor:
    """An accuracy model fitted on one checkpoint's measured subnets, with its held-out fidelity."""

    model: AccuracyModel
    checkpoint_hash: str
    fidelity: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def space(self) -> SearchSpace:
        return self.model.space

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def name(self) -> str:
        """The model's name with its feature set or members: `gbr[blocks]`, `ensemble(gp+gbr)`."""
        return model_name(self.model)

    def predict(self, archs_or_codes: Sequence[ArchConfig] | np.ndarray) -> np.ndarray:
        """Predicted top-1 accuracy in [0, 1], (N,)."""
        return self.model.predict(archs_or_codes)

    def predict_std(self, archs_or_codes: Sequence[ArchConfig] | np.ndarray) -> np.ndarray | None:
        """Standard deviation of the prediction (N,), or None when the model gives none."""
        return self.model.predict_std(archs_or_codes)

    def predict_with_std(self, archs_or_codes: Sequence[ArchConfig] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(accuracy, accuracy_std); std is NaN where the model gives no uncertainty."""
        mean = self.predict(archs_or_codes)
        std = self.predict_std(archs_or_codes)
        return mean, (np.full(len(mean), np.nan) if std is None else std)

    def fidelity_on(self, archs_or_codes: Sequence[ArchConfig] | np.ndarray, measured: np.ndarray) -> dict:
        """{spearman, kendall, rmse, mape, within_10pct} against measured accuracy."""
        return self.model.fidelity(archs_or_codes, measured)

    def fidelity_report(self) -> dict[str, Any]:
        """The held-out fidelity recorded at fit time, with the model kind and data sizes."""
        out = {"model": self.name, **self.fidelity, "n_train": self.info.get("n_train"),
               "n_heldout": self.info.get("n_heldout")}
        return {**out, "note": self.info["note"]} if self.info.get("note") else out


def predictor_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / PREDICTOR_DIR


def save_accuracy_predictor(predictor: AccuracyPredictor, run_dir: str | Path) -> Path:
    """Write the model files, then the manifest (each whole); files of an earlier model not named by the new
    manifest are removed. Returns the predictor folder."""
    folder = predictor_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    spec = predictor.model.save(folder, prefix="model-")
    manifest = {"format": FORMAT, "checkpoint_hash": predictor.checkpoint_hash, "kind": predictor.kind,
                "name": predictor.name,
                "space": predictor.space.to_dict(), "model": spec, "fidelity": predictor.fidelity, **predictor.info}
    write_bytes_atomic(folder / MANIFEST, (json.dumps(manifest, indent=2, default=_json) + "\n").encode())
    keep = set(_files(spec["state"]))
    for p in folder.glob("model-*"):
        if p.name not in keep:
            p.unlink(missing_ok=True)
    return folder


def _files(state: Any) -> list[str]:
    if isinstance(state, str):
        return [state]
    if isinstance(state, list):
        return [f for s in state for f in _files(s)]
    return []


def _json(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _run_checkpoint_hash(run_dir: Path) -> str:
    from supernet.run import read_run_info

    value = read_run_info(run_dir).checkpoint_hash
    if not value:
        raise CheckpointError(f"run '{run_dir}' is not finished: run.json has no checkpoint_hash yet")
    return str(value)


def load_accuracy_predictor(run_dir: str | Path, checkpoint_hash: str | None = None) -> AccuracyPredictor:
    """The accuracy predictor stored in `run_dir`, checked against `checkpoint_hash` (default: the run's current
    checkpoint, from run.json). Raises CheckpointError when there is none or it was fitted on another checkpoint."""
    run_dir = Path(run_dir)
    expected = checkpoint_hash or _run_checkpoint_hash(run_dir)
    folder = predictor_dir(run_dir)
    path = folder / MANIFEST
    if not path.is_file():
        raise CheckpointError(f"run '{run_dir}' has no accuracy predictor ({path} is missing); fit one with "
                              f"`nas accuracy fit {run_dir}`")
    try:
        manifest = json.loads(path.read_text())
        stored = str(manifest["checkpoint_hash"])
        space = SearchSpace.from_dict(manifest["space"])
        spec = manifest["model"]
    except (json.JSONDecodeError, KeyError, TypeError, NasError) as exc:
        raise CheckpointError(f"{path} is corrupt or not an accuracy predictor manifest: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {manifest.get('format')!r}; this version reads format {FORMAT}")
    if stored != expected:
        raise CheckpointError(f"the accuracy predictor in {folder} was fitted on checkpoint {stored[:12]}…, not "
                              f"on {expected[:12]}… (the supernet was retrained or another checkpoint was given); "
                              f"refit it with `nas accuracy fit {run_dir}`")
    try:
        model = AccuracyModel.load(space, spec, folder)
    except AccuracyPredictorError as exc:
        raise CheckpointError(f"cannot load the accuracy predictor in {folder}: {exc}") from None
    info = {k: v for k, v in manifest.items() if k not in ("format", "checkpoint_hash", "kind", "space", "model",
                                                          "fidelity")}
    return AccuracyPredictor(model, stored, dict(manifest.get("fidelity", {})), info)


def import_ofa_predictor(path: str | Path, run_dir: str | Path, *,
                         resolutions: list[int] | None = None) -> AccuracyPredictor:
    """Make OFA's predictor file the accuracy predictor of the run at `run_dir` (stored as any other, bound to
    the run's checkpoint; fidelity not measured here). Returns the stored `AccuracyPredictor`."""
    from supernet.run import read_run_info

    run_dir = Path(run_dir)
    checkpoint_hash = _run_checkpoint_hash(run_dir)
    space = SearchSpace.from_dict(read_run_info(run_dir).space)
    model, sha = read_ofa_predictor(path, space, resolutions)
    info = {"imported": {"from": "once-for-all", "format": model.format, "source": str(Path(path).resolve()),
                         "source_sha256": sha},
            "note": "imported: fidelity not measured here (run `nas accuracy fit` to measure and fit one)"}
    predictor = AccuracyPredictor(model, checkpoint_hash, {}, info)
    save_accuracy_predictor(predictor, run_dir)
    return predictor


__all__ = ["AccuracyPredictor", "save_accuracy_predictor", "load_accuracy_predictor", "import_ofa_predictor",
           "predictor_dir", "MANIFEST"]
