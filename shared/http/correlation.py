"""Correlation ids: the caller's own when it is a sane value, else a new one.

"Sane" is deliberately narrow (printable token characters, ≤ 64): the id is echoed in
headers, sent to Graph as `client-request-id`, and written to audit records, so nothing a
caller sends may inject header lines or log noise through it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

HEADER = "x-correlation-id"
_SOURCES = ("x-correlation-id", "client-request-id")
_SANE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")


def correlation_id_from(headers: Mapping[str, str]) -> str:
    for name in _SOURCES:
        value = headers.get(name)
        if value and _SANE.match(value):
            return value
    return str(uuid.uuid4())
