"""Finding, loading and saving device profiles.

Shipped profiles live in `hw_profiles/devices/`; profiles written on this machine (`nas profile cpu-host`) live
in a user-writable folder, `runs/profiles/` under the working directory or `$NAS_PROFILES_DIR`, and are preferred
over a shipped profile of the same name.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from supernet._io import read_yaml, write_text
from hw_profiles.schema import DeviceProfile, ProfileError, format_validation_error


def user_profiles_dir() -> Path:
    """Where measured profiles are written by default: `$NAS_PROFILES_DIR` or `./runs/profiles`."""
    return Path(os.environ.get("NAS_PROFILES_DIR") or Path.cwd() / "runs" / "profiles")


def _shipped() -> dict[str, Path]:
    root = resources.files("hw_profiles") / "devices"
    return {p.name[:-5]: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def _user() -> dict[str, Path]:
    d = user_profiles_dir()
    return {p.stem: p for p in sorted(d.glob("*.yaml"))} if d.is_dir() else {}


def list_profiles() -> list[str]:
    """Names of every known device profile (shipped and measured here)."""
    return sorted(set(_shipped()) | set(_user()))


def profile_path(name: str) -> Path:
    """The file a profile name resolves to (a measured one here first, then the shipped one)."""
    found = _user().get(name) or _shipped().get(name)
    if found is None:
        raise ProfileError(f"unknown device '{name}'; available: {', '.join(list_profiles())} "
                           "(or a path to a profile YAML)")
    return found


def read_profile(path: str | Path) -> DeviceProfile:
    """Load and validate one profile YAML; errors name the file and the field."""
    path = Path(path)
    data = read_yaml(path, ProfileError, "profile")
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile must be a mapping with name, kind, specs, ...")
    try:
        prof = DeviceProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(format_validation_error(exc, str(path))) from None
    prof.path = str(path)
    return prof


def load_profile(name_or_path: str | Path | DeviceProfile) -> DeviceProfile:
    """A device profile by name (`nas devices` lists them) or by path to a YAML file."""
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    text = str(name_or_path)
    p = Path(text)
    if p.suffix in (".yaml", ".yml") or os.sep in text:
        if not p.is_file():
            raise ProfileError(f"profile file '{text}' does not exist")
        return read_profile(p)
    prof = read_profile(profile_path(text))
    if prof.name == "cpu-host" and prof.state == "unmeasured":
        prof = _fill_host(prof)
    return prof


def _fill_host(prof: DeviceProfile) -> DeviceProfile:
    """The unmeasured cpu-host: its core count is read from the OS (everything else stays a spec-like default)."""
    from hw_profiles.schema import Figure

    specs = dict(prof.specs)
    specs["cores"] = Figure(value=float(os.cpu_count() or 1), unit="count", source="measured", note="os.cpu_count()")
    return prof.model_copy(update={"specs": specs})


def save_profile(profile: DeviceProfile, path: str | Path) -> Path:
    """Write `profile` as YAML, whole (temp file + rename); returns the path."""
    path = Path(path)
    write_text(path, yaml.safe_dump(profile.to_yaml_dict(), sort_keys=False, default_flow_style=False, width=120))
    return path
