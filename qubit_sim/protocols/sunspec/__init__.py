"""SunSpec Modbus: model definitions as data, register codecs and the register map.

Models: 1 (common), 101/103 (inverter), 120 (nameplate), 123 (immediate controls),
701 (DER AC measurement), 702 (DER capacity), 704 (DER AC controls), 713 (DER storage capacity),
802 (battery base).
"""

from __future__ import annotations

from qubit_sim.protocols.sunspec.catalog import BATTERY_MODELS, MODELS, PV_MODELS, get_model
from qubit_sim.protocols.sunspec.codec import (
    choose_scale_factor,
    decode_raw,
    encode_raw,
    from_raw,
    quantize,
    raw_range,
    to_raw,
)
from qubit_sim.protocols.sunspec.image import (
    DEFAULT_BASE,
    END_MODEL_ID,
    SUNS_MARKER,
    ModelBlock,
    SunSpecMap,
)
from qubit_sim.protocols.sunspec.spec import (
    NOT_IMPLEMENTED,
    ModelDef,
    Point,
    SunSpecError,
)

__all__ = [
    "BATTERY_MODELS",
    "DEFAULT_BASE",
    "END_MODEL_ID",
    "MODELS",
    "NOT_IMPLEMENTED",
    "PV_MODELS",
    "SUNS_MARKER",
    "ModelBlock",
    "ModelDef",
    "Point",
    "SunSpecError",
    "SunSpecMap",
    "choose_scale_factor",
    "decode_raw",
    "encode_raw",
    "from_raw",
    "get_model",
    "quantize",
    "raw_range",
    "to_raw",
]
