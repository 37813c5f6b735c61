"""Post-training static int8 quantization of an exported ONNX model with onnxruntime's quantizer.

Weights: int8, symmetric, per output channel; activations: int8 (MCUs) or uint8 (CPUs), with min-max ranges
calibrated on real training images.

uint8 (CPUs) is written in the QDQ format: readable by any ONNX runtime, and onnxruntime's CPU provider fuses it
into integer kernels. int8 (MCUs) is written in the QOperator format (QLinearConv, QLinearAdd, QLinearMul,
QLinearGlobalAveragePool, QGemm; hard-sigmoid between Dequantize/Quantize): every op of that graph accumulates in
integers and requantizes once, so its outputs are a function of int8 tensors that integer code (the generated C of
`nas.export.mcu_c`) reproduces bit for bit; in QDQ the ops between Dequantize and Quantize run in float32, whose
summation order no integer code can follow.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from nas.export.errors import ExportError


class ImageCalibrationReader:
    """onnxruntime's CalibrationDataReader over batches of images (already at the model's resolution)."""

    def __init__(self, input_name: str, batches: Iterable[torch.Tensor]):
        self.input_name = input_name
        self._batches: Iterator[torch.Tensor] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        if batch is None:
            return None
        return {self.input_name: batch.detach().cpu().numpy().astype(np.float32, copy=False)}

    def __iter__(self):  # noqa: ANN204
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


ACTIVATION_TYPES = ("int8", "uint8")


def quantize_int8(fp32_path: Path, out_path: Path, calibration: Iterable[torch.Tensor],
                  input_name: str = "image", activations: str = "int8") -> None:
    """Write the int8 model (QDQ; QOperator for int8 activations) of the ONNX model at `fp32_path` to `out_path`,
    calibrated on `calibration`.

    `activations`: "int8" (what MCU runtimes such as CMSIS-NN and TF-Lite Micro run) or "uint8" (onnxruntime's
    fast path on x86 CPUs: u8 activations × s8 weights). With uint8 the weights use 7 bits (`reduce_range`): x86
    without VNNI adds u8×s8 pairs in 16 bits, which saturates with full-range weights (on the tiny run: logit
    correlation with fp32 0.68 at 8 bits, 0.98 at 7)."""
    if activations not in ACTIVATION_TYPES:
        raise ExportError(f"activations must be one of {', '.join(ACTIVATION_TYPES)}, got {activations!r}")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="nas-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Shape inference and graph cleanup first, as onnxruntime's quantization guide asks.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        qformat = QuantFormat.QDQ
        if activations == "int8":
            _global_pools(prepared)
            qformat = QuantFormat.QOperator
        reader = ImageCalibrationReader(input_name, calibration)
        try:
            quantize_static(str(prepared), str(out_path), reader, quant_format=qformat, per_channel=True,
                            reduce_range=activations == "uint8",
                            activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
                            weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
                            calibration_providers=["CPUExecutionProvider"])
        except ValueError as exc:
            raise ExportError(f"int8 quantization failed: {exc}") from None


def _global_pools(path: Path) -> None:
    """Rewrite the model at `path` in place with each spatial mean (ReduceMean over H and W, kept dims) as the
    GlobalAveragePool it is: the quantizer turns that into QLinearGlobalAveragePool (an exact integer sum), where a
    ReduceMean would stay a float32 sum between Dequantize and Quantize."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    changed = False
    for i, node in enumerate(model.graph.node):
        if node.op_type != "ReduceMean":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1] in inits:
            axes = inits[node.input[1]].tolist()
        if attrs.get("keepdims", 1) and sorted(int(a) for a in axes or []) in ([2, 3], [-2, -1]):
            model.graph.node[i].CopyFrom(helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output),
                                                          name=node.name))
            changed = True
    if changed:
        used = {i for n in model.graph.node for i in n.input}
        kept = [t for t in model.graph.initializer if t.name in used]  # the means' axes
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
        onnx.save(model, str(path))
