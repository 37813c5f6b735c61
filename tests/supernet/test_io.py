import pytest

from hw_profiles.schema import ProfileError
from hw_profiles.store import read_profile
from nas.service.client import ApiClientError, remote_search
from nas.demo import DemoSpec, DemoSpecError
from predictors.base import PredictorError, load_predictor
from predictors.lookup import read_ofa_tables
from nas.experiment import ExperimentSpec, SpecError
from supernet import SearchSpace
from supernet._io import read_yaml
from supernet.config import ConfigError, ExperimentConfig
from supernet.errors import SpaceError


class _Err(Exception):
    pass


def test_read_yaml_parses_and_names_the_file_when_it_cannot(tmp_path):
    good, bad, missing = tmp_path / "good.yaml", tmp_path / "bad.yaml", tmp_path / "missing.yaml"
    good.write_text("a: [1, 2]\n")
    bad.write_text("a: [unclosed")
    assert read_yaml(good, _Err, "thing") == {"a": [1, 2]}
    with pytest.raises(_Err, match=f"cannot read thing {missing}: does not exist"):
        read_yaml(missing, _Err, "thing")
    with pytest.raises(_Err, match=f"cannot read thing {bad}: not valid YAML"):
        read_yaml(bad, _Err, "thing")
    with pytest.raises(_Err, match=f"cannot read thing {tmp_path}: "):
        read_yaml(tmp_path, _Err, "thing")


@pytest.mark.parametrize("load,error,what", [
    (ExperimentSpec.from_yaml, SpecError, "experiment spec"),
    (ExperimentConfig.from_yaml, ConfigError, "experiment file"),
    (read_profile, ProfileError, "profile"),
    (DemoSpec.from_yaml, DemoSpecError, "demo spec"),
    (SearchSpace.from_yaml, SpaceError, "space YAML"),
    (lambda p: load_predictor(p, SearchSpace.preset("tiny-mbv3")), PredictorError, "predictor file"),
    (lambda p: remote_search("http://127.0.0.1:9", str(p)), ApiClientError, "experiment spec"),
])
def test_every_yaml_loader_names_the_file_and_what_is_wrong(tmp_path, load, error, what):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(error, match=f"cannot read {what} {bad}: not valid YAML"):
        load(bad)
    with pytest.raises(error, match=f"cannot read {what} {tmp_path / 'nope.yaml'}: does not exist"):
        load(tmp_path / "nope.yaml")


def test_ofa_lookup_tables_name_the_malformed_file(tmp_path):
    bad = tmp_path / "28_lookup_table.yaml"
    bad.write_text("conv: [unclosed")
    with pytest.raises(PredictorError, match=f"cannot read lookup table {bad}: not valid YAML"):
        read_ofa_tables(tmp_path)


def _alias_bomb(levels: int) -> str:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(levels):
        prev, cur = chr(97 + i), chr(98 + i)
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def test_yaml_expansion_is_bounded_before_anything_is_built():
    from supernet._io import MAX_YAML_NODES, YamlBombError, load_yaml

    assert load_yaml("a: &x {k: [1, 2]}\nb: *x\n") == {"a": {"k": [1, 2]}, "b": {"k": [1, 2]}}
    assert load_yaml("") is None and load_yaml(_alias_bomb(3))["d"][0][0][0][0] == "x"  # 9**4 values: allowed
    with pytest.raises(YamlBombError, match=f"expands to more than {MAX_YAML_NODES} values"):
        load_yaml(_alias_bomb(8))  # 9**9 values from a few hundred bytes
    with pytest.raises(YamlBombError, match="refers to itself"):
        load_yaml("a: &a [1, *a]\n")
    with pytest.raises(YamlBombError, match="nests too deep"):
        load_yaml("[" * 10_000)


def test_a_spec_file_with_an_alias_bomb_is_a_spec_error(tmp_path):
    path = tmp_path / "bomb.yaml"
    nested = "".join("  " + line + "\n" for line in _alias_bomb(8).splitlines())
    path.write_text("name: b\nstrategy_options:\n" + nested)
    with pytest.raises(SpecError, match="not valid YAML: the document expands to more than"):
        ExperimentSpec.from_yaml(path)
