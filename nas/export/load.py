"""Reading a bundle back: the PyTorch subnet from `weights.safetensors` (its metadata name the space and arch)."""

from __future__ import annotations

import json
from pathlib import Path

from nas.export.errors import ExportError
from supernet import ArchConfig, SearchSpace, StaticNet, Supernet

WEIGHTS_FILE = "weights.safetensors"


def load_bundle_net(bundle_dir: str | Path) -> StaticNet:
    """The bundle's subnet as a PyTorch module in eval mode, with the exported (recalibrated) weights."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(bundle_dir) / WEIGHTS_FILE
    if not path.is_file():
        raise ExportError(f"bundle '{bundle_dir}' has no {WEIGHTS_FILE} (export it with the safetensors format)")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    try:
        space = SearchSpace.from_dict(json.loads(meta["space"]))
        arch = ArchConfig.from_json(meta["arch"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path} lacks the space/arch metadata an export writes ({exc})") from None
    net = Supernet(space).extract(arch)
    net.load_state_dict(load_file(str(path)))
    return net.eval()
