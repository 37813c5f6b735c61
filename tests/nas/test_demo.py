"""The main job end to end on the tiny recipe: every stage, the report, and reuse on a second run."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from nas.demo import DemoSpec, DemoSpecError, run_demo

ROOT = Path(__file__).resolve().parents[2]


def _spec(tmp_path: Path, run_dir: Path, **changes) -> Path:
    data = yaml.safe_load((ROOT / "experiments" / "demo-tiny.yaml").read_text())
    data.update(train=str(ROOT / "experiments" / "tiny.yaml"), run_dir=str(run_dir), out=str(tmp_path / "out"))
    data.update(changes)
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture()
def run_copy(trained_tiny_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(trained_tiny_run, dst)
    return dst


def test_demo_end_to_end_then_reuses(run_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_PROFILES_DIR", str(tmp_path / "profiles"))
    spec = _spec(tmp_path, run_copy)
    logs: list[str] = []
    result = run_demo(spec, log=logs.append)

    stages = {r["stage"]: r["status"] for r in result["stages"]}
    assert stages["train supernet"] == "reused"  # the fixture's run is finished with the same recipe
    assert stages["fit accuracy predictor"] == "fitted"
    assert stages["profile cpu-host"] == "measured"
    assert stages["search per device"] == "searched"
    assert set(result["devices"]) == {"cpu-host", "stm32f746"}

    out = tmp_path / "out"
    md = Path(result["report"]).read_text()
    html = Path(result["report_html"]).read_text()
    assert html.startswith("<!doctype html>") and "data:image/png;base64," in html
    for device, figures in result["devices"].items():
        card = json.loads(next((out / "exports").glob(f"{device}*/card.json")).read_text())
        # the report's figures are the card's measured ones, which the export measured in this run
        assert card["arch_json"] == figures["arch"]
        assert figures["test_accuracy"] == card["measured"]["accuracy"]["test"]["torch_fp32"]
        assert f"{100 * figures['test_accuracy']:.2f}" in md or f"{100 * figures['test_accuracy']:.4g}" in md
        assert (out / "search" / device / "pareto.png").is_file()
        assert f"![Pareto front on {device}]" in md
        # the chosen arch respects the device's (resolved) constraints
        meta = json.loads((out / "search" / device / "search.json").read_text())
        for key, bound in meta["constraints"].items():
            assert meta["predicted"][key] <= bound * (1 + 1e-9)
    mcu = json.loads(next((out / "exports").glob("stm32f746*/card.json")).read_text())
    assert (Path(mcu["run_dir"]).exists() and mcu["memory"]["sram_bytes"] <= 320000)
    assert "Time per stage" in md and "Predictor fidelity" in md

    again = run_demo(spec, log=logs.append)
    assert {r["stage"]: r["status"] for r in again["stages"]} == {
        "train supernet": "reused", "fit accuracy predictor": "reused", "profile cpu-host": "reused",
        "search per device": "resumed", "export and measure": "reused"}
    assert again["devices"] == result["devices"]


def test_the_search_stage_is_an_experiment_spec_named_after_the_demo(trained_tiny_run, tmp_path):
    from nas.experiment import ExperimentSpec

    search = yaml.safe_load((ROOT / "experiments" / "demo-tiny.yaml").read_text())["search"]
    search["devices"][0]["constraints"] = {"latency_ms": "80%"}
    del search["budget"]
    spec = DemoSpec.from_yaml(_spec(tmp_path, trained_tiny_run, search=search))
    assert isinstance(spec.search, ExperimentSpec) and spec.search.name == "demo-tiny" and spec.search.run is None
    assert spec.search.budget == 3000 and spec.search.devices[0].constraints == {"latency_ms": "80%"}


@pytest.mark.parametrize("change, field", [
    ({"search": {"budget": 0, "devices": [{"name": "cpu-host"}]}}, "search.budget"),
    ({"search": {"devices": [{"name": "cpu-host", "constraints": {"latency_ms": "fast"}}]}}, "search.devices.0"),
    ({"train": "missing.yaml"}, "train"),
    ({"colour": "blue"}, "colour"),
    ({"export": {"finetune": "3 epochs"}}, "export.finetune"),
    ({"export": {"finetune": "120%"}}, "export.finetune"),
    ({"search": {"run": "elsewhere", "devices": [{"name": "cpu-host"}]}}, "search.run"),
])
def test_bad_specs_name_the_field(tmp_path, trained_tiny_run, change, field):
    path = _spec(tmp_path, trained_tiny_run, **change)
    with pytest.raises(DemoSpecError, match=field.replace(".", r"\.")):
        DemoSpec.from_yaml(path)


def test_demo_trains_data_parallel_when_asked(tmp_path):
    """`train_processes: 2`: the supernet is trained by torchrun (2 processes, gloo) into the run folder."""
    from nas.demo import _train

    spec = DemoSpec.from_yaml(_spec(tmp_path, tmp_path / "run", train_processes=2))
    status, run_dir = _train(spec, fresh=False)
    info = json.loads((run_dir / "run.json").read_text())
    assert status == "trained" and info["finished"] and (run_dir / "supernet.pt").is_file()
    assert _train(spec, fresh=False)[0] == "reused"


def test_the_report_sets_a_finetuned_nets_accuracy_beside_its_accuracy_in_the_supernet():
    from nas.demo import _finetune_columns

    card = {"finetune": {"steps": 96, "seconds": 41.5, "supernet_accuracy": {"val": 0.84, "test": 0.8312}},
            "measured": {"accuracy": {"test": {"torch_fp32": 0.8577}}}}
    assert _finetune_columns(card) == {"in-supernet test acc (%)": 83.12, "fine-tune gain (pp)": 2.65,
                                       "fine-tune steps": 96, "fine-tune s": 41.5, "shipped": "fine-tuned"}
    worse = {"finetune": {**card["finetune"], "kept": "supernet",
                          "finetuned_accuracy": {"val": 0.83, "test": 0.8212}}, "measured": card["measured"]}
    assert _finetune_columns(worse)["fine-tune gain (pp)"] == -1.0
    assert _finetune_columns(worse)["shipped"] == "supernet's (fine-tuning lowered val)"
    assert _finetune_columns({"finetune": {"steps": 0}}) == {}
