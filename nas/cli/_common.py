"""Shared CLI helpers: JSON output on stdout, one-line errors with exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterable

import typer

from supernet import ArchConfig, SearchSpace
from supernet.errors import InvalidArchError, NasError


def fail(message: str) -> "typer.Exit":
    """Print one line on stderr and exit with status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def emit(obj: Any) -> None:
    """One JSON object on stdout."""
    typer.echo(json.dumps(obj, default=_default))


def emit_lines(objs: Iterable[Any]) -> None:
    for obj in objs:
        emit(obj)


def _default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_archs(space: SearchSpace, path: str) -> list[ArchConfig]:
    """Archs from a JSON file (one object or a list) or a JSON-lines file, validated against `space`."""
    p = Path(path)
    if not p.is_file():
        raise InvalidArchError(f"arch file '{path}' does not exist")
    text = p.read_text().strip()
    if not text:
        raise InvalidArchError(f"arch file '{path}' is empty")
    try:
        data = json.loads(text)
        items = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidArchError(f"arch file '{path}' line {n} is not valid JSON: {exc.msg}") from None
    archs = []
    for n, item in enumerate(items):
        try:
            archs.append(space.arch_from_dict(item))
        except InvalidArchError as exc:
            raise InvalidArchError(f"{path} arch #{n}: {exc}") from None
    return archs


def main_guard(fn):  # noqa: ANN001
    """Run a Typer app, turning typed user errors into one line on stderr and exit 2."""

    def wrapper() -> None:
        try:
            rc = fn(standalone_mode=False)
            # click returns an Exit's code instead of raising it when standalone_mode is off
            if isinstance(rc, int) and not isinstance(rc, bool) and rc:
                sys.exit(rc)
        except typer.Exit as exc:
            sys.exit(exc.exit_code)
        except (NasError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        except Exception as exc:
            # usage errors from click or typer's own copy of it: one line, their exit code (2)
            if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
                print(f"error: {exc.format_message()}", file=sys.stderr)
                sys.exit(exc.exit_code)
            if type(exc).__name__ == "Abort":
                print("aborted", file=sys.stderr)
                sys.exit(130)
            raise

    return wrapper


def progress_bar(batches: Iterable, desc: str, total_images: int, unit: str = "img") -> Iterable:
    """`batches` of (images, labels), counted in images on a tqdm bar on stderr (shown only on a terminal)."""
    from tqdm import tqdm

    bar = tqdm(total=total_images, desc=desc, unit=unit, dynamic_ncols=True, leave=False,
               disable=not sys.stderr.isatty())
    try:
        for x, y in batches:
            bar.update(len(y))
            yield x, y
    finally:
        bar.close()
