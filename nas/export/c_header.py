"""The int8 model's constants as a C header for microcontroller runtimes: every quantized weight and bias as a
`const` array with its shape, scales and zero points, the activations' quantization parameters, and a table of
all of them. The header's array bytes are what the weights take in Flash.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_CTYPES = {np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t", np.dtype(np.int32): "int32_t",
           np.dtype(np.int16): "int16_t", np.dtype(np.uint16): "uint16_t", np.dtype(np.float32): "float"}
_PER_LINE = 24


@dataclass(frozen=True)
class QuantTensor:
    """One quantized constant of the int8 graph: real value = (data - zero_point) * scale, along `axis`."""

    name: str  # ONNX tensor name of the float value it stands for
    data: np.ndarray
    scale: np.ndarray  # float32, one per channel along `axis` (or one)
    zero_point: np.ndarray
    axis: int | None


@dataclass(frozen=True)
class ActivationQuant:
    """Quantization parameters of one activation tensor (input, intermediate, output)."""

    name: str
    scale: float
    zero_point: int


@dataclass(frozen=True)
class HeaderInfo:
    """What was written: the number of constants and the bytes their arrays take (weights, biases, scales)."""

    tensors: int
    activations: int
    weight_bytes: int  # quantized weights and biases
    total_bytes: int  # every array in the header (weights, biases, shapes, scales, zero points)


# QOperator nodes: (input index of a quantized activation, of its scale, of its zero point), output's last
_QLINEAR_ACTS = {"QLinearConv": [(0, 1, 2), (None, 6, 7)], "QGemm": [(0, 1, 2), (None, 7, 8)],
                 "QLinearAdd": [(0, 1, 2), (3, 4, 5), (None, 6, 7)], "QLinearMul": [(0, 1, 2), (3, 4, 5), (None, 6, 7)],
                 "QLinearGlobalAveragePool": [(0, 1, 2), (None, 3, 4)]}
_QLINEAR_WEIGHTS = {"QLinearConv": (3, 4, 5, 8), "QGemm": (3, 4, 5, 6)}  # weight, its scale and zero point; bias


def read_quantized(model) -> tuple[list[QuantTensor], list[ActivationQuant]]:  # noqa: ANN001, C901
    """The quantized constants and activation parameters of an int8 ONNX model (an `onnx.ModelProto`), QDQ or
    QOperator (there a bias's scale is its input's scale times the weight's, per channel, as the quantizer made it)."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    tensors, acts, seen = [], [], set()

    def scale_of(name: str) -> np.ndarray:
        return np.asarray(inits[name], dtype=np.float32).reshape(-1)

    def tensor(x: str, scale: np.ndarray, zp: np.ndarray, axis: int | None = 0) -> None:
        if x not in seen:
            seen.add(x)
            name = x[:-len("_quantized")] if x.endswith("_quantized") else x
            tensors.append(QuantTensor(name, np.asarray(inits[x]), scale, zp, axis if scale.size > 1 else None))

    def act(x: str, scale_name: str, zp_name: str) -> None:
        if x not in inits and x not in seen:
            seen.add(x)
            acts.append(ActivationQuant(x, float(scale_of(scale_name)[0]), int(inits[zp_name].reshape(-1)[0])))

    for node in model.graph.node:
        ins = list(node.input)
        if node.op_type in _QLINEAR_WEIGHTS:
            w, ws, wz, b = _QLINEAR_WEIGHTS[node.op_type]
            tensor(ins[w], scale_of(ins[ws]), inits[ins[wz]].reshape(-1))
            if len(ins) > b and ins[b]:
                bias_scale = (np.float32(scale_of(ins[1])[0]) * scale_of(ins[ws])).astype(np.float32)
                tensor(ins[b], bias_scale, np.zeros(bias_scale.size, np.int32))
        for x, sc, zp in _QLINEAR_ACTS.get(node.op_type, []):
            act(node.output[0] if x is None else ins[x], ins[sc], ins[zp])
        if node.op_type not in ("DequantizeLinear", "QuantizeLinear"):
            continue
        x, scale_name = ins[0], ins[1]
        zp_name = ins[2] if len(ins) > 2 else ""
        scale = scale_of(scale_name)
        zp = inits[zp_name].reshape(-1) if zp_name else np.zeros_like(scale, dtype=np.int8)
        if node.op_type == "DequantizeLinear" and x in inits:
            tensor(x, scale, zp, next((a.i for a in node.attribute if a.name == "axis"), 1))
        elif node.op_type == "QuantizeLinear" and x not in inits and x not in seen:
            seen.add(x)
            acts.append(ActivationQuant(x, float(scale[0]), int(zp[0])))
    return tensors, acts


def _identifier(name: str, taken: set[str]) -> str:
    ident = re.sub(r"\W+", "_", name).strip("_").lower() or "tensor"
    if ident[0].isdigit():
        ident = "t_" + ident
    base, n = ident, 1
    while ident in taken:
        n += 1
        ident = f"{base}_{n}"
    taken.add(ident)
    return ident


def _float(v: float) -> str:
    return f"{float(np.float32(v)):.9g}f"


def _array(ctype: str, ident: str, values: np.ndarray, fmt=str) -> tuple[str, int]:  # noqa: ANN001
    flat = values.reshape(-1).tolist()
    rows = [", ".join(fmt(v) for v in flat[i:i + _PER_LINE]) for i in range(0, len(flat), _PER_LINE)] or ["0"]
    body = ",\n    ".join(rows)
    size = max(1, len(flat)) * (np.dtype(np.float32).itemsize if ctype == "float" else
                                np.dtype(ctype.replace("_t", "")).itemsize)
    return f"static const {ctype} {ident}[{max(1, len(flat))}] = {{\n    {body}\n}};\n", size


def write_c_header(model_path: Path, out_path: Path, guard: str, comment: str = "") -> HeaderInfo:
    """Write the constants of the int8 ONNX model (QDQ or QOperator) at `model_path` as the C header `out_path`."""
    import onnx

    tensors, acts = read_quantized(onnx.load(str(model_path)))
    taken: set[str] = set()
    guard = re.sub(r"\W+", "_", guard).upper()
    parts = [f"/* {line} */\n" for line in comment.strip().splitlines()]
    parts += [f"#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\n",
              "/* real value = (q - zero_point) * scale; per-channel scales run along `axis` (-1: per tensor). */\n",
              "typedef struct {\n    const char *name;\n    const void *data;\n    int32_t elem_bytes;\n"
              "    int32_t ndim;\n    const int32_t *shape;\n    const float *scale;\n    const void *zero_point;\n"
              "    int32_t num_scales;\n    int32_t axis;\n} nas_qtensor_t;\n\n",
              "typedef struct {\n    const char *name;\n    float scale;\n    int32_t zero_point;\n} nas_qactivation_t;\n\n"]
    weight_bytes = total = 0
    table = []
    for t in tensors:
        ident = _identifier(t.name, taken)
        ctype = _CTYPES[t.data.dtype]
        zp_type = _CTYPES[t.zero_point.dtype]
        shape = np.asarray(t.data.shape or (1,), dtype=np.int32)
        parts.append(f"/* {t.name}: {ctype} {list(t.data.shape)}, "
                     f"{'per-channel (axis %d)' % t.axis if t.axis is not None else 'per-tensor'} */\n")
        for suffix, ctyp, values, fmt in (("data", ctype, t.data, str), ("shape", "int32_t", shape, str),
                                          ("scale", "float", t.scale, _float),
                                          ("zero_point", zp_type, t.zero_point, str)):
            text, size = _array(ctyp, f"{ident}_{suffix}", values, fmt)
            parts.append(text)
            total += size
            weight_bytes += size if suffix == "data" else 0
        parts.append("\n")
        table.append(f'    {{"{t.name}", {ident}_data, {t.data.dtype.itemsize}, {len(shape)}, {ident}_shape, '
                     f'{ident}_scale, {ident}_zero_point, {t.scale.size}, {-1 if t.axis is None else t.axis}}}')
    parts.append(f"#define {guard}_NUM_TENSORS {len(tensors)}\n")
    parts.append(f"static const nas_qtensor_t {guard.lower()}_tensors[{max(1, len(table))}] = {{\n"
                 + (",\n".join(table) or "    {0}") + "\n};\n\n")
    rows = [f'    {{"{a.name}", {_float(a.scale)}, {a.zero_point}}}' for a in acts]
    parts.append(f"#define {guard}_NUM_ACTIVATIONS {len(acts)}\n")
    parts.append(f"static const nas_qactivation_t {guard.lower()}_activations[{max(1, len(rows))}] = {{\n"
                 + (",\n".join(rows) or "    {0}") + "\n};\n\n")
    parts.append(f"#define {guard}_WEIGHT_BYTES {weight_bytes}\n#define {guard}_CONST_BYTES {total}\n\n"
                 f"#endif /* {guard} */\n")
    out_path.write_text("".join(parts))
    return HeaderInfo(len(tensors), len(acts), weight_bytes, total)
