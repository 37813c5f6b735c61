"""Device profiles: shipped figures, schema errors naming file and field, user profiles preferred, round trip."""

import pytest
import yaml

from hw_profiles import DeviceProfile, ProfileError, list_profiles, load_profile, save_profile
from supernet.errors import NasError

SHIPPED = ["cpu-host", "nvidia-h100", "nvidia-h200", "nvidia-a100", "nvidia-rtx-4090", "nvidia-t4", "jetson-orin-nano",
           "stm32f746", "stm32h743", "stm32f412"]


def test_every_shipped_profile_loads_with_sources():
    assert set(SHIPPED) <= set(list_profiles())
    for name in SHIPPED:
        p = load_profile(name)
        assert p.name == name
        assert all(f.source in ("spec-sheet", "measured", "fitted", "imported") for f in p.specs.values())


def test_mcu_figures_in_canonical_units():
    f746, h743, f412 = load_profile("stm32f746"), load_profile("stm32h743"), load_profile("stm32f412")
    assert (f746.figure("clock"), f746.figure("sram"), f746.figure("flash")) == (216, 320 * 1024, 1024 * 1024)
    assert (h743.figure("clock"), h743.figure("sram"), h743.figure("flash")) == (480, 512 * 1024, 2 * 1024 ** 2)
    assert (f412.figure("clock"), f412.figure("sram"), f412.figure("flash")) == (100, 256 * 1024, 1024 * 1024)
    assert f746.specs["clock"].source == "spec-sheet"


def test_gpu_figures():
    h100 = load_profile("nvidia-h100")
    assert h100.kind == "gpu"
    assert h100.figure("memory_bandwidth") == pytest.approx(3350)  # TB/s converted to GB/s
    assert load_profile("nvidia-t4").figure("peak_fp32") == pytest.approx(8.1)
    assert load_profile("nvidia-t4").figure("launch_overhead") > 0


def test_unmeasured_host_says_so_and_reads_cores(monkeypatch, tmp_path):
    monkeypatch.setenv("NAS_PROFILES_DIR", str(tmp_path / "none"))
    host = load_profile("cpu-host")
    assert host.state == "unmeasured"
    assert host.figure("cores") >= 1


def _write(tmp_path, data, name="dev.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


MCU = {"name": "my-mcu", "kind": "mcu", "specs": {"clock": {"value": 64, "unit": "MHz", "source": "spec-sheet"},
                                                   "sram": {"value": 128, "unit": "KB", "source": "spec-sheet"},
                                                   "flash": {"value": 512, "unit": "KB", "source": "spec-sheet"}}}


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d.update(colour="blue"), "colour: unknown key"),
    (lambda d: d.pop("kind"), "kind: missing required field"),
    (lambda d: d["specs"].update(sram={"value": 128, "unit": "MHz", "source": "spec-sheet"}),
     "'specs.sram' has unit 'MHz', which is not a bytes"),
    (lambda d: d["specs"].update(warp_drive={"value": 1, "unit": "count", "source": "spec-sheet"}),
     "unknown figure 'specs.warp_drive'"),
    (lambda d: d["specs"]["clock"].update(source="guessed"), "specs.clock.source"),
    (lambda d: d["specs"].pop("flash"), "needs specs.flash"),
    (lambda d: d.update(kind="phone"), "kind"),
])
def test_schema_errors_name_file_and_field(tmp_path, mutate, expected):
    import copy

    data = copy.deepcopy(MCU)
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)
    assert isinstance(err.value, NasError)


def test_unknown_name_lists_available():
    with pytest.raises(ProfileError, match="available: .*stm32f746"):
        load_profile("pocket-calculator")


def test_not_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(bad)
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(tmp_path / "nope.yaml")


def test_user_profile_preferred_and_round_trip(monkeypatch, tmp_path):
    monkeypatch.setenv("NAS_PROFILES_DIR", str(tmp_path))
    shipped = load_profile("cpu-host")
    measured = shipped.model_copy(update={"state": "measured", "description": "measured here"})
    path = save_profile(measured, tmp_path / "cpu-host.yaml")
    again = load_profile("cpu-host")
    assert again.state == "measured" and again.path == str(path)
    assert again.specs == measured.specs
    assert not list(tmp_path.glob(".*tmp"))  # written whole, no leftovers
    assert isinstance(DeviceProfile.model_validate(yaml.safe_load(path.read_text())), DeviceProfile)


@pytest.mark.parametrize("path, value", [
    (("specs", "clock", "value"), float("nan")),
    (("specs", "sram", "value"), float("inf")),
    (("latency", "corrections"), {"tiny-mbv3/learned": {"source": "fitted", "offset_ms": float("inf")}}),
    (("latency", "learned"), {"source": "fitted", "features": ["macs"], "coef": {"conv": [float("nan")]}}),
])
def test_nan_and_infinity_are_refused_wherever_a_predictor_reads_a_number(path, value):
    data = load_profile("stm32f746").model_dump()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(Exception, match="finite|nan|inf"):
        DeviceProfile.model_validate(data)


def test_nan_in_a_profile_file_is_a_profile_error(tmp_path):
    text = (hw_devices() / "stm32f746.yaml").read_text().replace("value: 216", "value: .nan")
    assert ".nan" in text
    (tmp_path / "nan.yaml").write_text(text)
    with pytest.raises(ProfileError, match="clock"):
        load_profile(tmp_path / "nan.yaml")


def hw_devices():
    from pathlib import Path

    import hw_profiles

    return Path(hw_profiles.__file__).parent / "devices"
