"""SunSpec DER models 701, 702, 704, 713 and the battery base model 802.

Transcribed from the published SunSpec model definitions (sunspec/models, ``json/model_<id>.json``,
IEEE 1547-2018 model suite): point names, order, types, sizes, units, scale-factor points,
access, mandatory flags and symbols, in their current revision. Earlier drafts differ: some
numbered 701's state enums from 1, named InvSt 3 ``MPPT`` and left 713 without ``Pct_SF``
(L = 6); devices built on those drafts decode differently. Repeating groups are flattened with a
``Group.Point`` name (704's ``PFWInj.PF``). ``valid`` ranges on read-write points are our reading of each point's
description (percent points, power factors, alarm reset 0/1); they are not part of the JSON.

Sign convention of these models (generator convention): 701 ``W`` is "positive for DER generation
and negative for absorption"; 704 ``WSet`` "may be negative for charging". qubit-sim's load
convention is the opposite: ``p_kw = -W / 1000``.
"""

from __future__ import annotations

from qubit_sim.protocols.sunspec.spec import ModelDef, PointSpec, point

__all__ = ["MODEL_701", "MODEL_702", "MODEL_704", "MODEL_713", "MODEL_802"]

_ENABLE = {"DISABLED": 0, "ENABLED": 1}
_EXCITATION = {"OVER_EXCITED": 0, "UNDER_EXCITED": 1}
_PCT = (0.0, 100.0)
_SIGNED_PCT = (-100.0, 100.0)


def _phase(n: int) -> list[PointSpec]:
    return [
        point(f"WL{n}", "int16", sf="W_SF", units="W", label=f"Watts L{n}"),
        point(f"VAL{n}", "int16", sf="VA_SF", units="VA", label=f"VA L{n}"),
        point(f"VarL{n}", "int16", sf="Var_SF", units="Var", label=f"Var L{n}"),
        point(f"PFL{n}", "int16", sf="PF_SF", label=f"PF L{n}"),
        point(f"AL{n}", "int16", sf="A_SF", units="A", label=f"Amps L{n}"),
        point(f"VL{n}L{n % 3 + 1}", "uint16", sf="V_SF", units="V", label=f"Phase Voltage L{n}-L"),
        point(f"VL{n}", "uint16", sf="V_SF", units="V", label=f"Phase Voltage L{n}-N"),
        point(f"TotWhInjL{n}", "uint64", sf="TotWh_SF", units="Wh"),
        point(f"TotWhAbsL{n}", "uint64", sf="TotWh_SF", units="Wh"),
        point(f"TotVarhInjL{n}", "uint64", sf="TotVarh_SF", units="Varh"),
        point(f"TotVarhAbsL{n}", "uint64", sf="TotVarh_SF", units="Varh"),
    ]


_ALARMS_701 = {
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
    "MANUFACTURER_ALRM": 16,
}
_THROTTLE_SOURCES = {
    name: bit
    for bit, name in enumerate(
        [
            "MAX_W",
            "FIXED_W",
            "FIXED_VAR",
            "FIXED_PF",
            "VOLT_VAR",
            "FREQ_WATT",
            "DYN_REACT_CURR",
            "LVRT",
            "HVRT",
            "WATT_VAR",
            "VOLT_WATT",
            "SCHEDULED",
            "LFRT",
            "HFRT",
            "DERATED",
        ]
    )
}

MODEL_701 = ModelDef.build(
    701,
    "DERMeasureAC",
    "DER AC Measurement",
    [
        point(
            "ACType",
            "enum16",
            m=True,
            sym={"SINGLE_PHASE": 0, "SPLIT_PHASE": 1, "THREE_PHASE": 2},
            label="AC Wiring Type",
        ),
        point("St", "enum16", sym={"OFF": 0, "ON": 1}, label="Operating State"),
        point(
            "InvSt",
            "enum16",
            sym={
                "OFF": 0,
                "SLEEPING": 1,
                "STARTING": 2,
                "RUNNING": 3,
                "THROTTLED": 4,
                "SHUTTING_DOWN": 5,
                "FAULT": 6,
                "STANDBY": 7,
            },
            label="Inverter State",
        ),
        point(
            "ConnSt",
            "enum16",
            sym={"DISCONNECTED": 0, "CONNECTED": 1},
            label="Grid Connection State",
        ),
        point("Alrm", "bitfield32", sym=_ALARMS_701, label="Alarm Bitfield"),
        point(
            "DERMode",
            "bitfield32",
            sym={"GRID_FOLLOWING": 0, "GRID_FORMING": 1, "PV_CLIPPED": 2},
            label="DER Operational Characteristics",
        ),
        point("W", "int16", sf="W_SF", units="W", label="Active Power"),
        point("VA", "int16", sf="VA_SF", units="VA", label="Apparent Power"),
        point("Var", "int16", sf="Var_SF", units="Var", label="Reactive Power"),
        point("PF", "int16", sf="PF_SF", label="Power Factor"),
        point("A", "int16", sf="A_SF", units="A", label="Total AC Current"),
        point("LLV", "uint16", sf="V_SF", units="V", label="Voltage LL"),
        point("LNV", "uint16", sf="V_SF", units="V", label="Voltage LN"),
        point("Hz", "uint32", sf="Hz_SF", units="Hz", label="Frequency"),
        point("TotWhInj", "uint64", sf="TotWh_SF", units="Wh", label="Total Energy Injected"),
        point("TotWhAbs", "uint64", sf="TotWh_SF", units="Wh", label="Total Energy Absorbed"),
        point("TotVarhInj", "uint64", sf="TotVarh_SF", units="Varh"),
        point("TotVarhAbs", "uint64", sf="TotVarh_SF", units="Varh"),
        point("TmpAmb", "int16", sf="Tmp_SF", units="C", label="Ambient Temperature"),
        point("TmpCab", "int16", sf="Tmp_SF", units="C", label="Cabinet Temperature"),
        point("TmpSnk", "int16", sf="Tmp_SF", units="C", label="Heat Sink Temperature"),
        point("TmpTrns", "int16", sf="Tmp_SF", units="C", label="Transformer Temperature"),
        point("TmpSw", "int16", sf="Tmp_SF", units="C", label="IGBT/MOSFET Temperature"),
        point("TmpOt", "int16", sf="Tmp_SF", units="C", label="Other Temperature"),
        *_phase(1),
        *_phase(2),
        *_phase(3),
        point("ThrotPct", "uint16", units="Pct", label="Throttling In Pct"),
        point("ThrotSrc", "bitfield32", sym=_THROTTLE_SOURCES, label="Throttle Source"),
        point("A_SF", "sunssf", s=True),
        point("V_SF", "sunssf", s=True),
        point("Hz_SF", "sunssf", s=True),
        point("W_SF", "sunssf", s=True),
        point("PF_SF", "sunssf", s=True),
        point("VA_SF", "sunssf", s=True),
        point("Var_SF", "sunssf", s=True),
        point("TotWh_SF", "sunssf", s=True),
        point("TotVarh_SF", "sunssf", s=True),
        point("Tmp_SF", "sunssf", s=True),
        point("MnAlrmInfo", "string", 32, label="Manufacturer Alarm Info"),
    ],
)


def _rating(name: str, sf: str, units: str = "") -> PointSpec:
    return point(name, "uint16", sf=sf, units=units, s=True)


def _setting(name: str, sf: str, units: str = "") -> PointSpec:
    return point(name, "uint16", sf=sf, units=units, rw=True)


_ISLAND_CATEGORIES = {
    "UNCATEGORIZED": 0,
    "INT_ISL_CAPABLE": 1,
    "BLACK_START_CAPABLE": 2,
    "ISOCH_CAPABLE": 3,
}
_CONTROL_MODES = {
    name: bit
    for bit, name in enumerate(
        [
            "MAX_W",
            "FIXED_W",
            "FIXED_VAR",
            "FIXED_PF",
            "VOLT_VAR",
            "FREQ_WATT",
            "DYN_REACT_CURR",
            "LV_TRIP",
            "HV_TRIP",
            "WATT_VAR",
            "VOLT_WATT",
            "SCHEDULED",
            "LF_TRIP",
            "HF_TRIP",
        ]
    )
}

MODEL_702 = ModelDef.build(
    702,
    "DERCapacity",
    "DER Capacity",
    [
        _rating("WMaxRtg", "W_SF", "W"),
        _rating("WOvrExtRtg", "W_SF", "W"),
        _rating("WOvrExtRtgPF", "PF_SF"),
        _rating("WUndExtRtg", "W_SF", "W"),
        _rating("WUndExtRtgPF", "PF_SF"),
        _rating("VAMaxRtg", "VA_SF", "VA"),
        _rating("VarMaxInjRtg", "Var_SF", "Var"),
        _rating("VarMaxAbsRtg", "Var_SF", "Var"),
        _rating("WChaRteMaxRtg", "W_SF", "W"),
        _rating("WDisChaRteMaxRtg", "W_SF", "W"),
        _rating("VAChaRteMaxRtg", "VA_SF", "VA"),
        _rating("VADisChaRteMaxRtg", "VA_SF", "VA"),
        _rating("VNomRtg", "V_SF", "V"),
        _rating("VMaxRtg", "V_SF", "V"),
        _rating("VMinRtg", "V_SF", "V"),
        _rating("AMaxRtg", "A_SF", "A"),
        _rating("PFOvrExtRtg", "PF_SF"),
        _rating("PFUndExtRtg", "PF_SF"),
        _rating("ReactSusceptRtg", "S_SF", "S"),
        point("NorOpCatRtg", "enum16", s=True, sym={"CAT_A": 0, "CAT_B": 1}),
        point("AbnOpCatRtg", "enum16", s=True, sym={"CAT_1": 0, "CAT_2": 1, "CAT_3": 2}),
        point("CtrlModes", "bitfield32", s=True, sym=_CONTROL_MODES),
        point("IntIslandCatRtg", "bitfield16", s=True, sym=_ISLAND_CATEGORIES),
        _setting("WMax", "W_SF", "W"),
        _setting("WMaxOvrExt", "W_SF", "W"),
        _setting("WOvrExtPF", "PF_SF"),
        _setting("WMaxUndExt", "W_SF", "W"),
        _setting("WUndExtPF", "PF_SF"),
        _setting("VAMax", "VA_SF", "VA"),
        _setting("VarMaxInj", "Var_SF", "Var"),
        _setting("VarMaxAbs", "Var_SF", "Var"),
        _setting("WChaRteMax", "W_SF", "W"),
        _setting("WDisChaRteMax", "W_SF", "W"),
        _setting("VAChaRteMax", "VA_SF", "VA"),
        _setting("VADisChaRteMax", "VA_SF", "VA"),
        _setting("VNom", "V_SF", "V"),
        _setting("VMax", "V_SF", "V"),
        _setting("VMin", "V_SF", "V"),
        _setting("AMax", "A_SF", "A"),
        _setting("PFOvrExt", "PF_SF"),
        _setting("PFUndExt", "PF_SF"),
        point("IntIslandCat", "bitfield16", rw=True, sym=_ISLAND_CATEGORIES),
        point("W_SF", "sunssf", s=True),
        point("PF_SF", "sunssf", s=True),
        point("VA_SF", "sunssf", s=True),
        point("Var_SF", "sunssf", s=True),
        point("V_SF", "sunssf", s=True),
        point("A_SF", "sunssf", s=True),
        point("S_SF", "sunssf", s=True),
    ],
)


def _enable(name: str) -> PointSpec:
    return point(name, "enum16", rw=True, sym=_ENABLE)


def _timer(name: str, rw: bool) -> PointSpec:
    return point(name, "uint32", units="Secs", rw=rw)


def _pf_group(group: str) -> list[PointSpec]:
    return [
        point(f"{group}.PF", "uint16", sf="PF_SF", rw=True, valid=(0.0, 1.0)),
        point(f"{group}.Ext", "enum16", rw=True, sym=_EXCITATION),
    ]


MODEL_704 = ModelDef.build(
    704,
    "DERCtlAC",
    "DER AC Controls",
    [
        _enable("PFWInjEna"),
        _enable("PFWInjEnaRvrt"),
        _timer("PFWInjRvrtTms", rw=True),
        _timer("PFWInjRvrtRem", rw=False),
        _enable("PFWAbsEna"),
        _enable("PFWAbsEnaRvrt"),
        _timer("PFWAbsRvrtTms", rw=True),
        _timer("PFWAbsRvrtRem", rw=False),
        _enable("WMaxLimPctEna"),
        point("WMaxLimPct", "uint16", sf="WMaxLimPct_SF", units="Pct", rw=True, valid=_PCT),
        point("WMaxLimPctRvrt", "uint16", sf="WMaxLimPct_SF", units="Pct", rw=True, valid=_PCT),
        _enable("WMaxLimPctEnaRvrt"),
        _timer("WMaxLimPctRvrtTms", rw=True),
        _timer("WMaxLimPctRvrtRem", rw=False),
        _enable("WSetEna"),
        point("WSetMod", "enum16", rw=True, sym={"W_MAX_PCT": 0, "WATTS": 1}),
        point("WSet", "int32", sf="WSet_SF", units="W", rw=True),
        point("WSetRvrt", "int32", sf="WSet_SF", units="W", rw=True),
        point("WSetPct", "int16", sf="WSetPct_SF", units="Pct", rw=True, valid=_SIGNED_PCT),
        point("WSetPctRvrt", "int16", sf="WSetPct_SF", units="Pct", rw=True, valid=_SIGNED_PCT),
        _enable("WSetEnaRvrt"),
        _timer("WSetRvrtTms", rw=True),
        _timer("WSetRvrtRem", rw=False),
        _enable("VarSetEna"),
        point(
            "VarSetMod",
            "enum16",
            rw=True,
            sym={"W_MAX_PCT": 0, "VAR_MAX_PCT": 1, "VAR_AVAIL_PCT": 2, "VA_MAX_PCT": 3, "VARS": 4},
        ),
        point("VarSetPri", "enum16", rw=True, sym={"ACTIVE": 0, "REACTIVE": 1, "VENDOR": 2}),
        point("VarSet", "int32", sf="VarSet_SF", units="Var", rw=True),
        point("VarSetRvrt", "int32", sf="VarSet_SF", units="Var", rw=True),
        point("VarSetPct", "int16", sf="VarSetPct_SF", units="Pct", rw=True, valid=_SIGNED_PCT),
        point("VarSetPctRvrt", "int16", sf="VarSetPct_SF", units="Pct", rw=True, valid=_SIGNED_PCT),
        _enable("VarSetEnaRvrt"),
        _timer("VarSetRvrtTms", rw=True),
        _timer("VarSetRvrtRem", rw=False),
        point("WRmp", "uint16", units="%Max/Sec", rw=True),
        point("WRmpRef", "enum16", rw=True, sym={"A_MAX": 0, "W_MAX": 1}),
        point("VarRmp", "uint16", units="%Max/Sec", rw=True),
        _enable("AntiIslEna"),
        point("PF_SF", "sunssf", s=True),
        point("WMaxLimPct_SF", "sunssf", s=True),
        point("WSet_SF", "sunssf", s=True),
        point("WSetPct_SF", "sunssf", s=True),
        point("VarSet_SF", "sunssf", s=True),
        point("VarSetPct_SF", "sunssf", s=True),
        *_pf_group("PFWInj"),
        *_pf_group("PFWInjRvrt"),
        *_pf_group("PFWAbs"),
        *_pf_group("PFWAbsRvrt"),
    ],
)

MODEL_713 = ModelDef.build(
    713,
    "DERStorageCapacity",
    "DER Storage Capacity",
    [
        point("WHRtg", "uint16", sf="WH_SF", units="WH", label="Energy Rating"),
        point("WHAvail", "uint16", sf="WH_SF", units="WH", label="Energy Available"),
        point("SoC", "uint16", sf="Pct_SF", units="Pct", label="State of Charge"),
        point("SoH", "uint16", sf="Pct_SF", units="Pct", label="State of Health"),
        point("Sta", "enum16", sym={"OK": 0, "WARNING": 1, "ERROR": 2}, label="Status"),
        point("WH_SF", "sunssf"),
        point("Pct_SF", "sunssf"),
    ],
)

_BATTERY_EVENTS = {
    name: bit
    for bit, name in enumerate(
        [
            "COMMUNICATION_ERROR",
            "OVER_TEMP_ALARM",
            "OVER_TEMP_WARNING",
            "UNDER_TEMP_ALARM",
            "UNDER_TEMP_WARNING",
            "OVER_CHARGE_CURRENT_ALARM",
            "OVER_CHARGE_CURRENT_WARNING",
            "OVER_DISCHARGE_CURRENT_ALARM",
            "OVER_DISCHARGE_CURRENT_WARNING",
            "OVER_VOLT_ALARM",
            "OVER_VOLT_WARNING",
            "UNDER_VOLT_ALARM",
            "UNDER_VOLT_WARNING",
            "UNDER_SOC_MIN_ALARM",
            "UNDER_SOC_MIN_WARNING",
            "OVER_SOC_MAX_ALARM",
            "OVER_SOC_MAX_WARNING",
            "VOLTAGE_IMBALANCE_WARNING",
            "TEMPERATURE_IMBALANCE_ALARM",
            "TEMPERATURE_IMBALANCE_WARNING",
            "CONTACTOR_ERROR",
            "FAN_ERROR",
            "GROUND_FAULT",
            "OPEN_DOOR_ERROR",
            "CURRENT_IMBALANCE_WARNING",
            "OTHER_ALARM",
            "OTHER_WARNING",
            "RESERVED_1",
            "CONFIGURATION_ALARM",
            "CONFIGURATION_WARNING",
        ]
    )
}
_BATTERY_TYPES = {
    "NOT APPLICABLE_UNKNOWN": 0,
    "LEAD_ACID": 1,
    "NICKEL_METAL_HYDRATE": 2,
    "NICKEL_CADMIUM": 3,
    "LITHIUM_ION": 4,
    "CARBON_ZINC": 5,
    "ZINC_CHLORIDE": 6,
    "ALKALINE": 7,
    "RECHARGEABLE_ALKALINE": 8,
    "SODIUM_SULFUR": 9,
    "FLOW": 10,
    "OTHER": 99,
}

MODEL_802 = ModelDef.build(
    802,
    "battery",
    "Battery Base Model",
    [
        point("AHRtg", "uint16", sf="AHRtg_SF", units="Ah", m=True),
        point("WHRtg", "uint16", sf="WHRtg_SF", units="Wh", m=True),
        point("WChaRteMax", "uint16", sf="WChaDisChaMax_SF", units="W", m=True),
        point("WDisChaRteMax", "uint16", sf="WChaDisChaMax_SF", units="W", m=True),
        point("DisChaRte", "uint16", sf="DisChaRte_SF", units="%WHRtg"),
        point("SoCMax", "uint16", sf="SoC_SF", units="%WHRtg"),
        point("SoCMin", "uint16", sf="SoC_SF", units="%WHRtg"),
        point("SocRsvMax", "uint16", sf="SoC_SF", units="%WHRtg", rw=True, valid=_PCT),
        point("SoCRsvMin", "uint16", sf="SoC_SF", units="%WHRtg", rw=True, valid=_PCT),
        point("SoC", "uint16", sf="SoC_SF", units="%WHRtg", m=True),
        point("DoD", "uint16", sf="DoD_SF", units="%"),
        point("SoH", "uint16", sf="SoH_SF", units="%"),
        point("NCyc", "uint32"),
        point(
            "ChaSt",
            "enum16",
            sym={
                "OFF": 1,
                "EMPTY": 2,
                "DISCHARGING": 3,
                "CHARGING": 4,
                "FULL": 5,
                "HOLDING": 6,
                "TESTING": 7,
            },
        ),
        point("LocRemCtl", "enum16", m=True, sym={"REMOTE": 0, "LOCAL": 1}),
        point("Hb", "uint16"),
        point("CtrlHb", "uint16", rw=True),
        point("AlmRst", "uint16", rw=True, m=True, valid=(0, 1)),
        point("Typ", "enum16", m=True, sym=_BATTERY_TYPES),
        point(
            "State",
            "enum16",
            m=True,
            sym={
                "DISCONNECTED": 1,
                "INITIALIZING": 2,
                "CONNECTED": 3,
                "STANDBY": 4,
                "SOC PROTECTION": 5,
                "SUSPENDING": 6,
                "FAULT": 99,
            },
        ),
        point("StateVnd", "enum16"),
        point("WarrDt", "uint32"),
        point("Evt1", "bitfield32", m=True, sym=_BATTERY_EVENTS),
        point("Evt2", "bitfield32", m=True),
        point("EvtVnd1", "bitfield32", m=True),
        point("EvtVnd2", "bitfield32", m=True),
        point("V", "uint16", sf="V_SF", units="V", m=True),
        point("VMax", "uint16", sf="V_SF", units="V"),
        point("VMin", "uint16", sf="V_SF", units="V"),
        point("CellVMax", "uint16", sf="CellV_SF", units="V"),
        point("CellVMaxStr", "uint16"),
        point("CellVMaxMod", "uint16"),
        point("CellVMin", "uint16", sf="CellV_SF", units="V"),
        point("CellVMinStr", "uint16"),
        point("CellVMinMod", "uint16"),
        point("CellVAvg", "uint16", sf="CellV_SF", units="V"),
        point("A", "int16", sf="A_SF", units="A", m=True),
        point("AChaMax", "uint16", sf="AMax_SF", units="A"),
        point("ADisChaMax", "uint16", sf="AMax_SF", units="A"),
        point("W", "int16", sf="W_SF", units="W", m=True),
        point("ReqInvState", "enum16", sym={"NO REQUEST": 0, "START": 1, "STOP": 2}),
        point("ReqW", "int16", sf="W_SF", units="W"),
        point("SetOp", "enum16", rw=True, m=True, sym={"CONNECT": 1, "DISCONNECT": 2}),
        point(
            "SetInvState",
            "enum16",
            rw=True,
            m=True,
            sym={"INVERTER_STOPPED": 1, "INVERTER_STANDBY": 2, "INVERTER_STARTED": 3},
        ),
        point("AHRtg_SF", "sunssf", m=True),
        point("WHRtg_SF", "sunssf", m=True),
        point("WChaDisChaMax_SF", "sunssf", m=True),
        point("DisChaRte_SF", "sunssf"),
        point("SoC_SF", "sunssf", m=True),
        point("DoD_SF", "sunssf"),
        point("SoH_SF", "sunssf"),
        point("V_SF", "sunssf", m=True),
        point("CellV_SF", "sunssf", m=True),
        point("A_SF", "sunssf", m=True),
        point("AMax_SF", "sunssf", m=True),
        point("W_SF", "sunssf"),
    ],
)
