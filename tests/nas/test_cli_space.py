"""`nas space list|show|sample|stats` through the installed console script, as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from supernet import ArchConfig, SearchSpace
from supernet.counting import arch_stats

NAS = Path(sys.executable).with_name("nas")


def nas(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    assert NAS.exists(), f"console script not installed at {NAS}"
    return subprocess.run([str(NAS), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_list_show_sample_stats(tmp_path):
    out = nas("space", "list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert {r["name"] for r in rows} >= {"ofa-mbv3-w1.0", "ofa-mbv3-w1.2", "tiny-mbv3"}
    tiny = SearchSpace.preset("tiny-mbv3")
    assert next(r for r in rows if r["name"] == "tiny-mbv3")["size"] == str(tiny.size())

    out = nas("space", "show", "ofa-mbv3-w1.2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["stem"]["width"] == 24 and [s["width"] for s in shown["stages"]] == [32, 48, 96, 136, 192]
    assert shown["size"] == str(SearchSpace.preset("ofa-mbv3-w1.2").size())

    out = nas("space", "sample", "tiny-mbv3", "-n", "3", "--seed", "0", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    archs = [ArchConfig.from_dict(json.loads(line)) for line in lines]
    assert archs == tiny.sample_many(3, 0)  # same seed, same archs as the Python API

    (tmp_path / "archs.jsonl").write_text(out.stdout)
    out = nas("space", "stats", "tiny-mbv3", "--arch", "archs.jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    stats = [json.loads(line) for line in out.stdout.splitlines()]
    assert [ArchConfig.from_dict(s["arch"]) for s in stats] == archs
    for s, a in zip(stats, archs):
        assert {k: s[k] for k in ("macs", "params", "peak_activation_bytes")} == {
            k: arch_stats(tiny, a)[k] for k in ("macs", "params", "peak_activation_bytes")}
    assert out.stderr == ""


def _arch_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "arch.json"
    path.write_text(text)
    return str(path)


GOOD = SearchSpace.preset("tiny-mbv3").largest().to_dict()


@pytest.mark.parametrize("case, needle", [
    ("unknown-space", "unknown space 'no-such-space'"),
    ("malformed-json", "not valid JSON"),
    ("wrong-lengths", "field 'ks' must list 16 block slots"),
    ("kernel-4", "field 'ks[2]' = 4 is not allowed; allowed: [3, 5, 7]"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path, case, needle):
    space = "tiny-mbv3"
    if case == "unknown-space":
        space, text = "no-such-space", json.dumps(GOOD)
    elif case == "malformed-json":
        text = '{"ks": [3, 5,'
    elif case == "wrong-lengths":
        text = json.dumps({**GOOD, "ks": GOOD["ks"][:-4], "e": GOOD["e"][:-4]})
    else:
        text = json.dumps({**GOOD, "ks": GOOD["ks"][:2] + [4] + GOOD["ks"][3:]})
    out = nas("space", "stats", space, "--arch", _arch_file(tmp_path, text), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], out.stderr
    assert "Traceback" not in out.stderr
