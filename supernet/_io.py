"""Files written whole (to a temporary name in the same folder, then renamed over the target), and YAML read back."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml


def _replace_from_temp(path: Path, write) -> None:  # noqa: ANN001
    """Run `write(f)` on a binary file opened at a temporary name beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make run folders private to their writer
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    _replace_from_temp(Path(path), lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> None:
    _replace_from_temp(Path(path), lambda f: f.write(text.encode()))


def write_via_path(path: str | Path, write: Callable[[str], None]) -> Path:
    """For writers that want a file name (parquet, matplotlib): `write(tmp_name)`, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_torch(path: str | Path, obj: Any) -> None:
    import torch

    _replace_from_temp(Path(path), lambda f: torch.save(obj, f))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_yaml(path: str | Path, error_cls: type[Exception], what: str) -> Any:
    """The parsed contents of a YAML file; a missing, unreadable or malformed file raises `error_cls` naming it."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise error_cls(f"cannot read {what} {path}: does not exist") from None
    except OSError as exc:
        raise error_cls(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error_cls(f"cannot read {what} {path}: not valid YAML: {exc}") from None
