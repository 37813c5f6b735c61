"""The model card of a bundle: card.json (every figure, machine-readable) rendered as card.md for people."""

from __future__ import annotations

from typing import Any


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.2f}%"


def _ms(v: Any) -> str:
    return "–" if v is None else f"{float(v):.3f} ms"


def _bytes(v: Any) -> str:
    if v is None:
        return "–"
    v = float(v)
    return f"{v / 1024:.1f} KB ({int(v):,} B)" if v >= 1024 else f"{int(v)} B"


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _pct_diff(v: Any) -> str:
    return "–" if v is None else f"{float(v):+.2f}%"


def _c_code_section(c: dict[str, Any] | None) -> list[str]:
    """card.md's account of the generated C code: its check against the int8 model, its builds."""
    if not c:
        return []
    lines = ["## Generated C (`c/`)", "",
             f"`{c['entry_point']}` in `c/model.c` ({c['ops']} kernel calls, integer-only, no malloc); one static "
             f"arena of {_bytes(c['arena_bytes'])} laid out by the SRAM predictor's plan, plus a "
             f"{_bytes(c['scratch_bytes'])} depthwise scratch plane. Build and check: `make -C c check` (host), "
             "`make -C c cortex-m7`, `make -C c qemu`.", ""]
    chk = c.get("check", {})
    if "skipped" in chk:
        lines.append(f"- Host check: not run ({chk['skipped']}).")
    else:
        lines.append(f"- Host check on {chk['images']} validation images against the int8 model ({c['reference']}): "
                     f"{100 * chk['equal_share']:.2f}% of {chk['outputs']} int8 outputs equal, max difference "
                     f"{chk['max_diff_lsb']} LSB (allowed {chk['tolerance_lsb']}"
                     + (f": {c['tolerance_reason']}" if c.get("tolerance_reason") else "") + "), "
                     f"top-1 mismatches {chk['top1_mismatches']}.")
    m7 = c.get("cortex_m7", {})
    if "skipped" in m7:
        lines.append(f"- Cortex-M7 build: not run ({m7['skipped']}).")
    else:
        lines.append(f"- Cortex-M7 build ({m7['flags']}): .text {m7['text_bytes']:,} B, .rodata "
                     f"{m7['rodata_bytes']:,} B, .data {m7['data_bytes']:,} B, .bss {m7['bss_bytes']:,} B, stack "
                     f"{m7['stack_bytes']:,} B.")
    q = c.get("qemu", {})
    if "skipped" in q:
        lines.append(f"- QEMU run: not run ({q['skipped']}).")
    else:
        lines.append(f"- QEMU {q['board']}: {q['images']} images, outputs "
                     f"{'identical to' if q['same_as_host'] else 'DIFFERENT from'} the host build's.")
    lines += [f"- {c['latency_note'][0].upper()}{c['latency_note'][1:]}.", ""]
    return lines


def render_markdown(card: dict[str, Any]) -> str:
    """card.md: the card's figures as tables, predicted beside measured."""
    dev, pred, meas = card["device"], card["predicted"], card["measured"]
    inp = card["input"]
    lines = [f"# {card['name']}", "",
             f"Subnet of space `{card['space']['name']}` exported for **{dev['name']}** ({dev['kind']}: "
             f"{dev['description']}).", "",
             f"- Command: `{card['command']}`",
             f"- Supernet checkpoint sha256: `{card['checkpoint_hash']}`",
             f"- Exported weights sha256: `{card['weights_sha256']}`" if card.get("weights_sha256") else "",
             f"- Arch (OFA keys): `{card['arch_json']}`",
             f"- Input: {inp['layout']} float32 {inp['shape']} (batch dynamic), pixels scaled to [0, 1] then "
             f"normalised with mean {inp['mean']} and std {inp['std']}; images resized bilinearly to "
             f"{inp['resolution']} px",
             f"- MACs: {card['macs']:,} · params: {card['params']:,}",
             f"- BN statistics recalibrated on {card['bn_recalibration']['images']} training images"
             + (f"; fine-tuned {card['finetune']['steps']} steps with distillation from the supernet's largest "
                f"net" + (", not shipped (it lowered the validation top-1)"
                          if card["finetune"].get("kept") == "supernet" else "")
                if card["finetune"].get("steps") else ""),
             f"- Created {card['created']}", ""]
    lines = [ln for ln in lines if ln != ""] + [""]

    lines += ["## Accuracy (top-1)", "",
              _row("split", "predicted", "PyTorch fp32", "onnxruntime fp32", "onnxruntime int8", "images"),
              _row(*["---"] * 6)]
    acc = meas["accuracy"]
    for split in ("val", "test"):
        a = acc.get(split, {})
        lines.append(_row(split, _pct(pred.get("accuracy")) if split == "val" else "–", _pct(a.get("torch_fp32")),
                          _pct(a.get("onnx_fp32")), _pct(a.get("onnx_int8")), a.get("images", "–")))
    if pred.get("accuracy") is None:
        lines += ["", f"Predicted accuracy: {pred.get('accuracy_note', 'no accuracy predictor')}."]
    else:
        lines += ["", "The accuracy predictor is fitted on validation accuracy: it ranks subnets, its absolute "
                      "values may be off."]
    lines.append("")

    lines += ["## Latency (batch 1)", "", _row("", "latency", "how"), _row("---", "---", "---"),
              _row("predicted", _ms(pred.get("latency_ms")), f"{pred.get('latency_source')} model of the profile"
                   + ("" if pred.get("latency_calibrated", True) else " (uncalibrated spec-like defaults)"))]
    lat = meas.get("latency")
    if lat:
        for label, entry in lat.items():
            lines.append(_row(f"measured, {label}", _ms(entry["median_ms"]),
                              f"median of {entry['repeats']} runs, {entry['threads']} thread(s), this machine"))
    else:
        lines += ["", f"Not measured: {meas.get('latency_note', 'this machine is not the device')}."]
    lines.append("")

    mem = card.get("memory")
    if mem:
        lines += ["## Memory", "", _row("", "need", "capacity", "fits"), _row("---", "---", "---", "---"),
                  _row("SRAM (predicted: int8 arena + scratch + stack)" if dev["kind"] == "mcu" else
                       "activations (predicted)",
                       _bytes(mem.get("sram_bytes")), _bytes(mem.get("sram_capacity_bytes")),
                       mem.get("sram_fits", "–")),
                  _row("Flash (predicted: weights, biases, requantization, tables, code)" if dev["kind"] == "mcu" else
                       "weights (predicted)",
                       _bytes(mem.get("flash_bytes")), _bytes(mem.get("flash_capacity_bytes")),
                       mem.get("flash_fits", "–"))]
        header = mem.get("c_header")
        if header:
            lines.append(_row("Flash (measured: model.h arrays + runtime)",
                              _bytes(header["const_bytes"] + header["runtime_flash_bytes"]),
                              _bytes(mem.get("flash_capacity_bytes")), header["fits_flash"]))
        measured = mem.get("measured")
        if measured:
            for what in ("sram", "flash"):
                lines.append(_row(f"{what.upper() if what == 'sram' else 'Flash'} (measured: Cortex-M7 build of c/; "
                                  f"predicted {_pct_diff(measured[f'{what}_diff_pct'])})",
                                  _bytes(measured[f"{what}_bytes"]), _bytes(mem.get(f"{what}_capacity_bytes")), "–"))
            lines += ["", f"Measured: {measured['source']}."]
        lines += ["", f"**Verdict: {mem['verdict']}**", ""]
    lines += _c_code_section(card.get("c_code"))

    if card.get("onnx_check"):
        c = card["onnx_check"]
        lines += ["## ONNX check", "",
                  f"onnxruntime vs PyTorch on {c['images']} validation images: max abs logit difference "
                  f"{c['max_abs_diff']:.3g} (allowed {c['tolerance']:g}), top-1 agreement "
                  f"{100 * c['top1_agreement']:.2f}%.", ""]
    if card.get("quantization"):
        q = card["quantization"]
        lines += ["## int8", "", f"`model.int8.onnx`: {q['tool']} ({q['format']}); weights {q['weights']}; "
                                 f"activations {q['activations']}, calibrated on {q['calibration_images']} training "
                                 f"images. Its top-1 is in the accuracy table beside fp32's.", ""]
    if card["finetune"].get("steps"):
        lines += _finetune_section(card["finetune"], acc)
    lines += ["## Files", "", _row("file", "bytes", "sha256"), _row("---", "---", "---")]
    lines += [_row(f"`{name}`", f"{f['bytes']:,}", f"`{f['sha256'][:16]}…`") for name, f in card["files"].items()]
    lines += ["", "Load in Python: `torch.jit.load('model.pt')`, `onnxruntime.InferenceSession('model.onnx')`, or "
                  "`nas.export.load_bundle_net(BUNDLE_DIR)` for the PyTorch module with `weights.safetensors`.", ""]
    return "\n".join(lines)


def _finetune_section(ft: dict[str, Any], acc: dict[str, Any]) -> list[str]:
    """The fine-tuning record: the subnet's top-1 in the supernet beside the exported net's, then the loss curve."""
    share = ft.get("share_of_supernet_steps")
    r = ft["recipe"]
    lines = ["## Fine-tuning", "",
             f"{ft['steps']} steps of {r['batch_size']} images"
             + (f" ({100 * share:.3g}% of the supernet's {ft['supernet_steps']:,} training steps"
                + (f"; asked for as `{ft['budget']}`" if ft.get("budget") else "") + ")" if share else "")
             + f", {r['optimizer']} at lr {r['lr']:g} (cosine), distillation from {ft['teacher']} (weight "
               f"{r['kd_weight']:g}); {ft['path']}. Took {ft['seconds']:.1f} s ({ft['steps_per_s']:.2f} steps/s).", "",
             _row("split", "in the supernet", "after fine-tuning", "change (pp)"), _row("---", "---", "---", "---")]
    tuned = ft.get("finetuned_accuracy", {})
    for split, before in ft.get("supernet_accuracy", {}).items():
        after = tuned.get(split, acc.get(split, {}).get("torch_fp32"))
        change = "–" if after is None else f"{100 * (after - before):+.2f}"
        lines.append(_row(split, _pct(before), _pct(after), change))
    if ft.get("kept") == "supernet":
        lines += ["", "**Shipped: the supernet's weights.** Fine-tuning lowered the validation top-1, so the bundle "
                      "holds the subnet as the supernet has it (chosen on the validation split, never the test split)."]
    elif ft.get("kept"):
        lines += ["", "Shipped: the fine-tuned weights (validation top-1 no lower than in the supernet)."]
    lines += ["", _row("step", "loss", "train top-1"), _row("---", "---", "---")]
    lines += [_row(h["step"], f"{h['loss']:.4f}", _pct(h["train_top1"])) for h in ft.get("history", [])]
    return lines + [""]
