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


MAX_YAML_NODES = 100_000  # values a YAML document may expand to, aliases counted each time they are used


class YamlBombError(yaml.YAMLError):
    """A YAML document whose aliases would expand past MAX_YAML_NODES values, or that nests too deep to read."""


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """How many values `root` expands to once every alias is followed (each shared node counted per use);
    raises YamlBombError as soon as that passes `limit` or an alias refers back into itself."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            children = node.value if isinstance(node, yaml.SequenceNode) else \
                [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else []
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > limit:
                raise YamlBombError(f"the document expands to more than {limit} values (aliases counted each "
                                    "time they are used)")
            continue
        if key in size:
            continue
        if key in open_:
            raise YamlBombError("the document refers to itself through an alias (a recursive structure)")
        open_.add(key)
        stack.append((node, True))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((c, False) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend((c, False) for pair in node.value for c in pair)
    return size[id(root)]


def load_yaml(text: str | bytes, max_nodes: int = MAX_YAML_NODES) -> Any:
    """`yaml.safe_load` with its expansion bounded: a document whose aliases would expand past `max_nodes`
    values (the "billion laughs"), refers to itself, or nests deeper than Python can follow raises YamlBombError
    before anything is built. Every YAML a user hands us (spec files, request bodies, profiles) is read here."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, max_nodes)
        return loader.construct_document(node)
    except RecursionError:
        raise YamlBombError("the document nests too deep to read") from None
    finally:
        loader.dispose()


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
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise error_cls(f"cannot read {what} {path}: not valid YAML: {exc}") from None
