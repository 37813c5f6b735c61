"""once-for-all's own trained accuracy predictors, imported as they are (predictions equal to OFA's code).

Two formats:
- `tutorial`: `ofa/tutorial`'s `acc_predictor.pth` (the w1.2 space): an MLP 128→400→400→400→1 over kernel one-hot
  (20 slots × 3) and expand one-hot (20 × 3), inactive blocks zero, then resolution one-hot in 16-px buckets from
  112 (8 buckets: 112-127, ..., 224-239).
- `ofa.nas`: `ofa.nas.accuracy_predictor.AccuracyPredictor` with `MobileNetArchEncoder`: resolution one-hot over its
  `image_size_list`, then kernel one-hot and expand one-hot per slot; `n_layers` × (Linear + ReLU), a bias-free
  Linear to 1, plus `base_acc`. The file does not hold `image_size_list`: it is inferred from the input width
  (25: 128..224 step 4, OFA's space; 4: 128, 160, 192, 224, OFA's accuracy data set; 1: 224) or given.
Nothing here is fitted: `nas accuracy fit` replaces an imported predictor with one measured on the run.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from predictors.accuracy._base import AccuracyModel, _read_state_file, register_accuracy_model, write_bytes_atomic
from predictors.accuracy._features import AccuracyPredictorError
from supernet.space import SearchSpace

FORMATS = ("tutorial", "ofa.nas")
_SLOTS, _KERNELS, _EXPANDS = 20, (3, 5, 7), (3, 4, 6)
_TUTORIAL_BUCKETS = tuple(range(112, 240, 16))  # r -> (r - 112) // 16


def _tutorial_map(keys: tuple[int, ...]) -> dict[int, int]:
    """`ofa/tutorial/accuracy_predictor.construct_maps`: positions in the order Python iterates the set."""
    d: dict[int, int] = {}
    for k in list(set(keys)):
        d.setdefault(k, len(d))
    return d


def default_resolutions(n: int) -> tuple[int, ...] | None:
    """OFA's image_size_list for an `ofa.nas` encoder with `n` resolution inputs, where it is unambiguous."""
    return {25: tuple(range(128, 228, 4)), 4: (128, 160, 192, 224), 1: (224,)}.get(n)


def _mlp(fmt: str, n_in: int, hidden: int, layers: int) -> nn.Module:
    if fmt == "tutorial":
        mods: list[nn.Module] = []
        for i in range(layers):
            mods += [nn.Linear(n_in if i == 0 else hidden, hidden), nn.ReLU()]
        return nn.Sequential(*mods, nn.Linear(hidden, 1))
    return _NasPredictor(n_in, hidden, layers)


class _NasPredictor(nn.Module):
    """`ofa.nas.accuracy_predictor.AccuracyPredictor`'s layers (same state-dict keys)."""

    def __init__(self, n_in: int, hidden: int, layers: int):
        super().__init__()
        self.layers = nn.Sequential(*[nn.Sequential(nn.Linear(n_in if i == 0 else hidden, hidden), nn.ReLU())
                                      for i in range(layers)], nn.Linear(hidden, 1, bias=False))
        self.base_acc = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze() + self.base_acc


@register_accuracy_model("ofa-imported")
class OfaImportedAccuracy(AccuracyModel):
    """An accuracy predictor trained by once-for-all's code, imported with its weights (see the module doc)."""

    def __init__(self, space: SearchSpace, *, seed: int = 0, format: str = "tutorial",  # noqa: A002
                 resolutions: list[int] | None = None, hidden: int = 400, layers: int = 3):
        super().__init__(space, seed=seed)
        if format not in FORMATS:
            raise AccuracyPredictorError(f"field 'format' = {format!r} is not allowed; allowed: {', '.join(FORMATS)}")
        if (space.num_blocks, tuple(space.kernel_choices), tuple(space.expand_choices)) != (_SLOTS, _KERNELS, _EXPANDS):
            raise AccuracyPredictorError(f"space '{space.name}' is not once-for-all's MobileNetV3 space (20 block "
                                         f"slots, kernels 3/5/7, expands 3/4/6): OFA's predictor cannot encode it")
        self.format = format
        self.resolutions = tuple(_TUTORIAL_BUCKETS if format == "tutorial" else (resolutions or ()))
        if format == "ofa.nas" and not self.resolutions:
            raise AccuracyPredictorError("field 'resolutions' must list the encoder's image_size_list for format "
                                         "ofa.nas")
        self.hidden, self.layers = int(hidden), int(layers)
        self.net = _mlp(format, self.n_features, self.hidden, self.layers).eval()

    @property
    def n_features(self) -> int:
        return 128 if self.format == "tutorial" else len(self.resolutions) + 2 * 3 * _SLOTS

    def params(self) -> dict[str, Any]:
        return {**super().params(), "format": self.format,
                "resolutions": list(self.resolutions) if self.format == "ofa.nas" else None,
                "hidden": self.hidden, "layers": self.layers}

    def features(self, codes: np.ndarray) -> np.ndarray:
        """OFA's feature vectors (N, n_features) float32 of compact codes; refuses resolutions it cannot encode."""
        kidx, eidx, depth, r = self.space.split_codes(codes)
        active = self.space.active_mask(depth)
        n = len(codes)
        ks = np.asarray(self.space.kernel_choices)[kidx]
        es = np.asarray(self.space.expand_choices)[eidx]
        if self.format == "tutorial":
            kmap, emap = _tutorial_map(_KERNELS), _tutorial_map(_EXPANDS)
            k_base, e_base = 0, 3 * _SLOTS
            bad = (r < 112) | (r >= 240)
            r_pos = 6 * _SLOTS + (r - 112) // 16
            allowed = "112 to 239 px (16-px buckets from 112)"
        else:
            kmap = {k: i for i, k in enumerate(_KERNELS)}
            emap = {e: i for i, e in enumerate(_EXPANDS)}
            k_base, e_base = len(self.resolutions), len(self.resolutions) + 3 * _SLOTS
            index = {v: i for i, v in enumerate(self.resolutions)}
            bad = np.array([int(v) not in index for v in r], dtype=bool)
            r_pos = np.array([index.get(int(v), 0) for v in r])
            allowed = ", ".join(map(str, self.resolutions))
        if bad.any():
            raise AccuracyPredictorError(f"field 'r' = {int(r[np.argmax(bad)])} cannot be encoded by the imported "
                                         f"OFA predictor ({self.format}); allowed: {allowed}")
        x = np.zeros((n, self.n_features), dtype=np.float32)
        rows, slots = np.nonzero(active)
        slot_base = 3 * slots
        x[rows, k_base + slot_base + np.vectorize(kmap.get)(ks[rows, slots])] = 1
        x[rows, e_base + slot_base + np.vectorize(emap.get)(es[rows, slots])] = 1
        x[np.arange(n), r_pos] = 1
        return x

    def _fit(self, codes: np.ndarray, y: np.ndarray) -> None:
        raise AccuracyPredictorError("an imported OFA accuracy predictor is not fitted here; `nas accuracy fit` "
                                     "measures the run and fits a model of its own in its place")

    @torch.no_grad()
    def _predict(self, codes: np.ndarray) -> np.ndarray:
        if len(codes) == 0:
            return np.zeros(0)
        out = self.net(torch.from_numpy(self.features(codes))).reshape(-1)
        return out.double().numpy()

    def load_weights(self, state: Mapping[str, torch.Tensor]) -> "OfaImportedAccuracy":
        try:
            self.net.load_state_dict(dict(state))
        except RuntimeError as exc:
            raise AccuracyPredictorError(f"the weights do not fit OFA's {self.format} predictor: "
                                         f"{str(exc).splitlines()[0]}") from None
        self.net.eval()
        self.fitted = True
        return self

    def _save(self, folder: Path, prefix: str) -> str:
        from safetensors.torch import save

        name = f"{prefix}ofa.safetensors"
        write_bytes_atomic(folder / name, save({k: v.contiguous() for k, v in self.net.state_dict().items()}))
        return name

    def _load(self, folder: Path, state: Any) -> None:
        from safetensors.torch import load

        self.load_weights(load(_read_state_file(folder, state)))


def read_ofa_predictor(path: str | Path, space: SearchSpace, resolutions: list[int] | None = None
                       ) -> tuple[OfaImportedAccuracy, str]:
    """(the model, sha256 of the file) from OFA's predictor file, either format (told apart by its keys);
    loaded with `weights_only=True`."""
    import hashlib

    path = Path(path)
    try:
        data = path.read_bytes()
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except OSError as exc:
        raise AccuracyPredictorError(f"cannot read {path}: {exc.strerror or exc}") from None
    except pickle.UnpicklingError as exc:
        why = "it needs code to load, which is refused (weights_only)" if "Unsupported global" in str(exc) else \
            "not a complete torch file"
        raise AccuracyPredictorError(f"cannot read {path}: {why}") from None
    except Exception as exc:  # noqa: BLE001 - truncated or not a torch file
        raise AccuracyPredictorError(f"cannot read {path}: not a complete torch file "
                                     f"({(str(exc).splitlines() or [''])[0].split('. ')[0]})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        raise AccuracyPredictorError(f"{path} holds no state dict of tensors")
    state = dict(obj)
    if "base_acc" in state:
        fmt = "ofa.nas"
        firsts = sorted(k for k in state if k.startswith("layers.") and k.endswith(".0.weight"))
        if not firsts:
            raise AccuracyPredictorError(f"{path}: an ofa.nas predictor needs layers.0.0.weight")
        layers, (hidden, n_in) = len(firsts), tuple(state["layers.0.0.weight"].shape)
        res = resolutions or default_resolutions(n_in - 6 * _SLOTS)
        if not res or len(res) != n_in - 6 * _SLOTS:
            raise AccuracyPredictorError(f"field 'resolutions': {path} encodes {n_in - 6 * _SLOTS} resolutions; give "
                                         f"the encoder's image_size_list (--resolutions 128,160,...)")
    elif "0.weight" in state:
        fmt, res = "tutorial", None
        layers = sum(1 for k in state if k.endswith(".weight")) - 1
        hidden, n_in = tuple(state["0.weight"].shape)
        if n_in != 128:
            raise AccuracyPredictorError(f"{path}: the tutorial predictor takes 128 inputs, this one {n_in}")
    else:
        raise AccuracyPredictorError(f"{path} is neither OFA's tutorial predictor (0.weight, ...) nor an "
                                     f"ofa.nas AccuracyPredictor (layers.0.0.weight, ..., base_acc)")
    model = OfaImportedAccuracy(space, format=fmt, resolutions=list(res) if res else None, hidden=hidden,
                                layers=layers)
    return model.load_weights(state), hashlib.sha256(data).hexdigest()


__all__ = ["OfaImportedAccuracy", "read_ofa_predictor", "default_resolutions", "FORMATS"]
