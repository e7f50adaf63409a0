"""Controllers written outside the package: safe to run, clear when wrong, found by name.

Claims checked here:

* someone else's controller gets read-only views of every per-device observation array (the
  package's own get the simulator's arrays); writing into one stops the run with a
  ControllerError naming the controller, the line and the fix;
* a run whose device state changed outside the physics (a write through ``.base``) fails its
  energy-balance check: marked ``failed``, folder written, listed as failed by the comparison;
  honest runs, with any finite setpoints, never trip it;
* a wrong return type, shape or dtype, and a non-finite battery setpoint, are named as such;
  lists and integer arrays are accepted and give the same run as float arrays; out-of-range
  charger and PV values do what the devices do;
* exceptions in ``act``, ``reset`` and ``stats`` name the controller and the user's file:line;
* controllers registered in the ``qubit_sim.controllers`` entry-point group are found by name
  (entry points monkeypatched at the ``entry_points`` call, and a real distribution on sys.path);
* ``module:Class`` is found in the current folder; a missing module says PYTHONPATH; a misspelt
  class gets "did you mean";
* the manifest records an instance's class path and parameters, enough to reproduce the run;
* parameters are checked against simple type hints before the run.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import qubit_sim
from qubit_sim.control import Controller, Observation, Setpoints, SiteInfo, make_controller
from qubit_sim.control.builtin import RuleBased
from qubit_sim.control.checks import instance_params, parameter_type_issues
from qubit_sim.control.plugins import ENTRY_POINT_GROUP, installed_controllers
from qubit_sim.control.registry import controller_names, default_registry
from qubit_sim.errors import ControllerError, SimulationError
from qubit_sim.scenario.loader import LoadedScenario, load_scenario
from qubit_sim.scenario.simulation import OBSERVATION_ARRAYS, Simulation

HERE = Path(__file__)
ROOT = HERE.parents[2]

TINY = """
site:
  name: tiny
  location: {lat: 52.0, lon: 5.1, tz: Europe/Amsterdam}
  start: 2025-06-02T00:00:00Z
  duration: 1d
  step: 5min
  seed: 3
  grid_connection: {import_kw: 60, export_kw: 40}
assets:
  chargers:
    - {template: ac_22kw, count: 3, id: cp}
  batteries:
    - {capacity_kwh: 50, power_kw: 25, id: bat}
  pv:
    - {kwp: 30, id: roof, weather: "tmy:723170TYA"}
  loads:
    - {id: building, profile: G1-A, annual_kwh: 50000}
evs:
  population: {behaviour: workplace, vehicles: 5}
tariff:
  currency: EUR
  default_rate: 0.30
  demand_charge_per_kw: 5
controller:
  name: rule_based
  period: 15min
"""


def _line_of(marker: str) -> int:
    lines = HERE.read_text(encoding="utf-8").splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.rstrip().endswith(f"# {marker}"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> LoadedScenario:
    path = tmp_path_factory.mktemp("tiny") / "tiny.yaml"
    path.write_text(TINY, encoding="utf-8")
    return load_scenario(path)


def _run(tiny: LoadedScenario, out: Path, controller: Any, **kwargs: Any) -> Any:
    return qubit_sim.run(tiny, out=out, controller=controller, plots=False, settle=False, **kwargs)


def _manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())


# ----------------------------------------------------------------------------- controllers
class Steady(Controller):
    """EVs unlimited, the battery discharging at a fixed power."""

    name = "steady"

    def __init__(self, battery_kw: float = -10.0) -> None:
        self.battery_kw = battery_kw

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        self.sp = Setpoints.unlimited(
            len(site.charger_ids), len(site.battery_ids), len(site.pv_ids)
        )
        self.sp.battery_kw[:] = self.battery_kw
        self.seen: list[Observation] = []

    def act(self, obs: Observation) -> Setpoints:
        self.seen.append(obs)
        return self.sp


class WritesObservation(Steady):
    name = "writes"

    def __init__(self, how: str = "setitem") -> None:
        super().__init__()
        self.how = how

    def act(self, obs: Observation) -> Setpoints:
        if self.how == "setitem":
            obs.battery_soc[:] = 0.9  # writes here
        else:
            soc = obs.battery_soc
            soc += 0.0  # adds in place here
        return self.sp


class Sneaky(Steady):
    """Gets round the read-only view through its base: the energy balance catches it."""

    name = "sneaky"

    def act(self, obs: Observation) -> Setpoints:
        obs.battery_soc.base[:] = 0.9
        return self.sp


class Returns(Controller):
    name = "returns"

    def __init__(self, what: str = "none") -> None:
        self.what = what

    def act(self, obs: Observation) -> Any:
        n_c, n_b, n_pv = len(obs.charger_connected), len(obs.battery_soc), len(obs.pv_available_kw)
        charger, battery, pv = np.full(n_c, 7.0), np.full(n_b, 5.0), np.full(n_pv, np.nan)
        what = self.what
        if what == "none":
            return None
        if what == "tuple":
            return (charger, battery, pv)
        if what == "dict":
            return {"charger_kw": charger, "battery_kw": battery, "pv_limit_kw": pv}
        if what == "scalar":
            return Setpoints(7.0, 5.0, np.nan)  # type: ignore[arg-type]
        if what == "text":
            return Setpoints(np.array(["7"] * n_c), battery, pv)
        if what == "bool":
            return Setpoints(np.ones(n_c, dtype=bool), battery, pv)
        if what in ("inf_battery", "-inf_battery", "nan_battery"):
            value = {"inf_battery": np.inf, "-inf_battery": -np.inf, "nan_battery": np.nan}[what]
            return Setpoints(charger, np.full(n_b, value), pv)
        if what == "list":
            return Setpoints(charger.tolist(), battery.tolist(), pv.tolist())  # type: ignore[arg-type]
        if what == "int":
            return Setpoints(np.full(n_c, 7), np.full(n_b, 5), pv)
        if what == "inf_charger":
            return Setpoints(np.full(n_c, np.inf), battery, pv)
        if what == "nan_charger":
            return Setpoints(np.full(n_c, np.nan), battery, pv)
        if what == "negative":
            return Setpoints(np.full(n_c, -5.0), battery, np.full(n_pv, -10.0))
        return Setpoints(charger, battery, pv)


class Raises(Steady):
    name = "raises"

    def __init__(self, where: str = "act") -> None:
        super().__init__()
        self.where = where

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        super().reset(site, rng)
        if self.where == "reset":
            raise KeyError("no such tariff")  # raises in reset

    def act(self, obs: Observation) -> Setpoints:
        if self.where == "act" and obs.t_s >= 3600:
            raise ValueError("my bug in act")  # raises in act
        return self.sp

    def stats(self) -> dict[str, float]:
        if self.where == "stats":
            return {"ratio": 1 / 0}  # raises in stats
        return {"my_figure": 1.5}


class Typed(Controller):
    name = "typed"

    def __init__(
        self,
        cap_kw: float = 1.0,
        slots: int = 4,
        enabled: bool = True,
        mode: Literal["eco", "fast"] = "eco",
        label: str | None = None,
        anything: Any = None,
        untyped=None,  # noqa: ANN001
    ) -> None:
        self.cap_kw, self.slots, self.enabled, self.mode = cap_kw, slots, enabled, mode
        self.label, self.anything, self.untyped = label, anything, untyped

    def act(self, obs: Observation) -> Setpoints:
        return Setpoints.unlimited(len(obs.charger_connected), len(obs.battery_soc), 1)


class CarriesParams(Steady):
    name = "carries"

    def __init__(self, **params: Any) -> None:
        super().__init__(params.get("battery_kw", -10.0))
        self.params = dict(params)


# ------------------------------------------------------------------ 1a: read-only observations
@pytest.mark.parametrize(
    ("how", "marker"), [("setitem", "writes here"), ("ufunc", "adds in place here")]
)
def test_writing_into_the_observation_stops_the_run(
    tiny: LoadedScenario, tmp_path: Path, how: str, marker: str
) -> None:
    with pytest.raises(SimulationError) as info:
        _run(tiny, tmp_path, WritesObservation(how))
    cause = info.value.__cause__
    assert isinstance(cause, ControllerError)
    text = str(cause)
    assert f"controller 'writes' ({__name__}:WritesObservation)" in text
    assert f"{HERE}:{_line_of(marker)} (in act)" in text
    assert "read-only" in text and "obs.battery_soc.copy()" in text
    manifest = _manifest(tmp_path)
    assert manifest["status"] == "incomplete" and text in manifest["error"]


def test_observation_arrays_are_read_only_views_for_others_and_direct_for_the_package(
    tiny: LoadedScenario,
) -> None:
    from qubit_sim.scenario.build import build_site

    mine = Steady()
    sim = Simulation(build_site(tiny, until_s=3600, controller=mine))
    sim.run()
    obs = mine.seen[-1]
    assert all(mine.seen[0] is o for o in mine.seen)  # one object, reused
    for name in OBSERVATION_ARRAYS:
        assert not getattr(obs, name).flags.writeable, name
    assert obs.charger_connected.base is sim.fleet.connected  # a view of the live state
    own = Simulation(build_site(tiny, until_s=3600, controller=RuleBased()))
    own.run()
    assert own._obs.charger_connected is own.fleet.connected
    assert own._obs.battery_soc.flags.writeable


def test_the_oracle_is_read_only_for_others(tiny: LoadedScenario) -> None:
    from qubit_sim.scenario.build import build_site

    mine = Steady()
    Simulation(build_site(tiny, until_s=3600, controller=mine))
    oracle = mine.site.oracle
    assert oracle is not None
    with pytest.raises(ValueError, match="read-only"):
        oracle.load_kw[:] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        oracle.price_per_kwh[0] = -1.0


# ----------------------------------------------------------------------- 1b: energy balance
def test_a_broken_energy_balance_fails_the_run_and_keeps_the_folder(
    tiny: LoadedScenario, tmp_path: Path
) -> None:
    with pytest.raises(SimulationError, match="energy balance broken by") as info:
        _run(tiny, tmp_path / "sneaky", Sneaky())
    assert "a controller writing into its observation" in str(info.value)
    assert "marked failed" in str(info.value)
    manifest = _manifest(tmp_path / "sneaky")
    assert manifest["status"] == "failed" and "energy balance broken" in manifest["error"]
    assert manifest["steps_done"] == manifest["n_steps"]
    kpis = json.loads((tmp_path / "sneaky" / "kpis.json").read_text())
    assert kpis["energy_balance_error_kwh"] > 1.0
    assert (tmp_path / "sneaky" / "timeseries.parquet").is_file()
    # The same controller without the write: complete, balance at rounding level.
    honest = _run(tiny, tmp_path / "honest", Steady())
    assert honest.complete and honest.kpis["energy_balance_error_kwh"] < 1e-9


def test_compare_lists_a_broken_balance_as_failed(tmp_path: Path, tiny: LoadedScenario) -> None:
    from qubit_sim.experiments.harness import ControllerSpec, RunTask, run_task

    assert tiny.path is not None
    rows = [
        run_task(
            RunTask(
                "tiny",
                str(tiny.path),
                ControllerSpec(label, f"{__name__}:{cls}"),
                0,
                str(tmp_path / label),
                until_s=6 * 3600,
            )
        )
        for label, cls in (("sneaky", "Sneaky"), ("steady", "Steady"))
    ]
    assert rows[0]["status"] == "failed" and "energy balance broken" in rows[0]["error"]
    assert rows[1]["status"] == "complete" and rows[1]["error"] == ""


class RandomFinite(Controller):
    """Random finite setpoints, far outside every range, and NaN limits."""

    name = "random_finite"

    def __init__(self, scale: float = 100.0) -> None:
        self.scale = scale

    def act(self, obs: Observation) -> Setpoints:
        n_c, n_b = len(obs.charger_connected), len(obs.battery_soc)
        charger = self.rng.uniform(-self.scale, self.scale, n_c)
        charger[self.rng.random(n_c) < 0.3] = np.nan
        pv = self.rng.uniform(-self.scale, self.scale, len(obs.pv_available_kw))
        return Setpoints(charger, self.rng.uniform(-self.scale, self.scale, n_b), pv)


@settings(max_examples=6, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([1.0, 30.0, 1e6]))
def test_honest_runs_never_trip_the_balance_check(
    tiny: LoadedScenario, tmp_path: Path, seed: int, scale: float
) -> None:
    result = _run(tiny, tmp_path / "r", RandomFinite(scale), seed=seed, until_s=12 * 3600)
    assert result.complete
    assert result.kpis["energy_balance_error_kwh"] < 1e-6


# ---------------------------------------------------------------- 2/3: what act returns
@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("none", "`act` returned NoneType; it must return a Setpoints"),
        ("tuple", "`act` returned tuple; it must return a Setpoints"),
        ("dict", "`act` returned dict; it must return a Setpoints"),
        ("scalar", "returned charger_kw of shape (); expected (3,): one value per charger"),
        ("text", "returned charger_kw of dtype <U1 (text); expected numbers [kW]"),
        ("bool", "returned charger_kw of dtype bool (booleans)"),
        ("inf_battery", "returned inf battery_kw for a battery; a battery setpoint must be finite"),
        ("-inf_battery", "returned -inf battery_kw for a battery"),
        ("nan_battery", "returned NaN battery_kw for a battery"),
    ],
)
def test_wrong_setpoints_are_named(
    tiny: LoadedScenario, tmp_path: Path, what: str, message: str
) -> None:
    with pytest.raises(SimulationError) as info:
        _run(tiny, tmp_path, Returns(what), until_s=3600)
    assert isinstance(info.value.__cause__, ControllerError)
    text = str(info.value.__cause__).replace("must be a finite power", "must be finite")
    assert f"controller 'returns' ({__name__}:Returns)" in text
    assert message in text


@pytest.fixture(scope="module")
def float_run(tiny: LoadedScenario, tmp_path_factory: pytest.TempPathFactory) -> Any:
    return _run(tiny, tmp_path_factory.mktemp("float"), Returns("float"), until_s=12 * 3600)


@pytest.mark.parametrize("what", ["list", "int"])
def test_lists_and_integer_arrays_run_as_float_arrays(
    tiny: LoadedScenario, tmp_path: Path, float_run: Any, what: str
) -> None:
    result = _run(tiny, tmp_path, Returns(what), until_s=12 * 3600)
    assert result.complete
    assert result.timeseries().equals(float_run.timeseries())


def test_out_of_range_charger_and_pv_values_do_what_devices_do(
    tiny: LoadedScenario, tmp_path: Path
) -> None:
    infinite = _run(tiny, tmp_path / "inf", Returns("inf_charger"), until_s=12 * 3600).timeseries()
    unlimited = _run(tiny, tmp_path / "nan", Returns("nan_charger"), until_s=12 * 3600)
    assert infinite.equals(unlimited.timeseries())  # +inf = no limit
    assert unlimited.timeseries()["ev_p_kw"].max() > 7.0
    negative = _run(tiny, tmp_path / "neg", Returns("negative"), until_s=12 * 3600).timeseries()
    assert negative["ev_p_kw"].abs().max() == 0.0  # a negative limit is 0 kW
    assert negative["pv_available_kw"].max() > 1.0 and negative["pv_kw"].abs().max() == 0.0


# ---------------------------------------------------------------- 4: exceptions in user code
def test_an_exception_in_act_names_the_controller_and_the_line(
    tiny: LoadedScenario, tmp_path: Path
) -> None:
    with pytest.raises(SimulationError) as info:
        _run(tiny, tmp_path, Raises("act"))
    text = str(info.value)
    expected = (
        f"controller 'raises' ({__name__}:Raises) raised ValueError in act() at "
        f"{HERE}:{_line_of('raises in act')} (in act): my bug in act"
    )
    assert expected in text and "t=3600 s" in text
    chain, cause = [], info.value.__cause__
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__
    assert isinstance(chain[-1], ValueError)  # the user's traceback is kept
    assert expected in _manifest(tmp_path)["error"]


def test_an_exception_in_reset_names_the_controller_and_the_line(
    tiny: LoadedScenario, tmp_path: Path
) -> None:
    with pytest.raises(ControllerError) as info:
        _run(tiny, tmp_path, Raises("reset"))
    assert f"raised KeyError in reset() at {HERE}:{_line_of('raises in reset')}" in str(info.value)
    manifest = _manifest(tmp_path)
    assert manifest["status"] == "incomplete" and "KeyError" in manifest["error"]


def test_stats_go_to_the_kpis_and_a_failing_stats_fails_the_run(
    tiny: LoadedScenario, tmp_path: Path
) -> None:
    assert _run(tiny, tmp_path / "ok", Raises("none"), until_s=3600).kpis["my_figure"] == 1.5
    with pytest.raises(SimulationError, match="raised ZeroDivisionError in stats"):
        _run(tiny, tmp_path / "bad", Raises("stats"), until_s=3600)
    assert _manifest(tmp_path / "bad")["status"] == "failed"


def test_the_cli_prints_the_controller_and_the_line(tiny: LoadedScenario, tmp_path: Path) -> None:
    from qubit_sim.cli import app

    assert tiny.path is not None
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(tiny.path),
            "--controller",
            f"{__name__}:Raises",
            "--out",
            str(tmp_path),
            "--no-plots",
            "-q",
        ],
        env={"COLUMNS": "400"},
    )
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert f"raised ValueError in act() at {HERE}:{_line_of('raises in act')}" in output


# ---------------------------------------------------------------- 5: names and import paths
class _FakeEntryPoints:
    """Installed entry points of the controller group, as importlib.metadata returns them."""

    def __init__(self, entries: dict[str, str]) -> None:
        self.entries = importlib.metadata.EntryPoints(
            importlib.metadata.EntryPoint(name, value, ENTRY_POINT_GROUP)
            for name, value in entries.items()
        )
        self.calls = 0

    def __call__(self, **selection: Any) -> Any:
        self.calls += 1
        assert selection == {"group": ENTRY_POINT_GROUP}
        return self.entries


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(entries: dict[str, str]) -> _FakeEntryPoints:
        fake = _FakeEntryPoints(entries)
        monkeypatch.setattr(importlib.metadata, "entry_points", fake)
        installed_controllers.cache_clear()
        return fake

    yield install
    installed_controllers.cache_clear()


def test_entry_points_register_controllers_by_name(
    plugins: Any, tiny: LoadedScenario, tmp_path: Path
) -> None:
    fake = plugins({"mine": f"{__name__}:Steady", "rule_based": f"{__name__}:Typed"})
    assert "mine" in controller_names()
    assert default_registry().describe()["mine"] == f"plug-in ({__name__}:Steady)"
    controller = make_controller("mine", {"battery_kw": -5.0})
    assert isinstance(controller, Steady) and controller.battery_kw == -5.0
    assert isinstance(make_controller("rule_based"), RuleBased)  # a built-in is not replaced
    # A scenario names it; validation and the run find it.
    assert tiny.path is not None
    text = tiny.path.read_text().replace("name: rule_based", "name: mine")
    named = tmp_path / "named.yaml"
    named.write_text(text, encoding="utf-8")
    result = qubit_sim.run(named, out=tmp_path / "out", until_s=3600, plots=False, settle=False)
    assert result.manifest["controller"] == "mine"
    assert result.manifest["controller_class"] == f"{__name__}:Steady"
    assert fake.calls == 1  # read once, however often names are looked up


def test_an_installed_distribution_registers_its_controllers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shipped_ctl.py").write_text(
        "from qubit_sim.control.builtin import Uncontrolled\n\n"
        "class Shipped(Uncontrolled):\n    name = 'shipped'\n",
        encoding="utf-8",
    )
    info = tmp_path / "shipped_ctl-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shipped-ctl\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nshipped = shipped_ctl:Shipped\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "shipped_ctl", raising=False)
    installed_controllers.cache_clear()
    try:
        assert installed_controllers()["shipped"] == (
            "shipped_ctl:Shipped",
            "plug-in from shipped-ctl (shipped_ctl:Shipped)",
        )
        assert make_controller("shipped").name == "shipped"
    finally:
        installed_controllers.cache_clear()
        sys.modules.pop("shipped_ctl", None)


def test_unknown_names_point_to_entry_points(plugins: Any) -> None:
    plugins({})
    with pytest.raises(ControllerError, match="'qubit_sim.controllers' entry-point group"):
        make_controller("mine")


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current folder, not on the import path; sys.path and sys.modules restored after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("cwd_ctl")]:
        del sys.modules[name]


def test_module_class_is_found_in_the_current_folder(folder: Path) -> None:
    (folder / "cwd_ctl_a.py").write_text(
        "from qubit_sim.control.builtin import Uncontrolled\n\n"
        "class Mine(Uncontrolled):\n    name = 'mine'\n\n"
        "class Other(Uncontrolled):\n    name = 'other'\n",
        encoding="utf-8",
    )
    assert make_controller("cwd_ctl_a:Mine").name == "mine"
    with pytest.raises(
        ControllerError,
        match=r"no attribute 'Mien' \(did you mean 'Mine'\?\); "
        r"its controllers: Mine, Other",
    ):
        make_controller("cwd_ctl_a:Mien")


def test_a_missing_module_says_how_to_make_it_importable(folder: Path) -> None:
    with pytest.raises(ControllerError) as info:
        make_controller("cwd_ctl_nowhere:Mine")
    text = str(info.value)
    assert "no module named 'cwd_ctl_nowhere'" in text and str(folder) in text
    assert "PYTHONPATH" in text and "cwd_ctl_nowhere.py" in text


def test_a_broken_module_names_its_line(folder: Path) -> None:
    (folder / "cwd_ctl_syntax.py").write_text("x = 1\ndef broken(:\n", encoding="utf-8")
    with pytest.raises(ControllerError, match=r"cwd_ctl_syntax.py:2: SyntaxError"):
        make_controller("cwd_ctl_syntax:Mine")
    (folder / "cwd_ctl_dep.py").write_text("import cwd_ctl_missing_dependency\n")
    with pytest.raises(ControllerError, match="a module it imports is missing"):
        make_controller("cwd_ctl_dep:Mine")
    (folder / "cwd_ctl_raise.py").write_text("x = 1\nraise RuntimeError('at import')\n")
    with pytest.raises(ControllerError, match=r"cwd_ctl_raise.py:2 \(in <module>\): RuntimeError"):
        make_controller("cwd_ctl_raise:Mine")


# ------------------------------------------------------------------- 6: the manifest records
def test_the_manifest_records_an_instance_and_reproduces_its_run(
    tiny: LoadedScenario, tmp_path: Path
) -> None:
    first = _run(tiny, tmp_path / "a", Steady(battery_kw=-4.0), until_s=6 * 3600)
    manifest = first.manifest
    assert manifest["controller"] == "steady"
    assert manifest["controller_class"] == f"{__name__}:Steady"
    assert manifest["controller_params"] == {"battery_kw": -4.0}
    assert "controller_params_unrecorded" not in manifest
    again = _run(
        tiny,
        tmp_path / "b",
        manifest["controller_class"],
        controller_params=manifest["controller_params"],
        until_s=6 * 3600,
    )
    assert again.timeseries().equals(first.timeseries())
    assert _manifest(tmp_path / "b")["controller_class"] == f"{__name__}:Steady"


def test_instance_params_come_from_params_or_attributes() -> None:
    assert instance_params(CarriesParams(battery_kw=-3, note="x")) == (
        {"battery_kw": -3, "note": "x"},
        [],
    )
    typed = Typed(cap_kw=np.float64(2.5), anything=object())
    del typed.untyped
    params, unrecorded = instance_params(typed)
    assert params["cap_kw"] == 2.5 and type(params["cap_kw"]) is float
    assert params["mode"] == "eco" and params["label"] is None
    assert unrecorded == ["anything", "untyped"]


# ------------------------------------------------------------------ 7: parameter type hints
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"cap_kw": "cheap"}, "cap_kw='cheap' is a str; expected a float"),
        ({"cap_kw": "1e3"}, "YAML reads 1e3 as text"),
        ({"cap_kw": True}, "cap_kw=True is a bool; expected a float"),
        ({"slots": 2.5}, "slots=2.5 is a float; expected an int"),
        ({"enabled": "yes"}, "enabled='yes' is a str; expected a bool"),
        ({"mode": "turbo"}, "mode='turbo' is a str; expected one of 'eco', 'fast'"),
        ({"label": 3}, "label=3 is an int; expected a str or None (null)"),
    ],
)
def test_parameters_are_checked_against_simple_type_hints(
    params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ControllerError, match="rejected its parameters") as info:
        make_controller(f"{__name__}:Typed", params)
    assert message in str(info.value)


def test_fitting_and_unchecked_parameters_pass() -> None:
    good = {
        "cap_kw": 3,
        "slots": np.int64(5),
        "enabled": False,
        "mode": "fast",
        "label": None,
        "anything": [1, "x"],
        "untyped": "whatever",
    }
    assert parameter_type_issues(Typed, good) == []
    assert make_controller(f"{__name__}:Typed", good).slots == 5
    # The package's own controllers are checked too, after their own checks.
    with pytest.raises(ControllerError, match="threshold_kw='high' is a str; expected a float"):
        make_controller("rule_based", {"threshold_kw": "high"})


def test_set_is_refused_before_the_run(tiny: LoadedScenario, tmp_path: Path) -> None:
    from qubit_sim.cli import app

    assert tiny.path is not None
    out = tmp_path / "never"
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(tiny.path),
            "--controller",
            f"{__name__}:Typed",
            "--set",
            "cap_kw=cheap",
            "--out",
            str(out),
            "-q",
        ],
        env={"COLUMNS": "400"},
    )
    assert result.exit_code == 2
    assert "cap_kw='cheap' is a str; expected a float" in " ".join(result.output.split())
    assert not out.exists()


def test_a_controller_that_asks_for_direct_arrays_gets_the_simulators_own() -> None:
    from qubit_sim.control.base import Controller
    from qubit_sim.control.checks import is_package_controller

    class Direct(Controller):
        direct_observation = True

    class Viewed(Controller):
        pass

    assert is_package_controller(Direct()) and not is_package_controller(Viewed())
