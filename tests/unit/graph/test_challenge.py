"""Claims challenges from Graph's WWW-Authenticate header: decoded when they are
`insufficient_claims` with a JSON object, ignored otherwise (an ordinary 401)."""

from __future__ import annotations

import base64
import json

import pytest

from shared.graph.challenge import (
    challenge_params,
    claims_from_challenge,
    decode_claims,
    encode_claims,
)

CLAIMS = {"access_token": {"nbf": {"essential": True, "value": "1604106651"}}}
ENCODED = base64.b64encode(json.dumps(CLAIMS).encode()).decode()
# The shape Entra documents (claims-challenge article), with Graph's authorization_uri.
HEADER = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000", '
    f'error="insufficient_claims", claims="{ENCODED}"'
)


def test_a_graph_claims_challenge_decodes_to_compact_json() -> None:
    assert claims_from_challenge(HEADER) == json.dumps(CLAIMS, separators=(",", ":"))


def test_params_are_read_whatever_their_order_and_quoting() -> None:
    params = challenge_params(f'Bearer claims="{ENCODED}", error=insufficient_claims, realm=""')

    assert params == {"claims": ENCODED, "error": "insufficient_claims", "realm": ""}


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
        'authorize", client_id="00000003-0000-0000-c000-000000000000"',  # an ordinary 401
        f'Bearer error="invalid_token", claims="{ENCODED}"',  # not insufficient_claims
        'Bearer error="insufficient_claims", claims="%%%"',  # not base64
        'Bearer error="insufficient_claims", claims="WzEsMl0="',  # [1,2]: not an object
        f'Basic error="insufficient_claims", claims="{ENCODED}"',  # another scheme
        'Bearer error="insufficient_claims", claims="' + "A" * 20000 + '"',  # far too large
    ],
)
def test_anything_but_a_well_formed_challenge_is_an_ordinary_401(header: str | None) -> None:
    assert claims_from_challenge(header) is None


def test_login_url_encoding_round_trips_without_padding() -> None:
    compact = json.dumps(CLAIMS, separators=(",", ":"))

    encoded = encode_claims(compact)

    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    assert decode_claims(encoded) == compact
