"""The issue-18 benchmarks' own helpers: fine-tuning variants named on the command line, archs taken from exported
bundles, and the twins file's records matched to an arch whichever way they were written."""

import json
from pathlib import Path

import pytest

from benchmarks.bench_accuracy import named_arch, read_twins, twin_arch
from benchmarks.bench_finetune import recipe_variant
from nas.export.finetune import FinetuneRecipe
from supernet import SearchSpace

ARCH = {"ks": [3] * 16, "e": [3] * 16, "d": [2, 2, 2, 2], "r": 24}


def test_a_variant_changes_only_the_fields_it_names_with_their_types():
    base = FinetuneRecipe(optimizer="adamw", lr=0.002, kd_weight=1.0)
    name, v = recipe_variant("kd0-lr4e-3:kd_weight=0, lr=4e-3, augment=true, warmup_steps=2", base)
    assert name == "kd0-lr4e-3"
    assert (v.kd_weight, v.lr, v.augment, v.warmup_steps) == (0.0, 0.004, True, 2)
    assert isinstance(v.warmup_steps, int) and (v.optimizer, v.batch_size) == (base.optimizer, base.batch_size)


@pytest.mark.parametrize("spec", ["kd0", "kd0:", "kd0:kd=0", ":lr=0.1", "x:lr"])
def test_a_malformed_variant_names_what_is_allowed(spec):
    with pytest.raises(ValueError, match="--variant"):
        recipe_variant(spec, FinetuneRecipe())


class _Run:
    space = SearchSpace.preset("tiny-mbv3")


def test_a_named_arch_comes_from_a_json_file_or_a_bundle_folder(tmp_path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "arch.json").write_text(json.dumps(ARCH))
    (tmp_path / "a.json").write_text(json.dumps(ARCH))
    for spec in (f"cpu-host={tmp_path / 'bundle'}", f"cpu-host={tmp_path / 'a.json'}"):
        name, arch = named_arch(spec, _Run())
        assert name == "cpu-host" and arch.to_dict() == ARCH
    with pytest.raises(ValueError, match="NAME=PATH"):
        named_arch(str(tmp_path / "a.json"), _Run())


def test_a_twin_record_is_matched_by_arch_with_or_without_its_arch_field(tmp_path):
    key = json.dumps({"config": "c", "arch": ARCH, "steps": 960, "seed": 0}, sort_keys=True)
    path = tmp_path / "twins.jsonl"
    path.write_text(json.dumps({"key": key, "name": "old", "top1": 0.9}) + "\n"
                    + json.dumps({"key": key + " ", "name": "new", "top1": 0.8, "arch": ARCH}) + "\n")
    assert [twin_arch(r) for r in read_twins(path).values()] == [ARCH, ARCH]


def test_a_twin_is_reused_across_recipes_that_train_it_alike_and_not_otherwise():
    from supernet import ArchConfig
    from supernet.config import ExperimentConfig
    from benchmarks.bench_accuracy import twin_key

    base = ExperimentConfig.from_yaml(Path(__file__).resolve().parents[2] / "experiments" / "fashion-mnist.yaml")

    def run_of(cfg):
        return type("Run", (), {"config": cfg, "space": SearchSpace.preset("tiny-mbv3")})()

    def variant(first=None, later=None):
        d = base.to_dict()
        d["phases"][0].update(first or {})
        d["phases"][-1].update(later or {})
        return run_of(ExperimentConfig.from_dict(d))

    arch = ArchConfig.from_dict(ARCH)
    key = twin_key(run_of(base), arch, 960, 0)
    assert twin_key(variant(later={"lr": 0.01, "kd_source": "inplace"}), arch, 960, 0) == key
    assert twin_key(variant(first={"lr": 0.01}), arch, 960, 0) != key
    assert twin_key(variant(first={"warmup_steps": 3}), arch, 960, 0) != key
    assert twin_key(run_of(base), arch, 961, 0) != key
