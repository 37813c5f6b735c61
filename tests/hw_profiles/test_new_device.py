"""A new device by name: its profile starts from a kind or a base profile, every figure says where it came from,
and once saved under runs/profiles/ it loads by its name."""

import pytest

from hw_profiles import (ProfileError, load_profile, new_profile, parse_specs, profile_path, save_profile,
                         start_profile, user_profiles_dir)


def test_new_cpu_has_no_borrowed_figures():
    prof = new_profile("pixel7", "cpu")
    assert prof.name == "pixel7" and prof.kind == "cpu" and prof.base is None
    assert prof.specs == {} and prof.mcu == {} and prof.latency.lookup_table is None


def test_new_mcu_defaults_only_what_the_cost_model_needs_and_never_memory():
    with pytest.raises(ProfileError, match="needs its sram and flash") as exc:
        new_profile("board", "mcu")
    assert exc.value.field == "spec"
    prof = new_profile("board", "mcu", specs=parse_specs(["sram=256KB,flash=1MB", "clock=480MHz"]))
    assert prof.figure("sram") == 256 * 1024 and prof.specs["sram"].source == "spec-sheet"
    assert prof.specs["clock"].source == "spec-sheet" and prof.figure("clock") == 480
    assert prof.mcu["cycles_per_mac_conv"].source == "defaulted" and "--spec" in prof.mcu["layer_overhead"].note
    assert prof.latency.dtype == "int8"


def test_base_gives_spec_figures_not_measurements():
    t4 = load_profile("nvidia-t4")
    prof = new_profile("my-gpu", base=t4, specs=parse_specs(["memory=8GB"]))
    assert prof.kind == "gpu" and prof.base == "nvidia-t4"
    assert prof.specs["peak_fp32"].source == t4.specs["peak_fp32"].source
    assert prof.specs["peak_fp32"].note.startswith("from base 'nvidia-t4'")
    assert prof.specs["memory"].source == "spec-sheet" and prof.specs["memory"].note == "given by --spec"
    assert prof.latency.fidelity == {} and prof.latency.corrections == {}


@pytest.mark.parametrize("call, match, field", [
    (lambda: new_profile("x", "toaster"), "--kind must be one of cpu, gpu, mcu, got 'toaster'", "kind"),
    (lambda: new_profile("x", "mcu", base=load_profile("nvidia-t4")), "is a gpu profile, but --kind is mcu", "kind"),
    (lambda: new_profile("x"), "needs --kind", "kind"),
    (lambda: new_profile("../evil", "cpu"), "device name '../evil' must match", "name"),
    (lambda: parse_specs(["sram=1parsec"]), "give a value >= 0 in one of B, KB", "spec"),
    (lambda: parse_specs(["warp=9"]), "FIGURE=VALUE", "spec"),
    (lambda: start_profile("pixel7"), "unknown device 'pixel7': for a new device give --kind", None),
    (lambda: start_profile("nvidia-t4", "mcu"), "known gpu profile, not a mcu", None),
    (lambda: start_profile("nvidia-t4", base="nvidia-h100"), "is a shipped profile", None),
])
def test_bad_new_device_inputs(call, match, field):
    with pytest.raises(ProfileError, match=match) as exc:
        call()
    assert field is None or exc.value.field == field


def test_saved_under_user_profiles_it_loads_by_name(monkeypatch, tmp_path):
    monkeypatch.setenv("NAS_PROFILES_DIR", str(tmp_path))
    prof, new = start_profile("note10", "cpu")
    assert new
    save_profile(prof, user_profiles_dir() / "note10.yaml")
    assert profile_path("note10") == tmp_path / "note10.yaml"
    again, new = start_profile("note10")  # known now: recalibrated in place
    assert not new and again.name == "note10" and again.kind == "cpu"
    base, new = start_profile("t4-copy", base="nvidia-t4")
    assert new and base.base == "nvidia-t4"
