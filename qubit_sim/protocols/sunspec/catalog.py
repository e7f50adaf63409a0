"""All SunSpec models qubit-sim knows, by model ID."""

from __future__ import annotations

from collections.abc import Mapping

from qubit_sim.protocols.sunspec.models_der import (
    MODEL_701,
    MODEL_702,
    MODEL_704,
    MODEL_713,
    MODEL_802,
)
from qubit_sim.protocols.sunspec.models_inverter import (
    MODEL_1,
    MODEL_101,
    MODEL_103,
    MODEL_120,
    MODEL_123,
)
from qubit_sim.protocols.sunspec.spec import ModelDef, SunSpecError

__all__ = ["BATTERY_MODELS", "MODELS", "PV_MODELS", "get_model"]

MODELS: Mapping[int, ModelDef] = {
    m.id: m
    for m in (
        MODEL_1,
        MODEL_101,
        MODEL_103,
        MODEL_120,
        MODEL_123,
        MODEL_701,
        MODEL_702,
        MODEL_704,
        MODEL_713,
        MODEL_802,
    )
}

#: Model chain of a battery twin, in map order.
BATTERY_MODELS: tuple[int, ...] = (1, 701, 702, 704, 713, 802)
#: Model chain of a PV inverter twin; the inverter model is 101 (one phase) or 103 (three).
PV_MODELS: tuple[int, ...] = (1, 103, 120, 123)


def get_model(model_id: int) -> ModelDef:
    """The definition of SunSpec model ``model_id``."""
    try:
        return MODELS[model_id]
    except KeyError:
        known = ", ".join(str(k) for k in sorted(MODELS))
        raise SunSpecError(f"unknown SunSpec model {model_id}; known models: {known}") from None
