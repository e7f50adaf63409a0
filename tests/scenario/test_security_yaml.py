"""OCPP security profiles chosen in the scenario's ``ocpp:`` section, over real sockets.

For profiles 1, 2 and 3 a short wire run boots every charger twin with the right credentials
(password, CA, client certificate), while a charge point with a wrong password, one that does
not trust the CSMS's CA, or one with a client certificate of another CA is refused.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from qubit_sim.errors import ProtocolError, ScenarioError
from qubit_sim.protocols.ocpp_security import client_ssl_context, make_pki
from qubit_sim.scenario.build import build_site
from qubit_sim.scenario.loader import load_scenario_text
from qubit_sim.scenario.wire import WireSimulation, ocpp_security
from qubit_sim.twins.ocpp_cp import OcppChargePointTwin

ROOT = Path(__file__).resolve().parents[2]
# Without the feeder's power flow: a site without one can be deep-copied exactly.
DEPOT = (
    (ROOT / "scenarios" / "depot_overnight.yaml")
    .read_text()
    .replace("power_flow: true", "power_flow: false")
)
MINUTES = 10


def _loaded(extra: str) -> Any:
    return load_scenario_text(DEPOT + extra, base_dir=ROOT / "scenarios")


@pytest.fixture(scope="module")
def depot() -> Any:
    return build_site(_loaded(""), until_s=MINUTES * 60)


def _with(site: Any, extra: str) -> Any:
    scenario = copy.copy(site.scenario)
    object.__setattr__(scenario, "spec", _loaded(extra).spec)
    return dataclasses.replace(copy.deepcopy(site), scenario=scenario)


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A PKI the site does not know, with a client certificate for a twin's identity."""
    return make_pki(tmp_path_factory.mktemp("stranger"), ["depot_ac1"])


def _intruder(
    sim: WireSimulation, password: str | None, ssl_context: Any, scheme: str | None = None
) -> None:
    assert sim.csms is not None
    url = sim.csms.url
    if scheme is not None:
        url = scheme + url.split(":", 1)[1]
    twin = OcppChargePointTwin(
        sim.devices.chargers[0],
        "depot_ac1",
        url,
        clock=sim._now,
        password=password,
        ssl_context=ssl_context,
        response_timeout_s=5.0,
    )
    try:
        sim._call(twin.connect())
    finally:
        sim._call(twin.close())


def _run_checked(sim: WireSimulation, refused: list[tuple[str | None, Any]]) -> str:
    """Open the sockets, try each refused (password, TLS context), then run to the end.

    Returns:
        The CSMS's URL.
    """
    sim._call(sim._start())
    assert sim.csms is not None
    url = sim.csms.url
    try:
        assert all(twin.booted for twin in sim.twins)
        for password, context in refused:
            with pytest.raises(ProtocolError):
                _intruder(sim, password, context)
        sim.run()
    finally:
        sim.close()
    assert sim.csms is not None
    for cp_id in sim.fleet.ids:
        record = sim.csms.state.charge_points[cp_id]
        assert record.boots == 1 and record.connects == 1
    return url


def test_profile_1_basic_auth(depot: Any) -> None:
    passwords = {cp_id: f"secret-{cp_id}-0123456789"[:40] for cp_id in depot.fleet.ids}
    entries = ", ".join(f"{k}: {v}" for k, v in passwords.items())
    site = _with(depot, f"ocpp: {{security_profile: 1, passwords: {{{entries}}}}}\n")
    sim = WireSimulation(site)
    assert sim.csms is None
    url = _run_checked(sim, [("wrong-password-0123456789", None), (None, None)])
    assert sim.security.profile == 1 and sim.security.passwords == passwords
    assert url.startswith("ws://")


def test_profile_2_tls_and_basic_auth(depot: Any, tmp_path: Path, stranger: Any) -> None:
    site = _with(depot, "ocpp: {security_profile: 2}\n")
    sim = WireSimulation(site, events_path=tmp_path / "events.jsonl")
    sim._call(sim._start())
    security = sim.security
    assert security.profile == 2 and security.pki_dir == tmp_path / "pki"
    assert (tmp_path / "pki").is_dir()
    trusted = security.client_ssl["depot_ac2"]
    assert sim.csms is not None and sim.csms.url.startswith("wss://")
    right = security.passwords["depot_ac1"]
    try:
        for password, context in (
            ("wrong-password-0123456789", trusted),  # right TLS, wrong password
            (right, client_ssl_context(stranger.ca_cert)),  # does not trust the CSMS
        ):
            with pytest.raises(ProtocolError):
                _intruder(sim, password, context)
        with pytest.raises(ProtocolError):
            _intruder(sim, right, None, scheme="ws")  # no TLS at all
        sim.run()
    finally:
        sim.close()
    assert sim.csms is not None
    assert all(sim.csms.state.charge_points[c].boots == 1 for c in sim.fleet.ids)


def test_profile_3_client_certificates(depot: Any, tmp_path: Path, stranger: Any) -> None:
    site = _with(depot, "ocpp: {security_profile: 3}\n")
    sim = WireSimulation(site, timeseries_path=tmp_path / "timeseries.parquet")
    sim._call(sim._start())
    security = sim.security
    assert security.profile == 3 and security.passwords == {}
    assert security.pki_dir == tmp_path / "pki"
    ca_cert = security.pki_dir / "ca.crt"
    assert ca_cert.is_file()
    try:
        for context in (
            # Trusts the CSMS, but the client certificate is from another CA.
            client_ssl_context(ca_cert, *stranger.clients["depot_ac1"]),
            client_ssl_context(ca_cert),  # no client certificate at all
        ):
            with pytest.raises(ProtocolError):
                _intruder(sim, None, context)
        sim.run()
    finally:
        sim.close()
    assert all(sim.csms.state.charge_points[c].boots == 1 for c in sim.fleet.ids)  # type: ignore[union-attr]


def test_certificate_files_from_the_yaml(depot: Any, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "mine", depot.fleet.ids)
    clients = ", ".join(f"{i}: {{cert: {c}, key: {k}}}" for i, (c, k) in pki.clients.items())
    site = _with(
        depot,
        "ocpp:\n  security_profile: 3\n  certificates:\n"
        f"    {{ca_cert: {pki.ca_cert}, server_cert: {pki.server_cert}, "
        f"server_key: {pki.server_key}, clients: {{{clients}}}}}\n",
    )
    sim = WireSimulation(site)
    _run_checked(sim, [])
    assert sim.security.pki_dir is None


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        (
            "ocpp: {security_profile: 1, passwords: {depot_ac01: aaaaaaaaaaaaaaaaaaaa}}\n",
            "ocpp.passwords.depot_ac01",
            "did you mean 'depot_ac1'",
        ),
        (
            "ocpp: {security_profile: 2, passwords: {depot_ac1: aaaaaaaaaaaaaaaaaaaa}}\n",
            "ocpp.passwords",
            "no password for the charger twins",
        ),
        (
            "ocpp: {security_profile: 3, certificates: {ca_cert: nowhere/ca.pem, "
            "server_cert: s.pem, server_key: k.pem}}\n",
            "ocpp.certificates",
            "no such file",
        ),
    ],
)
def test_incomplete_security_is_named(depot: Any, extra: str, path: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        ocpp_security(_with(depot, extra), None)
    assert any(i.path == path and message in i.message for i in info.value.issues)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("ocpp: {security_profile: 4}\n", "security_profile"),
        ("ocpp: {security_profile: 1, passwords: {depot_ac1: short}}\n", "16 to 40"),
        ("ocpp: {security_profil: 1}\n", "security_profil"),
    ],
)
def test_invalid_ocpp_sections_are_rejected(extra: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        _loaded(extra)
    assert expected in str(info.value)
