"""The whole run's secrecy sweep: every secret and every message subject that any sandbox of the
test session saw is collected (just before each reset and each stop, when it still knows them),
and at the end of the session every log and audit file the session's servers wrote is searched
for them. tests/conftest.py installs it; a finding fails the run (see `SecretLedger.sweep`).

Collected: every token the sandbox issued (`GET /_sandbox/tokens`: auth codes, access, refresh
and id tokens, and the caller tokens it minted), the app's client secret, every `clientState`
the app sent when subscribing (from the sandbox's request log), and every message subject of
at least 8 characters in every mailbox. Besides the exact values, anything shaped like a JWT
or an HTTP credential header is a finding, whatever minted it (forged tokens, cookies)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.sandbox import SandboxServer

MIN_SUBJECT = 8  # shorter subjects ("Hi", "Re: x") would match ordinary log words
MIN_SECRET = 8
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
CREDENTIAL_HEADER = re.compile(
    r"(?i)\b(authorization|cookie|set-cookie|x-functions-key)[\"']?\s*[:=]\s*[\"']?"
    r"(?!<redacted>|\[redacted\]|\*)[A-Za-z0-9]"
)
CLIENT_STATE = re.compile(r"clientState['\"]?\s*:\s*['\"]([^'\"]{8,})")


@dataclass
class SecretLedger:
    secrets: set[str] = field(default_factory=set)
    subjects: set[str] = field(default_factory=set)

    def harvest(self, sandbox: SandboxServer) -> None:
        """Everything secret `sandbox` knows now (best effort: a dead sandbox knows nothing)."""
        self.secrets.add(sandbox.client_secret)
        with contextlib.suppress(httpx.HTTPError), sandbox.client() as control:
            tokens = control.get("/_sandbox/tokens").json()
            self.secrets |= {t["value"] for t in tokens if len(t.get("value") or "") >= MIN_SECRET}
            for request in control.get("/_sandbox/requests").json():
                if request.get("path", "").endswith("/subscriptions") and request.get("body"):
                    self.secrets |= set(CLIENT_STATE.findall(repr(request["body"])))
            for user in control.get("/_sandbox/users").json():
                mailbox = control.get(f"/_sandbox/users/{user['upn']}/mailbox").json()
                self.subjects |= {
                    m["subject"]
                    for m in mailbox.get("messages", [])
                    if len(m.get("subject") or "") >= MIN_SUBJECT
                }

    def install(self) -> Callable[[], None]:
        """Harvest every sandbox of this process before it resets or stops; returns the undo."""
        reset, stop = SandboxServer.reset, SandboxServer.stop
        ledger = self

        def harvesting_reset(sandbox: SandboxServer) -> None:
            ledger.harvest(sandbox)
            reset(sandbox)

        def harvesting_stop(sandbox: SandboxServer) -> None:
            ledger.harvest(sandbox)
            stop(sandbox)

        SandboxServer.reset = harvesting_reset  # type: ignore[method-assign, assignment]
        SandboxServer.stop = harvesting_stop  # type: ignore[method-assign, assignment]

        def undo() -> None:
            SandboxServer.reset, SandboxServer.stop = reset, stop  # type: ignore[method-assign]

        return undo

    def sweep(self, root: Path) -> list[str]:
        """Findings in every app log and audit file under `root` (the session's temp dir):
        `file: what` (a secret is named by its first characters only)."""
        findings: list[str] = []
        for path in written_files(root):
            text = path.read_text("utf-8", errors="replace")
            where = str(path.relative_to(root))
            findings += [f"{where}: secret {s[:10]}…" for s in self.secrets if s in text]
            findings += [f"{where}: subject {s!r}" for s in self.subjects if s in text]
            findings += [f"{where}: JWT {m.group(0)[:16]}…" for m in JWT.finditer(text)]
            findings += [
                f"{where}: credential header {line.strip()[:80]!r}"
                for line in text.splitlines()
                if CREDENTIAL_HEADER.search(line)
            ]
        return findings


def written_files(root: Path) -> Iterator[Path]:
    """The app's logs (dev host and any other process log) and audit JSONL files; not the
    sandbox's and Azurite's own logs (test doubles, not the product) nor their data."""
    for path in sorted(root.rglob("*")):
        if path.suffix not in {".log", ".jsonl"} or not path.is_file():
            continue
        parts = path.relative_to(root).parts
        if any(p.startswith(("sandbox-", "azurite")) for p in parts):
            continue
        yield path


def summary(findings: list[str], limit: int = 30) -> str:
    shown = "\n  ".join(findings[:limit])
    more = f"\n  … and {len(findings) - limit} more" if len(findings) > limit else ""
    return f"secrecy sweep: {len(findings)} finding(s) in logs/audit files:\n  {shown}{more}"
