"""`nas devices`, `nas predict`, `nas latency fit|import-ofa|export-ofa`, `nas profile cpu-host` end to end."""

import json
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from hw_profiles import load_profile
from predictors.ops import space_ops
from supernet import SearchSpace


def nas(monkeypatch, capsys, *args):
    """Run the `nas` entry point in-process; returns (exit code, stdout JSON objects, stderr)."""
    from nas.cli import main

    monkeypatch.setattr(sys, "argv", ["nas", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.startswith("{")], err


@pytest.fixture()
def archs(tmp_path):
    space = SearchSpace.preset("tiny-mbv3")
    path = tmp_path / "archs.jsonl"
    path.write_text("\n".join(a.to_json() for a in space.sample_many(3, 0)) + "\n")
    return path


def test_devices_list_and_show(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("NAS_PROFILES_DIR", str(tmp_path))
    code, rows, _ = nas(monkeypatch, capsys, "devices")
    assert code == 0 and {"cpu-host", "stm32f746", "nvidia-h100"} <= {r["name"] for r in rows}
    code, (shown,), _ = nas(monkeypatch, capsys, "devices", "show", "stm32h743")
    assert shown["specs"]["clock"] == {"value": 480.0, "unit": "MHz", "source": "spec-sheet"}
    code, _, err = nas(monkeypatch, capsys, "devices", "show", "toaster")
    assert code == 2 and "unknown device 'toaster'" in err and len(err.strip().splitlines()) == 1


def test_predict_mcu_and_errors(monkeypatch, capsys, archs, tmp_path):
    code, rows, _ = nas(monkeypatch, capsys, "predict", "--space", "tiny-mbv3", "--device", "stm32f746",
                        "--archs", archs)
    assert code == 0 and len(rows) == 3
    assert {"latency_ms", "macs", "params", "sram_bytes", "flash_bytes", "fits"} <= set(rows[0])
    code, rows, _ = nas(monkeypatch, capsys, "predict", "--space", "tiny-mbv3", "--profile",
                        load_profile("nvidia-t4").path, "--archs", archs)
    assert code == 0 and "sram_bytes" not in rows[0] and rows[0]["latency_source"] == "roofline"
    code, _, err = nas(monkeypatch, capsys, "predict", "--space", "tiny-mbv3", "--archs", archs)
    assert code == 2 and "exactly one of --device" in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ks": [3], "e": [3], "d": [1], "r": 28}\n')
    code, _, err = nas(monkeypatch, capsys, "predict", "--space", "tiny-mbv3", "--device", "stm32f746",
                       "--archs", bad)
    assert code == 2 and "field 'd'" in err


def test_latency_fit_from_csv(monkeypatch, capsys, tmp_path, archs):
    space = SearchSpace.preset("tiny-mbv3")
    codes = space.sample_codes(60, 5)
    from predictors import RooflineLatency

    y = RooflineLatency.from_profile(space, "nvidia-t4", batch_size=128).predict(codes)
    y = y * np.exp(np.random.default_rng(0).normal(0, 0.02, len(y)))
    csv = tmp_path / "m.csv"
    pd.DataFrame({"arch": [a.to_json() for a in space.decode(codes)], "latency_ms": y}).to_csv(csv, index=False)
    out = tmp_path / "t4-fitted.yaml"
    code, (res,), err = nas(monkeypatch, capsys, "latency", "fit", "--space", "tiny-mbv3", "--device", "nvidia-t4",
                            "--measurements", csv, "--out", out)
    assert code == 0, err
    assert res["cross_validated"]["spearman"] > 0.9 and res["measurements"] == 60
    prof = load_profile(out)
    assert prof.state == "fitted" and prof.latency.learned.source == "fitted"
    assert prof.latency.fidelity["tiny-mbv3"][0].n == 60
    code, rows, _ = nas(monkeypatch, capsys, "predict", "--space", "tiny-mbv3", "--profile", out, "--archs", archs)
    assert code == 0 and rows[0]["latency_source"] == "learned"
    broken = tmp_path / "broken.csv"
    broken.write_text("arch,latency\n{},1\n")
    code, _, err = nas(monkeypatch, capsys, "latency", "fit", "--space", "tiny-mbv3", "--device", "nvidia-t4",
                       "--measurements", broken, "--out", out)
    assert code == 2 and "missing column(s) latency_ms" in err


def test_import_export_ofa_round_trip(monkeypatch, capsys, tmp_path, archs):
    space = SearchSpace.preset("tiny-mbv3")
    lut = tmp_path / "lut"
    lut.mkdir()
    rng = np.random.default_rng(0)
    for r, ops in space_ops(space, [24, 28]).items():
        table = {op.key: {"mean": float(rng.uniform(0.01, 1)), "std": 0.01, "count": 50} for op in ops}
        (lut / f"{r}_lookup_table.yaml").write_text(yaml.safe_dump(table))
    out = tmp_path / "phone.yaml"
    code, (res,), err = nas(monkeypatch, capsys, "latency", "import-ofa", "--lut", lut, "--space", "tiny-mbv3",
                            "--device", "cpu-host", "--out", out)
    assert code == 0, err
    assert res["missing"] == {} and res["learned_fallback"]
    back = tmp_path / "back"
    code, (res,), _ = nas(monkeypatch, capsys, "latency", "export-ofa", "--device", out, "--out", back)
    for r in (24, 28):
        assert yaml.safe_load((back / f"{r}_lookup_table.yaml").read_text()) == \
            yaml.safe_load((lut / f"{r}_lookup_table.yaml").read_text())
    code, rows, _ = nas(monkeypatch, capsys, "predict", "--space", "tiny-mbv3", "--profile", out, "--archs", archs)
    assert code == 0 and rows[0]["latency_source"] == "lookup-table"


def test_profile_cpu_host_writes_measured_profile(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("NAS_PROFILES_DIR", str(tmp_path))
    code, (res,), err = nas(monkeypatch, capsys, "profile", "cpu-host", "--space", "tiny-mbv3", "--resolutions",
                            "24", "--n-test", 4, "--n-fit", 3, "--repeats", 1, "--rounds", 2)
    assert code == 0, err
    assert res["profile"] == str(tmp_path / "cpu-host.yaml")
    assert set(res["fidelity"]) == {"lookup-table", "learned", "roofline"}
    assert set(res["noise_ceiling"]) == {"spearman", "kendall", "rmse", "mape", "within_10pct"}
    assert res["target"] == {"spearman": 0.95, "within_10pct": 0.9}
    assert res["clock"] == "thread-cpu" and set(res["preempted"]) == {"ops", "subnets"}
    assert all(0 <= v <= 1 for v in res["preempted"].values())
    host = load_profile("cpu-host")
    assert host.latency.clock == "thread-cpu" and "thread-cpu clock" in host.description
    stored = {f.predictor: f for f in host.latency.fidelity["tiny-mbv3"]}
    assert stored["noise-ceiling"].spearman == round(res["noise_ceiling"]["spearman"], 5)
    assert host.latency.warnings.get("tiny-mbv3", []) == res["warnings"]
    assert all(f"warning: {w}" in err for w in res["warnings"])
    assert host.state == "measured" and host.specs["peak_fp32"].source == "measured"
    assert len(host.latency.lookup_table.tables[24]) == res["ops_measured"]
    for fid in host.latency.fidelity["tiny-mbv3"]:  # each held-out subnet, predicted beside measured (a scatter)
        assert len(fid.points) == fid.n == 4 and all(p > 0 and m > 0 for p, m in fid.points)
    code, _, err = nas(monkeypatch, capsys, "profile", "cpu-host", "--space", "tiny-mbv3", "--backend", "tpu")
    assert code == 2 and "--backend must be torch or onnxruntime" in err


def test_profile_cpu_host_at_ofas_resolutions(monkeypatch, capsys, tmp_path):
    """The ImageNet space (an imported OFA supernet's) is profiled at OFA's own resolutions."""
    monkeypatch.setenv("NAS_PROFILES_DIR", str(tmp_path))
    code, (res,), err = nas(monkeypatch, capsys, "profile", "cpu-host", "--space", "ofa-mbv3-w1.0", "--resolutions",
                            "160,224", "--n-test", 3, "--n-fit", 3, "--repeats", 1, "--rounds", 1)
    assert code == 0, err
    assert res["resolutions"] == [160, 224] and res["space"] == "ofa-mbv3-w1.0"
    host = load_profile("cpu-host")
    assert set(host.latency.lookup_table.tables) >= {160, 224}
    # ops whose cost does not depend on r (the classifier after pooling) are measured once, kept under each r
    assert sum(len(host.latency.lookup_table.tables[r]) for r in (160, 224)) >= res["ops_measured"] > 0
    space = SearchSpace.preset("ofa-mbv3-w1.0")
    from predictors import latency_predictor

    ms = latency_predictor(space, host).predict(space.encode([space.largest(224), space.smallest(160)]))
    assert ms[0] > ms[1] > 0


def _csv(tmp_path, n=100, seed=5):
    space = SearchSpace.preset("tiny-mbv3")
    codes = space.sample_codes(n, seed)
    from predictors import RooflineLatency

    y = RooflineLatency.from_profile(space, "nvidia-t4", batch_size=64).predict(codes)
    y = y * np.exp(np.random.default_rng(seed).normal(0, 0.03, len(y)))
    path = tmp_path / "m.csv"
    pd.DataFrame({"arch": [a.to_json() for a in space.decode(codes)], "latency_ms": y}).to_csv(path, index=False)
    return path


def test_new_device_from_100_measurements_no_base(monkeypatch, capsys, tmp_path, archs):
    monkeypatch.setenv("NAS_PROFILES_DIR", str(tmp_path / "profiles"))
    csv = _csv(tmp_path)
    code, (res,), err = nas(monkeypatch, capsys, "latency", "fit", "--space", "tiny-mbv3", "--device", "pixel7",
                            "--kind", "cpu", "--measurements", csv)
    assert code == 0, err
    assert res["device"] == "pixel7" and res["new_device"] and res["base"] is None and res["measurements"] == 100
    assert res["profile"] == str(tmp_path / "profiles" / "pixel7.yaml")
    assert res["cross_validated"]["spearman"] > 0.9
    prof = load_profile("pixel7")  # by name, from runs/profiles
    assert prof.name == "pixel7" and prof.kind == "cpu" and prof.state == "fitted"
    assert prof.latency.learned.source == "fitted" and prof.latency.fidelity["tiny-mbv3"][0].source == "fitted"
    code, rows, _ = nas(monkeypatch, capsys, "predict", "--space", "tiny-mbv3", "--device", "pixel7", "--archs", archs)
    assert code == 0 and rows[0]["latency_source"] == "learned"
    # an MCU without a base: memory from --spec, the cost model's figures marked defaulted
    code, (res,), err = nas(monkeypatch, capsys, "latency", "fit", "--space", "tiny-mbv3", "--device", "board",
                            "--kind", "mcu", "--spec", "sram=256KB", "--spec", "flash=1MB", "--measurements", csv)
    assert code == 0, err
    assert res["figures"]["spec-sheet"] == ["flash", "sram"] and "cycles_per_mac_conv" in res["figures"]["defaulted"]
    code, rows, _ = nas(monkeypatch, capsys, "predict", "--space", "tiny-mbv3", "--device", "board", "--archs", archs)
    assert code == 0 and rows[0]["latency_source"] == "learned" and "sram_margin_bytes" in rows[0]


def test_new_device_from_base_and_import_ofa(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("NAS_PROFILES_DIR", str(tmp_path / "profiles"))
    code, (res,), err = nas(monkeypatch, capsys, "latency", "fit", "--space", "tiny-mbv3", "--device", "my-t4",
                            "--base", "nvidia-t4", "--measurements", _csv(tmp_path))
    assert code == 0, err
    prof = load_profile("my-t4")
    assert prof.kind == "gpu" and prof.base == "nvidia-t4" and res["base"] == "nvidia-t4"
    assert prof.specs["peak_fp32"].note.startswith("from base 'nvidia-t4'")
    lut = tmp_path / "lut"
    lut.mkdir()
    space = SearchSpace.preset("tiny-mbv3")
    for r, ops in space_ops(space, [24]).items():
        (lut / f"{r}_lookup_table.yaml").write_text(yaml.safe_dump({op.key: {"mean": 0.1} for op in ops}))
    code, (res,), err = nas(monkeypatch, capsys, "latency", "import-ofa", "--lut", lut, "--space", "tiny-mbv3",
                            "--device", "note10", "--kind", "cpu")
    assert code == 0, err
    note10 = load_profile("note10")
    assert note10.name == "note10" and note10.state == "imported" and note10.latency.lookup_table.source == "imported"
    assert load_profile("cpu-host").state == "unmeasured"  # the base device is untouched


@pytest.mark.parametrize("extra, message", [
    ([], "unknown device 'pixel7': for a new device give --kind cpu|gpu|mcu"),
    (["--kind", "toaster"], "--kind must be one of cpu, gpu, mcu, got 'toaster'"),
    (["--kind", "mcu"], "needs its sram and flash"),
    (["--base", "nope"], "unknown device 'nope'"),
    (["--kind", "mcu", "--base", "nvidia-t4"], "is a gpu profile, but --kind is mcu"),
])
def test_new_device_bad_input_is_one_line_exit_2(monkeypatch, capsys, tmp_path, extra, message):
    monkeypatch.setenv("NAS_PROFILES_DIR", str(tmp_path))
    code, _, err = nas(monkeypatch, capsys, "latency", "fit", "--space", "tiny-mbv3", "--device", "pixel7",
                       "--measurements", _csv(tmp_path, 12), *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pixel7.yaml").exists()
