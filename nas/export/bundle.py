"""`export_bundle`: one trained subnet, specialised for one device, written as a folder users deploy from.

    bundle = export_bundle("runs/fashion-mnist", arch, "stm32f746", "exports/")

The bundle holds `arch.json`, `weights.safetensors`, `model.pt` (TorchScript), `model.onnx`, where the device wants
it `model.int8.onnx` and (MCUs) `model.h` and `c/` (generated int8 C inference, see `nas.export.mcu_c`), and
`card.json` + `card.md` with predicted beside measured figures. It
is built in a temporary folder next to its final place and renamed into place once every file is written and
every check passed: a bundle exists whole or not at all.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shlex
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch

from hw_profiles import DeviceProfile, load_profile
from nas.export.c_header import write_c_header
from nas.export.card import render_markdown
from nas.export.check import check_onnx
from nas.export.errors import ExportError
from nas.export.finetune import FinetuneRecipe, finetune_steps, finetune_subnet
from nas.export.formats import (INPUT_NAME, ONNX_OPSET, set_onnx_metadata, write_onnx, write_safetensors,
                                write_torchscript)
from nas.export.latency import measure_latency
from nas.export.load import WEIGHTS_FILE
from nas.export.quantize import quantize_int8
from nas.export.runtime import ort_predict, ort_session
from supernet import ArchConfig, SearchSpace
from supernet.counting import count_macs, count_params
from supernet.data import make_loader
from supernet.errors import InvalidArchError, NasError
from supernet.evaluate import predict_logits, recalibrate_bn, resize_to
from supernet.run import TrainedRun, load_run
from supernet.train import FrozenTeacher

FORMATS = ("safetensors", "torchscript", "onnx", "int8", "c-header", "c")
_NEEDS = {"int8": "onnx", "c-header": "int8", "c": "int8"}
DEFAULT_FORMATS = {"cpu": ("safetensors", "torchscript", "onnx"), "gpu": ("safetensors", "torchscript", "onnx"),
                   "mcu": FORMATS}
BN_IMAGES = 2000  # OFA recalibrates BN on 2,000 training images
CALIBRATION_IMAGES = 512  # int8 activation ranges
CHECK_IMAGES = 256  # ONNX vs PyTorch
C_CHECK_IMAGES = 16  # generated C vs the int8 ONNX model: shipped as the c/ folder's test vectors
MEASURED_DEVICE = "cpu-host"  # the one profile that is this machine: its latency is measured, not only predicted

Progress = Callable[[float, str], None]


def resolve_formats(formats: Iterable[str] | str | None, kind: str) -> tuple[str, ...]:
    """The formats to write: the device kind's defaults, or those asked for plus what they need (int8 needs onnx,
    c-header needs int8), in a fixed order."""
    if formats is None:
        return DEFAULT_FORMATS[kind]
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    chosen = set()
    for item in items:
        name = str(item).strip().lower()
        if not name:
            continue
        if name not in FORMATS:
            raise ExportError(f"field 'formats' has unknown format {name!r}; allowed: {', '.join(FORMATS)}")
        while name:
            chosen.add(name)
            name = _NEEDS.get(name)
    return tuple(f for f in FORMATS if f in chosen)


def as_arch(arch: ArchConfig | Mapping[str, Any] | str | Path, space: SearchSpace) -> ArchConfig:
    """`arch` (an ArchConfig, an OFA-style dict, or a path to its JSON) validated against the run's space."""
    try:
        if isinstance(arch, (str, Path)):
            p = Path(arch)
            if not p.is_file():
                raise InvalidArchError(f"arch file '{arch}' does not exist")
            arch = ArchConfig.from_json(p.read_text())
        elif isinstance(arch, Mapping):
            arch = ArchConfig.from_dict(arch)
        return space.validate(arch)
    except InvalidArchError as exc:
        raise InvalidArchError(f"arch is not in the run's space '{space.name}': {exc}") from None


def arch_id(arch: ArchConfig) -> str:
    """A short stable id of an arch (first 10 hex digits of the sha256 of its compact JSON)."""
    return hashlib.sha256(arch.to_json().encode()).hexdigest()[:10]


def bundle_name(device: str, arch: ArchConfig, finetune_steps: int = 0) -> str:
    return f"{device}-{arch_id(arch)}" + (f"-ft{finetune_steps}" if finetune_steps else "")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _images(dataset, n: int, r: int, seed: int, batch_size: int = 64) -> list[torch.Tensor]:  # noqa: ANN001
    """The first `n` images of `dataset` in a seeded shuffle, resized to `r` px, in batches."""
    out, seen = [], 0
    for x, _ in make_loader(dataset, batch_size, shuffle=True, seed=seed):
        if seen >= n:
            break
        x = x[: n - seen]
        out.append(resize_to(x, r))
        seen += len(x)
    return out


def _publish(tmp: Path, final: Path) -> None:
    """Rename the finished folder `tmp` to `final`, replacing an older bundle of the same name."""
    # mkdtemp and some writers create owner-only files; a bundle is meant to be shared like any output.
    os.chmod(tmp, 0o755)
    for p in tmp.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    while True:
        try:
            os.rename(tmp, final)
            return
        except OSError:
            if not final.exists():
                raise
        aside = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(final, aside)
        except FileNotFoundError:  # another exporter moved it first
            continue
        shutil.rmtree(aside, ignore_errors=True)


def _predictions(run: TrainedRun, profile: DeviceProfile, arch: ArchConfig) -> dict[str, Any]:
    """Every predicted figure of `arch` on the device (accuracy only when the run has a fitted predictor)."""
    from predictors import Predictors

    note = None
    try:
        predictors = Predictors.for_run(run.run_dir, profile)
    except (NasError, ImportError, FileNotFoundError) as exc:
        predictors, note = Predictors(run.space, profile), f"no accuracy predictor for this run ({exc})"
    row = predictors.predict([arch]).iloc[0].to_dict()
    out = {k: (bool(v) if k == "fits" else float(v)) for k, v in row.items()}
    out["latency_source"] = predictors.latency_source
    out["latency_calibrated"] = bool(predictors.calibrated)
    out.setdefault("accuracy", None)
    if note:
        out["accuracy_note"] = note
    return out


def _memory(profile: DeviceProfile, predicted: dict[str, Any], header: dict[str, Any] | None,
            c_code: dict[str, Any] | None = None) -> dict[str, Any]:
    """Predicted SRAM/Flash (MCUs: the generated code's arena + scratch + stack, its constants + code) against the
    device's memory, the C header's size, the Cortex-M7 build's measured sections beside the prediction, and one
    verdict."""
    mem: dict[str, Any] = {"sram_bytes": predicted.get("sram_bytes"), "flash_bytes": predicted.get("flash_bytes")}
    if profile.kind == "mcu":
        mem["sram_capacity_bytes"], mem["flash_capacity_bytes"] = profile.figure("sram"), profile.figure("flash")
        mem["sram_fits"] = bool(predicted["sram_bytes"] <= mem["sram_capacity_bytes"])
        mem["flash_fits"] = bool(predicted["flash_bytes"] <= mem["flash_capacity_bytes"])
    elif profile.has("memory"):
        mem["memory_capacity_bytes"] = profile.figure("memory")
    problems = []
    if mem.get("sram_fits") is False:
        problems.append(f"predicted SRAM {predicted['sram_bytes']:,.0f} B exceeds {mem['sram_capacity_bytes']:,.0f} B")
    if mem.get("flash_fits") is False:
        problems.append(f"predicted Flash {predicted['flash_bytes']:,.0f} B exceeds "
                        f"{mem['flash_capacity_bytes']:,.0f} B")
    if header is not None:
        runtime = profile.figure("flash_runtime") if profile.has("flash_runtime") else 0.0
        need = header["const_bytes"] + runtime
        header = {**header, "runtime_flash_bytes": runtime, "fits_flash": bool(need <= profile.figure("flash"))}
        mem["c_header"] = header
        if not header["fits_flash"]:
            problems.append(f"model.h's arrays ({header['const_bytes']:,} B) plus the runtime ({runtime:,.0f} B) "
                            f"exceed the {profile.figure('flash'):,.0f} B of Flash")
    m7 = (c_code or {}).get("cortex_m7", {})
    if "flash_bytes" in m7:
        mem["measured"] = {"source": "Cortex-M7 ELF of c/ (arm-none-eabi-gcc -Os): Flash = .text + .rodata + .data, "
                                     "SRAM = .data + .bss + stack (-fstack-usage)",
                           "flash_bytes": m7["flash_bytes"], "sram_bytes": m7["sram_bytes"],
                           "flash_diff_pct": _diff_pct(predicted.get("flash_bytes"), m7["flash_bytes"]),
                           "sram_diff_pct": _diff_pct(predicted.get("sram_bytes"), m7["sram_bytes"])}
        if profile.kind == "mcu" and m7["flash_bytes"] > profile.figure("flash"):
            problems.append(f"the built model image takes {m7['flash_bytes']:,} B of Flash, the device has "
                            f"{profile.figure('flash'):,.0f} B")
    if profile.kind != "mcu" and not problems:
        if "memory_capacity_bytes" not in mem:
            mem["verdict"] = f"not checked: the {profile.name} profile states no memory capacity"
        else:
            mem["verdict"] = "fits the device's memory" if predicted.get("fits", True) else \
                "DOES NOT FIT: predicted activations + weights exceed the device's memory"
    else:
        mem["verdict"] = ("DOES NOT FIT: " + "; ".join(problems)) if problems else \
            f"fits {profile.name} (SRAM and Flash within capacity)"
    mem["fits"] = not problems and bool(predicted.get("fits", True))
    return mem


def _diff_pct(predicted: Any, measured: float) -> float | None:
    """(predicted - measured) / measured in percent."""
    return None if predicted is None or not measured else 100.0 * (float(predicted) - measured) / measured


def _refuse_oversized_arena(space: SearchSpace, arch: ArchConfig, profile: DeviceProfile) -> None:
    """An MCU export with C code stops before any work when the planned SRAM exceeds the device's."""
    from predictors.mcu import McuCostModel

    model = McuCostModel.from_profile(space, profile)
    codes = space.encode([arch])
    need, arena = float(model.sram(codes)[0]), float(model.arena_bytes(codes)[0])
    if need > profile.figure("sram"):
        raise ExportError(f"subnet does not fit {profile.name}: the C code's arena is {arena:,.0f} B ({need:,.0f} B "
                          f"of SRAM with scratch and stack), the device has {profile.figure('sram'):,.0f} B")


def _command(run_dir: Path, final: Path, device: str, out_dir: Path, formats: tuple[str, ...], steps: int) -> str:
    argv = ["nas", "export", str(run_dir), "--arch", str(final / "arch.json"), "--device", device,
            "--out", str(out_dir), "--formats", ",".join(formats)]
    if steps:
        argv += ["--finetune-steps", str(steps)]
    return shlex.join(argv)


def export_bundle(run_dir: str | Path, arch: ArchConfig | Mapping[str, Any] | str | Path, device: str,
                  out_dir: str | Path, *, formats: Iterable[str] | str | None = None, finetune: int | str = 0,
                  progress: Progress | None = None) -> Path:
    """Export `arch` of the trained run at `run_dir` for `device` into a new folder under `out_dir`; return it.

    `formats`: among safetensors, torchscript, onnx, int8, c-header, c (default: the first three, all six on MCUs);
    `finetune`: steps of distillation from the supernet's largest net before export, an integer or a share of
    the supernet's training steps like '10%' (0: none; nas.export.finetune);
    `progress(fraction, message)` is called as the steps go. Raises a NasError subclass (ExportError,
    InvalidArchError, ProfileError, CheckpointError, DataError) on bad input or a failed check, leaving nothing.
    """
    report = progress or (lambda fraction, message: None)
    profile = load_profile(device)
    chosen = resolve_formats(formats, profile.kind)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"field 'out_dir': '{out_dir}' exists and is not a folder")
    run = load_run(run_dir)
    steps = finetune_steps(finetune, run.info.extra.get("steps"))
    arch = as_arch(arch, run.space)
    report(0.02, "reading data")
    splits = run.splits().at_resolution(arch.r)  # streamed images: OFA's resize and crop for this resolution
    if splits.in_channels != run.space.in_channels or splits.num_classes > run.space.num_classes:
        raise ExportError(f"run '{run_dir}': data ({splits.in_channels} channels, {splits.num_classes} classes) does "
                          f"not fit space '{run.space.name}'")

    created_out = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / bundle_name(profile.name, arch, steps)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=out_dir))
    try:
        card = _build(run, arch, profile, chosen, steps, splits, tmp, report)
        if steps:
            card["finetune"]["budget"] = str(finetune)
        card["command"] = _command(run.run_dir, final.resolve(), str(device), out_dir.resolve(), chosen,
                                   steps)
        card["bundle"] = final.name
        (tmp / "card.json").write_text(json.dumps(card, indent=2) + "\n")
        (tmp / "card.md").write_text(render_markdown(card))
        _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created_out:
            try:
                out_dir.rmdir()
            except OSError:
                pass
        raise
    report(1.0, f"bundle written: {final}")
    return final


def _build(run: TrainedRun, arch: ArchConfig, profile: DeviceProfile, formats: tuple[str, ...], steps: int,
           splits, tmp: Path, report: Progress) -> dict[str, Any]:  # noqa: ANN001
    """Write every file of the bundle into `tmp` and return the card (without its command)."""
    if "c" in formats and profile.kind == "mcu":
        _refuse_oversized_arena(run.space, arch, profile)
    seed = run.data.seed
    bn_loader = make_loader(splits.train, 200, shuffle=True, seed=seed)
    report(0.05, "extracting the subnet and recalibrating BN")
    net = run.net.extract(arch).eval()
    recalibrate_bn(net, arch, bn_loader, BN_IMAGES)
    tuned: dict[str, Any] = {"steps": 0}
    if steps:
        tuned = _finetune(run, arch, steps, splits, bn_loader, net, report)
        finetuned = run.net.extract(arch).eval()
        recalibrate_bn(finetuned, arch, bn_loader, BN_IMAGES)
        report(0.49, "measuring the fine-tuned net's accuracy")
        after = _accuracy(finetuned, arch, splits, {})
        tuned["finetuned_accuracy"] = {split: after[split]["torch_fp32"] for split in ("val", "test")}
        # Model selection on the validation split (never the test split): fine-tuning that made the net worse on
        # it (e.g. a teacher weaker than the subnet) is not shipped; the card says which weights were.
        keep = tuned["finetuned_accuracy"]["val"] >= tuned["supernet_accuracy"]["val"]
        tuned["kept"] = "fine-tuned" if keep else "supernet"
        if keep:
            net = finetuned
    net.eval()
    bn_images = min(BN_IMAGES, len(splits.train))

    (tmp / "arch.json").write_text(json.dumps(arch.to_dict()) + "\n")
    report(0.5, "writing weights and TorchScript")
    meta = {"arch": arch.to_json(), "space": json.dumps(run.space.to_dict()), "checkpoint_hash": run.checkpoint_hash,
            "device": profile.name, **_input_metadata(splits, arch.r)}
    if "safetensors" in formats:
        write_safetensors(net, tmp / WEIGHTS_FILE, meta)
    check_images = _images(splits.val, CHECK_IMAGES, arch.r, seed + 1, batch_size=CHECK_IMAGES)
    if not check_images:
        raise ExportError("the run's validation split is empty: nothing to check the exported models on")
    if "torchscript" in formats:
        write_torchscript(net, tmp / "model.pt")
        _check_torchscript(tmp / "model.pt", net, check_images[0])

    onnx_paths: dict[str, Path] = {}
    agreement = None
    if "onnx" in formats:
        report(0.6, f"exporting ONNX (opset {ONNX_OPSET})")
        write_onnx(net, check_images[0][:2], tmp / "model.onnx")
        set_onnx_metadata(tmp / "model.onnx", _input_metadata(splits, arch.r))
        report(0.7, "checking ONNX against PyTorch on validation images")
        agreement = check_onnx(tmp / "model.onnx", net, check_images[0]).to_dict()
        onnx_paths["onnxruntime_fp32"] = tmp / "model.onnx"
    header, quant = None, None
    if "int8" in formats:
        report(0.75, "quantizing to int8 (calibrating on training images)")
        calib = _images(splits.train, CALIBRATION_IMAGES, arch.r, seed + 2)
        # the C runtime is int8 throughout (as CMSIS-NN and TF-Lite Micro): asking for it asks for int8 activations
        activations = "int8" if profile.kind == "mcu" or "c" in formats else "uint8"
        quantize_int8(tmp / "model.onnx", tmp / "model.int8.onnx", calib, INPUT_NAME, activations)
        set_onnx_metadata(tmp / "model.int8.onnx", _input_metadata(splits, arch.r))
        weights = "int8 (7-bit range), symmetric, per output channel" if activations == "uint8" else \
            "int8, symmetric, per output channel"
        quant = {"format": "QOperator" if activations == "int8" else "QDQ", "weights": weights,
                 "activations": f"{activations}, asymmetric, min-max", "calibration_images": sum(map(len, calib)),
                 "tool": "onnxruntime.quantization.quantize_static"}
        onnx_paths["onnxruntime_int8"] = tmp / "model.int8.onnx"
    if "c-header" in formats:
        report(0.8, "writing the int8 weights as a C header")
        info = write_c_header(tmp / "model.int8.onnx", tmp / "model.h", f"nas_{profile.name}_model",
                              comment=f"int8 weights of {arch.to_json()} for {profile.name}\n"
                                      f"supernet checkpoint sha256 {run.checkpoint_hash}")
        header = {"tensors": info.tensors, "activations": info.activations, "weight_bytes": info.weight_bytes,
                  "const_bytes": info.total_bytes}
    c_code = None
    if "c" in formats:
        from nas.export.mcu_c import write_c_bundle

        report(0.8, "generating int8 C code, checking it against the int8 model, building it for Cortex-M7")
        images = check_images[0][:C_CHECK_IMAGES].numpy()
        c_code = write_c_bundle(tmp / "model.int8.onnx", run.space, arch, tmp / "c", images)

    report(0.85, "measuring accuracy (val, test)")
    # with fine-tuning, the shipped net's PyTorch top-1 was measured when it was chosen
    known = tuned.get("finetuned_accuracy" if tuned.get("kept") == "fine-tuned" else "supernet_accuracy")
    accuracy = _accuracy(net, arch, splits, onnx_paths, known)
    latency, latency_note = None, None
    if profile.name == MEASURED_DEVICE:
        report(0.92, "measuring batch-1 latency on this machine")
        latency = measure_latency(net, check_images[0][:1], onnx_paths, threads=profile.latency.threads)
    else:
        latency_note = f"this machine is not a {profile.name}; only {MEASURED_DEVICE} is measured here"
    predicted = _predictions(run, profile, arch)
    codes = run.space.encode([arch])
    train_ds = splits.train
    files = {p.relative_to(tmp).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(tmp.rglob("*")) if p.is_file()}
    return {
        "format": "ofa-nas-bundle/1",
        "name": f"{run.space.name} subnet for {profile.name}",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(Path(run.run_dir).resolve()),
        "checkpoint_hash": run.checkpoint_hash,
        "weights_sha256": files.get(WEIGHTS_FILE, {}).get("sha256"),
        "space": run.space.to_dict(),
        "device": {"name": profile.name, "kind": profile.kind, "description": profile.description,
                   "state": profile.state},
        "arch": arch.to_dict(), "arch_json": arch.to_json(), "arch_id": arch_id(arch),
        "formats": list(formats), "onnx_opset": ONNX_OPSET if "onnx" in formats else None,
        "input": {"name": INPUT_NAME, "layout": "NCHW", "shape": [1, run.space.in_channels, arch.r, arch.r],
                  "resolution": arch.r, "mean": _floats(getattr(train_ds, "mean", None)),
                  "std": _floats(getattr(train_ds, "std", None)), "preprocessing": splits.preprocessing},
        "num_classes": run.space.num_classes,
        "macs": int(count_macs(run.space, codes)[0]), "params": int(count_params(run.space, codes)[0]),
        "bn_recalibration": {"images": bn_images, "split": "train"},
        "finetune": tuned,
        "predicted": predicted,
        "measured": {"accuracy": accuracy, "latency": latency, "latency_note": latency_note},
        "onnx_check": agreement,
        "quantization": quant,
        "memory": _memory(profile, predicted, header, c_code),
        "c_code": c_code,
        "files": files,
    }


def _finetune(run: TrainedRun, arch: ArchConfig, steps: int, splits, bn_loader, before: torch.nn.Module,  # noqa: ANN001
              report: Progress) -> dict[str, Any]:
    """Fine-tune `arch` through the run's supernet (nas.export.finetune); the card's record of it, with the
    subnet's top-1 in the supernet (`before`, BN recalibrated) to set beside the exported net's."""
    report(0.06, "measuring the subnet's accuracy in the supernet")
    measured = _accuracy(before, arch, splits, {})
    in_supernet = {split: measured[split]["torch_fp32"] for split in ("val", "test")}
    recipe = FinetuneRecipe.from_config(run.config)
    teacher = FrozenTeacher.copy_of(run.net, bn_loader, BN_IMAGES)
    done = finetune_subnet(run.net, arch, splits.train, steps=steps, recipe=recipe, teacher=teacher,
                           seed=run.data.seed, pad=splits.pad, flip=splits.flip,
                           progress=lambda f, m: report(0.08 + 0.4 * f, m))
    supernet_steps = run.info.extra.get("steps")
    return {**done, "supernet_steps": supernet_steps,
            "share_of_supernet_steps": round(steps / supernet_steps, 4) if supernet_steps else None,
            "recipe": recipe.to_dict(), "teacher": f"the supernet's largest subnet at the images' loaded resolution "
                                            f"(at least {arch.r} px; frozen copy)",
            "path": "through the supernet with the arch fixed, extracted after; BN recalibrated on "
                    f"{BN_IMAGES} training images", "supernet_accuracy": in_supernet}


def _input_metadata(splits, r: int) -> dict[str, str]:  # noqa: ANN001
    """What the model expects of an image, as ONNX metadata: normalisation and (image folders) resize and crop."""
    meta = {"input_resolution": str(r), "input_mean": json.dumps(_floats(splits.mean)),
            "input_std": json.dumps(_floats(splits.std)), "input_layout": "NCHW, RGB, scaled to [0, 1] first"}
    if splits.preprocessing is not None:
        meta["preprocessing"] = json.dumps(splits.preprocessing)
    return meta


def _floats(t: Any) -> list[float] | None:
    return None if t is None else [float(v) for v in torch.as_tensor(t).reshape(-1)]


@torch.no_grad()
def _check_torchscript(path: Path, net: torch.nn.Module, images: torch.Tensor) -> None:
    scripted = torch.jit.load(str(path))
    diff = float((scripted(images) - net(images)).abs().max())
    if diff > 1e-5:
        raise ExportError(f"TorchScript model disagrees with PyTorch: max abs logit difference {diff:.3g}")


def _accuracy(net: torch.nn.Module, arch: ArchConfig, splits, onnx_paths: dict[str, Path],  # noqa: ANN001
              torch_top1: dict[str, float] | None = None) -> dict[str, Any]:
    """Top-1 on val and test: the PyTorch net (`torch_top1`: as already measured on this very net), and each ONNX
    model through onnxruntime."""
    out: dict[str, Any] = {}
    for split in ("val", "test"):
        data = getattr(splits, split)
        loader = make_loader(data, 500, shuffle=False)
        if torch_top1 is not None:
            entry: dict[str, Any] = {"images": len(data), "torch_fp32": torch_top1[split]}
        else:
            logits, labels = predict_logits(net, arch, loader)
            entry = {"images": int(len(labels)), "torch_fp32": float((logits.argmax(1) == labels).float().mean())}
        for label, path in onnx_paths.items():
            ort_logits, ort_labels = ort_predict(ort_session(path, torch.get_num_threads()), loader, arch.r)
            key = "onnx_fp32" if label.endswith("fp32") else "onnx_int8"
            entry[key] = float((ort_logits.argmax(1) == ort_labels).mean())
        out[split] = entry
    return out
