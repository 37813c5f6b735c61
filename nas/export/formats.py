"""Writing one extracted subnet in each deployable format: safetensors weights, TorchScript, ONNX.

Every writer takes an eval-mode static net and a path inside the bundle's temporary folder; the bundle as a
whole is made atomic by its caller, so the writers themselves only need to write complete files.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

# The highest opset that both torch's ONNX exporter (torch.export based, `dynamo=True`) and onnxruntime
# implement here (torch 2.13 exports up to opset 23; onnxruntime 1.2x runs it). The legacy TorchScript-based
# exporter stops at opset 20 and is deprecated, so it is not used.
ONNX_OPSET = 23
INPUT_NAME, OUTPUT_NAME = "image", "logits"


def write_safetensors(net: nn.Module, path: Path, metadata: Mapping[str, str] | None = None) -> None:
    """The state dict of `net` (float weights, BN statistics) as a safetensors file with string `metadata`."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    save_file(tensors, str(path), metadata=dict(metadata or {}))


def write_torchscript(net: nn.Module, path: Path) -> None:
    """`net` compiled with `torch.jit.script` (any batch size and input size) and saved for `torch.jit.load`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is in maintenance mode; the file is still what users load
        scripted = torch.jit.script(net.eval())
        scripted.save(str(path))


def write_onnx(net: nn.Module, example: torch.Tensor, path: Path, opset: int = ONNX_OPSET) -> None:
    """`net` as ONNX with a dynamic batch dimension, traced at the spatial size of `example` (N×C×r×r)."""
    if example.shape[0] < 2:  # a batch of one would be specialised to a constant by torch.export
        example = example.expand(2, *example.shape[1:]).contiguous()
    batch = torch.export.Dim("batch")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(net.eval(), (example,), None, dynamo=True, opset_version=opset,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamic_shapes=({0: batch},), verbose=False)
    finally:
        quiet.setLevel(level)
    program.save(str(path))


def set_onnx_metadata(path: Path, metadata: Mapping[str, str]) -> None:
    """Record `metadata` (strings) in the ONNX model's metadata_props (what a runtime must do to an image)."""
    import onnx

    model = onnx.load(str(path))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in metadata.items():
        prop = existing.get(key) or model.metadata_props.add()
        prop.key, prop.value = key, str(value)
    onnx.save(model, str(path))
