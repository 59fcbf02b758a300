"""JSON on the request path: parsing Graph's answers and writing the large responses that
pass them on, through orjson where it gives the standard library's answer, the standard
library otherwise.

Why: on a page of 50 messages the standard library's parse and write cost more than the
rest of the app's own work (benchmarks/README.md, "Request overhead"). orjson is imported on
first use, not at `import function_app` (tests/unit/test_cold_start.py).

- `loads(data)` returns what `json.loads(data)` returns, or raises what it raises. orjson's
  result is kept only when it cannot differ: orjson refuses NaN/Infinity, lone surrogates,
  encodings other than UTF-8 and depth beyond its limit (the standard library then decides),
  and turns integers beyond 64 bits into floats (a document with a run of 19 digits anywhere
  is left to the standard library).
- `dumps_compact(value)` returns `json.dumps(value, separators=(",", ":")).encode()`:
  non-ASCII escaped as `\\uXXXX` (surrogate pairs above U+FFFF), DEL as `\\u007f`, keys in
  insertion order. Floats are spelled by orjson (`1e16` where the standard library writes
  `1e+16`: the same number). Anything orjson would write differently or not at all (non-str
  keys, subclasses such as enums, datetimes, NaN and Infinity inside a float subclass, big
  integers, lone surrogates) is written by the standard library.
"""

from __future__ import annotations

import json
import re
from types import ModuleType
from typing import Any

_orjson: ModuleType | None = None

# Integers orjson would turn into floats have at least 19 digits (2**63 has 19). Digits are
# mapped to one byte so that a plain substring search finds any such run.
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19

_ASTRAL = re.compile(rb"\\U([0-9a-f]{8})")


def _lib() -> ModuleType:
    global _orjson
    if _orjson is None:
        import orjson

        _orjson = orjson
    return _orjson


def loads(data: bytes) -> Any:
    """`json.loads(data)`, faster."""
    orjson = _lib()
    if data.translate(_DIGITS).find(_LONG_NUMBER) < 0:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # the standard library gives its own answer: a value, or its error
    return json.loads(data)


def dumps_compact(value: Any) -> bytes:
    """`json.dumps(value, separators=(",", ":")).encode()`, faster."""
    orjson = _lib()
    try:
        # Passthrough: datetimes, dataclasses and subclasses of built-in types (enums) are
        # not serialised by orjson's own rules; with no `default` they raise, and the
        # standard library then does exactly what it did before.
        out: bytes = orjson.dumps(
            value,
            option=orjson.OPT_PASSTHROUGH_DATETIME
            | orjson.OPT_PASSTHROUGH_DATACLASS
            | orjson.OPT_PASSTHROUGH_SUBCLASS,
        )
    except TypeError:  # orjson.JSONEncodeError included
        return json.dumps(value, separators=(",", ":")).encode()
    if out.isascii():
        return out.replace(b"\x7f", b"\\u007f") if b"\x7f" in out else out
    return _escape_non_ascii(out)


def _escape_non_ascii(out: bytes) -> bytes:
    """orjson's UTF-8 with every non-ASCII character as the standard library escapes it.

    Non-ASCII bytes occur only inside strings, where orjson writes a backslash as `\\\\`.
    Those pairs are set aside as NUL (which orjson always escapes, so none is in `out`),
    leaving every `\\x`/`\\U` that `backslashreplace` writes unambiguous."""
    text = out.decode().replace("\\\\", "\x00")
    escaped = text.encode("ascii", "backslashreplace")  # \xNN, \uNNNN, \UNNNNNNNN
    escaped = escaped.replace(b"\\x", b"\\u00")
    if b"\\U" in escaped:
        escaped = _ASTRAL.sub(_surrogate_pair, escaped)
    escaped = escaped.replace(b"\x00", b"\\\\")
    return escaped.replace(b"\x7f", b"\\u007f") if b"\x7f" in escaped else escaped


def _surrogate_pair(match: re.Match[bytes]) -> bytes:
    code = int(match.group(1), 16) - 0x10000
    return b"\\u%04x\\u%04x" % (0xD800 | (code >> 10), 0xDC00 | (code & 0x3FF))
