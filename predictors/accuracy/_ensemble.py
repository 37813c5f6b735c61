"""The mean of several accuracy models, with their spread as uncertainty."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from predictors.accuracy._base import (ACCURACY_MODELS, AccuracyModel, AccuracyPredictorError, ArchsOrCodes,
                                       make_accuracy_model, params_for, parse_model_name, register_accuracy_model)
from supernet.space import SearchSpace


@register_accuracy_model("ensemble")
class EnsembleAccuracy(AccuracyModel):
    """The mean of several kinds' predictions; a member may be a kind on another feature set (`gbr[blocks]`).
    `predict_std` combines the members' spread with the variance of members that give one (when none does, the
    spread alone)."""

    def __init__(self, space: SearchSpace, *, members: Sequence[str] = ("mlp", "gbr", "rf", "gp"),
                 member_params: dict[str, dict[str, Any]] | None = None, seed: int = 0):
        super().__init__(space, seed=seed)
        members = list(members)
        if len(members) < 2 or any(not self._member_ok(m) for m in members):
            allowed = ", ".join(k for k in ACCURACY_MODELS if k != "ensemble")
            raise AccuracyPredictorError(f"field 'members' must name 2 or more kinds among {allowed} (each may "
                                         f"name a feature set, as gbr[blocks]), got {members}")
        self.members = members
        self.models = [make_accuracy_model(m, space, **{"seed": seed, **params_for(m, member_params)})
                       for m in members]

    @staticmethod
    def _member_ok(name: Any) -> bool:
        try:
            return parse_model_name(name)[0] != "ensemble"
        except AccuracyPredictorError:
            return False

    def params(self) -> dict[str, Any]:
        # every member's own parameters, so a saved ensemble does not depend on the kinds' defaults at load time
        full = {m: {k: v for k, v in model.params().items() if k != "seed"}
                for m, model in zip(self.members, self.models)}
        return {"members": list(self.members), "member_params": full, "seed": self.seed}

    def _fit(self, codes: np.ndarray, y: np.ndarray) -> None:
        for model in self.models:
            model.fit(codes, y)

    def _predict(self, codes: np.ndarray) -> np.ndarray:
        return np.mean([m.predict(codes) for m in self.models], axis=0)

    def predict_std(self, archs_or_codes: ArchsOrCodes) -> np.ndarray:
        codes = self._codes(archs_or_codes)
        preds = np.stack([m.predict(codes) for m in self.models])
        stds = [s for s in (m.predict_std(codes) for m in self.models) if s is not None]
        var = preds.var(axis=0)
        if stds:
            var = var + np.mean(np.stack(stds) ** 2, axis=0)
        return np.sqrt(var)

    def _save(self, folder: Path, prefix: str) -> list[Any]:
        return [model._save(folder, f"{prefix}{i}-") for i, model in enumerate(self.models)]

    def _load(self, folder: Path, state: Any) -> None:
        if not isinstance(state, list) or len(state) != len(self.models):
            raise AccuracyPredictorError(f"ensemble state must list {len(self.models)} members, got {state!r}")
        for model, member_state in zip(self.models, state):
            model._load(folder, member_state)
            model.fitted = True
