"""Taking the arch to export from a search output folder written by `nas search` (nas.experiment)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nas.export.errors import ExportError

ARCH_KEYS = ("ks", "e", "d", "r")


def _safe(name: str) -> str:
    # the folder name nas.experiment gives a device (a profile name, or a profile YAML path's stem)
    stem = Path(name).stem if name.endswith((".yaml", ".yml")) else name
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem) or "device"


def best_arch_from_search(search_dir: str | Path, device: str) -> dict[str, Any]:
    """The best feasible arch (OFA keys ks, e, d, r; plus `space` when recorded) that a search found for `device`.

    Reads `summary.json` (per device: the path of its `arch.json`), else `<search_dir>/<device>/arch.json`.
    """
    root = Path(search_dir)
    if not root.is_dir():
        raise ExportError(f"field 'from': search folder '{search_dir}' does not exist")
    candidates: list[Path] = []
    summary = root / "summary.json"
    devices: list[str] = []
    if summary.is_file():
        try:
            devices_info = json.loads(summary.read_text()).get("devices", {})
        except (json.JSONDecodeError, AttributeError) as exc:
            raise ExportError(f"{summary} is malformed: {exc}") from None
        devices = sorted(devices_info)
        entry = devices_info.get(device)
        if isinstance(entry, dict):
            if not entry.get("arch"):
                raise ExportError(f"the search in '{search_dir}' found no feasible arch for device '{device}'")
            p = Path(entry["arch"])
            candidates += [p, root / _safe(device) / p.name] if not p.is_absolute() else [p]
    candidates.append(root / _safe(device) / "arch.json")
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        found = devices or sorted(p.name for p in root.iterdir() if (p / "arch.json").is_file())
        raise ExportError(f"field 'device': the search in '{search_dir}' has no best arch for '{device}'; "
                          f"devices searched: {', '.join(found) or 'none'}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path} is not valid JSON: {exc.msg}") from None
    missing = [k for k in ARCH_KEYS if k not in data]
    if missing:
        raise ExportError(f"{path} lacks the arch field(s) {', '.join(missing)}")
    arch = {k: data[k] for k in ARCH_KEYS}
    if "space" in data:
        arch["space"] = data["space"]
    return arch
