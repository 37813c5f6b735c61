"""A new device by name: start its profile from a kind (cpu, gpu, mcu), or from a known profile's spec figures.

    prof = new_profile("pixel7", "cpu")                                  # no base: nothing borrowed
    prof = new_profile("my-gpu", base=load_profile("nvidia-t4"))         # T4's spec figures, marked as borrowed
    prof = new_profile("my-board", "mcu", specs=parse_specs(["sram=256KB", "flash=1MB"]))

A new profile keeps only spec-sheet figures and latency settings (batch, dtype, backend) from its base, never its
measured tables, corrections or fidelity: those describe the base device, not this one. Figures a kind needs
that nobody gave are filled with placeholders marked `defaulted` (an MCU's cycle costs, a GPU's peak and
bandwidth: figures only the spec-sheet models use, which a fitted or imported latency model replaces). An MCU's
SRAM and Flash decide whether a net fits, so they are never defaulted: they come from `--spec` or the base.
"""

from __future__ import annotations

import re
from typing import Iterable

from hw_profiles.schema import (_DIMENSIONS, KINDS, MCU_FIELDS, SPEC_FIELDS, DeviceProfile, Figure, LatencySection,
                                ProfileError)
from hw_profiles.store import _shipped, list_profiles, load_profile

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SPEC = re.compile(r"^\s*([a-z_0-9]+)\s*=\s*([0-9.eE+-]+)\s*([A-Za-z/%]*)\s*$")

_DEFAULT_NOTE = "placeholder for a new device (only the spec-sheet model uses it); set it with --spec"
# kind -> {figure: (value, unit)}: placeholders, only where the kind's models cannot run without the figure.
_DEFAULTS: dict[str, dict[str, tuple[float, str]]] = {
    "cpu": {},
    "gpu": {"peak_fp32": (10.0, "TFLOPS"), "memory_bandwidth": (300.0, "GB/s")},
    "mcu": {"clock": (200.0, "MHz"), "cycles_per_mac_conv": (1.6, "cycles/MAC"),
            "cycles_per_mac_pointwise": (1.1, "cycles/MAC"), "cycles_per_mac_depthwise": (2.2, "cycles/MAC"),
            "cycles_per_mac_linear": (1.3, "cycles/MAC"), "cycles_per_elem_pool": (1.0, "cycles/MAC"),
            "layer_overhead": (4000.0, "cycles")},
}
_NEVER_DEFAULTED = {"mcu": ("sram", "flash")}
_LATENCY = {"cpu": {}, "gpu": {}, "mcu": {"dtype": "int8"}}


def check_device_name(name: str) -> str:
    """`name` if it can name a device (and its file under runs/profiles/), else a ProfileError."""
    if not _NAME.match(name or "") or ".." in name:
        raise ProfileError(f"device name '{name}' must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 128 characters, "
                           "no '..'): it is also the profile's file name", "name")
    return name


def check_kind(kind: str | None, field: str = "--kind") -> str | None:
    if kind is not None and kind not in KINDS:
        raise ProfileError(f"{field} must be one of {', '.join(KINDS)}, got {kind!r}", "kind")
    return kind


def parse_specs(items: Iterable[str], field: str = "--spec") -> dict[str, Figure]:
    """`["sram=256KB", "clock=480 MHz"]` -> spec-sheet figures (units checked by the schema)."""
    out: dict[str, Figure] = {}
    for item in items:
        for part in (p for p in item.split(",") if p.strip()):
            m = _SPEC.match(part)
            if not m or m.group(1) not in {**SPEC_FIELDS, **MCU_FIELDS}:
                raise ProfileError(f"{field} '{part.strip()}' must be FIGURE=VALUE[UNIT] (e.g. sram=256KB) with FIGURE "
                                   f"one of {', '.join(sorted({**SPEC_FIELDS, **MCU_FIELDS}))}", "spec")
            name, value, unit = m.groups()
            try:
                v = float(value)
            except ValueError:
                raise ProfileError(f"{field} '{part.strip()}': {value!r} is not a number", "spec") from None
            canonical, units = _DIMENSIONS[SPEC_FIELDS.get(name) or MCU_FIELDS[name]]
            if unit and unit not in units or v < 0:
                raise ProfileError(f"{field} '{part.strip()}': give a value >= 0 in one of {', '.join(units)}", "spec")
            out[name] = Figure(value=v, unit=unit or canonical, source="spec-sheet", note=f"given by {field}")
    return out


def new_profile(name: str, kind: str | None = None, *, base: DeviceProfile | None = None,
                specs: dict[str, Figure] | None = None, description: str = "") -> DeviceProfile:
    """A new device NAME of `kind` (or of `base`'s kind), its spec figures from `specs`, then `base`, then
    placeholders marked `defaulted`; every borrowed figure notes where it came from."""
    check_device_name(name)
    check_kind(kind)
    if base is not None and kind is not None and base.kind != kind:
        raise ProfileError(f"--base '{base.name}' is a {base.kind} profile, but --kind is {kind}", "kind")
    kind = kind or (base.kind if base is not None else None)
    if kind is None:
        raise ProfileError(f"a new device '{name}' needs --kind ({', '.join(KINDS)}) or --base PROFILE", "kind")
    given = dict(specs or {})
    figures: dict[str, Figure] = {}
    if base is not None:
        for fname, fig in {**base.specs, **base.mcu}.items():
            note = f"from base '{base.name}'" + (f": {fig.note}" if fig.note else "")
            figures[fname] = fig.model_copy(update={"note": note})
    figures.update(given)
    missing = [f for f in _NEVER_DEFAULTED.get(kind, ()) if f not in figures]
    if missing:
        raise ProfileError(f"a new {kind} '{name}' needs its {' and '.join(missing)} (they decide whether a net "
                           f"fits): --spec {' --spec '.join(f'{m}=...KB' for m in missing)}, or --base PROFILE", "spec")
    for fname, (value, unit) in _DEFAULTS[kind].items():
        figures.setdefault(fname, Figure(value=value, unit=unit, source="defaulted", note=_DEFAULT_NOTE))
    lat = LatencySection(**_LATENCY[kind])
    if base is not None:
        lat = LatencySection(batch_size=base.latency.batch_size, threads=base.latency.threads,
                             backend=base.latency.backend, dtype=base.latency.dtype)
    return DeviceProfile(name=name, kind=kind, base=base.name if base is not None else None,
                         description=description or f"{name}: a new {kind}"
                         + (f" starting from {base.name}'s spec figures" if base is not None else ""),
                         specs={k: v for k, v in figures.items() if k in SPEC_FIELDS},
                         mcu={k: v for k, v in figures.items() if k in MCU_FIELDS}, latency=lat)


def start_profile(device: str, kind: str | None = None, base: str | DeviceProfile | None = None,
                  specs: dict[str, Figure] | None = None) -> tuple[DeviceProfile, bool]:
    """The profile a calibration starts from, and whether it is a new device: DEVICE itself when it is a known
    profile (name or YAML path) and no base is given, else a new profile named DEVICE (of `kind`, from `base`)."""
    check_kind(kind)
    if base is None:
        is_path = "/" in device or device.endswith((".yaml", ".yml"))
        if not is_path and device not in list_profiles():
            if kind is None:
                raise ProfileError(f"unknown device '{device}': for a new device give --kind {'|'.join(KINDS)} "
                                   f"(and optionally --base PROFILE); known: {', '.join(list_profiles())}")
        else:
            known = load_profile(device)  # a malformed profile of that name is reported, never overwritten
            if kind is not None and known.kind != kind:
                raise ProfileError(f"--device '{device}' is a known {known.kind} profile, not a {kind}; "
                                   "give a new device a new name")
            update = {"specs": {**known.specs, **{k: v for k, v in (specs or {}).items() if k in SPEC_FIELDS}},
                      "mcu": {**known.mcu, **{k: v for k, v in (specs or {}).items() if k in MCU_FIELDS}}}
            return DeviceProfile.model_validate({**known.model_dump(), **update}), False
    elif device in _shipped():
        raise ProfileError(f"--device '{device}' is a shipped profile; a new device from --base needs a new name")
    start = load_profile(base) if isinstance(base, str) else base
    return new_profile(device, kind, base=start, specs=specs), True
