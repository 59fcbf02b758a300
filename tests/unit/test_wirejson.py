"""shared.wirejson gives the standard library's answers, only faster: checked against `json`
on generated documents and on each case where orjson alone would answer differently."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.wirejson import NotFinite, dumps_compact, loads

# Every kind of string orjson and the standard library escape differently: controls, DEL,
# Latin-1, the BMP (U+2028 included), astral characters, backslashes before all of them.
_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["\\", '"', "\x7f", "\x00", "\x1f", "é", "\u2028", "😀", "x", "U"]),
    )
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
_documents = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)),
    max_leaves=30,
)


def stdlib_compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@settings(max_examples=400, deadline=None)
@given(_documents)
def test_dumps_compact_writes_what_the_standard_library_writes(value: Any) -> None:
    assert json.loads(dumps_compact(value)) == json.loads(stdlib_compact(value))
    if not _has_float(value):  # floats: the same number, possibly spelled 1e16 for 1e+16
        assert dumps_compact(value) == stdlib_compact(value)


@settings(max_examples=400, deadline=None)
@given(_documents)
def test_loads_reads_what_the_standard_library_reads(value: Any) -> None:
    for data in (json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode()):
        assert _same(loads(data), json.loads(data))


def test_non_ascii_is_escaped_like_the_standard_library() -> None:
    value = {"é": "caf\u00e9 \u20ac \u2028 😀 \\é \\\\😀 \\x41 \\U0001F600 \x7f"}

    assert dumps_compact(value) == stdlib_compact(value)


@pytest.mark.parametrize(
    "data",
    [
        b"NaN",
        b'{"a": [Infinity, -Infinity]}',
        b'"\\ud800"',
        b"123456789012345678901234567890",
        b"-9223372036854775809",
        b'{"a": 18446744073709551616}',
        b"1e400",
        '{"a": "\u00e9"}'.encode("utf-16"),
        b'{"a": 1, "b": 2, "a": 3}',
        b"\xef\xbb\xbf{}",
    ],
)
def test_loads_gives_the_standard_librarys_value_where_orjson_would_differ(data: bytes) -> None:
    assert _same(loads(data), json.loads(data))


@pytest.mark.parametrize("data", [b"", b"{", b'"a\tb"', b"[1,]", b"\xff", b"[" * 5000])
def test_loads_raises_what_the_standard_library_raises(data: bytes) -> None:
    with pytest.raises(Exception) as expected:
        json.loads(data)
    with pytest.raises(type(expected.value)):
        loads(data)


@pytest.mark.parametrize("data", [b"[NaN, Infinity, -Infinity]", b'{"a": NaN, "b": 1.5}'])
def test_what_json_lacks_is_read_and_written_back_as_the_standard_library_does(
    data: bytes,
) -> None:
    assert dumps_compact(loads(data)) == stdlib_compact(json.loads(data))


class Colour(StrEnum):
    RED = "red"


class NotANumber(float):
    pass


@dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        {1: "int key", None: "none key", False: "bool key", 2.5: "float key"},
        {"enum": Colour.RED},
        [NotANumber("nan"), NotANumber("inf")],
        [2**64, -(2**63) - 1],
        ["\ud800 lone surrogate"],
    ],
)
def test_dumps_compact_leaves_to_the_standard_library_what_orjson_writes_otherwise(
    value: Any,
) -> None:
    assert dumps_compact(value) == stdlib_compact(value)


@pytest.mark.parametrize("value", [datetime(2026, 1, 1, tzinfo=UTC), Point(1), {1j}])
def test_dumps_compact_refuses_what_the_standard_library_refuses(value: Any) -> None:
    with pytest.raises(TypeError):
        stdlib_compact(value)
    with pytest.raises(TypeError):
        dumps_compact(value)


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    return False


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same types, with dict keys in the same order (NaN equal to NaN; NaN and
    infinities are the float subclass `NotFinite`)."""
    if isinstance(a, NotFinite) and type(b) is float:
        return (math.isnan(a) and math.isnan(b)) or a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)
