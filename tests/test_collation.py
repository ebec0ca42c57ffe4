"""The embedded store's collation bytes: their order is CouchDB's view order (the HTTP tests in
test_view_semantics.py check it against CouchDB itself; these check the encoding's edges)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.store.collation import sort_key
from tests.test_view_semantics import ORDERED

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False,
    allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
    max_size=3),
    max_leaves=8,
)  # fmt: skip


def test_couchdbs_documented_order():
    shuffled = ORDERED[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled, key=sort_key) == ORDERED


@pytest.mark.parametrize(
    ("low", "high"),
    [
        (-1e300, -1),
        (-1, -0.5),
        (-0.5, 0),
        (0, 1e-300),
        (1, 1.5),
        (2**52, 2**53),
        ([1], [1, None]),
        (["a"], ["a", None]),
        ([[]], [[None]]),
        ({}, {"": None}),
        ({"a": None}, {"a": None, "b": None}),
        ("", "\u0000a"),
        ("a", "a\u0301b"),
    ],
)
def test_order_at_the_edges(low, high):
    assert sort_key(low) < sort_key(high)


def test_equal_numbers_collate_equal():
    assert sort_key(1) == sort_key(1.0)
    assert sort_key(-0.0) == sort_key(0)
    assert sort_key([1, "x"]) == sort_key([1.0, "x"])


@given(json_values, json_values)
def test_an_element_decides_before_whatever_follows_it(a, b):
    """Composite keys compare element by element: the first element that differs decides,
    whatever comes after it (no encoding is a prefix of a different one)."""
    if sort_key(a) == sort_key(b):
        return
    first = sort_key(a) < sort_key(b)
    assert (sort_key([a, 9]) < sort_key([b, None])) is first
    assert (sort_key({"k": a, "z": 9}) < sort_key({"k": b})) is first
