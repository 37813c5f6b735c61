"""once-for-all's accuracy predictor: an MLP on the one-hot arch encoding (torch, weights in safetensors)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from predictors.accuracy._base import (AccuracyModel, AccuracyPredictorError, _check_features, _read_state_file,
                                       register_accuracy_model, write_bytes_atomic)
from predictors.accuracy._features import features
from supernet.space import SearchSpace


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


@register_accuracy_model("mlp")
class MlpAccuracy(AccuracyModel):
    """once-for-all's MLP on the one-hot encoding: 3 hidden layers of 400, ReLU, learned base accuracy, Adam 1e-3,
    MSE on standardised accuracy; `members` > 1 averages independently seeded nets (a deep ensemble)."""

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
