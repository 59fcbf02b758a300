"""The whole run's secrecy sweep: every secret and every message subject that any sandbox of the
test session saw is collected (just before each reset and each stop, when it still knows them),
and at the end of the session every log and audit file the session's servers wrote is searched
for them. tests/conftest.py installs it; a finding fails the run (see `SecretLedger.sweep`).

Collected: every token the sandbox issued (`GET /_sandbox/tokens`: auth codes, access, refresh
and id tokens, and the caller tokens it minted), the app's client secret, every `clientState`
the app sent when subscribing, and from the sandbox's request log every upload session's
`authtoken` and every `$filter` / `$search` value the app sent Graph (as sent, URL-encoded, and
decoded: they hold addresses, subject words and search terms); every message subject of at
least 8 characters in every mailbox; the secret settings every app process was started with
(`CLIENT_SECRET`, `CURSOR_SECRET` — the cursor signing key — and the local key material); and,
from what the tests' own HTTP clients sent and received, every webhook URL's query string
(a Logic Apps / Power Automate callback URL's `sig`) and every subscription's `signingSecret`.
Besides the exact values, anything shaped like a JWT or an HTTP credential header is a finding,
whatever minted it (forged tokens, cookies)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

import httpx

from tests.support.processes import Process
from tests.support.sandbox import SandboxServer

MIN_SUBJECT = 8  # shorter subjects ("Hi", "Re: x") would match ordinary log words
MIN_SECRET = 8
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
CREDENTIAL_HEADER = re.compile(
    r"(?i)\b(authorization|cookie|set-cookie|x-functions-key)[\"']?\s*[:=]\s*[\"']?"
    r"(?!<redacted>|\[redacted\]|\*)[A-Za-z0-9]"
)
CLIENT_STATE = re.compile(r"clientState['\"]?\s*:\s*['\"]([^'\"]{8,})")
# Query parameters of the app's requests to Graph whose values are secret or personal.
GRAPH_QUERY_SECRETS = frozenset({"authtoken", "$filter", "$search"})
# Settings whose values are secrets (LOCAL_FERNET_KEYS is a comma-separated list of them).
SECRET_SETTINGS = ("CLIENT_SECRET", "CURSOR_SECRET", "LOCAL_AES_KEY", "LOCAL_FERNET_KEYS")
# JSON members the tests send to or get from the app whose values must never be logged;
# for URLs, what is secret is the query string (a flow's callback URL carries its `sig`).
SECRET_MEMBERS = frozenset({"signingSecret", "clientState"})
URL_MEMBERS = frozenset({"notificationUrl"})
CREDENTIAL_PARAMETER = re.compile(r"(?i)sig|code|token|key|secret|auth|pass")
MAX_HARVESTED_BODY = 256 * 1024  # larger bodies are mail content, not subscriptions


def query_secrets(query: str, names: Iterable[str]) -> set[str]:
    """The values of `names` in a raw query string: as they travel (URL-encoded) and decoded,
    so that a logged URL and a logged value are both found."""
    wanted = set(names)
    found: set[str] = set()
    for pair in query.split("&"):
        raw_name, _, raw_value = pair.partition("=")
        if unquote_plus(raw_name) in wanted:
            found |= {raw_value, unquote(raw_value), unquote_plus(raw_value)}
    return {value for value in found if len(value) >= MIN_SECRET}


def url_query_secrets(url: str) -> set[str]:
    """A URL's whole query string, and the values (raw and decoded) of its parameters that
    name a credential (`sig`, `code`, `token`, ...); not `api-version=2016-10-01`'s date."""
    query = urlsplit(url).query
    if not query:
        return set()
    names = {unquote_plus(pair.partition("=")[0]) for pair in query.split("&")}
    credentials = {name for name in names if CREDENTIAL_PARAMETER.search(name)}
    return {s for s in {query} | query_secrets(query, credentials) if len(s) >= MIN_SECRET}


def graph_request_secrets(requests: Iterable[Mapping[str, Any]]) -> set[str]:
    """From the sandbox's request log: upload `authtoken`s, `$filter` / `$search` values, and
    the `clientState` of every subscription the app created."""
    found: set[str] = set()
    for request in requests:
        found |= query_secrets(str(request.get("query") or ""), GRAPH_QUERY_SECRETS)
        if str(request.get("path", "")).endswith("/subscriptions") and request.get("body"):
            found |= set(CLIENT_STATE.findall(repr(request["body"])))
    return found


def json_secrets(document: Any) -> set[str]:
    """`SECRET_MEMBERS` values and `URL_MEMBERS` query strings anywhere in a JSON document."""
    found: set[str] = set()
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            for name, value in node.items():
                if isinstance(value, str) and name in SECRET_MEMBERS and len(value) >= MIN_SECRET:
                    found.add(value)
                elif isinstance(value, str) and name in URL_MEMBERS:
                    found |= url_query_secrets(value)
                else:
                    stack.append(value)
    return found


def settings_secrets(env: Mapping[str, str]) -> set[str]:
    """The values of `SECRET_SETTINGS` in a process's environment."""
    found: set[str] = set()
    for name in SECRET_SETTINGS:
        found |= {part.strip() for part in str(env.get(name) or "").split(",")}
    return {value for value in found if len(value) >= MIN_SECRET}


def message_secrets(message: httpx.Request | httpx.Response) -> set[str]:
    """`json_secrets` of a request or response body that is small JSON already in memory."""
    if "json" not in message.headers.get("content-type", ""):
        return set()
    try:
        content = message.content
    except (httpx.RequestNotRead, httpx.ResponseNotRead):
        return set()  # streamed: not a subscription
    if not content or len(content) > MAX_HARVESTED_BODY:
        return set()
    try:
        return json_secrets(json.loads(content))
    except ValueError:
        return set()


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
            self.secrets |= graph_request_secrets(control.get("/_sandbox/requests").json())
            for user in control.get("/_sandbox/users").json():
                mailbox = control.get(f"/_sandbox/users/{user['upn']}/mailbox").json()
                self.subjects |= {
                    m["subject"]
                    for m in mailbox.get("messages", [])
                    if len(m.get("subject") or "") >= MIN_SUBJECT
                }

    def install(self) -> Callable[[], None]:
        """Harvest every sandbox of this process before it resets or stops, the secret
        settings of every process started, and what the tests' HTTP clients send and receive;
        returns the undo."""
        reset, stop = SandboxServer.reset, SandboxServer.stop
        process_init, send = Process.__init__, httpx.Client.send
        ledger = self

        def harvesting_init(process: Process, *args: Any, **kwargs: Any) -> None:
            env = kwargs.get("env", args[2] if len(args) > 2 else {})
            ledger.secrets |= settings_secrets(env)
            process_init(process, *args, **kwargs)

        def harvesting_send(client: httpx.Client, request: httpx.Request, **kwargs: Any) -> Any:
            ledger.secrets |= message_secrets(request)
            response = send(client, request, **kwargs)
            ledger.secrets |= message_secrets(response)
            return response

        def harvesting_reset(sandbox: SandboxServer) -> None:
            ledger.harvest(sandbox)
            reset(sandbox)

        def harvesting_stop(sandbox: SandboxServer) -> None:
            ledger.harvest(sandbox)
            stop(sandbox)

        SandboxServer.reset = harvesting_reset  # type: ignore[method-assign, assignment]
        SandboxServer.stop = harvesting_stop  # type: ignore[method-assign, assignment]
        Process.__init__ = harvesting_init  # type: ignore[method-assign]
        httpx.Client.send = harvesting_send  # type: ignore[method-assign, assignment]

        def undo() -> None:
            SandboxServer.reset, SandboxServer.stop = reset, stop  # type: ignore[method-assign]
            Process.__init__ = process_init  # type: ignore[method-assign]
            httpx.Client.send = send  # type: ignore[method-assign]

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
