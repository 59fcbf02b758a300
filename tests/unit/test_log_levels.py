"""The HTTP libraries' request lines (whole URLs: upload tokens, webhook signatures, Graph
query strings) never reach the log, whatever level the host configures."""

from __future__ import annotations

import logging

import httpx
import pytest

from shared.log_levels import QUIET_LOGGERS, quiet_transport_loggers


def test_outbound_request_urls_are_not_logged_even_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet_transport_loggers()
    caplog.set_level(logging.DEBUG)
    transport = httpx.MockTransport(lambda request: httpx.Response(200))

    with httpx.Client(transport=transport) as client:
        client.put("https://graph.test/upload/s1?authtoken=upload-token-0123456789")
        client.post("https://flows.test/run?sig=webhook-signature-0123456789")

    assert "upload-token-0123456789" not in caplog.text
    assert "webhook-signature-0123456789" not in caplog.text


def test_warnings_from_those_libraries_still_get_through() -> None:
    quiet_transport_loggers()

    assert all(logging.getLogger(name).isEnabledFor(logging.WARNING) for name in QUIET_LOGGERS)
    assert not any(logging.getLogger(name).isEnabledFor(logging.INFO) for name in QUIET_LOGGERS)
