"""Write one benchmark's section into BENCHMARKS.md, whole (temp file + rename), leaving other sections as they are.

Each section is delimited by HTML comments so scripts can rewrite their own part only.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
HEADER = """# Benchmarks

Figures measured on this project's machines by the scripts in `benchmarks/` (regenerate all with
`benchmarks/run_all`, or one with the command under its section). Speed figures are ratios measured side by
side in one run where possible: the machine is shared and noisy.
"""


def machine() -> str:
    import torch

    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")


def write_section(key: str, title: str, body: str, command: str | None = None) -> None:
    """Replace (or append) the section `key` of BENCHMARKS.md with `title` and markdown `body`."""
    command = command or "python " + shlex.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    block = (f"<!-- bench:{key} -->\n## {title}\n\n`{command}` ({machine()})\n\n{body.strip()}\n"
             f"<!-- /bench:{key} -->")
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    pattern = re.compile(rf"<!-- bench:{re.escape(key)} -->.*?<!-- /bench:{re.escape(key)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    fd, tmp = tempfile.mkstemp(dir=ROOT, prefix=".BENCHMARKS.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, BENCHMARKS_MD)


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A markdown table from dict rows."""
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
