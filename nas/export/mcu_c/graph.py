"""The int8 ONNX model (QOperator format, as `nas.export.quantize` writes it for int8 activations) as a list of
integer kernel calls: what the generated C runs, bit for bit what onnxruntime's CPU kernels compute.

Each op accumulates exactly in integers (QLinearConv, QGemm, QLinearGlobalAveragePool: int32 sums; QLinearMul: the
product of two int8 differences) and requantizes the way onnxruntime's x86 kernels (MLAS) do: in float32, which the C
code emulates with integers (`f32_round`: round to 24 significant bits, ties to even). Every float32 constant is
given to the C code as an integer mantissa of at most 24 bits and a power-of-two exponent, computed here in float32
exactly as onnxruntime computes it (e.g. the convolution's x_scale * w_scale / y_scale). Hard-sigmoid and hard-swish
(hard-sigmoid, quantize, multiply) are functions of one int8 value: their 256-entry tables are computed by onnxruntime
itself on the same nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from nas.export.errors import ExportError

CONV_TYPES = ("conv", "pointwise", "depthwise")
MAX_SHIFT = 62


@dataclass(frozen=True)
class QParams:
    scale: float
    zero_point: int


@dataclass
class KernelOp:
    """One call of a runtime kernel. `inputs`/`output` name int8 tensors of the graph (QuantizeLinear outputs)."""

    type: str  # conv, pointwise, depthwise, pool, lut, scale, add
    inputs: list[str]
    output: str
    cin: int
    cout: int
    hin: int
    hout: int
    kernel: int = 1
    stride: int = 1
    in_zp: int = 0
    out_zp: int = 0
    aux_zp: int = 0
    m0: int = 0
    m1: int = 0
    shift: int = 0
    weight: np.ndarray | None = None  # int8
    bias: np.ndarray | None = None  # int32
    mult: np.ndarray | None = None  # int32
    shifts: np.ndarray | None = None  # int8
    lut: np.ndarray | None = None  # int8 (256)
    name: str = ""  # the ONNX node it comes from


@dataclass
class KernelGraph:
    ops: list[KernelOp]
    input: str
    output: str
    input_q: QParams
    output_q: QParams
    input_shape: tuple[int, int]  # (channels, size)
    num_classes: int
    shapes: dict[str, tuple[int, int]] = field(default_factory=dict)


def float32_parts(value: float) -> tuple[int, int]:
    """(mantissa, shift) with mantissa * 2^-shift == float32(value) exactly: |mantissa| < 2^24, 0 <= shift <= 62."""
    v = float(np.float32(value))
    if v == 0:
        return 0, 0
    mant, exp = math.frexp(v)  # v = mant * 2^exp, 0.5 <= |mant| < 1
    m, shift = int(mant * (1 << 24)), 24 - exp
    while m % 2 == 0 and shift > 0:
        m //= 2
        shift -= 1
    if shift < 0:
        raise ExportError(f"a requantization constant of {v:g} is too large for the int8 runtime")
    if shift > MAX_SHIFT:
        raise ExportError(f"a requantization constant of {v:g} is too small for the int8 runtime")
    return m, shift


def f32_round(v: Fraction) -> Fraction:
    """`v` rounded to float32's 24 significant bits, ties to even (normal range: the runtime's)."""
    if v == 0:
        return v
    a = abs(v)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    q = a / Fraction(2) ** (e - 23)  # in [2^23, 2^24)
    n = math.floor(q)
    rem = q - n
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2):
        n += 1
    return (1 if v > 0 else -1) * n * Fraction(2) ** (e - 23)


def _ratio(*scales: float) -> float:
    """onnxruntime's float32 requantization scale: ((s0 * s1) / s2) (or s0 / s1) in float32, left to right."""
    f = [np.float32(x) for x in scales]
    return float(np.float32(f[0] * f[1]) / f[2]) if len(f) == 3 else float(f[0] / f[1])


def add_constants(sa: float, za: int, sb: float, zb: int, sc: float, zc: int) -> tuple[int, ...]:
    """QLinearAdd as onnxruntime's x86 kernel (MLAS, AVX2) computes it: y = round(fma(a, ra, fma(b, rb, fixed)))
    in float32, with ra = sa / sc, rb = sb / sc, fixed = zc - fma(ra, za, rb * zb) and a, b the raw int8 values.
    Returns (ma, sa, mb, sb, mf, sf): ra, rb and fixed as mantissa * 2^-shift."""
    ra, rb = _ratio(sa, sc), _ratio(sb, sc)
    inner = f32_round(Fraction(ra) * za + Fraction(float(np.float32(np.float32(rb) * np.float32(zb)))))
    fixed = f32_round(Fraction(zc) - inner)
    return (*float32_parts(ra), *float32_parts(rb), *float32_parts(float(fixed)))


def _attrs(node) -> dict[str, Any]:  # noqa: ANN001
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _lut(nodes: list, inits: dict[str, np.ndarray], src: str, dst: str) -> np.ndarray:  # noqa: ANN001
    """onnxruntime's own output of `nodes` (from the int8 tensor `src` to the int8 tensor `dst`) on all 256 int8
    inputs."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    names = {i for n in nodes for i in n.input} - {o for n in nodes for o in n.output}
    used = [numpy_helper.from_array(inits[i], i) for i in names if i in inits]
    graph = helper.make_graph(nodes, "lut", [helper.make_tensor_value_info(src, TensorProto.INT8, [256])],
                              [helper.make_tensor_value_info(dst, TensorProto.INT8, [256])], used)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = np.arange(-128, 128, dtype=np.int8)
    return np.asarray(sess.run(None, {src: x})[0], dtype=np.int8)


def binary_op(op_type: str, a: str, b: str, y: str, qa: QParams, qb: QParams, qy: QParams,
              shapes: dict[str, tuple[int, int]], name: str = "") -> KernelOp:
    """The kernel call of a QLinearMul (a per-channel scaling: squeeze-excite) or QLinearAdd (residual) node."""
    if op_type == "QLinearMul":
        if shapes[a][1] == 1 and shapes[b][1] > 1:
            a, b, qa, qb = b, a, qb, qa
        (c, h), (cb, hb) = shapes[a], shapes[b]
        if cb != c or hb != 1:
            raise ExportError(f"QLinearMul {name}: only a per-channel scaling (squeeze-excite) is supported")
        # onnxruntime (MLAS, x86): round(float32(float32((a - za) * (b - zb)) * ratio) + zc) in float32
        m, sh = float32_parts(_ratio(qa.scale, qb.scale, qy.scale))
        if sh > 54:  # the kernel adds zc * 2^sh in int64
            raise ExportError(f"QLinearMul {name}: its scale ratio is too small for the int8 runtime")
        return KernelOp("scale", [a, b], y, c, c, h, h, in_zp=qa.zero_point, out_zp=qy.zero_point,
                        aux_zp=qb.zero_point, m0=m, shift=sh, name=name)
    if shapes[a] != shapes[b]:
        raise ExportError(f"QLinearAdd {name}: inputs of different shapes")
    c, h = shapes[a]
    ma, sa, mb, sb, mf, sf = add_constants(qa.scale, qa.zero_point, qb.scale, qb.zero_point, qy.scale, qy.zero_point)
    t = max(sa, sb, sf)  # the kernel works at the scale 2^-t in int64
    if 128 * (abs(ma) * 2 ** (t - sa) + abs(mb) * 2 ** (t - sb)) + abs(mf) * 2 ** (t - sf) >= 2 ** 62:
        raise ExportError(f"QLinearAdd {name}: its scales are too far apart for the int8 runtime")
    return KernelOp("add", [a, b], y, c, c, h, h, in_zp=mf, m0=ma, m1=mb, shift=sa | sb << 8 | sf << 16, name=name)


_ELEMENTWISE = ("HardSigmoid", "Relu", "Clip", "Sigmoid", "LeakyRelu")


def read_graph(model) -> KernelGraph:  # noqa: ANN001, C901
    """The kernel calls of an int8 QOperator `onnx.ModelProto` as `nas.export.quantize` writes it for int8
    activations (per-channel symmetric int8 weights)."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = list(model.graph.node)
    consumers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def scalar(name: str) -> float:
        return float(np.asarray(inits[name], np.float32).reshape(-1)[0])

    def zero_point(name: str) -> int:
        z = np.asarray(inits[name]).reshape(-1)
        if z.dtype != np.int8:
            raise ExportError(f"the C runtime needs int8 activations; {name} is {z.dtype}")
        return int(z[0])

    qparams: dict[str, QParams] = {}

    def q(name: str, scale: str, zp: str) -> QParams:
        qp = QParams(scalar(scale), zero_point(zp))
        if qparams.setdefault(name, qp) != qp:
            raise ExportError(f"tensor {name} is quantized twice differently")
        return qp

    first_q = next((n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] == model.graph.input[0].name),
                   None)
    if first_q is None or any(n.op_type in ("Conv", "Gemm", "Add", "Mul", "ReduceMean") for n in nodes):
        raise ExportError("the int8 model is not in the QOperator format (QLinearConv, QLinearAdd, ...) the C runtime "
                          "reproduces exactly; re-export it")
    graph_in = first_q.output[0]
    q(graph_in, first_q.input[1], first_q.input[2])
    in_dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    shapes: dict[str, tuple[int, int]] = {graph_in: (int(in_dims[1]), int(in_dims[2]))}
    ops: list[KernelOp] = []
    skip: set[int] = {id(first_q)}  # nodes already folded into an op
    for n in nodes:
        if id(n) in skip:
            continue
        if n.op_type in ("QLinearConv", "QGemm"):
            if n.op_type == "QLinearConv":
                x, xs, xz, wn, ws, wz, ys, yz = n.input[:8]
                bias_name = n.input[8] if len(n.input) > 8 else ""
            else:
                x, xs, xz, wn, ws, wz, bias_name, ys, yz = n.input[:9]
            qx, qy = q(x, xs, xz), q(n.output[0], ys, yz)
            if np.any(np.asarray(inits[wz]) != 0):
                raise ExportError(f"{n.op_type} {n.name}: the C runtime needs symmetric weights (zero point 0)")
            w = np.asarray(inits[wn]).astype(np.int8)
            c, h = shapes[x]
            a = _attrs(n)
            if n.op_type == "QGemm":
                if a.get("transA", 0) or not a.get("transB", 0) or a.get("alpha", 1.0) != 1.0:
                    raise ExportError("the classifier must be QGemm with transB=1, alpha=1")
                w = w.reshape(w.shape[0], -1, 1, 1)
                k, s, group, kind = 1, 1, 1, "pointwise"
            else:
                k, s, group = int(w.shape[-1]), int(a.get("strides", [1, 1])[0]), int(a.get("group", 1))
                if list(a.get("pads", [k // 2] * 4)) != [k // 2] * 4:
                    raise ExportError(f"conv {n.name}: only 'same' padding k//2 is supported")
                kind = "pointwise" if k == 1 and group == 1 and s == 1 else "depthwise" if group == c and group > 1 \
                    else "conv" if group == 1 else ""
                if not kind:
                    raise ExportError(f"conv {n.name}: groups={group} is neither 1 nor depthwise")
            cout = int(w.shape[0])
            hout = (h + 2 * (k // 2) - k) // s + 1
            bias = np.zeros(cout, np.int64)
            if bias_name:
                bias = np.asarray(inits[bias_name]).astype(np.int64).reshape(-1)
            if kind == "pointwise":  # fold the input zero point into the bias: no subtraction per MAC
                bias = bias - qx.zero_point * w.reshape(cout, -1).astype(np.int64).sum(1)
            sw = np.broadcast_to(np.asarray(inits[ws], np.float32).reshape(-1), (cout,))
            parts = [float32_parts(_ratio(qx.scale, float(si), qy.scale)) for si in sw]
            ops.append(KernelOp(kind, [x], n.output[0], c, cout, h, hout, k, s, qx.zero_point, qy.zero_point,
                                weight=w, bias=bias.astype(np.int32),
                                mult=np.array([m for m, _ in parts], np.int32),
                                shifts=np.array([sh for _, sh in parts], np.int8), name=n.name))
            shapes[n.output[0]] = (cout, hout)
        elif n.op_type == "QLinearGlobalAveragePool":
            x, y = n.input[0], n.output[0]
            qx, qy = q(x, n.input[1], n.input[2]), q(y, n.input[3], n.input[4])
            c, h = shapes[x]
            # onnxruntime: the exact int32 sum times float32(x_scale / float32(y_scale * h*h))
            m, sh = float32_parts(float(np.float32(qx.scale) / np.float32(np.float32(qy.scale) * np.float32(h * h))))
            ops.append(KernelOp("pool", [x], y, c, c, h, 1, in_zp=qx.zero_point, out_zp=qy.zero_point, m0=m,
                                shift=sh, name=n.name))
            shapes[y] = (c, 1)
        elif n.op_type == "DequantizeLinear" and n.input[0] in shapes:
            # an elementwise float op between Dequantize and Quantize: a table of onnxruntime's outputs; hard-swish
            # is x * hard_sigmoid(x) with the product quantized (QLinearMul of x and the table's output): one table
            x = n.input[0]
            act = consumers.get(n.output[0], [])
            if len(act) != 1 or act[0].op_type not in _ELEMENTWISE:
                if n.output[0] in {o.name for o in model.graph.output}:
                    continue  # the model's float output
                raise ExportError(f"DequantizeLinear {n.name} feeds {[c.op_type for c in act]}, not one elementwise op")
            qn = consumers.get(act[0].output[0], [])
            if len(qn) != 1 or qn[0].op_type != "QuantizeLinear":
                raise ExportError(f"{act[0].op_type} {act[0].name}: its output is not quantized once")
            table, y = [n, act[0], qn[0]], qn[0].output[0]
            q(y, qn[0].input[1], qn[0].input[2])
            skip.update(id(t) for t in table[1:])
            mul = next((m for m in consumers.get(y, []) if m.op_type == "QLinearMul" and
                        {m.input[0], m.input[3]} == {x, y}), None)
            if mul is not None:
                table.append(mul)
                y = mul.output[0]
                q(y, mul.input[6], mul.input[7])
                skip.add(id(mul))
            c, h = shapes[x]
            ops.append(KernelOp("lut", [x], y, c, c, h, h, lut=_lut(table, inits, x, y), name=act[0].name))
            shapes[y] = (c, h)
        elif n.op_type in ("QLinearMul", "QLinearAdd"):
            a, b, y = n.input[0], n.input[3], n.output[0]
            op = binary_op(n.op_type, a, b, y, q(a, n.input[1], n.input[2]), q(b, n.input[4], n.input[5]),
                           q(y, n.input[6], n.input[7]), shapes, n.name)
            ops.append(op)
            shapes[y] = (op.cout, op.hout)
        elif n.op_type in ("Reshape", "Flatten"):
            x, y = n.input[0], n.output[0]
            if x not in shapes:
                raise ExportError(f"{n.op_type} {n.name}: its input is not an int8 activation")
            qparams[y] = qparams[x]
            for op in ops:  # an alias: the producer writes the reshaped tensor
                if op.output == x:
                    op.output = y
            shapes[y] = shapes[x]
        else:
            raise ExportError(f"the C runtime has no kernel for ONNX op {n.op_type} ({n.name})")
    if not ops:
        raise ExportError("the int8 model has no ops")
    out = ops[-1].output
    out_dq = next((c for c in consumers.get(out, []) if c.op_type == "DequantizeLinear"), None)
    if out_dq is None or out_dq.output[0] not in {o.name for o in model.graph.output}:
        raise ExportError("the int8 model's output is not its last op's dequantized output")
    return KernelGraph(ops, graph_in, out, qparams[graph_in], qparams[out], shapes[graph_in],
                       shapes[out][0], shapes)
