"""The default mail seed that `POST /_sandbox/reset` restores: deterministic, so tests can rely
on counts, and cheap, because it runs before every test.

alice@contoso.test: 30 messages in Inbox (varied sender, subject, isRead, importance, flag,
categories, receivedDateTime, attachments; one attachment is 4.5 MiB) and 2 in Inbox/Projects;
Outlook's six default categories plus "Project". Everyone else: the default categories.
bob@contoso.test: 5 in Inbox. support@contoso.test (shared): 10 in Inbox.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.graph.mailbox_settings import category_id
from sandbox.graph.store import Folder, Mailbox, MailStore, default_props, format_datetime

LARGE_ATTACHMENT_SIZE = 4_718_592  # 4.5 MiB: above the 4 MB that POST /attachments accepts

_SENDERS = (
    ("Carol Jones", "carol@fabrikam.test"),
    ("Dave Smith", "dave@northwind.test"),
    ("Bob Example", "bob@contoso.test"),
    ("Erin Brown", "erin@fabrikam.test"),
    ("Northwind Billing", "billing@northwind.test"),
)
_TOPICS = (
    "Quarterly report",
    "Invoice 1001 overdue",
    "Lunch on Friday?",
    "Project Phoenix kickoff",
    "Budget review",
    "Travel itinerary",
    "Security notice",
    "Team offsite agenda",
    "Contract renewal",
    "Weekly status",
)
_NEWEST = datetime(2026, 2, 1, 8, 0, tzinfo=UTC)


@functools.cache
def large_payload() -> bytes:
    """Deterministic, incompressible-looking bytes, built once per process."""
    block = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(2048))
    repeats = LARGE_ATTACHMENT_SIZE // len(block) + 1
    return (block * repeats)[:LARGE_ATTACHMENT_SIZE]


def _recipient(name: str, address: str) -> dict[str, Any]:
    return {"emailAddress": {"name": name, "address": address}}


def seed_default(store: MailStore) -> None:
    alice = store.mailbox("alice@contoso.test")
    bob = store.mailbox("bob@contoso.test")
    support = store.mailbox("support@contoso.test")
    if alice is not None:
        _seed_alice(store, alice)
        # Her messages use a category of her own besides Outlook's defaults.
        alice.master_categories.append(
            {"id": category_id(alice, "Project"), "displayName": "Project", "color": "preset9"}
        )
    if bob is not None:
        _seed_simple(store, bob, 5, "Bob Example", "bob@contoso.test", "Note")
    if support is not None:
        _seed_simple(store, support, 10, "Contoso Support", "support@contoso.test", "Ticket")


def _add(
    store: MailStore,
    mailbox: Mailbox,
    folder: Folder,
    index: int,
    fields: dict[str, Any],
    attachments: list[tuple[str, str, bytes, bool]] = (),  # type: ignore[assignment]
) -> None:
    key = hashlib.sha256(f"seed:{mailbox.upn}:{folder.display_name}:{index}".encode()).digest()
    props = default_props(fields["receivedDateTime"], conversation_seed=key[:12])
    props.update(fields)
    props["sentDateTime"] = fields["receivedDateTime"]
    built = [
        store.new_attachment(
            mailbox, key[:16], name, ctype, data, inline, f"img{index}" if inline else None
        )
        for name, ctype, data, inline in attachments
    ]
    store.add_message(mailbox, folder, props, built, key=key[:16])


def _seed_alice(store: MailStore, mailbox: Mailbox) -> None:
    inbox = mailbox.wk("inbox")
    me = _recipient("Alice Example", "alice@contoso.test")
    for i in range(30):
        name, address = _SENDERS[i % len(_SENDERS)]
        received = _NEWEST - timedelta(days=2 * i, minutes=13 * i)
        topic = _TOPICS[i % len(_TOPICS)]
        importance = "high" if i % 7 == 0 else "low" if i % 5 == 4 else "normal"
        flag: dict[str, Any] = {"flagStatus": "notFlagged"}
        if i % 6 == 1:
            flag = {
                "flagStatus": "flagged",
                "startDateTime": {"dateTime": "2026-02-02T00:00:00.0000000", "timeZone": "UTC"},
                "dueDateTime": {"dateTime": "2026-02-09T00:00:00.0000000", "timeZone": "UTC"},
            }
        elif i == 9:
            flag = {
                "flagStatus": "complete",
                "completedDateTime": {"dateTime": "2026-01-20T10:00:00.0000000", "timeZone": "UTC"},
            }
        categories = (
            ["Blue category"] if i % 4 == 2 else ["Red category", "Project"] if i % 8 == 5 else []
        )
        text = f"Hello Alice, this is about {topic.lower()} (item {i})."
        body = (
            {"contentType": "html", "content": f"<html><body><p>{text}</p></body></html>"}
            if i % 2 == 0
            else {"contentType": "text", "content": text}
        )
        cc = [_recipient("Bob Example", "bob@contoso.test")] if i % 4 == 0 else []
        if i == 6:
            cc.append(_recipient("Contoso Support", "support@contoso.test"))
        attachments: list[tuple[str, str, bytes, bool]] = []
        if i % 5 == 1:
            attachments.append(
                (
                    f"report-{i}.pdf",
                    "application/pdf",
                    f"%PDF-1.4 sandbox {i}\n".encode() * 64,
                    False,
                )
            )
        if i == 2:
            attachments.append(("dataset.bin", "application/octet-stream", large_payload(), False))
        if i == 11:
            attachments.append(("notes.txt", "text/plain", b"Meeting notes\n", False))
        if i == 13:
            attachments.append(("logo.png", "image/png", b"\x89PNG\r\n\x1a\nsandbox", True))
        _add(
            store,
            mailbox,
            inbox,
            i,
            {
                "receivedDateTime": format_datetime(received),
                "createdDateTime": format_datetime(received),
                "lastModifiedDateTime": format_datetime(received),
                "subject": f"{topic} #{i:02d}",
                "importance": importance,
                "isRead": i % 3 != 0,
                "flag": flag,
                "categories": categories,
                "body": body,
                "from": _recipient(name, address),
                "sender": _recipient(name, address),
                "toRecipients": [me],
                "ccRecipients": cc,
            },
            attachments,
        )
    projects = store.create_folder(mailbox, inbox, "Projects")
    for i in range(2):
        received = _NEWEST - timedelta(days=i, hours=3)
        _add(
            store,
            mailbox,
            projects,
            i,
            {
                "receivedDateTime": format_datetime(received),
                "createdDateTime": format_datetime(received),
                "lastModifiedDateTime": format_datetime(received),
                "subject": f"Phoenix milestone {i + 1}",
                "isRead": i == 1,
                "body": {"contentType": "text", "content": f"Milestone {i + 1} is done."},
                "from": _recipient("Carol Jones", "carol@fabrikam.test"),
                "sender": _recipient("Carol Jones", "carol@fabrikam.test"),
                "toRecipients": [me],
            },
        )


def _seed_simple(
    store: MailStore, mailbox: Mailbox, count: int, owner: str, address: str, word: str
) -> None:
    inbox = mailbox.wk("inbox")
    for i in range(count):
        received = _NEWEST - timedelta(days=i, hours=5)
        sender = (
            ("Alice Example", "alice@contoso.test")
            if i % 2 == 0
            else (f"Customer {i}", f"customer{i}@example.test")
        )
        _add(
            store,
            mailbox,
            inbox,
            i,
            {
                "receivedDateTime": format_datetime(received),
                "createdDateTime": format_datetime(received),
                "lastModifiedDateTime": format_datetime(received),
                "subject": f"{word} {i + 1}",
                "isRead": i % 2 == 1,
                "body": {"contentType": "text", "content": f"{word} {i + 1} for {owner}."},
                "from": _recipient(*sender),
                "sender": _recipient(*sender),
                "toRecipients": [_recipient(owner, address)],
            },
        )
