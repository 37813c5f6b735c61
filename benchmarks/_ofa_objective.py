"""The once-for-all side-by-side objective: `ofa-mbv3-w1.2` at OFA's five resolutions, latency from one of our
device profiles, accuracy from an MLP in OFA's own encoding (its `AccuracyPredictor`, random weights), served to
OFA's `EvolutionFinder` (per arch, as its tutorial does) and to our search (`Predictors` + `PredictorObjective`).

OFA's `ofa.nas.accuracy_predictor` package imports torchvision through `ofa.utils`; its two files we use do not
need it, so they are loaded by path (`arch_encoder.py` imports `ResNets` for its ResNet encoder only).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import torch

from predictors import Predictors
from supernet import SearchSpace

OFA_RESOLUTIONS = [160, 176, 192, 208, 224]


def _load(name: str):
    spec = importlib.util.find_spec("ofa")
    if spec is None:
        raise ImportError("the `ofa` package is not installed (pip install ofa; a dev dependency)")
    path = Path(spec.submodule_search_locations[0]) / "nas" / "accuracy_predictor" / f"{name}.py"
    stub = "ofa.imagenet_classification.networks"
    saved = {k: sys.modules.get(k) for k in ("ofa.imagenet_classification", stub)}
    sys.modules.setdefault("ofa.imagenet_classification", types.ModuleType("ofa.imagenet_classification"))
    sys.modules.setdefault(stub, types.SimpleNamespace(ResNets=None))
    try:
        mod_spec = importlib.util.spec_from_file_location(f"_ofa_{name}", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
    return module


def ofa_space() -> SearchSpace:
    data = SearchSpace.preset("ofa-mbv3-w1.2").to_dict()
    data.update(name="ofa-mbv3-w1.2-r5", resolutions=OFA_RESOLUTIONS)
    return SearchSpace.from_dict(data)


class OfaMlpAccuracy:
    """OFA's `AccuracyPredictor` (3x400 MLP over its MobileNetArchEncoder one-hot) as our accuracy predictor:
    `predict(codes)` on a batch of our compact codes (`SearchSpace.onehot` is OFA's layout)."""

    def __init__(self, space: SearchSpace, seed: int = 0):
        enc_mod, acc_mod = _load("arch_encoder"), _load("acc_predictor")
        self.space = space
        self.encoder = enc_mod.MobileNetArchEncoder(image_size_list=list(space.resolutions),
                                                    ks_list=list(space.kernel_choices),
                                                    expand_list=list(space.expand_choices),
                                                    depth_list=list(space.depth_choices), n_stage=space.num_stages)
        torch.manual_seed(seed)
        self.model = acc_mod.AccuracyPredictor(self.encoder, device="cpu").eval()

    def predict(self, codes: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model(torch.from_numpy(self.space.onehot(codes))).reshape(-1).numpy().astype(np.float64)

    def to_ofa(self, code: np.ndarray) -> dict:
        k, e, d, r = self.space.split_codes(code[None])
        return {"ks": [self.space.kernel_choices[i] for i in k[0]], "e": [self.space.expand_choices[i] for i in e[0]],
                "d": [int(x) for x in d[0]], "image_size": int(r[0])}

    def from_ofa(self, arch: dict) -> np.ndarray:
        s = self.space
        row = ([s.kernel_choices.index(k) for k in arch["ks"]] + [s.expand_choices.index(x) for x in arch["e"]]
               + [s.depth_choices.index(d) for d in arch["d"]] + [arch["image_size"]])
        return np.asarray(row, dtype=np.int64)


class OfaLatency:
    """OFA's `efficiency_predictor` protocol (`get_efficiency(arch_dict)`) over our latency predictor."""

    def __init__(self, predictors: Predictors, acc: OfaMlpAccuracy):
        self.latency, self.acc = predictors.latency, acc

    def get_efficiency(self, arch: dict) -> float:
        return float(self.latency.predict(self.acc.from_ofa(arch)[None])[0])


def setup(device: str = "nvidia-t4", seed: int = 0) -> tuple[SearchSpace, Predictors, OfaMlpAccuracy]:
    space = ofa_space()
    acc = OfaMlpAccuracy(space, seed)
    return space, Predictors(space, device, accuracy=acc), acc
