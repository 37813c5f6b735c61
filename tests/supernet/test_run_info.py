"""run.json is read and written only as a RunInfo: what is written comes back equal, extra keys included."""

import json

import pytest

from supernet import SearchSpace
from supernet.errors import CheckpointError
from supernet.run import RUN_JSON, RunInfo, read_run_info, write_run_info


def test_run_info_round_trips_with_its_extra_keys(tmp_path):
    info = RunInfo("r", SearchSpace.preset("tiny-mbv3").to_dict(), {"name": "digits"}, finished=True,
                   checkpoint_hash="a" * 64, config_hash="b" * 16,
                   extra={"steps": 96, "final": {"max": {"val_top1": 0.9}}})
    write_run_info(tmp_path, info)
    back = read_run_info(tmp_path)
    assert back == info and back.extra["steps"] == 96
    assert json.loads((tmp_path / RUN_JSON).read_text())["steps"] == 96  # extra keys sit at the top level


def test_a_folder_without_a_readable_run_json_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a run folder"):
        read_run_info(tmp_path)
    (tmp_path / RUN_JSON).write_text("{")
    with pytest.raises(CheckpointError, match="corrupt"):
        read_run_info(tmp_path)
    (tmp_path / RUN_JSON).write_text(json.dumps({"checkpoint_hash": "abc"}))
    with pytest.raises(CheckpointError, match="no space"):
        read_run_info(tmp_path)
