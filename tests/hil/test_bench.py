"""Bench files: the shipped ones load, mistakes are reported once with their YAML path and line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qubit_sim.hil.bench import BenchError, load_bench, load_bench_text
from qubit_sim.hil.testing.fake_battery import REGISTER_MAP
from qubit_sim.hil.testing.processes import battery_device

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "hil").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_benches_load(path: Path) -> None:
    bench = load_bench(path)
    assert Path(bench.scenario).is_file() and bench.devices


def test_there_are_shipped_benches() -> None:
    assert {p.name for p in SHIPPED} >= {"battery_bench.yaml", "charger_bench.yaml"}


def _text(**device_changes: object) -> str:
    device = battery_device(1502)
    device.update(device_changes)
    bench = {"name": "b", "scenario": str(ROOT / "hil/scenarios/lab_site.yaml")}
    return yaml.safe_dump({**bench, "devices": [device]}, sort_keys=False)


def test_every_mistake_is_reported_with_its_path_and_line() -> None:
    text = _text(limits={"max_charge_kw": -1, "speed": 3}, revert_s=0)
    with pytest.raises(BenchError) as caught:
        load_bench_text(text, source="bench.yaml")
    paths = {issue.path for issue in caught.value.issues}
    assert paths == {
        "devices[0].limits.max_charge_kw",
        "devices[0].limits.speed",
        "devices[0].revert_s",
    }
    assert all(issue.line for issue in caught.value.issues)
    assert "3 problems in bench" in str(caught.value)
    assert "unknown key 'speed'" in str(caught.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"modbus": {"port": 1502, "sunspec": True, "register_map": REGISTER_MAP}}, "not both"),
        ({"modbus": {"port": 1502}}, "either 'sunspec: true' or a 'register_map'"),
        ({"identity": {"vendor": "x"}}, "identity keys ['vendor'] are not checked for modbus"),
        ({"safe_state": {"p_kw": 9}}, "safe_state.p_kw (9.0) lies outside the limits"),
        ({"protocol": "ocpp"}, "an 'ocpp' device needs an 'ocpp' section"),
    ],
)
def test_inconsistent_devices_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(BenchError) as caught:
        load_bench_text(_text(**changes))
    assert message in str(caught.value)


def test_a_register_map_needs_power_units() -> None:
    register_map = dict(REGISTER_MAP)
    register_map["p"] = {"address": 100, "type": "int32", "unit": "A"}
    with pytest.raises(BenchError, match="p.unit 'A' must be 'W' or 'kW'"):
        load_bench_text(_text(modbus={"port": 1502, "register_map": register_map}))


def test_a_missing_scenario_is_named(tmp_path: Path) -> None:
    text = _text().replace(str(ROOT / "hil/scenarios/lab_site.yaml"), "nowhere.yaml")
    with pytest.raises(BenchError, match="nowhere.yaml' does not exist"):
        load_bench_text(text, base_dir=tmp_path)


def test_devices_must_be_unique() -> None:
    device = battery_device(1502)
    bench = {"name": "b", "scenario": "x.yaml", "devices": [device, device]}
    with pytest.raises(BenchError, match=r"device id \['bess'\] appear more than once"):
        load_bench_text(yaml.safe_dump(bench))
