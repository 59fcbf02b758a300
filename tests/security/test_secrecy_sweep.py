"""The whole run's secrecy sweep (tests/support/secrecy.py, run by tests/conftest.py at session
end) finds what it is meant to find, and nothing in an ordinary log line."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.secrecy import SecretLedger

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
