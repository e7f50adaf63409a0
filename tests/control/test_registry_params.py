"""Controller parameters checked against the controller's signature before it is built.

Claims checked here: an unknown parameter is named with a "did you mean" for a near miss and the
controller's valid parameters (with their defaults); a missing required one is named; a factory
that takes ``**kwargs`` gets whatever it is given; valid parameters build the controller.
"""

from __future__ import annotations

from typing import Any

import pytest

from qubit_sim.control import Controller, Observation, Setpoints, make_controller
from qubit_sim.control.builtin import RuleBased
from qubit_sim.control.registry import ControllerRegistry
from qubit_sim.errors import ControllerError


class Tuned(Controller):
    name = "tuned"

    def __init__(self, model: str, gain: float = 1.0, *, horizon_slots: int = 4) -> None:
        self.model, self.gain, self.horizon_slots = model, gain, horizon_slots

    def act(self, obs: Observation) -> Setpoints:
        return Setpoints.unlimited(0, 0, 0)


def open_factory(**params: Any) -> Controller:
    controller = Tuned("from-kwargs")
    controller.extra = params  # type: ignore[attr-defined]
    return controller


@pytest.fixture
def registry() -> ControllerRegistry:
    registry = ControllerRegistry()
    registry.register("tuned", Tuned)
    registry.register("open", open_factory)
    return registry


@pytest.mark.parametrize(
    ("name", "params", "messages"),
    [
        (
            "tuned",
            {"model": "m", "horizon": 8},
            [
                "controller 'tuned' rejected its parameters: no parameter 'horizon' "
                "(did you mean 'horizon_slots'?)",
                "its parameters: model, gain=1.0, horizon_slots=4",
            ],
        ),
        ("tuned", {"model": "m", "zzz": 1}, ["no parameter 'zzz'; its parameters"]),
        ("tuned", {"gain": 2.0}, ["missing required parameter(s) 'model'"]),
    ],
)
def test_wrong_parameters_name_the_valid_ones(
    registry: ControllerRegistry, name: str, params: dict[str, Any], messages: list[str]
) -> None:
    with pytest.raises(ControllerError) as refused:
        registry.make(name, params)
    for message in messages:
        assert message in str(refused.value)


def test_the_built_in_rule_based_names_its_parameters() -> None:
    with pytest.raises(ControllerError) as refused:
        make_controller("rule_based", {"threshold": 300})
    text = str(refused.value)
    assert "no parameter 'threshold' (did you mean 'threshold_kw'?)" in text
    assert "its parameters: threshold_kw=None, recharge_below_kw=None" in text
    assert "unexpected keyword argument" not in text


def test_a_controller_without_parameters_says_so() -> None:
    with pytest.raises(ControllerError, match="no parameter 'x'; it takes no parameters"):
        make_controller("uncontrolled", {"x": 1})


def test_valid_and_open_parameters_build(registry: ControllerRegistry) -> None:
    built = registry.make("tuned", {"model": "m", "horizon_slots": 8})
    assert isinstance(built, Tuned) and built.horizon_slots == 8 and built.gain == 1.0
    anything = registry.make("open", {"whatever": 3})
    assert anything.extra == {"whatever": 3}  # type: ignore[attr-defined]
    rule_based = make_controller("rule_based", {"threshold_kw": 300})
    assert isinstance(rule_based, RuleBased) and rule_based.threshold_kw == 300
