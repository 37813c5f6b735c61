import pytest

from hw_profiles.schema import ProfileError
from hw_profiles.store import read_profile
from nas.client import ApiClientError, remote_search
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
