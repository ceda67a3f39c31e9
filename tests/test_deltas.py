"""Delta blobs round-trip any JSON list extension exactly (property tests, no store needed)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wtb_domain.deltas import MAX_DELTA_CHAIN, is_delta, load_values
from wtb_domain.state import content_hash, encode_update, encode_value

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
lists = st.lists(json_values, max_size=6)


def store_chain(values: list[list[Any]]) -> tuple[dict[str, str], list[str], list[int]]:
    """Write ``values`` one after the other as the engine does; (blobs, hashes, chain lengths)."""
    blobs: dict[str, str] = {}
    manifest: dict[str, str] = {}
    previous: dict[str, Any] = {}
    deltas: dict[str, int] = {}
    hashes, chains = [], []
    for value in values:
        enc = encode_update(manifest, {"k": value}, node="n", previous=previous, deltas=deltas)
        for h, data in enc.new_blobs.items():
            blobs.setdefault(h, data)
        manifest, deltas = enc.manifest, enc.deltas
        previous = {"k": json.loads(encode_value(value, node=None, key="k"))}
        hashes.append(manifest["k"])
        chains.append(deltas.get("k", 0))
    return blobs, hashes, chains


def fetch_from(blobs: dict[str, str]):  # type: ignore[no-untyped-def]
    return lambda wanted: {h: blobs[h] for h in wanted if h in blobs}


@settings(max_examples=100, deadline=None)
@given(lists, st.lists(lists, min_size=1, max_size=5))
def test_every_written_value_reads_back_exactly(first: list[Any], tails: list[list[Any]]) -> None:
    values = [first]
    for tail in tails:
        values.append([*values[-1], *tail])
    blobs, hashes, _ = store_chain(values)
    loaded = load_values(hashes, fetch_from(blobs))
    for value, h in zip(values, hashes, strict=True):
        expected = encode_value(value, node=None, key="k")
        assert content_hash(expected) == h
        assert encode_value(loaded[h], node=None, key="k") == expected  # bool stays bool


@given(lists, lists)
def test_a_list_equal_only_by_python_eq_is_not_a_delta(first: list[Any], tail: list[Any]) -> None:
    truthy = [True if x == 1 and x is not True else x for x in first]
    blobs, hashes, _ = store_chain([first, [*truthy, *tail]])
    loaded = load_values(hashes, fetch_from(blobs))
    assert encode_value(loaded[hashes[1]], node=None, key="k") == encode_value(
        [*truthy, *tail], node=None, key="k"
    )


def test_chains_are_bounded_and_small_tails_only() -> None:
    values = [[{"n": i, "text": "x" * 50} for i in range(j + 1)] for j in range(100)]
    blobs, hashes, chains = store_chain(values)
    assert max(chains) == MAX_DELTA_CHAIN
    assert sum(is_delta(blobs[h]) for h in hashes) > 80
    assert not is_delta(blobs[hashes[1]])  # a tail of half the value is stored in full
    assert load_values(hashes[-1:], fetch_from(blobs))[hashes[-1]] == values[-1]
