"""The OCPP 2.0.1 device model of a charge point twin: what GetVariables reads and a base report
(GetBaseReport, use case B07) lists.

Two kinds of variables make it up:

* the configuration (:class:`~qubit_sim.twins.ocpp_config.TwinConfig` entries that 2.0.1
  addresses as ``Controller.Variable``), read-write where the twin acts on a change;
* the station itself, read-only and read from the device at the instant of the request:
  ``ChargingStation`` (vendor, model, availability), one ``EVSE`` per connector of the device
  (availability, power with its rating, phases) and its single ``Connector`` (availability).

Report bases: ``FullInventory`` lists everything, ``ConfigurationInventory`` the variables a CSMS
may set, ``SummaryInventory`` the availability of the station, its EVSEs and connectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qubit_sim.twins.charger_device import ChargerDevice, ConnectorStatus
from qubit_sim.twins.ocpp_config import TwinConfig

__all__ = ["REPORT_BASES", "DeviceModel", "ModelVariable"]

#: The report bases of GetBaseReport the twin answers.
REPORT_BASES = ("ConfigurationInventory", "FullInventory", "SummaryInventory")

_AVAILABILITY_STATES = "Available,Occupied,Reserved,Unavailable,Faulted"


@dataclass(frozen=True)
class ModelVariable:
    """One variable of the device model with its value now.

    Attributes:
        component: Component name (``OCPPCommCtrlr``, ``EVSE``, ...).
        variable: Variable name.
        value: Actual value as a string.
        data_type: 2.0.1 ``DataEnumType`` (``integer``, ``boolean``, ``MemberList``, ...).
        readonly: Mutability ``ReadOnly`` (else ``ReadWrite``).
        evse: EVSE id of an ``EVSE`` or ``Connector`` component, else ``None``.
        connector: Connector id on the EVSE of a ``Connector`` component, else ``None``.
        unit: Unit of the value, or ``None``.
        max_limit: Largest possible value (for a list: longest string), or ``None``.
        values_list: Allowed values of an option or member list, or ``None``.
        constant: Whether the value never changes at runtime.
    """

    component: str
    variable: str
    value: str
    data_type: str
    readonly: bool
    evse: int | None = None
    connector: int | None = None
    unit: str | None = None
    max_limit: float | None = None
    values_list: str | None = None
    constant: bool = False

    def report_data(self) -> dict[str, Any]:
        """The variable as a NotifyReport ``ReportDataType`` (camelCase)."""
        component: dict[str, Any] = {"name": self.component}
        if self.evse is not None:
            evse: dict[str, Any] = {"id": self.evse}
            if self.connector is not None:
                evse["connectorId"] = self.connector
            component["evse"] = evse
        attribute = {
            "type": "Actual",
            "value": self.value,
            "mutability": "ReadOnly" if self.readonly else "ReadWrite",
            "constant": self.constant,
        }
        characteristics: dict[str, Any] = {"dataType": self.data_type, "supportsMonitoring": False}
        for key, item in (
            ("unit", self.unit),
            ("maxLimit", self.max_limit),
            ("valuesList", self.values_list),
        ):
            if item is not None:
                characteristics[key] = item
        return {
            "component": component,
            "variable": {"name": self.variable},
            "variableAttribute": [attribute],
            "variableCharacteristics": characteristics,
        }


class DeviceModel:
    """The device model of one twin, read live from its configuration and device.

    Args:
        config: The twin's configuration.
        device: The charger (one EVSE per connector, one connector per EVSE).
        vendor: Vendor name (as in the BootNotification).
        model: Model name (as in the BootNotification).
        availability: 2.0.1 availability state of a connector status.
    """

    def __init__(
        self,
        config: TwinConfig,
        device: ChargerDevice,
        *,
        vendor: str,
        model: str,
        availability: Callable[[ConnectorStatus], str],
    ) -> None:
        self.config = config
        self.device = device
        self.vendor = vendor
        self.model = model
        self.availability = availability

    # -- the variables -----------------------------------------------------------------------

    def _config_variables(self) -> list[ModelVariable]:
        variables = []
        for entry in self.config.v201_entries():
            assert entry.v201 is not None
            component, variable = entry.v201
            variables.append(
                ModelVariable(
                    component,
                    variable,
                    entry.text_v201(),
                    entry.data_type,
                    entry.readonly,
                    unit=entry.unit,
                    values_list=entry.member_list,
                )
            )
        return variables

    def _availability(self) -> list[ModelVariable]:
        states = [self.availability(self.device.status(c)) for c in self._connectors()]
        # The station is out (Unavailable, Faulted) only when every EVSE is; occupied EVSEs
        # leave it available, as the 1.6 side reports connector 0.
        station = states[0] if len(set(states)) == 1 and states[0] != "Occupied" else "Available"
        variables = [self._state("ChargingStation", station)]
        for c, state in zip(self._connectors(), states, strict=True):
            variables.append(self._state("EVSE", state, evse=c))
            variables.append(self._state("Connector", state, evse=c, connector=1))
        return variables

    @staticmethod
    def _state(
        component: str, state: str, evse: int | None = None, connector: int | None = None
    ) -> ModelVariable:
        return ModelVariable(
            component,
            "AvailabilityState",
            state,
            "OptionList",
            True,
            evse=evse,
            connector=connector,
            values_list=_AVAILABILITY_STATES,
        )

    def _station(self) -> list[ModelVariable]:
        device = self.device
        variables = [
            ModelVariable(
                "ChargingStation", "VendorName", self.vendor, "string", True, constant=True
            ),
            ModelVariable("ChargingStation", "Model", self.model, "string", True, constant=True),
        ]
        for c in self._connectors():
            rated_w = round(device.max_power_kw(c) * 1000.0, 1)
            power_w = round(device.p_kw(c) * 1000.0, 1)
            variables += [
                ModelVariable(
                    "EVSE",
                    "Power",
                    str(power_w),
                    "decimal",
                    True,
                    evse=c,
                    unit="W",
                    max_limit=rated_w,
                ),
                ModelVariable(
                    "EVSE", "SupplyPhases", str(device.phases(c)), "integer", True, evse=c
                ),
            ]
        return variables

    def _connectors(self) -> range:
        return range(1, self.device.n_connectors + 1)

    def variables(self) -> list[ModelVariable]:
        """Every variable of the model, the configuration first."""
        return [*self._config_variables(), *self._station(), *self._availability()]

    def report(self, base: str) -> list[dict[str, Any]] | None:
        """ReportData entries of a base report, ``None`` for a base the twin does not know."""
        if base == "FullInventory":
            chosen = self.variables()
        elif base == "ConfigurationInventory":
            chosen = [v for v in self._config_variables() if not v.readonly]
        elif base == "SummaryInventory":
            chosen = self._availability()
        else:
            return None
        return [v.report_data() for v in chosen]

    # -- GetVariables / SetVariables -------------------------------------------------------

    def _find(self, component: dict[str, Any], variable: str) -> tuple[ModelVariable | None, str]:
        name = str(component.get("name", "")).lower()
        evse = component.get("evse") or {}
        evse_id, connector_id = evse.get("id"), evse.get("connector_id")
        candidates = [
            v for v in [*self._station(), *self._availability()] if v.component.lower() == name
        ]
        if not candidates:
            return None, "UnknownComponent"
        if name == "chargingstation":
            matches = candidates
        elif name == "evse":
            matches = [v for v in candidates if v.evse == evse_id]
        else:
            matches = [v for v in candidates if v.evse == evse_id and connector_id in (None, 1)]
        if not matches:
            return None, "UnknownComponent"
        for item in matches:
            if item.variable.lower() == variable.lower():
                return item, "Accepted"
        return None, "UnknownVariable"

    def get(self, component: dict[str, Any], variable: str) -> tuple[str, str | None]:
        """``(attributeStatus, attributeValue)`` of one GetVariables entry (``component`` as
        the ``ocpp`` library hands it over: snake_case keys)."""
        if str(component.get("name", "")).lower() in _STATION_COMPONENTS:
            found, status = self._find(component, variable)
            return (status, None) if found is None else ("Accepted", found.value)
        return self.config.get_v201(str(component.get("name", "")), variable)

    def set(self, component: dict[str, Any], variable: str, value: str) -> str:
        """attributeStatus of one SetVariables entry; station variables are read-only."""
        if str(component.get("name", "")).lower() in _STATION_COMPONENTS:
            found, status = self._find(component, variable)
            return status if found is None else "Rejected"
        return self.config.set_v201(str(component.get("name", "")), variable, value)


_STATION_COMPONENTS = frozenset({"chargingstation", "evse", "connector"})
