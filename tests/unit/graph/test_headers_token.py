"""The access token's shape check in graph_headers: refused when empty or holding any
whitespace (it would split or fold the Authorization header)."""

from __future__ import annotations

import pytest

from shared.graph.headers import graph_headers


@pytest.mark.parametrize("token", ["", "a b", "a\tb", "ab\n", "a\u00a0b", "a\u2028b", "\x1cab"])
def test_a_token_with_whitespace_is_refused(token: str) -> None:
    with pytest.raises(ValueError, match="access token"):
        graph_headers(token=token, correlation_id="c-1")


def test_a_well_formed_token_is_sent_as_bearer() -> None:
    headers = graph_headers(token="eyJ0eXAi.eyJhdWQi.c2ln-_", correlation_id="c-1")

    assert headers["Authorization"] == "Bearer eyJ0eXAi.eyJhdWQi.c2ln-_"
