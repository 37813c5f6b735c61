"""`nas export`: bundles from an arch file or from a search folder, JSON on stdout, bad input in one line (exit 2).

Uses the service tests' `tiny_run` (the tiny recipe's run folder with untrained weights): the CLI's plumbing is
under test here; test_export.py checks the bundles of a trained run file by file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nas.experiment import ExperimentSpec, run_experiment

ARCH = {"ks": [3] * 16, "e": [3] * 16, "d": [2, 2, 2, 2], "r": 24}


pytestmark = pytest.mark.usefixtures("one_thread")


def nas(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run `nas ARGS` in this process; (exit code, stdout, stderr)."""
    from nas.cli import main

    monkeypatch.setattr(sys, "argv", ["nas", *args])
    capsys.readouterr()  # drop what earlier steps of the test printed
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def test_export_from_an_arch_file_prints_one_json_line_per_bundle(tiny_run, tmp_path, monkeypatch, capsys):
    arch_file = tmp_path / "archs.jsonl"
    other = {**ARCH, "r": 28}
    arch_file.write_text(json.dumps(ARCH) + "\n" + json.dumps(other) + "\n")
    code, out, err = nas(monkeypatch, capsys, "export", str(tiny_run), "--arch", str(arch_file), "--device",
                         "stm32f746", "--formats", "safetensors", "--out", str(tmp_path / "out"))
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["arch"] for line in lines] == [ARCH, other]
    for line in lines:
        bundle = Path(line["bundle"])
        assert bundle.parent == tmp_path / "out" and line["device"] == "stm32f746"
        assert sorted(p.name for p in bundle.iterdir()) == ["arch.json", "card.json", "card.md",
                                                             "weights.safetensors"]
        assert line["files"] == ["arch.json", "weights.safetensors"]
        assert json.loads((bundle / "card.json").read_text())["formats"] == ["safetensors"]
    assert "%]" in err  # progress on stderr


def test_export_from_a_search_folder_takes_each_devices_best_arch(tiny_run, tmp_path, monkeypatch, capsys):
    spec = ExperimentSpec.from_dict({
        "name": "export-from", "space": "tiny-mbv3", "budget": 30, "seed": 0, "strategy": "random",
        "objectives": {"params": "maximize", "latency_ms": "minimize"},
        "devices": [{"name": "stm32f746", "constraints": {"sram_bytes": 320000, "flash_bytes": 1000000}}]})
    search = tmp_path / "search"
    summary = run_experiment(spec, search)
    best = json.loads(Path(summary["devices"]["stm32f746"]["arch"]).read_text())
    code, out, err = nas(monkeypatch, capsys, "export", str(tiny_run), "--from", str(search), "--device",
                         "stm32f746", "--formats", "safetensors", "--out", str(tmp_path / "out"), "--quiet")
    assert code == 0, err
    (line,) = [json.loads(x) for x in out.splitlines()]
    assert line["arch"] == {k: best[k] for k in ("ks", "e", "d", "r")}
    assert err == ""
    code, out, err = nas(monkeypatch, capsys, "export", str(tiny_run), "--from", str(search), "--device",
                         "cpu-host", "--out", str(tmp_path / "out2"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "cpu-host" in err and "stm32f746" in err  # the devices the search has
    assert not (tmp_path / "out2").exists()


@pytest.mark.parametrize("args, words", [
    (["--device", "toaster"], ["toaster", "cpu-host"]),
    (["--device", "cpu-host", "--formats", "onnx,tflite"], ["tflite", "c-header"]),
    (["--device", "cpu-host", "--from", "somewhere"], ["exactly one"]),
    (["--device", "cpu-host", "--bad-arch"], ["ks[0]", "[3, 5, 7]"]),
    # --finetune took epochs before; a bare number is refused rather than read as something else
    (["--device", "cpu-host", "--finetune", "3"], ["--finetune", "'10%'", "--finetune-steps"]),
    (["--device", "cpu-host", "--finetune", "150%"], ["field 'finetune'", "at most 100%"]),
    (["--device", "cpu-host", "--finetune", "10%", "--finetune-steps", "3"], ["at most one"]),
    (["--device", "cpu-host", "--finetune-steps", "-2"], ["--finetune-steps", ">= 0"]),
    (["--device", "cpu-host", "--finetune", "10%"], ["run.json", "steps"]),  # this stand-in run records none
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(args, words, tiny_run, tmp_path, monkeypatch, capsys):
    arch_file = tmp_path / "arch.json"
    bad = "--bad-arch" in args
    arch_file.write_text(json.dumps({**ARCH, "ks": [4] * 16} if bad else ARCH))
    args = [a for a in args if a != "--bad-arch"]
    code, out, err = nas(monkeypatch, capsys, "export", str(tiny_run), "--arch", str(arch_file), *args,
                         "--out", str(tmp_path / "out"))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    for word in words:
        assert word in err
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "arch.json").write_text(json.dumps(ARCH))
    code, out, err = nas(monkeypatch, capsys, "export", str(tmp_path), "--arch", str(tmp_path / "arch.json"),
                         "--device", "cpu-host", "--out", str(tmp_path / "out"))
    assert code == 2 and "run.json" in err and not (tmp_path / "out").exists()


def test_finetune_steps_from_the_cli(tiny_run, tmp_path, monkeypatch, capsys):
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(json.dumps(ARCH))
    code, out, err = nas(monkeypatch, capsys, "export", str(tiny_run), "--arch", str(arch_file), "--device",
                         "stm32f746", "--formats", "safetensors", "--finetune-steps", "2", "--out",
                         str(tmp_path / "out"), "--quiet")
    assert code == 0, err
    (line,) = [json.loads(x) for x in out.splitlines()]
    bundle = Path(line["bundle"])
    card = json.loads((bundle / "card.json").read_text())
    assert bundle.name.endswith("-ft2") and card["finetune"]["steps"] == 2
    assert card["finetune"]["share_of_supernet_steps"] is None  # this stand-in run records no training steps
    assert "--finetune-steps 2" in card["command"]
