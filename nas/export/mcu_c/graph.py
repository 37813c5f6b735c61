"""The int8 ONNX (QDQ) model as a list of integer kernel calls: what the generated C runs.

Every float op of the QDQ graph sits between DequantizeLinear and QuantizeLinear nodes; its integer twin takes
the int8 inputs, accumulates exactly in int32/int64 and requantizes once with a fixed-point multiplier and shift
for the real scale (per output channel for convolutions), rounding half to even as QuantizeLinear does.
Hard-sigmoid and hard-swish (hard-sigmoid, quantize, multiply) are functions of one int8 value: their 256-entry
tables are computed by onnxruntime itself on the same nodes, so they are the int8 model's values exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nas.export.errors import ExportError

CONV_TYPES = ("conv", "pointwise", "depthwise")


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


def fixed_point(real: float, max_shift: int = 62) -> tuple[int, int]:
    """(multiplier < 2^31, right shift) with multiplier * 2^-shift = `real` to 31 significant bits."""
    if real <= 0:
        return 0, 1
    mant, exp = math.frexp(real)  # real = mant * 2^exp, mant in [0.5, 1)
    m = int(round(mant * (1 << 31)))
    if m == 1 << 31:
        m //= 2
        exp += 1
    shift = 31 - exp
    if shift > max_shift:
        m >>= shift - max_shift
        shift = max_shift
    if shift < 1:
        raise ExportError(f"a requantization scale of {real:g} is too large for the int8 runtime")
    return m, shift


def _attrs(node) -> dict[str, Any]:  # noqa: ANN001
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _lut(nodes: list, inits: dict[str, np.ndarray], src: str, dst: str) -> np.ndarray:  # noqa: ANN001
    """onnxruntime's own output of the QDQ nodes `nodes` (from the int8 tensor `src` to `dst`) on all 256 int8
    inputs."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    names = {i for n in nodes for i in n.input} - {o for n in nodes for o in n.output}
    used = [numpy_helper.from_array(inits[i], i) for i in names if i in inits]
    graph = helper.make_graph(nodes, "lut", [helper.make_tensor_value_info(src, TensorProto.INT8, [256])],
                              [helper.make_tensor_value_info(dst, TensorProto.INT8, [256])], used)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = np.arange(-128, 128, dtype=np.int8)
    return np.asarray(sess.run(None, {src: x})[0], dtype=np.int8)


def read_graph(model) -> KernelGraph:  # noqa: ANN001, C901
    """The kernel calls of an int8 QDQ `onnx.ModelProto` as `nas.export.quantize` writes it (int8 activations,
    per-channel symmetric int8 weights)."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = list(model.graph.node)
    consumers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    qparams: dict[str, QParams] = {}
    dq_of: dict[str, str] = {}  # float output of an activation DequantizeLinear -> its int8 input
    weights: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # float output of a constant DQ -> (ints, scales)
    for n in nodes:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        scale = np.asarray(inits[n.input[1]], dtype=np.float32).reshape(-1)
        zp = np.asarray(inits[n.input[2]]).reshape(-1) if len(n.input) > 2 and n.input[2] else np.zeros(1, np.int8)
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            weights[n.output[0]] = (np.asarray(inits[n.input[0]]), scale)
        elif n.op_type == "QuantizeLinear":
            if zp.dtype != np.int8:
                raise ExportError(f"the C runtime needs int8 activations; {n.input[0]} is quantized to {zp.dtype}")
            qparams[n.output[0]] = QParams(float(scale[0]), int(zp[0]))
        else:
            dq_of[n.output[0]] = n.input[0]

    producer = {o: n for n in nodes for o in n.output}

    def q_node_of(node):  # noqa: ANN001, ANN202
        outs = [c for c in consumers.get(node.output[0], []) if c.op_type == "QuantizeLinear"]
        if len(outs) != 1:
            raise ExportError(f"node {node.name or node.op_type}: its output is not quantized once")
        return outs[0]

    def q_out(node) -> str:  # noqa: ANN001
        return q_node_of(node).output[0]

    def q_in(name: str) -> str:
        if name not in dq_of:
            raise ExportError(f"tensor {name} is not a dequantized int8 activation")
        return dq_of[name]

    first_q = next(n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] not in inits)
    graph_in = first_q.output[0]
    shapes: dict[str, tuple[int, int]] = {}
    in_dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    shapes[graph_in] = (int(in_dims[1]), int(in_dims[2]))
    ops: list[KernelOp] = []
    skip: set[int] = set()  # nodes already folded into an op
    for n in nodes:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") or id(n) in skip:
            continue
        if n.op_type in ("Conv", "Gemm"):
            x = q_in(n.input[0])
            w, sw = weights[n.input[1]]
            y = q_out(n)
            qx, qy = qparams[x], qparams[y]
            c, h = shapes[x]
            a = _attrs(n)
            if n.op_type == "Gemm":
                if a.get("transA", 0) or not a.get("transB", 0):
                    raise ExportError("the classifier must be Gemm with transB=1")
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
            if len(n.input) > 2 and n.input[2]:
                bias = weights[n.input[2]][0].astype(np.int64).reshape(-1)
            w = w.astype(np.int8)
            if kind == "pointwise":  # fold the input zero point into the bias: no subtraction per MAC
                bias = bias - qx.zero_point * w.reshape(cout, -1).astype(np.int64).sum(1)
            sw = np.broadcast_to(sw, (cout,))
            fp = [fixed_point(float(qx.scale) * float(si) / float(qy.scale)) for si in sw]
            ops.append(KernelOp(kind, [x], y, c, cout, h, hout, k, s, qx.zero_point, qy.zero_point,
                                weight=w, bias=bias.astype(np.int32),
                                mult=np.array([m for m, _ in fp], np.int32),
                                shifts=np.array([sh for _, sh in fp], np.int8), name=n.name))
            shapes[y] = (cout, hout)
        elif n.op_type == "ReduceMean":
            x, y = q_in(n.input[0]), q_out(n)
            c, h = shapes[x]
            m, sh = fixed_point(qparams[x].scale / (h * h * qparams[y].scale))
            ops.append(KernelOp("pool", [x], y, c, c, h, 1, in_zp=qparams[x].zero_point,
                                out_zp=qparams[y].zero_point, m0=m, shift=sh, name=n.name))
            shapes[y] = (c, 1)
        elif n.op_type in ("HardSigmoid", "Relu", "Clip"):
            x = q_in(n.input[0])
            q_node = q_node_of(n)
            table, y = [producer[n.input[0]], n, q_node], q_node.output[0]
            # hard-swish is x * hard_sigmoid(x) with the product quantized: one table from x to the product
            for d in [c for c in consumers.get(y, []) if c.op_type == "DequantizeLinear"]:
                mul = next((m for m in consumers.get(d.output[0], []) if m.op_type == "Mul"
                            and dq_of.get(next(i for i in m.input if i != d.output[0])) == x), None)
                if mul is not None:
                    other = next(i for i in mul.input if i != d.output[0])
                    table += [d, mul, q_node_of(mul)] + ([producer[other]] if other != n.input[0] else [])
                    y = q_node_of(mul).output[0]
                    skip.add(id(mul))
                    break
            c, h = shapes[x]
            ops.append(KernelOp("lut", [x], y, c, c, h, h, lut=_lut(table, inits, x, y), name=n.name))
            shapes[y] = (c, h)
        elif n.op_type == "Mul":
            a, b, y = q_in(n.input[0]), q_in(n.input[1]), q_out(n)
            if shapes[a][1] == 1 and shapes[b][1] > 1:
                a, b = b, a
            (c, h), (cb, hb) = shapes[a], shapes[b]
            if cb != c or hb != 1:
                raise ExportError(f"Mul {n.name}: only a per-channel scaling (squeeze-excite) is supported")
            m, sh = fixed_point(qparams[a].scale * qparams[b].scale / qparams[y].scale)
            ops.append(KernelOp("scale", [a, b], y, c, c, h, h, in_zp=qparams[a].zero_point,
                                out_zp=qparams[y].zero_point, aux_zp=qparams[b].zero_point, m0=m, shift=sh,
                                name=n.name))
            shapes[y] = (c, h)
        elif n.op_type == "Add":
            a, b, y = q_in(n.input[0]), q_in(n.input[1]), q_out(n)
            if shapes[a] != shapes[b]:
                raise ExportError(f"Add {n.name}: inputs of different shapes")
            ra, rb = qparams[a].scale / qparams[y].scale, qparams[b].scale / qparams[y].scale
            _, sh = fixed_point(max(ra, rb))
            c, h = shapes[a]
            ops.append(KernelOp("add", [a, b], y, c, c, h, h, in_zp=qparams[a].zero_point,
                                out_zp=qparams[y].zero_point, aux_zp=qparams[b].zero_point,
                                m0=int(round(ra * 2.0 ** sh)), m1=int(round(rb * 2.0 ** sh)), shift=sh, name=n.name))
            shapes[y] = (c, h)
        elif n.op_type in ("Reshape", "Flatten"):
            x = q_in(n.input[0])
            y = q_out(n)
            if qparams[x] != qparams[y]:
                raise ExportError(f"{n.op_type} {n.name} requantizes its input")
            for op in ops:  # an alias: the producer writes the reshaped tensor
                if op.output == x:
                    op.output = y
            shapes[y] = shapes[x]
        else:
            raise ExportError(f"the C runtime has no kernel for ONNX op {n.op_type} ({n.name})")
    if not ops:
        raise ExportError("the int8 model has no ops")
    out = ops[-1].output
    out_dq = next(c for c in consumers.get(out, []) if c.op_type == "DequantizeLinear")
    if out_dq.output[0] not in {o.name for o in model.graph.output}:
        raise ExportError("the int8 model's output is not its last op's dequantized output")
    return KernelGraph(ops, graph_in, out, qparams[graph_in], qparams[out], shapes[graph_in],
                       shapes[out][0], shapes)
