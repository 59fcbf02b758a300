"""Loggers of the HTTP libraries, held below INFO-level chatter: they write whole request URLs,
and ours carry credentials and personal data (an upload session's `authtoken`, a flow's webhook
`sig`, Graph query strings with addresses, subject words and search terms).

The app logs its outbound calls itself, by path template only (shared.graph.client).
Standard library only: function_app.py calls this at import, on the cold-start path.
"""

from __future__ import annotations

import logging

QUIET_LOGGERS = (
    "httpx",  # INFO: `HTTP Request: GET <the full URL>` for every request
    "httpcore",  # DEBUG: connection and request traces
    "urllib3",  # DEBUG (under MSAL's requests): `"GET /path?query HTTP/1.1" 200`
    # INFO: every request's URL and headers; noise, and one step from a leak.
    "azure.core.pipeline.policies.http_logging_policy",
)


def quiet_transport_loggers() -> None:
    """Let through only WARNING and above from `QUIET_LOGGERS`, whatever the root level."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
