"""The whole run's secrecy sweep (tests/support/secrecy.py, run by tests/conftest.py at session
end) finds what it is meant to find, and nothing in an ordinary log line."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.secrecy import (
    SecretLedger,
    graph_request_secrets,
    json_secrets,
    settings_secrets,
)

TOKEN = "0.AXkAKjxOjR8LXU6ch-refresh-token-value"
SUBJECT = "Quarterly figures for the board"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbnlvbmUifQ.c2ln"


@pytest.fixture
def planted() -> Iterator[Path]:
    """Outside the session's temp dir, which the real sweep searches at the end of the run."""
    with tempfile.TemporaryDirectory(prefix="secrecy-sweep-") as directory:
        yield Path(directory)


def ledger() -> SecretLedger:
    return SecretLedger(secrets={TOKEN}, subjects={SUBJECT})


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")


def test_sweep_finds_secrets_subjects_jwts_and_credential_headers(planted: Path) -> None:
    write(planted, "servers0/devhost-1.log", f"INFO refreshed with {TOKEN}\n")
    write(planted, "private/audit.jsonl", f'{{"event": "mail.sent", "subject": "{SUBJECT}"}}\n')
    write(planted, "servers0/worker.log", f"DEBUG got {JWT}\nDEBUG Cookie: oia_login=abc123\n")

    findings = ledger().sweep(planted)

    assert len(findings) == 4, findings
    assert any("devhost-1.log: secret" in f for f in findings)
    assert any("audit.jsonl: subject" in f for f in findings)
    assert any("worker.log: JWT" in f for f in findings)
    assert any("worker.log: credential header" in f for f in findings)


def test_sweep_passes_clean_logs_and_skips_the_test_doubles_own_logs(planted: Path) -> None:
    write(planted, "servers0/devhost-1.log", "INFO graph GET /me/messages -> 200 in 3 ms\n")
    write(planted, "servers0/devhost-2.log", "INFO headers: authorization=<redacted>\n")
    write(planted, "servers0/sandbox-5443.log", f"token {TOKEN}\n")
    write(planted, "servers0/azurite-1.log", f"{SUBJECT}\n")

    assert ledger().sweep(planted) == []


def test_the_ledger_learns_upload_tokens_filters_and_searches_from_the_graph_request_log() -> None:
    log = [
        {"path": "/_upload/s1", "query": "authtoken=upl-0123456789abcdef", "body": None},
        {
            "path": "/v1.0/me/messages",
            "query": "%24filter=from%2FemailAddress%2Faddress%20eq%20%27bob%40contoso.test%27"
            "&%24top=1&%24search=%22merger%20plans%22",
            "body": None,
        },
        {"path": "/v1.0/subscriptions", "query": "", "body": {"clientState": "state-0123456789"}},
    ]

    found = graph_request_secrets(log)

    assert "upl-0123456789abcdef" in found
    assert "from/emailAddress/address eq 'bob@contoso.test'" in found
    assert "from%2FemailAddress%2Faddress%20eq%20%27bob%40contoso.test%27" in found
    assert '"merger plans"' in found and "%22merger%20plans%22" in found
    assert "state-0123456789" in found
    assert "1" not in found  # $top is neither secret nor personal


def test_the_ledger_learns_webhook_query_strings_and_signing_secrets() -> None:
    url = "https://prod-1.westeurope.logic.azure.com/workflows/x/run?api-version=2016-10-01&sig=SIG0123456789"
    request = {"notificationUrl": url, "folder": "inbox"}
    response = {"id": "sub-1", "signingSecret": "signing-0123456789", "notificationUrl": url}

    found = json_secrets(request) | json_secrets({"value": [response]})

    assert {"SIG0123456789", "signing-0123456789", urlsplit(url).query} <= found
    assert "2016-10-01" not in found  # a date, not a credential


def test_the_ledger_learns_secret_settings() -> None:
    env = {
        "CURSOR_SECRET": "Y3Vyc29yLXNlY3JldA==",
        "LOCAL_FERNET_KEYS": "fernet-one-key, fernet-two-key",
    }

    assert settings_secrets(env) == {"Y3Vyc29yLXNlY3JldA==", "fernet-one-key", "fernet-two-key"}


def test_sweep_finds_an_outbound_request_line_that_quotes_a_url(planted: Path) -> None:
    token = "upl-0123456789abcdef"
    write(
        planted,
        "servers0/devhost-3.log",
        f"INFO httpx: HTTP Request: PUT https://127.0.0.1:5443/_upload?authtoken={token}\n",
    )

    findings = SecretLedger(secrets=graph_request_secrets([{"query": f"authtoken={token}"}])).sweep(
        planted
    )

    assert findings == ["servers0/devhost-3.log: secret upl-012345…"]
