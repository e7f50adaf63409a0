"""SunSpec model 1 (common) and the inverter models 101, 103, 120 and 123.

Transcribed from the published SunSpec model definitions (sunspec/models, ``json/model_<id>.json``):
point names, order, types, sizes, units, scale-factor points, access and mandatory flags.
``valid`` ranges on read-write points are our reading of each point's description (percent
points 0..100, power factors -1..1, Modbus addresses 1..247); they are not part of the JSON.
"""

from __future__ import annotations

from qubit_sim.protocols.sunspec.spec import ModelDef, PointSpec, point

__all__ = ["MODEL_1", "MODEL_101", "MODEL_103", "MODEL_120", "MODEL_123"]

_ENABLE = {"DISABLED": 0, "ENABLED": 1}

MODEL_1 = ModelDef.build(
    1,
    "common",
    "Common",
    [
        point("Mn", "string", 16, m=True, s=True, label="Manufacturer"),
        point("Md", "string", 16, m=True, s=True, label="Model"),
        point("Opt", "string", 8, s=True, label="Options"),
        point("Vr", "string", 8, s=True, label="Version"),
        point("SN", "string", 16, m=True, s=True, label="Serial Number"),
        point("DA", "uint16", rw=True, valid=(1, 247), label="Device Address"),
        point("Pad", "pad", s=True, label="Pad"),
    ],
)

_INVERTER_STATE = {
    "OFF": 1,
    "SLEEPING": 2,
    "STARTING": 3,
    "MPPT": 4,
    "THROTTLED": 5,
    "SHUTTING_DOWN": 6,
    "FAULT": 7,
    "STANDBY": 8,
}
_INVERTER_EVENTS = {
    "GROUND_FAULT": 0,
    "DC_OVER_VOLT": 1,
    "AC_DISCONNECT": 2,
    "DC_DISCONNECT": 3,
    "GRID_DISCONNECT": 4,
    "CABINET_OPEN": 5,
    "MANUAL_SHUTDOWN": 6,
    "OVER_TEMP": 7,
    "OVER_FREQUENCY": 8,
    "UNDER_FREQUENCY": 9,
    "AC_OVER_VOLT": 10,
    "AC_UNDER_VOLT": 11,
    "BLOWN_STRING_FUSE": 12,
    "UNDER_TEMP": 13,
    "MEMORY_LOSS": 14,
    "HW_TEST_FAILURE": 15,
}


def _inverter(model_id: int, label: str, three_phase: bool) -> ModelDef:
    # 101 (single phase) and 103 (three phase) share one layout; only the mandatory flags of the
    # phase B/C points differ.
    m3 = three_phase
    return ModelDef.build(
        model_id,
        "inverter",
        label,
        [
            point("A", "uint16", sf="A_SF", units="A", m=True, label="Amps"),
            point("AphA", "uint16", sf="A_SF", units="A", m=True, label="Amps PhaseA"),
            point("AphB", "uint16", sf="A_SF", units="A", m=m3, label="Amps PhaseB"),
            point("AphC", "uint16", sf="A_SF", units="A", m=m3, label="Amps PhaseC"),
            point("A_SF", "sunssf", m=True),
            point("PPVphAB", "uint16", sf="V_SF", units="V", label="Phase Voltage AB"),
            point("PPVphBC", "uint16", sf="V_SF", units="V", label="Phase Voltage BC"),
            point("PPVphCA", "uint16", sf="V_SF", units="V", label="Phase Voltage CA"),
            point("PhVphA", "uint16", sf="V_SF", units="V", m=True, label="Phase Voltage AN"),
            point("PhVphB", "uint16", sf="V_SF", units="V", m=m3, label="Phase Voltage BN"),
            point("PhVphC", "uint16", sf="V_SF", units="V", m=m3, label="Phase Voltage CN"),
            point("V_SF", "sunssf", m=True),
            point("W", "int16", sf="W_SF", units="W", m=True, label="Watts"),
            point("W_SF", "sunssf", m=True),
            point("Hz", "uint16", sf="Hz_SF", units="Hz", m=True, label="Hz"),
            point("Hz_SF", "sunssf", m=True),
            point("VA", "int16", sf="VA_SF", units="VA", label="VA"),
            point("VA_SF", "sunssf"),
            point("VAr", "int16", sf="VAr_SF", units="var", label="VAr"),
            point("VAr_SF", "sunssf"),
            point("PF", "int16", sf="PF_SF", units="Pct", label="PF"),
            point("PF_SF", "sunssf"),
            point("WH", "acc32", sf="WH_SF", units="Wh", m=True, label="WattHours"),
            point("WH_SF", "sunssf", m=True),
            point("DCA", "uint16", sf="DCA_SF", units="A", label="DC Amps"),
            point("DCA_SF", "sunssf"),
            point("DCV", "uint16", sf="DCV_SF", units="V", label="DC Voltage"),
            point("DCV_SF", "sunssf"),
            point("DCW", "int16", sf="DCW_SF", units="W", label="DC Watts"),
            point("DCW_SF", "sunssf"),
            point("TmpCab", "int16", sf="Tmp_SF", units="C", m=True, label="Cabinet Temperature"),
            point("TmpSnk", "int16", sf="Tmp_SF", units="C", label="Heat Sink Temperature"),
            point("TmpTrns", "int16", sf="Tmp_SF", units="C", label="Transformer Temperature"),
            point("TmpOt", "int16", sf="Tmp_SF", units="C", label="Other Temperature"),
            point("Tmp_SF", "sunssf", m=True),
            point("St", "enum16", m=True, sym=_INVERTER_STATE, label="Operating State"),
            point("StVnd", "enum16", label="Vendor Operating State"),
            point("Evt1", "bitfield32", m=True, sym=_INVERTER_EVENTS, label="Event1"),
            point("Evt2", "bitfield32", m=True, label="Event Bitfield 2"),
            point("EvtVnd1", "bitfield32", label="Vendor Event Bitfield 1"),
            point("EvtVnd2", "bitfield32", label="Vendor Event Bitfield 2"),
            point("EvtVnd3", "bitfield32", label="Vendor Event Bitfield 3"),
            point("EvtVnd4", "bitfield32", label="Vendor Event Bitfield 4"),
        ],
    )


MODEL_101 = _inverter(101, "Inverter (Single Phase)", three_phase=False)
MODEL_103 = _inverter(103, "Inverter (Three Phase)", three_phase=True)

MODEL_120 = ModelDef.build(
    120,
    "nameplate",
    "Nameplate",
    [
        point("DERTyp", "enum16", m=True, sym={"PV": 4, "PV_STOR": 82}, label="DERTyp"),
        point("WRtg", "uint16", sf="WRtg_SF", units="W", m=True, label="WRtg"),
        point("WRtg_SF", "sunssf", m=True),
        point("VARtg", "uint16", sf="VARtg_SF", units="VA", m=True, label="VARtg"),
        point("VARtg_SF", "sunssf", m=True),
        point("VArRtgQ1", "int16", sf="VArRtg_SF", units="var", m=True, label="VArRtgQ1"),
        point("VArRtgQ2", "int16", sf="VArRtg_SF", units="var", m=True, label="VArRtgQ2"),
        point("VArRtgQ3", "int16", sf="VArRtg_SF", units="var", m=True, label="VArRtgQ3"),
        point("VArRtgQ4", "int16", sf="VArRtg_SF", units="var", m=True, label="VArRtgQ4"),
        point("VArRtg_SF", "sunssf", m=True),
        point("ARtg", "uint16", sf="ARtg_SF", units="A", m=True, label="ARtg"),
        point("ARtg_SF", "sunssf", m=True),
        point("PFRtgQ1", "int16", sf="PFRtg_SF", units="cos()", m=True, label="PFRtgQ1"),
        point("PFRtgQ2", "int16", sf="PFRtg_SF", units="cos()", m=True, label="PFRtgQ2"),
        point("PFRtgQ3", "int16", sf="PFRtg_SF", units="cos()", m=True, label="PFRtgQ3"),
        point("PFRtgQ4", "int16", sf="PFRtg_SF", units="cos()", m=True, label="PFRtgQ4"),
        point("PFRtg_SF", "sunssf", m=True),
        point("WHRtg", "uint16", sf="WHRtg_SF", units="Wh", label="WHRtg"),
        point("WHRtg_SF", "sunssf"),
        point("AhrRtg", "uint16", sf="AhrRtg_SF", units="AH", label="AhrRtg"),
        point("AhrRtg_SF", "sunssf"),
        point("MaxChaRte", "uint16", sf="MaxChaRte_SF", units="W", label="MaxChaRte"),
        point("MaxChaRte_SF", "sunssf"),
        point("MaxDisChaRte", "uint16", sf="MaxDisChaRte_SF", units="W", label="MaxDisChaRte"),
        point("MaxDisChaRte_SF", "sunssf"),
        point("Pad", "pad", label="Pad"),
    ],
)


def _secs_rw(name: str) -> PointSpec:
    return point(name, "uint16", units="Secs", rw=True, label=name)


MODEL_123 = ModelDef.build(
    123,
    "controls",
    "Immediate Controls",
    [
        _secs_rw("Conn_WinTms"),
        _secs_rw("Conn_RvrtTms"),
        point("Conn", "enum16", rw=True, m=True, sym={"DISCONNECT": 0, "CONNECT": 1}, label="Conn"),
        point(
            "WMaxLimPct",
            "uint16",
            sf="WMaxLimPct_SF",
            units="% WMax",
            rw=True,
            m=True,
            valid=(0.0, 100.0),
            label="WMaxLimPct",
        ),
        _secs_rw("WMaxLimPct_WinTms"),
        _secs_rw("WMaxLimPct_RvrtTms"),
        _secs_rw("WMaxLimPct_RmpTms"),
        point("WMaxLim_Ena", "enum16", rw=True, m=True, sym=_ENABLE, label="WMaxLim_Ena"),
        point(
            "OutPFSet",
            "int16",
            sf="OutPFSet_SF",
            units="cos()",
            rw=True,
            m=True,
            valid=(-1.0, 1.0),
            label="OutPFSet",
        ),
        _secs_rw("OutPFSet_WinTms"),
        _secs_rw("OutPFSet_RvrtTms"),
        _secs_rw("OutPFSet_RmpTms"),
        point("OutPFSet_Ena", "enum16", rw=True, m=True, sym=_ENABLE, label="OutPFSet_Ena"),
        point(
            "VArWMaxPct",
            "int16",
            sf="VArPct_SF",
            units="% WMax",
            rw=True,
            valid=(-100.0, 100.0),
            label="VArWMaxPct",
        ),
        point(
            "VArMaxPct",
            "int16",
            sf="VArPct_SF",
            units="% VArMax",
            rw=True,
            valid=(-100.0, 100.0),
            label="VArMaxPct",
        ),
        point(
            "VArAvalPct",
            "int16",
            sf="VArPct_SF",
            units="% VArAval",
            rw=True,
            valid=(-100.0, 100.0),
            label="VArAvalPct",
        ),
        _secs_rw("VArPct_WinTms"),
        _secs_rw("VArPct_RvrtTms"),
        _secs_rw("VArPct_RmpTms"),
        point(
            "VArPct_Mod",
            "enum16",
            rw=True,
            sym={"NONE": 0, "WMax": 1, "VArMax": 2, "VArAval": 3},
            label="VArPct_Mod",
        ),
        point("VArPct_Ena", "enum16", rw=True, m=True, sym=_ENABLE, label="VArPct_Ena"),
        point("WMaxLimPct_SF", "sunssf", m=True),
        point("OutPFSet_SF", "sunssf", m=True),
        point("VArPct_SF", "sunssf"),
    ],
)
