"""benchmarks/_subnet_table.py: a search over the measured subnet table gets the measured figures of the nearest
subnet, ties broken by how far the choices are, not by the table's order."""

import numpy as np
import pandas as pd

from benchmarks._subnet_table import NearestSubnet, _values, code_columns
from supernet import ArchConfig, SearchSpace


def test_the_nearest_subnet_counts_differing_choices_then_steps_between_them():
    space = SearchSpace.preset("tiny-mbv3")
    middle = ArchConfig((5,) * 16, (4,) * 16, (3,) * 4, 24)
    codes = space.encode([space.largest(), middle])
    table = pd.DataFrame(np.column_stack(_values(space, codes)), columns=code_columns(space))
    table["val_accuracy"], table["latency_ms"] = [0.9, 0.8], [5.0, 3.0]
    near = NearestSubnet(space, table, ["val_accuracy", "latency_ms"])
    assert near(space.largest()) == (0.9, 5.0) and near(middle) == (0.8, 3.0)
    # the smallest subnet differs from both in every choice; it is one step from the middle one, two from the largest
    assert near.index(space.smallest()) == 1
    one_off = ArchConfig((7,) * 15 + (5,), (6,) * 16, (4,) * 4, 28)
    assert near.index(one_off) == 0
