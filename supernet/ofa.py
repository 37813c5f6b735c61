"""once-for-all's released MobileNetV3 supernets (`ofa_mbv3_d234_e346_k357_w1.0`, `_w1.2`) in our `Supernet`.

OFA's `OFAMobileNetV3` is the network of our `ofa-mbv3-w1.0` / `ofa-mbv3-w1.2` presets: its state dict maps onto
ours by renaming keys only (same shapes, OFA's `5to3`/`7to5` kernel-transform matrices included). OFA's own
`load_state_dict` also accepts older key names (`mobile_inverted_conv`, single or double `bn.bn`/`conv.conv`
nesting); so does `convert_ofa_state_dict`. Pure functions: reading the file is `read_ofa_checkpoint`, writing a
run folder is `supernet.run.import_ofa_run`.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from supernet.errors import CheckpointError
from supernet.space import SearchSpace

OFA_SPACES = ("ofa-mbv3-w1.0", "ofa-mbv3-w1.2")
# OFA's model-zoo names of the released files, by our preset name
OFA_NET_IDS = {"ofa-mbv3-w1.0": "ofa_mbv3_d234_e346_k357_w1.0", "ofa-mbv3-w1.2": "ofa_mbv3_d234_e346_k357_w1.2"}

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
# (our key pattern, OFA's key with nesting collapsed); `{b}` is OFA's block index (ours + 1: OFA's blocks[0] is our
# `first` block)
_RULES: list[tuple[str, str]] = [
    (r"stem\.0\.weight", "first_conv.conv.weight"),
    (rf"stem\.1\.{_BN}", "first_conv.bn.{0}"),
    (r"first\.depthwise\.0\.weight", "blocks.0.conv.depth_conv.conv.weight"),
    (rf"first\.depthwise\.1\.{_BN}", "blocks.0.conv.depth_conv.bn.{0}"),
    (r"first\.se\.(reduce|expand)\.(weight|bias)", "blocks.0.conv.depth_conv.se.fc.{0}.{1}"),
    (r"first\.project\.0\.weight", "blocks.0.conv.point_linear.conv.weight"),
    (rf"first\.project\.1\.{_BN}", "blocks.0.conv.point_linear.bn.{0}"),
    (r"blocks\.(\d+)\.expand_conv\.weight", "blocks.{b}.conv.inverted_bottleneck.conv.weight"),
    (rf"blocks\.(\d+)\.expand_bn\.{_BN}", "blocks.{b}.conv.inverted_bottleneck.bn.{1}"),
    (r"blocks\.(\d+)\.dw_weight", "blocks.{b}.conv.depth_conv.conv.weight"),
    (r"blocks\.(\d+)\.kernel_transforms\.(\dto\d)", "blocks.{b}.conv.depth_conv.conv.{1}_matrix"),
    (rf"blocks\.(\d+)\.dw_bn\.{_BN}", "blocks.{b}.conv.depth_conv.bn.{1}"),
    (r"blocks\.(\d+)\.se_(reduce|expand)\.(weight|bias)", "blocks.{b}.conv.depth_conv.se.fc.{1}.{2}"),
    (r"blocks\.(\d+)\.project_conv\.weight", "blocks.{b}.conv.point_linear.conv.weight"),
    (rf"blocks\.(\d+)\.project_bn\.{_BN}", "blocks.{b}.conv.point_linear.bn.{1}"),
    (r"head\.final_expand\.0\.weight", "final_expand_layer.conv.weight"),
    (rf"head\.final_expand\.1\.{_BN}", "final_expand_layer.bn.{0}"),
    (r"head\.feature_mix\.0\.weight", "feature_mix_layer.conv.weight"),
    (r"head\.classifier\.(weight|bias)", "classifier.linear.{0}"),
]
_OPTIONAL = "num_batches_tracked"  # only counts batches; files written before PyTorch kept it may lack it


def ofa_key(our_key: str) -> str:
    """OFA's name (nesting collapsed, see `canonical_ofa_key`) of one of our supernet's state-dict keys."""
    for pattern, template in _RULES:
        m = re.fullmatch(pattern, our_key)
        if m:
            groups = m.groups()
            b = int(groups[0]) + 1 if pattern.startswith("blocks") else None
            return template.format(*groups, b=b)
    raise KeyError(f"no OFA name for supernet key {our_key!r}")


def canonical_ofa_key(key: str) -> str:
    """An OFA key with the renamings OFA's `load_state_dict` accepts undone: `mobile_inverted_conv` → `conv`, the
    dynamic layers' `bn.bn` / `conv.conv` / `linear.linear` nesting collapsed to one level."""
    key = key.replace(".mobile_inverted_conv.", ".conv.")
    for nested, flat in ((".bn.bn.", ".bn."), (".conv.conv.", ".conv."), (".linear.linear.", ".linear.")):
        key = key.replace(nested, flat)
    return key


def convert_ofa_state_dict(state: Mapping[str, Any], space: SearchSpace) -> dict[str, torch.Tensor]:
    """OFA's `OFAMobileNetV3` weights renamed to our `Supernet(space)`'s keys; every key and shape is checked.

    Raises CheckpointError naming the first missing, unexpected, repeated or mis-shaped key (OFA's name) — a w1.2
    file given for the w1.0 space fails on the first layer whose width differs.
    """
    from supernet.network import Supernet

    if space.name not in OFA_SPACES:
        raise CheckpointError(f"field 'space' = {space.name!r} is not one of once-for-all's spaces; allowed: "
                              f"{', '.join(OFA_SPACES)}")
    ours = Supernet(space).state_dict()  # (the meta device would spare the init but costs seconds of imports)
    by_ofa = {ofa_key(k): k for k in ours}
    out: dict[str, torch.Tensor] = {}
    seen: dict[str, str] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise CheckpointError(f"key {key!r} does not hold a tensor (not an OFA state dict)")
        name = canonical_ofa_key(key)
        if name not in by_ofa:
            raise CheckpointError(f"unexpected key '{key}': not a weight of once-for-all's {space.name} "
                                  f"({OFA_NET_IDS[space.name]})")
        if name in seen:
            raise CheckpointError(f"keys '{seen[name]}' and '{key}' name the same weight")
        seen[name] = key
        target = by_ofa[name]
        if tuple(value.shape) != tuple(ours[target].shape):
            raise CheckpointError(f"key '{key}' has shape {list(value.shape)}, {space.name} needs "
                                  f"{list(ours[target].shape)} (a file of the other width?)")
        out[target] = value.detach().to(ours[target].dtype)
    for name, target in by_ofa.items():
        if target not in out:
            if name.endswith(_OPTIONAL):
                out[target] = torch.zeros((), dtype=torch.long)
                continue
            raise CheckpointError(f"missing key '{name}' (a weight of {space.name} the file lacks)")
    return {k: out[k] for k in ours}


def read_ofa_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], str, str]:
    """(state dict, sha256 of the file, format) of an OFA weight file: `{"state_dict": ...}` as OFA releases them,
    or a bare state dict. Loaded with `weights_only=True`: a pickle that needs code to load is refused."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = "it needs code to load, which is refused (weights_only)" if "Unsupported global" in str(exc) \
            else f"not a complete torch file ({first})"
        raise CheckpointError(f"cannot read {path}: {reason}") from None
    except Exception as exc:  # noqa: BLE001 - a truncated zip, not a torch file at all, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise CheckpointError(f"cannot read {path}: not a complete torch file ({first})") from None
    fmt = "bare state dict"
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj, fmt = obj["state_dict"], "state_dict"
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path} holds no state dict (neither a 'state_dict' entry nor tensors by name)")
    if any(".mobile_inverted_conv." in str(k) for k in obj):
        fmt += " (legacy key names)"
    return dict(obj), hashlib.sha256(data).hexdigest(), fmt


__all__ = ["OFA_SPACES", "OFA_NET_IDS", "ofa_key", "canonical_ofa_key", "convert_ofa_state_dict",
           "read_ofa_checkpoint"]
