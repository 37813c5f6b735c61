"""Write one benchmark's section into BENCHMARKS.md, whole (temp file + rename), leaving other sections as they are.

Each section is delimited by HTML comments (`<!-- bench:KEY -->` ... `<!-- /bench:KEY -->`) so scripts can rewrite
their own part only. A subject measured by several scripts (or by one script in several ways) is one `## ` section
whose parts are `### ` sections, each under its own markers, the current figure first (`SUBJECTS`). The table of
contents at the top is rebuilt on every write; superseded figures live in the hand-kept changelog at the end,
which new sections are placed before.
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
TOC_START, TOC_END = "<!-- bench-toc -->", "<!-- /bench-toc -->"
CHANGELOG = "<!-- bench-changelog -->"  # the hand-kept part at the end: earlier, superseded measurements

# Subjects with several parts: title -> its parts, the current figure first as BENCHMARKS.md lays them out (a new
# part goes after its subject's last), each a section key with the title it is shown under, or a key prefix ending
# in "*" (the script's own title is kept). A key that no subject lists is a subject of its own, a `## ` section.
SUBJECTS: dict[str, tuple[tuple[str, str], ...]] = {
    "Latency and memory predictors": (
        ("latency-load", "cpu-host fidelity under load (5 profiling runs of tiny-mbv3)"),
        ("latency-idle", "cpu-host fidelity without a companion process"),
        ("latency", "Every predictor on both spaces, fitting from subnets, throughput, profiling time"),
    ),
    "Training: elastic overhead (supernet vs extracted static net)": (
        ("training-overhead", "On a CPU"),
        ("training-overhead-cuda", "On one GPU"),
    ),
    "Supernet subnets vs the same nets trained from scratch": (
        ("accuracy-fashion-mnist-full-gpu", "The full recipe (`fashion-mnist-full-gpu`, one GPU)"),
        ("accuracy-fashion-mnist", "The demo recipe (`fashion-mnist`, 2 CPU cores)"),
        ("accuracy-*", ""),  # bench_accuracy.py writes accuracy-<recipe name>
    ),
    "Accuracy predictor fidelity": (
        ("accuracy-predictor-500-full-val", "Demo supernet: 500 subnets measured on the whole validation split"),
        ("accuracy-predictor-full-gpu", "The full GPU recipe's supernet (step 5,800): the demo's protocol"),
        ("accuracy-predictor", "Demo supernet: the demo's protocol"),
        ("accuracy-predictor*", ""),
    ),
}
_BLOCK = re.compile(r"<!-- bench:([\w.-]+) -->\n(.*?)<!-- /bench:\1 -->", re.S)


def machine() -> str:
    import torch

    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")


def write_section(key: str, title: str, body: str, command: str | None = None, *, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or add) the section `key` of BENCHMARKS.md with `title` and markdown `body`."""
    command = command or "python " + shlex.join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    text = path.read_text() if path.exists() else HEADER
    _write_whole(path, place(text, key, title, f"`{command}` ({machine()})\n\n{body.strip()}"))


def _write_whole(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".BENCHMARKS.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def subject_of(key: str) -> tuple[str, str] | None:
    """(subject title, part title or "") of a key that is a part of a subject; None for a subject of its own."""
    for subject, parts in SUBJECTS.items():
        for part, title in parts:
            if part == key:
                return subject, title
    prefixes = [(part[:-1], subject) for subject, parts in SUBJECTS.items() for part, _ in parts if part.endswith("*")]
    for prefix, subject in sorted(prefixes, key=lambda p: -len(p[0])):
        if key.startswith(prefix):
            return subject, ""
    return None


def place(text: str, key: str, title: str, content: str) -> str:
    """`text` with the section `key` (heading, then `content`) put in its place, and the contents rebuilt."""
    where = subject_of(key)
    if where:
        subject, part_title = where
        # a part's own headings go one level down, below its `### ` title
        content = re.sub(r"^(#{2,5}) ", r"#\1 ", content, flags=re.M)
        block = f"<!-- bench:{key} -->\n### {part_title or title}\n\n{content}\n<!-- /bench:{key} -->"
    else:
        block = f"<!-- bench:{key} -->\n## {title}\n\n{content}\n<!-- /bench:{key} -->"
    old = re.compile(rf"<!-- bench:{re.escape(key)} -->.*?<!-- /bench:{re.escape(key)} -->", re.S)
    if old.search(text):
        text = old.sub(lambda _: block, text)
    elif where and (siblings := [m for m in _BLOCK.finditer(text) if (subject_of(m[1]) or ("",))[0] == subject]):
        end = siblings[-1].end()
        text = text[:end] + "\n\n" + block + text[end:]
    elif where and (heading := re.search(rf"^## {re.escape(subject)}\n", text, re.M)):
        text = text[:heading.end()] + "\n" + block + "\n" + text[heading.end():]
    else:
        new = f"## {subject}\n\n{block}" if where else block
        at = text.find(CHANGELOG)
        text = text.rstrip() + "\n\n" + new + "\n" if at < 0 else text[:at] + new + "\n\n" + text[at:]
    return with_contents(text)


def with_contents(text: str) -> str:
    """`text` with its table of contents (subject, section, date measured) rebuilt between the TOC markers."""
    slugs = _slugs(text)
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for m in _BLOCK.finditer(text):
        key, inner = m[1], m[2]
        heading = re.match(r"#+ (.*)", inner)
        title = heading[1].strip() if heading else key
        date = re.search(r"\d{4}-\d{2}-\d{2}", inner)
        where = subject_of(key)
        if where and where[0] not in seen:
            seen.add(where[0])
            subject = f"[{where[0]}](#{slugs.get(where[0], _slug(where[0]))})"
        else:
            subject = "" if where else f"[{title}](#{slugs.get(title, _slug(title))})"
        section = f"[{title}](#{slugs.get(title, _slug(title))}) (`{key}`)" if where else f"`{key}`"
        rows.append((subject, section, date[0] if date else "–"))
    lines = ["| subject | section (its marker) | measured |", "|---|---|---|"]
    lines += [f"| {s} | {sec} | {d} |" for s, sec, d in rows]
    if CHANGELOG in text:
        title = re.search(r"^## (.*)", text[text.find(CHANGELOG):], re.M)
        if title:
            lines.append(f"| [{title[1]}](#{_slug(title[1])}) | superseded figures, kept | |")
    toc = f"{TOC_START}\n" + "\n".join(lines) + f"\n{TOC_END}"
    if TOC_START in text:
        return re.sub(rf"{re.escape(TOC_START)}.*?{re.escape(TOC_END)}", lambda _: toc, text, flags=re.S)
    first = text.find("<!-- bench:")
    return text.rstrip() + "\n\n" + toc + "\n" if first < 0 else text[:first] + toc + "\n\n" + text[first:]


def tidy(text: str) -> str:
    """`text` with every section where `place` would put it: a part pasted as a `## ` section (or a section pasted
    after the changelog) is moved under its subject, before the changelog, headings adjusted; contents rebuilt."""
    for key in [m[1] for m in _BLOCK.finditer(text)]:
        m = next(b for b in _BLOCK.finditer(text) if b[1] == key)
        heading, _, content = m[2].partition("\n")
        after_changelog = CHANGELOG in text and m.start() > text.index(CHANGELOG)
        if after_changelog or (subject_of(key) and heading.startswith("## ")):
            text = re.sub(r"\n{3,}", "\n\n", text[:m.start()] + text[m.end():])
            text = place(text, key, heading.lstrip("#").strip(), content.strip())
    return with_contents(text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _slugs(text: str) -> dict[str, str]:
    """Each heading's anchor as GitHub numbers repeats (`-1`, `-2`, ...); the first heading of a text wins."""
    anchors: dict[str, str] = {}
    count: dict[str, int] = {}
    for m in re.finditer(r"^#{1,6} (.*)", text, re.M):
        base = _slug(m[1])
        n = count.get(base, 0)
        count[base] = n + 1
        anchors.setdefault(m[1].strip(), base if n == 0 else f"{base}-{n}")
    return anchors


def table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A markdown table from dict rows."""
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":  # after editing or merging BENCHMARKS.md by hand: sections in place, contents rebuilt
    _write_whole(BENCHMARKS_MD, tidy(BENCHMARKS_MD.read_text()))
