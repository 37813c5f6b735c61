"""The four registries (spaces, strategies, predictors, accuracy models) have one shape: `register_x(name, obj)`
or `@register_x(name)`, a sorted list of names, and one error for an unknown name that lists the allowed ones."""

from __future__ import annotations

import pytest

from nas.search import _strategies
from nas.search._problem import SearchError
from predictors import available_predictors
from predictors.accuracy import ACCURACY_MODELS, AccuracyPredictorError, register_accuracy_model
from predictors.accuracy._base import AccuracyModel
from predictors.base import PREDICTORS, PredictorBase, PredictorError, register_predictor
from supernet import SearchSpace, available_spaces, register_space
from supernet.errors import SpaceError
from supernet.registry import Registry
from supernet.space import SPACES


@pytest.fixture
def isolated(monkeypatch):
    for reg in (SPACES, _strategies.STRATEGIES, PREDICTORS, ACCURACY_MODELS):
        monkeypatch.setattr(reg, "_items", dict(reg._items))


def test_each_registry_takes_a_name_and_an_object_or_decorates(isolated):
    register_space("reg-test-space", SearchSpace.preset("tiny-mbv3"))
    assert "reg-test-space" in available_spaces() and SearchSpace.preset("reg-test-space").name == "tiny-mbv3"

    _strategies.register_strategy("reg-test", _strategies.RandomSearch)

    @_strategies.register_strategy("reg-test-deco")
    def _factory(**options):
        return _strategies.RandomSearch(**options)

    assert {"reg-test", "reg-test-deco"} <= set(_strategies.available_strategies())
    assert isinstance(_strategies.get_strategy("reg-test-deco"), _strategies.RandomSearch)

    @register_predictor("reg-test")
    class P(PredictorBase):
        pass

    class Q(PredictorBase):
        pass

    register_predictor("reg-test-2", Q)
    assert P.kind == "reg-test" and Q.kind == "reg-test-2" and PREDICTORS["reg-test-2"] is Q
    assert {"reg-test", "reg-test-2"} <= set(available_predictors())

    @register_accuracy_model("reg-test")
    class A(AccuracyModel):
        pass

    assert A.kind == "reg-test" and ACCURACY_MODELS["reg-test"] is A and "reg-test" in ACCURACY_MODELS.names()


@pytest.mark.parametrize("registry, error", [(SPACES, SpaceError), (_strategies.STRATEGIES, SearchError),
                                             (PREDICTORS, PredictorError),
                                             (ACCURACY_MODELS, AccuracyPredictorError)])
def test_an_unknown_name_is_one_typed_error_listing_the_allowed_names(registry, error, isolated):
    registry.register("zz-known", object())
    with pytest.raises(error, match=rf"unknown {registry.kind} 'nope'; available: .*zz-known") as exc:
        registry["nope"]
    assert exc.value.args[0].endswith(", ".join(registry.names()))
    assert registry.names() == sorted(registry.names())


def test_the_strategy_and_space_lookups_raise_the_registry_error():
    with pytest.raises(SearchError, match="unknown strategy 'annealing'; available: evolution"):
        _strategies.get_strategy("annealing")
    with pytest.raises(SpaceError, match="unknown space 'nope'; available: .*tiny-mbv3"):
        SearchSpace.preset("nope")


def test_registry_is_generic():
    reg: Registry[int] = Registry("thing")
    reg.register("b", 2)
    reg.register("a")(1)
    assert reg.names() == ["a", "b"] and reg["a"] == 1 and len(reg) == 2 and list(reg) == ["b", "a"]
