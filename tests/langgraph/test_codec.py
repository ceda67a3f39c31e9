"""Stored LangGraph values read back equal, with exact types; plain JSON stays readable JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("langgraph")

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from wtb_domain.langgraph import codec

SERDE = JsonPlusSerializer()
text = st.text(alphabet=st.characters(exclude_categories=("Cs",)))  # no lone surrogates
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_plain_json_round_trips_and_stays_plain(value: Any) -> None:
    text = codec.encode(value, SERDE)
    back = codec.decode(text, SERDE)
    assert back == value and type(back) is type(value)
    if not (isinstance(value, dict) and codec.ENVELOPE in value):
        assert json.loads(text) == value  # what `wtb show` reads is the value itself


@given(st.dictionaries(st.text(), json_values, max_size=3))
def test_a_dict_shaped_like_an_envelope_is_not_mistaken_for_one(extra: dict[str, Any]) -> None:
    value = {**extra, codec.ENVELOPE: "msgpack", "b64": "AAAA"}
    assert codec.decode(codec.encode(value, SERDE), SERDE) == value


@pytest.mark.parametrize(
    "value",
    [
        (1, "two"),
        {1: "int key"},
        b"\x00bytes",
        {"a", "b"},
        datetime(2026, 12, 1, tzinfo=UTC),
        [HumanMessage("hi", id="1"), AIMessage("yo", id="2")],
        "lone \ud800 surrogate",
        float("inf"),
    ],
)
def test_non_json_values_go_through_langgraph_serde(value: Any) -> None:
    text = codec.encode(value, SERDE)
    assert json.loads(text)[codec.ENVELOPE]
    back = codec.decode(text, SERDE)
    # Exactly what LangGraph's serde gives back (its own savers' fidelity: a tuple comes back
    # as a list, a lone surrogate as "?" there too).
    expected = SERDE.loads_typed(SERDE.dumps_typed(value))
    assert back == expected and type(back) is type(expected)
    if not isinstance(value, tuple | str):
        assert back == value


def test_readable_renders_messages_for_people() -> None:
    stored = json.loads(codec.encode([AIMessage("the answer", id="a")], SERDE))
    shown = codec.readable(stored)
    assert shown[0]["content"] == "the answer" and shown[0]["type"] == "ai"
    assert codec.readable({"plain": 1}) == {"plain": 1}
