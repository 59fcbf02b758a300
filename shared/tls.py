"""Trust for every outbound TLS connection: the system's roots plus CA_BUNDLE when set
(a national cloud's private CA, or the sandbox's CA locally)."""

from __future__ import annotations

import ssl
from pathlib import Path


def outbound_ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context
