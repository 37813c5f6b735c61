"""Accuracy models behind one small surface: `fit(archs|codes, accuracy)`, `predict(archs|codes) -> ndarray`
(top-1 in [0, 1]), `predict_std` (None where the model gives no uncertainty), `fidelity`, `save`/`load`.

Kinds, by name in `ACCURACY_MODELS` (add your own with `register_accuracy_model`):
`mlp` (once-for-all's predictor), `gbr` (gradient boosting), `rf` (random forest), `gp` (Gaussian process, gives
`predict_std`), `ensemble` (the mean of several kinds).

Saved models load safely: torch weights are safetensors; scikit-learn models are skops files loaded against an
explicit list of the types they may hold (never pickle).
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Sequence

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from torch import nn

from predictors.accuracy._features import FEATURE_SETS, AccuracyPredictorError, as_codes, features
from predictors.metrics import fidelity as _fidelity
from supernet.arch import ArchConfig
from supernet.space import SearchSpace

ACCURACY_MODELS: dict[str, type["AccuracyModel"]] = {}

ArchsOrCodes = Sequence[ArchConfig] | np.ndarray


def register_accuracy_model(cls: type["AccuracyModel"]) -> type["AccuracyModel"]:
    """Class decorator: make an AccuracyModel subclass available by its `kind` name."""
    ACCURACY_MODELS[cls.kind] = cls
    return cls


def make_accuracy_model(kind: str, space: SearchSpace, **params: Any) -> "AccuracyModel":
    """A fresh (unfitted) model of `kind` for `space`."""
    if kind not in ACCURACY_MODELS:
        raise AccuracyPredictorError(f"field 'model' = {kind!r} is not allowed; allowed: "
                                     f"{', '.join(ACCURACY_MODELS)}")
    return ACCURACY_MODELS[kind](space, **params)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole: a temporary file in the same folder, then a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class AccuracyModel(ABC):
    """Predicts a subnet's top-1 accuracy (fraction in [0, 1]) from its arch, vectorised over many archs."""

    kind: ClassVar[str] = ""

    def __init__(self, space: SearchSpace, *, seed: int = 0):
        self.space, self.seed = space, int(seed)
        self.fitted = False

    # ------------------------------------------------------------------ the surface
    def params(self) -> dict[str, Any]:
        """Constructor arguments (besides `space`), JSON-able: enough to rebuild an unfitted twin."""
        return {"seed": self.seed}

    def fit(self, archs_or_codes: ArchsOrCodes, accuracy: np.ndarray) -> "AccuracyModel":
        """Fit on measured subnets: archs (or codes) and their top-1 accuracy in [0, 1]."""
        codes = as_codes(self.space, archs_or_codes)
        y = np.asarray(accuracy, dtype=np.float64).reshape(-1)
        if len(y) != len(codes):
            raise AccuracyPredictorError(f"field 'accuracy' has {len(y)} values for {len(codes)} archs")
        if len(y) < 4:
            raise AccuracyPredictorError(f"an accuracy model needs at least 4 measured subnets, got {len(y)}")
        if not np.isfinite(y).all() or y.min() < 0 or y.max() > 1:
            raise AccuracyPredictorError("field 'accuracy' must hold top-1 fractions in [0, 1]")
        self._fit(codes, y)
        self.fitted = True
        return self

    def predict(self, archs_or_codes: ArchsOrCodes) -> np.ndarray:
        """Predicted top-1 accuracy (N,) float64."""
        return self._predict(self._codes(archs_or_codes))

    def predict_std(self, archs_or_codes: ArchsOrCodes) -> np.ndarray | None:
        """Standard deviation of the prediction (N,), or None where the model gives no uncertainty."""
        self._codes(archs_or_codes)
        return None

    def fidelity(self, archs_or_codes: ArchsOrCodes, measured: np.ndarray) -> dict[str, float]:
        """{spearman, kendall, rmse, mape, within_10pct} of predictions against measured accuracy."""
        return _fidelity(self.predict(archs_or_codes), np.asarray(measured, dtype=np.float64))

    def save(self, folder: Path, prefix: str) -> dict[str, Any]:
        """Write the fitted state into `folder` (files named `prefix`...) and return the JSON spec to load it."""
        self._check_fitted()
        return {"kind": self.kind, "params": self.params(), "state": self._save(Path(folder), prefix)}

    @classmethod
    def load(cls, space: SearchSpace, spec: dict[str, Any], folder: Path) -> "AccuracyModel":
        """The fitted model a `save` spec describes."""
        model = make_accuracy_model(spec["kind"], space, **spec.get("params", {}))
        model._load(Path(folder), spec.get("state"))
        model.fitted = True
        return model

    # ------------------------------------------------------------------ what a kind implements
    @abstractmethod
    def _fit(self, codes: np.ndarray, y: np.ndarray) -> None: ...

    @abstractmethod
    def _predict(self, codes: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _save(self, folder: Path, prefix: str) -> Any:
        """Write the fitted state into files named `prefix`...; return what `_load` needs (JSON-able)."""

    @abstractmethod
    def _load(self, folder: Path, state: Any) -> None: ...

    # ------------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        if not self.fitted:
            raise AccuracyPredictorError(f"the {self.kind} accuracy model is not fitted yet: call fit() first")

    def _codes(self, archs_or_codes: ArchsOrCodes) -> np.ndarray:
        self._check_fitted()
        return as_codes(self.space, archs_or_codes)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({self.space.name!r}, {args}{', fitted' if self.fitted else ''})"


def _read_state_file(folder: Path, name: Any) -> bytes:
    if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
        raise AccuracyPredictorError(f"a saved model names its file by a plain file name, got {name!r}")
    try:
        return (folder / name).read_bytes()
    except OSError as exc:
        raise AccuracyPredictorError(f"cannot read the saved model file {folder / name}: {exc.strerror}") from None


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run with `n` intra-op threads, then restore: a 400-wide MLP gains nothing from more, and on a shared
    machine extra spinning threads make each step many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_features(name: str) -> str:
    if name not in FEATURE_SETS:
        raise AccuracyPredictorError(f"field 'features' = {name!r} is not allowed; allowed: {', '.join(FEATURE_SETS)}")
    return name


# ---------------------------------------------------------------------------------------------- OFA's MLP
class _OfaMlp(nn.Module):
    """once-for-all's accuracy predictor: `layers` × (Linear `hidden`, ReLU), a bias-free output, plus a learned
    base accuracy; it works on standardised targets (`y_mean`, `y_std` travel with the weights)."""

    def __init__(self, n_in: int, hidden: int, layers: int):
        super().__init__()
        mods: list[nn.Module] = []
        for i in range(layers):
            mods += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.ReLU()]
        self.layers = nn.Sequential(*mods, nn.Linear(hidden, 1, bias=False))
        self.base_acc = nn.Parameter(torch.zeros(1))
        self.register_buffer("y_mean", torch.zeros(1))
        self.register_buffer("y_std", torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1) + self.base_acc


@register_accuracy_model
class MlpAccuracy(AccuracyModel):
    """once-for-all's MLP on the one-hot encoding: 3 hidden layers of 400, ReLU, learned base accuracy, Adam 1e-3,
    MSE on standardised accuracy; `members` > 1 averages independently seeded nets (a deep ensemble)."""

    kind = "mlp"

    def __init__(self, space: SearchSpace, *, hidden: int = 400, layers: int = 3, epochs: int = 300,
                 batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-4, members: int = 1,
                 features: str = "onehot", seed: int = 0):
        super().__init__(space, seed=seed)
        for name, v in (("hidden", hidden), ("layers", layers), ("epochs", epochs), ("batch_size", batch_size),
                        ("members", members)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise AccuracyPredictorError(f"field '{name}' must be an integer >= 1, got {v!r}")
        if not lr > 0 or weight_decay < 0:
            raise AccuracyPredictorError(f"fields 'lr' (> 0) and 'weight_decay' (>= 0) got {lr!r}, {weight_decay!r}")
        self.hidden, self.layers, self.epochs, self.batch_size = hidden, layers, epochs, batch_size
        self.lr, self.weight_decay, self.members = float(lr), float(weight_decay), members
        self.features = _check_features(features)
        self.nets: list[_OfaMlp] = []

    def params(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "layers": self.layers, "epochs": self.epochs, "batch_size": self.batch_size,
                "lr": self.lr, "weight_decay": self.weight_decay, "members": self.members,
                "features": self.features, "seed": self.seed}

    def _x(self, codes: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(features(self.space, codes, self.features))

    def _fit(self, codes: np.ndarray, y: np.ndarray) -> None:
        x = self._x(codes)
        mean, std = float(y.mean()), float(max(y.std(), 1e-6))
        t = torch.from_numpy(((y - mean) / std).astype(np.float32))
        self.nets = []
        # fork_rng: weight init uses torch's global RNG; seed it locally and leave the caller's state alone.
        with torch.random.fork_rng(devices=[]), _torch_threads(1):
            for m in range(self.members):
                torch.manual_seed(self.seed * 7919 + m)
                gen = torch.Generator().manual_seed(self.seed * 7919 + m)
                net = _OfaMlp(x.shape[1], self.hidden, self.layers)
                net.y_mean.fill_(mean)
                net.y_std.fill_(std)
                opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
                n = len(t)
                for _ in range(self.epochs):
                    order = torch.randperm(n, generator=gen)
                    for i in range(0, n, self.batch_size):
                        idx = order[i:i + self.batch_size]
                        loss = nn.functional.mse_loss(net(x[idx]), t[idx])
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                self.nets.append(net.eval())

    @torch.no_grad()
    def _predict(self, codes: np.ndarray) -> np.ndarray:
        x = self._x(codes)
        with _torch_threads(1):
            outs = [net(x) * net.y_std + net.y_mean for net in self.nets]
        return torch.stack(outs).mean(0).double().numpy()

    def _save(self, folder: Path, prefix: str) -> str:
        from safetensors.torch import save

        name = f"{prefix}mlp.safetensors"
        tensors = {f"{m}.{k}": v.contiguous() for m, net in enumerate(self.nets) for k, v in net.state_dict().items()}
        write_bytes_atomic(folder / name, save(tensors))
        return name

    def _load(self, folder: Path, state: Any) -> None:
        from safetensors.torch import load

        tensors = load(_read_state_file(folder, state))
        n_in = self.space.onehot_length if self.features == "onehot" else tensors["0.layers.0.weight"].shape[1]
        self.nets = []
        for m in range(self.members):
            net = _OfaMlp(n_in, self.hidden, self.layers)
            net.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == str(m)})
            self.nets.append(net.eval())


# ---------------------------------------------------------------------------------------------- scikit-learn
# Types a saved scikit-learn model may hold beyond skops' defaults; anything else is refused at load.
_SKOPS_ALLOWED = frozenset({
    "sklearn.tree._tree.Tree",
    "sklearn.gaussian_process.kernels.ConstantKernel", "sklearn.gaussian_process.kernels.RBF",
    "sklearn.gaussian_process.kernels.WhiteKernel", "sklearn.gaussian_process.kernels.Sum",
    "sklearn.gaussian_process.kernels.Product", "sklearn.gaussian_process.kernels.Matern",
    "sklearn.gaussian_process.kernels.DotProduct",
})


class _SklearnAccuracy(AccuracyModel):
    """A scikit-learn regressor (a Pipeline) on one of the feature sets, saved with skops."""

    def __init__(self, space: SearchSpace, *, features: str, seed: int = 0):
        super().__init__(space, seed=seed)
        self.features = _check_features(features)
        self.estimator: Any = None

    @abstractmethod
    def _make(self) -> Any: ...

    def _fit(self, codes: np.ndarray, y: np.ndarray) -> None:
        self.estimator = self._make().fit(features(self.space, codes, self.features), y)

    def _predict(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(self.estimator.predict(features(self.space, codes, self.features)), dtype=np.float64)

    def _save(self, folder: Path, prefix: str) -> str:
        import skops.io as sio

        name = f"{prefix}{self.kind}.skops"
        write_bytes_atomic(folder / name, sio.dumps(self.estimator))
        return name

    def _load(self, folder: Path, state: Any) -> None:
        import skops.io as sio

        data = _read_state_file(folder, state)
        untrusted = set(sio.get_untrusted_types(data=data))
        refused = sorted(untrusted - _SKOPS_ALLOWED)
        if refused:
            raise AccuracyPredictorError(f"{folder / state} holds types this loader does not trust: "
                                         f"{', '.join(refused)}")
        self.estimator = sio.loads(data, trusted=sorted(untrusted))


@register_accuracy_model
class GbrAccuracy(_SklearnAccuracy):
    """Gradient-boosted regression trees (scikit-learn) on the one-hot plus summary features."""

    kind = "gbr"

    def __init__(self, space: SearchSpace, *, n_estimators: int = 500, learning_rate: float = 0.03,
                 max_depth: int = 3, subsample: float = 0.8, features: str = "onehot+summary", seed: int = 0):
        super().__init__(space, features=features, seed=seed)
        self.n_estimators, self.learning_rate, self.max_depth = int(n_estimators), float(learning_rate), int(max_depth)
        self.subsample = float(subsample)

    def params(self) -> dict[str, Any]:
        return {"n_estimators": self.n_estimators, "learning_rate": self.learning_rate, "max_depth": self.max_depth,
                "subsample": self.subsample, "features": self.features, "seed": self.seed}

    def _make(self) -> Any:
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                                         max_depth=self.max_depth, subsample=self.subsample,
                                         random_state=self.seed)


@register_accuracy_model
class RfAccuracy(_SklearnAccuracy):
    """A random forest (scikit-learn) on the one-hot plus summary features."""

    kind = "rf"

    def __init__(self, space: SearchSpace, *, n_estimators: int = 300, max_features: float = 0.33,
                 min_samples_leaf: int = 1, features: str = "onehot+summary", seed: int = 0):
        super().__init__(space, features=features, seed=seed)
        self.n_estimators, self.max_features = int(n_estimators), float(max_features)
        self.min_samples_leaf = int(min_samples_leaf)

    def params(self) -> dict[str, Any]:
        return {"n_estimators": self.n_estimators, "max_features": self.max_features,
                "min_samples_leaf": self.min_samples_leaf, "features": self.features, "seed": self.seed}

    def _make(self) -> Any:
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=self.n_estimators, max_features=self.max_features,
                                     min_samples_leaf=self.min_samples_leaf, random_state=self.seed, n_jobs=1)


@register_accuracy_model
class GpAccuracy(_SklearnAccuracy):
    """A Gaussian process (scikit-learn) on standardised summary features: constant × RBF with one length scale
    per feature, plus white noise; `predict_std` is its posterior standard deviation (accuracy units)."""

    kind = "gp"

    def __init__(self, space: SearchSpace, *, restarts: int = 1, features: str = "summary", seed: int = 0):
        super().__init__(space, features=features, seed=seed)
        self.restarts = int(restarts)

    def params(self) -> dict[str, Any]:
        return {"restarts": self.restarts, "features": self.features, "seed": self.seed}

    def _make(self) -> Any:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        n = features(self.space, self.space.encode([self.space.smallest()]), self.features).shape[1]
        kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.full(n, 3.0), (1e-2, 1e4))
                  + WhiteKernel(0.1, (1e-6, 1.0)))
        gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=self.restarts,
                                      random_state=self.seed)
        return make_pipeline(StandardScaler(), gp)

    def _fit(self, codes: np.ndarray, y: np.ndarray) -> None:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            # length scales at their bound mean "this feature does not matter": expected, not a failure
            warnings.simplefilter("ignore", ConvergenceWarning)
            super()._fit(codes, y)

    def predict_std(self, archs_or_codes: ArchsOrCodes) -> np.ndarray:
        codes = self._codes(archs_or_codes)
        x = self.estimator[:-1].transform(features(self.space, codes, self.features))
        _, std = self.estimator[-1].predict(x, return_std=True)
        return np.asarray(std, dtype=np.float64)


# ---------------------------------------------------------------------------------------------- ensemble
@register_accuracy_model
class EnsembleAccuracy(AccuracyModel):
    """The mean of several kinds' predictions. `predict_std` combines the members' spread with the variance of
    members that give one (when none does, the spread alone)."""

    kind = "ensemble"

    def __init__(self, space: SearchSpace, *, members: Sequence[str] = ("mlp", "gbr", "rf", "gp"),
                 member_params: dict[str, dict[str, Any]] | None = None, seed: int = 0):
        super().__init__(space, seed=seed)
        members = list(members)
        bad = [m for m in members if m not in ACCURACY_MODELS or m == "ensemble"]
        if len(members) < 2 or bad:
            allowed = ", ".join(k for k in ACCURACY_MODELS if k != "ensemble")
            raise AccuracyPredictorError(f"field 'members' must name 2 or more kinds among {allowed}, "
                                         f"got {members}")
        self.members = members
        self.member_params = {k: dict(v) for k, v in (member_params or {}).items()}
        self.models = [make_accuracy_model(m, space, **{"seed": seed, **self.member_params.get(m, {})})
                       for m in members]

    def params(self) -> dict[str, Any]:
        return {"members": list(self.members), "member_params": self.member_params, "seed": self.seed}

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


__all__ = ["AccuracyModel", "MlpAccuracy", "GbrAccuracy", "RfAccuracy", "GpAccuracy", "EnsembleAccuracy",
           "ACCURACY_MODELS", "register_accuracy_model", "make_accuracy_model", "AccuracyPredictorError",
           "write_bytes_atomic"]
