"""Canonical JSON and exact number rendering."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qubit_sim.stack.settle import SettlementError, canonical_json, decimal_text, to_wh
from qubit_sim.stack.settle.canonical import parse_canonical_line

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)


def test_sorted_keys_no_whitespace_utf8() -> None:
    data = {"b": 1, "a": [True, None, "é€"], "A": {"z": 0, "y": -3}}
    assert canonical_json(data) == '{"A":{"y":-3,"z":0},"a":[true,null,"é€"],"b":1}'.encode()


def test_float_is_refused_with_its_path() -> None:
    with pytest.raises(SettlementError, match=r"outer\.inner\[1\].*integer Wh"):
        canonical_json({"outer": {"inner": [1, 2.5]}})


@pytest.mark.parametrize("bad", [{1: "a"}, {"x": {1, 2}}, {"x": Decimal("1.0")}])
def test_non_json_types_are_refused(bad: object) -> None:
    with pytest.raises(SettlementError):
        canonical_json(bad)


@given(json_values)
def test_canonical_form_round_trips_and_is_stable(value: object) -> None:
    encoded = canonical_json(value)
    assert json.loads(encoded) == value
    assert canonical_json(json.loads(encoded)) == encoded


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_parse_canonical_line_accepts_exactly_the_canonical_bytes(value: dict) -> None:
    line = canonical_json(value)
    assert parse_canonical_line(line) == (value, True)
    spaced = json.dumps(value, sort_keys=True, ensure_ascii=False).encode()
    parsed, canonical = parse_canonical_line(spaced)
    assert parsed == value
    assert canonical == (spaced == line)


@pytest.mark.parametrize(
    "line", [b'{"a":1,"a":2}', b'{"a":NaN}', b'{"a":1.5}', b"[1]", b'{"a":1', b"\xff"]
)
def test_parse_canonical_line_rejects_ambiguous_input(line: bytes) -> None:
    with pytest.raises(ValueError):
        parse_canonical_line(line)


@pytest.mark.parametrize(
    ("value", "decimals", "text"),
    [
        (0.285, 5, "0.28500"),
        (2.675, 2, "2.68"),  # the binary float is 2.67499..., the written number is 2.675
        (3.518325, 2, "3.52"),
        (Decimal("0.005"), 2, "0.01"),
        (-0.004, 2, "0.00"),  # no negative zero
        (-1.005, 2, "-1.01"),
        (12, 0, "12"),
        ("7.5", 0, "8"),
    ],
)
def test_decimal_text_rounds_half_up_on_the_written_number(
    value: object, decimals: int, text: str
) -> None:
    assert decimal_text(value, decimals) == text  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "abc", True])
def test_decimal_text_refuses_non_numbers(bad: object) -> None:
    with pytest.raises(SettlementError):
        decimal_text(bad, 2)  # type: ignore[arg-type]


def test_to_wh_is_integer_watt_hours() -> None:
    # 1.0625 and 1.1875 kWh are exact binary fractions: 1062.5 and 1187.5 Wh round half to even.
    assert to_wh(1.0625) == 1062
    assert to_wh(1.1875) == 1188
    assert to_wh(12.3456) == 12346
    assert to_wh(0.0) == 0
    assert isinstance(to_wh(2.0), int)
    with pytest.raises(SettlementError, match="not finite"):
        to_wh(float("nan"))
