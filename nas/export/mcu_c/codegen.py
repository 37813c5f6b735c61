"""Writing the `c/` folder of an MCU bundle: `model.c` / `model.h` (the subnet's constants, its op table and its
static arena), the runtime's kernels, a check harness with test vectors, a Cortex-M7 startup and a Makefile.

The arena is laid out by `predictors.mcu_memory.arena_plan`, the function the SRAM predictor sizes it with: each
weighted layer of the plan is one convolution of the int8 graph, and every tensor's offset comes from it (the
tables, squeeze-excite scaling and residual adds work in place or where the plan put them).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.export.errors import ExportError
from nas.export.mcu_c.graph import CONV_TYPES, KernelGraph, KernelOp
from predictors.mcu_memory import ArenaPlan, arena_plan
from predictors.ops import arch_ops
from supernet import ArchConfig, SearchSpace

HERE = Path(__file__).resolve().parent
STATIC_FILES = ("nas_runtime.h", "nas_runtime.c", "check.c", "startup_m7.c", "cortex_m7.ld", "Makefile")
_TYPE = {"conv": "NAS_OP_CONV", "pointwise": "NAS_OP_POINTWISE", "depthwise": "NAS_OP_DEPTHWISE",
         "pool": "NAS_OP_POOL", "lut": "NAS_OP_LUT", "scale": "NAS_OP_SCALE", "add": "NAS_OP_ADD"}
_KIND = {"conv": ("conv",), "pointwise": ("expand", "project", "se", "mix", "linear"), "depthwise": ("depthwise",)}
_PER_LINE = 24


@dataclass(frozen=True)
class PlacedOp:
    op: KernelOp
    inp: int
    out: int
    aux: int = 0
    downward: bool = False  # depthwise in place at the arena's high end: channels processed last to first


@dataclass(frozen=True)
class Program:
    """The kernel calls with their arena offsets, and the plan they follow."""

    placed: list[PlacedOp]
    plan: ArenaPlan
    input_offset: int
    output_offset: int


def subnet_plan(space: SearchSpace, arch: ArchConfig) -> ArenaPlan:
    """The arena plan of `arch` (the SRAM predictor's, op by op)."""
    ops = arch_ops(space, list(arch.ks), list(arch.e), list(arch.active_blocks()), arch.r)
    return arena_plan([op.layers for op in ops])


def place(graph: KernelGraph, plan: ArenaPlan) -> Program:
    """Give every kernel call of `graph` its arena offsets from `plan`; raise ExportError if they disagree."""
    if not plan.places:
        raise ExportError("empty arena plan")
    where = {graph.input: plan.places[0].inp.offset}
    placed: list[PlacedOp] = []
    k = 0  # the next layer of the plan
    kept = None  # the residual add's output offset (over the kept block input), from the projection before it
    for op in graph.ops:
        src = where.get(op.inputs[0])
        nxt = plan.places[k] if k < len(plan.places) else None
        if src is None:
            raise ExportError(f"op {op.name}: input {op.inputs[0]} has no place in the arena")
        if op.type == "pool" and (nxt is None or nxt.layer.kind != "pool"):  # squeeze-excite: into the slot of
            if nxt is None or nxt.layer.kind != "se" or nxt.aux is None:  # the reduce conv's pooled vector
                raise ExportError(f"op {op.name}: pooling where the plan has no squeeze-excite")
            placed.append(PlacedOp(op, src, nxt.aux.offset))
        elif op.type in CONV_TYPES or op.type == "pool":
            if nxt is None or nxt.layer.kind not in _KIND.get(op.type, ("pool",)) or nxt.layer.cout != op.cout:
                raise ExportError(f"op {op.name} ({op.type}, {op.cout} channels) does not match the plan's "
                                  + ("end" if nxt is None else f"{nxt.layer.kind} of {nxt.layer.cout}"))
            inp = nxt.aux.offset if nxt.layer.kind == "se" and nxt.aux is not None else nxt.inp.offset
            if src != inp:
                raise ExportError(f"op {op.name}: input at {src}, the plan reads it at {inp}")
            placed.append(PlacedOp(op, src, nxt.out.offset,
                                   downward=op.type == "depthwise" and nxt.out.offset != nxt.inp.offset))
            kept = nxt.aux.offset if nxt.layer.kind == "project" and nxt.aux is not None else None
            k += 1
        elif op.type in ("lut", "scale"):  # in place
            placed.append(PlacedOp(op, src, src, aux=where[op.inputs[1]] if op.type == "scale" else 0))
        elif op.type == "add":
            other = where[op.inputs[1]]
            if kept is None or kept not in (src, other):
                raise ExportError(f"op {op.name}: residual add where the plan keeps no block input")
            placed.append(PlacedOp(op, src, kept, aux=other))
            kept = None
        where[op.output] = placed[-1].out
    if k != len(plan.places):
        raise ExportError(f"the int8 graph has {k} layers, the arena plan {len(plan.places)}")
    return Program(placed, plan, where[graph.input], where[graph.output])


def _array(ctype: str, name: str, values: np.ndarray) -> str:
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)] or ["0"]
    rows = [", ".join(flat[i:i + _PER_LINE]) for i in range(0, len(flat), _PER_LINE)]
    return f"static const {ctype} {name}[{len(flat)}] = {{\n    " + ",\n    ".join(rows) + "\n};\n"


def _descriptor(i: int, p: PlacedOp) -> str:
    op = p.op
    ptr = lambda kind, cond: f"{kind}_{i}" if cond else "0"  # noqa: E731
    conv = op.type in CONV_TYPES
    return (f"    {{{_TYPE[op.type]}, {op.kernel}, {op.stride}, {int(p.downward)}, {op.cin}, {op.cout}, {op.hin}, "
            f"{op.hout}, {p.inp}, {p.out}, {p.aux}, {op.in_zp}, {op.out_zp}, {op.aux_zp}, {op.m0}, {op.m1}, "
            f"{op.shift}, {ptr('w', conv)}, {ptr('b', conv)}, {ptr('m', conv)}, {ptr('s', conv)}, "
            f"{ptr('lut', op.type == 'lut')}}}")


def write_model_c(program: Program, graph: KernelGraph, folder: Path, comment: str = "") -> None:
    """model.c and model.h of `program` in `folder`."""
    plan = program.plan
    head = "".join(f"/* {line} */\n" for line in comment.strip().splitlines())
    parts = [head, '#include "model.h"\n#include "nas_runtime.h"\n\n#include <string.h>\n\n']
    for i, p in enumerate(program.placed):
        op = p.op
        if op.type in CONV_TYPES:
            parts.append(f"/* {i}: {op.type} {op.cin}->{op.cout}, {op.kernel}x{op.kernel}/{op.stride}, "
                         f"{op.hin}->{op.hout} px ({op.name}) */\n")
            parts += [_array("int8_t", f"w_{i}", op.weight), _array("int32_t", f"b_{i}", op.bias),
                      _array("int32_t", f"m_{i}", op.mult), _array("int8_t", f"s_{i}", op.shifts)]
        elif op.type == "lut":
            parts.append(f"/* {i}: table ({op.name}) */\n" + _array("int8_t", f"lut_{i}", op.lut))
    rows = ",\n".join(_descriptor(i, p) for i, p in enumerate(program.placed))
    parts.append(f"\nstatic const nas_op_t nas_ops[{len(program.placed)}] = {{\n{rows}\n}};\n\n")
    parts.append("/* The arena: every activation, placed by the SRAM predictor's plan (nas: predictors.mcu_memory). */\n"
                 "static int8_t nas_arena[NAS_ARENA_BYTES] __attribute__((aligned(4)));\n"
                 "/* One input plane of the largest depthwise map (in-place depthwise). */\n"
                 "static int8_t nas_scratch[NAS_SCRATCH_BYTES];\n\n"
                 "int8_t *nas_input_buffer(void)\n{\n    return nas_arena + NAS_INPUT_OFFSET;\n}\n\n"
                 "int nas_infer(const int8_t *input, int8_t *output)\n{\n"
                 "    if (input != nas_arena + NAS_INPUT_OFFSET) {\n"
                 "        memcpy(nas_arena + NAS_INPUT_OFFSET, input, NAS_INPUT_BYTES);\n    }\n"
                 f"    nas_run_ops(nas_ops, {len(program.placed)}, nas_arena, nas_scratch);\n"
                 "    memcpy(output, nas_arena + NAS_OUTPUT_OFFSET, NAS_OUTPUT_BYTES);\n    return 0;\n}\n")
    (folder / "model.c").write_text("".join(parts))
    c, r = graph.input_shape
    (folder / "model.h").write_text(
        head + "#ifndef NAS_MODEL_H\n#define NAS_MODEL_H\n\n#include <stdint.h>\n\n"
        f"/* Input: int8 NCHW 1x{c}x{r}x{r}, q = round(x / NAS_INPUT_SCALE) + NAS_INPUT_ZERO_POINT of the normalised\n"
        " * image; output: int8 logits, real = (q - NAS_OUTPUT_ZERO_POINT) * NAS_OUTPUT_SCALE. */\n"
        f"#define NAS_INPUT_CHANNELS {c}\n#define NAS_INPUT_SIZE {r}\n#define NAS_INPUT_BYTES {c * r * r}\n"
        f"#define NAS_INPUT_SCALE {graph.input_q.scale!r}f\n#define NAS_INPUT_ZERO_POINT {graph.input_q.zero_point}\n"
        f"#define NAS_OUTPUT_BYTES {graph.num_classes}\n#define NAS_OUTPUT_SCALE {graph.output_q.scale!r}f\n"
        f"#define NAS_OUTPUT_ZERO_POINT {graph.output_q.zero_point}\n\n"
        f"/* Static memory: the arena (activations, {len(plan.places)} layers planned) and the depthwise scratch. */\n"
        f"#define NAS_ARENA_BYTES {plan.size}\n#define NAS_SCRATCH_BYTES {max(1, plan.scratch)}\n"
        f"#define NAS_INPUT_OFFSET {program.input_offset}\n#define NAS_OUTPUT_OFFSET {program.output_offset}\n\n"
        "/* Run the subnet on one int8 image; `input` may be nas_input_buffer() (no copy). Returns 0. */\n"
        "int nas_infer(const int8_t *input, int8_t *output);\n"
        "/* Where the arena holds the input: write the image there to save its copy. */\n"
        "int8_t *nas_input_buffer(void);\n\n#endif /* NAS_MODEL_H */\n")


def _rows(name: str, values: np.ndarray, dim: str) -> str:
    body = ",\n".join("    {" + ", ".join(str(int(v)) for v in row.reshape(-1)) + "}" for row in values)
    return f"static const int8_t {name}[{len(values)}][{dim}] = {{\n{body}\n}};\n"


def write_test_vectors(folder: Path, inputs: np.ndarray, expected: np.ndarray, tolerance: int = 0) -> None:
    """test_vectors.h: int8 input images and the int8 model's int8 outputs for them (what `make check` compares,
    allowing `tolerance` LSB unless `make check TOLERANCE=n` says otherwise)."""
    (folder / "test_vectors.h").write_text(
        "/* Validation images quantized as the int8 model's input, and onnxruntime's int8 outputs for them. */\n"
        "#ifndef NAS_TEST_VECTORS_H\n#define NAS_TEST_VECTORS_H\n\n#include <stdint.h>\n#include \"model.h\"\n\n"
        f"#ifndef NAS_CHECK_TOLERANCE\n#define NAS_CHECK_TOLERANCE {int(tolerance)}\n#endif\n"
        f"#define NAS_TEST_COUNT {len(inputs)}\n" + _rows("nas_test_inputs", inputs, "NAS_INPUT_BYTES")
        + _rows("nas_test_expected", expected, "NAS_OUTPUT_BYTES") + "\n#endif\n")


def write_c_folder(graph: KernelGraph, plan: ArenaPlan, folder: Path, inputs: np.ndarray, expected: np.ndarray,
                   comment: str = "", tolerance: int = 0) -> Program:
    """The whole `c/` folder: model.c/.h, the runtime, the test vectors, the harness, startup and Makefile."""
    program = place(graph, plan)
    folder.mkdir(parents=True, exist_ok=True)
    write_model_c(program, graph, folder, comment)
    write_test_vectors(folder, inputs, expected, tolerance)
    for name in STATIC_FILES:
        shutil.copyfile(HERE / name, folder / name)
    return program
