"""Loading feeders by spec and finding buses."""

from __future__ import annotations

from typing import Any

import pytest

import qubit_sim.grid as grid
from qubit_sim.errors import GridError, QubitSimError
from qubit_sim.grid import known_specs, load_network, network_buses, resolve_bus

LV_CODE = "1-LV-rural1--0-sw"


def test_public_api_is_pinned() -> None:
    assert sorted(grid.__all__) == sorted(
        [
            "PROFILE_CLOCK_UTC_OFFSET_H",
            "PROFILE_STEP_S",
            "PROFILE_YEAR",
            "RUNPP_OPTIONS",
            "BackgroundProfiles",
            "FastPowerFlow",
            "PowerFlowResult",
            "background_profiles",
            "known_specs",
            "load_network",
            "network_buses",
            "profile_row_index",
            "resolve_bus",
            "runpp_reference",
        ]
    )
    for name in grid.__all__:
        assert hasattr(grid, name), name


def test_simbench_code_loads_with_and_without_prefix(lv_net_shared: Any) -> None:
    plain = load_network(LV_CODE)
    prefixed = load_network("simbench:" + LV_CODE)
    assert len(plain.bus) == len(prefixed.bus) == len(lv_net_shared.bus) == 15
    assert len(plain.load) == 13
    assert len(plain.sgen) == 4


def test_each_call_returns_an_independent_copy(lv_net_shared: Any) -> None:
    first = load_network(LV_CODE)
    first.load.loc[first.load.index[0], "p_mw"] = 123.0
    first.bus.drop(first.bus.index[-1], inplace=True)
    second = load_network(LV_CODE)
    assert second.load["p_mw"].iloc[0] != 123.0
    assert len(second.bus) == 15
    assert second is not lv_net_shared


def test_pandapower_builtin_network() -> None:
    net = load_network("pandapower:create_cigre_network_lv")
    assert len(net.bus) == 44
    assert len(net.trafo) == 3


@pytest.mark.parametrize(
    ("spec", "suggestion"),
    [
        ("1-LV-rural1--0-sx", "1-LV-rural1--0-sw"),
        ("simbench:1-MV-rurall--0-sw", "1-MV-rural--0-sw"),
        ("pandapower:mv_oberhein", "pandapower:mv_oberrhein"),
        ("pandapower:create_cigre_network_l", "pandapower:create_cigre_network_lv"),
    ],
)
def test_unknown_spec_suggests_close_names(spec: str, suggestion: str) -> None:
    with pytest.raises(GridError) as info:
        load_network(spec)
    message = str(info.value)
    assert spec in message
    assert "did you mean" in message
    assert repr(suggestion) in message


def test_unrelated_spec_explains_the_accepted_forms() -> None:
    with pytest.raises(GridError, match="SimBench code") as info:
        load_network("zzzzqqqq")
    assert isinstance(info.value, QubitSimError)
    with pytest.raises(GridError, match="non-empty"):
        load_network("")


def test_pandapower_helper_that_is_not_a_network_is_rejected() -> None:
    with pytest.raises(GridError, match="not a network function"):
        load_network("pandapower:create_bus")


def test_known_specs_cover_both_sources() -> None:
    specs = known_specs()
    assert LV_CODE in specs
    assert "pandapower:mv_oberrhein" in specs
    assert "pandapower:create_bus" not in specs


def test_resolve_bus_by_index_name_and_digit_string(lv_net_shared: Any) -> None:
    net = lv_net_shared
    index = int(net.bus.index[4])
    name = str(net.bus.at[index, "name"])
    assert resolve_bus(net, index) == index
    assert resolve_bus(net, name) == index
    assert resolve_bus(net, str(index)) == index


def test_resolve_bus_unknown_index_lists_choices(lv_net_shared: Any) -> None:
    with pytest.raises(GridError) as info:
        resolve_bus(lv_net_shared, 9999)
    assert "9999" in str(info.value)
    assert "valid buses include" in str(info.value)
    assert "15 buses in all" in str(info.value)


def test_resolve_bus_typo_in_name_suggests(lv_net_shared: Any) -> None:
    with pytest.raises(GridError) as info:
        resolve_bus(lv_net_shared, "LV1.101 Bus 44")
    assert "did you mean" in str(info.value)
    assert "'LV1.101 Bus 4'" in str(info.value)


def test_resolve_bus_rejects_ambiguous_names_and_bad_types(lv_net: Any) -> None:
    lv_net.bus.loc[lv_net.bus.index[:2], "name"] = "twin"
    with pytest.raises(GridError, match="used by 2 buses"):
        resolve_bus(lv_net, "twin")
    with pytest.raises(GridError, match="boolean"):
        resolve_bus(lv_net, True)
    with pytest.raises(GridError, match="index"):
        resolve_bus(lv_net, 1.5)  # type: ignore[arg-type]


def test_network_buses_lists_index_and_name(lv_net_shared: Any) -> None:
    buses = network_buses(LV_CODE)
    assert len(buses) == 15
    assert buses[0] == (int(lv_net_shared.bus.index[0]), str(lv_net_shared.bus["name"].iloc[0]))
    assert all(isinstance(i, int) and isinstance(n, str) for i, n in buses)
