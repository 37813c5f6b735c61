"""The CLI against a server (`--server URL`): the same answers as in-process, one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from supernet import SearchSpace

ROOT = Path(__file__).resolve().parents[2]


def nas(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("NAS_")}
    full.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, env=full, timeout=600)


def test_predict_and_search_through_a_server(serve, tmp_path):
    server = serve(token="t0k")
    space = SearchSpace.preset("tiny-mbv3")
    archs = space.sample_many(5, 7)
    path = tmp_path / "archs.jsonl"
    path.write_text("\n".join(a.to_json() for a in archs))
    env = {"NAS_API_TOKEN": "t0k"}
    remote = nas("predict", "--server", server.url, "--space", "tiny-mbv3", "--device", "stm32f746",
                 "--archs", str(path), env=env)
    assert remote.returncode == 0, remote.stderr
    local = nas("predict", "--space", "tiny-mbv3", "--device", "stm32f746", "--archs", str(path))
    got = [json.loads(line) for line in remote.stdout.splitlines()]
    want = [json.loads(line) for line in local.stdout.splitlines()]
    assert [g["arch"] for g in got] == [a.to_dict() for a in archs]
    for key in ("latency_ms", "macs", "params", "sram_bytes", "flash_bytes", "fits"):
        assert [g[key] for g in got] == [w[key] for w in want], key

    denied = nas("predict", "--server", server.url, "--space", "tiny-mbv3", "--device", "stm32f746",
                 "--archs", str(path))
    assert denied.returncode == 2 and "401" in denied.stderr and len(denied.stderr.strip().splitlines()) == 1
    bad = nas("predict", "--server", server.url, "--space", "tiny-mbv3", "--device", "toaster", "--archs", str(path),
              env=env)
    assert bad.returncode == 2 and "devices.0: unknown device 'toaster'" in bad.stderr

    spec = yaml.safe_load((ROOT / "experiments" / "search-tiny.yaml").read_text())
    spec.update(budget=30, devices=[d for d in spec["devices"] if d["name"] == "cpu-host"])
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    done = nas("search", str(spec_path), "--server", server.url, "--quiet", env=env)
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)
    assert state["status"] == "succeeded" and state["trials_done"] == 30 and "arch" in state["best"]["cpu-host"]
    assert not (tmp_path / "runs").joinpath("search-tiny").exists()  # the server wrote it, in its own folder
    assert (server.runs_dir / "experiments" / state["id"] / "summary.json").is_file()
