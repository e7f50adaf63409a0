"""What every OCPP endpoint under fuzzing must do, whichever side of the link it is on.

A test module supplies an :class:`OcppPeer` (something that sends a frame to the endpoint and
returns the frames it answered before a follow-up probe) under the fixture name ``peer``; the
factories here build the random-text, random-JSON and near-valid-CALL tests that run against it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

__all__ = [
    "ALLOWED",
    "FUZZ",
    "OcppPeer",
    "check",
    "json_values",
    "near_valid_test",
    "random_json_test",
    "random_text_test",
    "spelled",
]

P = TypeVar("P", bound="OcppPeer")
Calls = Callable[[str], st.SearchStrategy[tuple[str, dict[str, Any]]]]

# What a CALL may legitimately be refused with. InternalError would mean a handler crashed.
ALLOWED = {
    "FormationViolation",
    "FormatViolation",
    "ProtocolError",
    "RpcFrameworkError",
    "PropertyConstraintViolation",
    "MessageTypeNotSupported",
    "NotImplemented",
    "NotSupported",
    "TypeConstraintViolation",
    "OccurenceConstraintViolation",
    "OccurrenceConstraintViolation",
}
# The error codes whose name differs between OCPP 1.6 and 2.0.1.
_SPELLED = {
    "format": {"1.6": "FormationViolation", "2.0.1": "FormatViolation"},
    "rpc": {"1.6": "ProtocolError", "2.0.1": "RpcFrameworkError"},
    "type": {"1.6": "PropertyConstraintViolation", "2.0.1": "MessageTypeNotSupported"},
}

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


class OcppPeer(Protocol):
    """The far end of a fuzzed OCPP session, as the shared checks drive it."""

    version: str  # "1.6" or "2.0.1"

    def exchange(self, frame: str | bytes, /) -> list[list[Any]]:
        """Send ``frame`` then a probe; return the frames answered before the probe's reply."""
        ...


def spelled(version: str, kind: str) -> str:
    """The CALLERROR code for ``kind`` ("format", "rpc", "type" or a literal code) in ``version``."""
    return _SPELLED[kind][version] if kind in _SPELLED else kind


def check(peer: OcppPeer, frame: str | bytes, sent_id: Any = None) -> None:
    """Send ``frame``: at most one reply, a CALLRESULT to ``sent_id`` or an allowed CALLERROR."""
    replies = peer.exchange(frame)
    assert len(replies) <= 1
    for reply in replies:
        if reply[0] == 3:  # the random frame happened to be a valid CALL
            assert reply[1] == sent_id
        else:
            assert reply[0] == 4 and reply[2] in ALLOWED, reply


def random_text_test() -> Callable[..., None]:
    """A test sending random text frames to the module's ``peer`` fixture."""

    @FUZZ
    @given(text=st.text(max_size=200))
    def test(peer: OcppPeer, text: str) -> None:
        check(peer, text)

    return test


def random_json_test() -> Callable[..., None]:
    """A test sending random JSON values (a CALL now and then) to the module's ``peer`` fixture."""

    @FUZZ
    @given(value=json_values)
    def test(peer: OcppPeer, value: Any) -> None:
        sent_id = value[1] if isinstance(value, list) and len(value) > 1 else None
        check(peer, json.dumps(value), sent_id)

    return test


def near_valid_test(
    calls: Calls, sent_id: str, then: Callable[[P], None] | None = None
) -> Callable[..., None]:
    """A test sending CALLs drawn from ``calls(peer.version)`` with id ``sent_id``.

    ``then``, if given, gets the module's ``peer`` after each exchange for the module's own
    invariants (e.g. the device behind the endpoint stayed within its limits).
    """

    @FUZZ
    @given(data=st.data())
    def test(peer: P, data: st.DataObject) -> None:
        action, payload = data.draw(calls(peer.version))
        check(peer, json.dumps([2, sent_id, action, payload]), sent_id)
        if then is not None:
            then(peer)

    return test
