"""A 2.0.1 device model report as the CSMS collects it (GetBaseReport -> NotifyReport, B07).

A charging station answers a GetBaseReport and then sends the report in one or more NotifyReport
messages (``seqNo`` 0, 1, ...; ``tbc`` true on all but the last). :class:`DeviceReport` gathers
them for one ``requestId`` and reads values out of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DeviceReport"]


@dataclass
class DeviceReport:
    """The NotifyReport messages of one request.

    Attributes:
        request_id: The GetBaseReport's ``requestId``.
        entries: ``reportData`` entries in arrival order, as decoded (snake_case keys).
        seq_nos: ``seqNo`` of each message received, in arrival order.
        generated_at: ``generatedAt`` of the last message.
        complete: Whether the message with ``tbc`` false has arrived.
    """

    request_id: int
    entries: list[dict[str, Any]] = field(default_factory=list)
    seq_nos: list[int] = field(default_factory=list)
    generated_at: str | None = None
    complete: bool = False

    def add(
        self,
        seq_no: int,
        generated_at: str,
        tbc: bool,
        report_data: list[dict[str, Any]] | None,
    ) -> None:
        """Add one NotifyReport (a repeat of a ``seqNo`` already held is ignored)."""
        if seq_no in self.seq_nos:
            return
        self.seq_nos.append(seq_no)
        self.entries.extend(report_data or [])
        self.generated_at = generated_at
        if not tbc:
            self.complete = True

    def value(
        self,
        component: str,
        variable: str,
        evse: int | None = None,
        connector: int | None = None,
    ) -> str | None:
        """The Actual value of ``component.variable`` (on ``evse``/``connector`` when given;
        names are case-insensitive), ``None`` when the report does not hold it."""
        for entry in self.entries:
            comp, var = entry["component"], entry["variable"]
            if comp["name"].lower() != component.lower() or var["name"].lower() != variable.lower():
                continue
            where = comp.get("evse") or {}
            if where.get("id") != evse or where.get("connector_id") != connector:
                continue
            for attribute in entry["variable_attribute"]:
                if attribute.get("type", "Actual") == "Actual":
                    return attribute.get("value")
        return None

    def names(self) -> set[str]:
        """``"Component.Variable"`` of every entry (EVSE/connector ids left out)."""
        return {f"{e['component']['name']}.{e['variable']['name']}" for e in self.entries}
