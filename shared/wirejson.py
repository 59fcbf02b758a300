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
  is left to the standard library). NaN and infinities are `NotFinite` floats.
- `dumps_compact(value)` returns `json.dumps(value, separators=(",", ":")).encode()`, keys
  in insertion order, DEL escaped as `\\u007f`. orjson writes it when its output is ASCII;
  a value with non-ASCII text (escaped `\\uXXXX` by the standard library, written as UTF-8 by
  orjson) and anything orjson would write differently or not at all (non-str keys,
  subclasses such as enums and `NotFinite`, datetimes, dataclasses, big integers, lone
  surrogates) is
  written by the standard library. Floats are spelled by orjson (`1e16` where the standard
  library writes `1e+16`: the same number).
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

_orjson: ModuleType | None = None

# Integers orjson would turn into floats have at least 19 digits (2**63 has 19). Digits are
# mapped to one byte so that a plain substring search finds any such run.
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def _lib() -> ModuleType:
    global _orjson
    if _orjson is None:
        import orjson

        _orjson = orjson
    return _orjson


class NotFinite(float):
    """A NaN or an infinity, which JSON does not have but the standard library reads (and
    writes) as `NaN`, `Infinity`: a float like any other, of its own type so that
    `dumps_compact` leaves it to the standard library (orjson would write `null`)."""


def loads(data: bytes) -> Any:
    """`json.loads(data)`, faster (NaN and infinities come back as `NotFinite` floats)."""
    orjson = _lib()
    if data.translate(_DIGITS).find(_LONG_NUMBER) < 0:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # the standard library gives its own answer: a value, or its error
    return json.loads(data, parse_constant=NotFinite)


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
    # Non-ASCII text must come out escaped as the standard library escapes it; escaping
    # orjson's UTF-8 afterwards measured no faster than the standard library itself (and
    # three times slower with emoji), so it writes these.
    return json.dumps(value, separators=(",", ":")).encode()
