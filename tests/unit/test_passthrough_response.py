"""Responses that pass Graph's data on (pages, messages) carry the JSON `json_response` would
write, with the same key order and the same escaping, only without spaces after separators."""

from __future__ import annotations

import json

from shared.http.api import json_response, passthrough_response


def test_a_passed_on_page_is_the_standard_librarys_json_without_spaces() -> None:
    page = {
        "value": [{"id": "AAk=", "subject": "Grüße ✓ 😀", "body": {"content": "<p>\x7f\\</p>"}}],
        "nextCursor": None,
        "nextLink": "https://app.test/api/connections/c/messages?top=1&cursor=x",
    }

    response = passthrough_response(page)

    assert response.get_body() == json.dumps(page, separators=(",", ":")).encode()
    assert json.loads(response.get_body()) == json.loads(json_response(page).get_body())
    assert response.mimetype == "application/json"
    assert response.charset == "utf-8"
    assert response.status_code == 200
