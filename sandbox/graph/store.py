"""In-memory mailboxes: folders, messages (with regular and immutable ids), attachments and
upload sessions. Pure data and its invariants; HTTP, auth and rendering live elsewhere.

Messages keep their Graph properties in `props` (Graph's names and JSON shapes, datetimes
normalised to `YYYY-MM-DDTHH:MM:SSZ` so that comparing strings compares instants).
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sandbox.graph import ids
from sandbox.graph.throttle import MailboxLimiter

if TYPE_CHECKING:
    from sandbox.directory import Directory, User
    from sandbox.settings import SandboxSettings

logger = logging.getLogger(__name__)

# (well-known name, display name) of the folders directly under msgfolderroot, in
# Outlook's order.
VISIBLE_WELL_KNOWN: tuple[tuple[str, str], ...] = (
    ("archive", "Archive"),
    ("deleteditems", "Deleted Items"),
    ("drafts", "Drafts"),
    ("inbox", "Inbox"),
    ("junkemail", "Junk Email"),
    ("outbox", "Outbox"),
    ("sentitems", "Sent Items"),
)
ROOT = "root"
MSGFOLDERROOT = "msgfolderroot"
RECOVERABLE_ROOT = "recoverableitemsroot"
RECOVERABLE_DELETIONS = "recoverableitemsdeletions"
WELL_KNOWN_NAMES = frozenset(
    [name for name, _ in VISIBLE_WELL_KNOWN]
    + [MSGFOLDERROOT, RECOVERABLE_ROOT, RECOVERABLE_DELETIONS]
)


def format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(value: str) -> datetime:
    """ISO 8601 with Z or an offset and up to 7 fractional digits (.NET's precision); a value
    without a zone is UTC, as Graph reads it."""
    match = re.match(
        r"^(\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?)?)(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$",
        value.strip(),
    )
    if match is None:
        raise ValueError(f"not an ISO 8601 date/time: {value!r}")
    head, frac, zone = match.groups()
    # Python parses at most 6 fractional digits; Graph sends up to 7.
    text = head + (frac[:7] if frac else "")
    parsed = datetime.fromisoformat(text)
    if zone and zone.upper() != "Z":
        parsed = parsed.replace(tzinfo=datetime.fromisoformat("2000-01-01T00:00:00" + zone).tzinfo)
    elif parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def normalise_datetime(value: str) -> str:
    return format_datetime(parse_datetime(value))


def body_preview(body: dict[str, Any] | None) -> str:
    if not body:
        return ""
    content = str(body.get("content") or "")
    if str(body.get("contentType", "text")).lower() == "html":
        content = html.unescape(re.sub(r"<[^>]+>", " ", content))
    return " ".join(content.split())[:255]


@dataclass
class Folder:
    key: bytes
    id: str
    display_name: str
    parent_id: str | None
    well_known: str | None = None
    is_hidden: bool = False


@dataclass
class Attachment:
    key: bytes
    id: str
    name: str
    content_type: str
    content: bytes | bytearray
    last_modified: str
    is_inline: bool = False
    content_id: str | None = None
    content_location: str | None = None

    @property
    def size(self) -> int:
        # Exchange's size includes some item overhead; the sandbox reports the content size.
        return len(self.content)


@dataclass
class Message:
    key: bytes
    immutable_id: str
    regular_id: str
    folder_id: str
    props: dict[str, Any]
    seq: int  # creation order, the tie-breaker when sorting
    changed: int  # the store's change sequence number at the last change (for delta)
    attachments: list[Attachment] = field(default_factory=list)
    arrived: int = 0  # sequence number when it entered its current folder (delta "created")
    # The last `$value` rendering and the version it was rendered from (sandbox/graph/mime.py).
    rendered: tuple[tuple[int, tuple[int, ...]], bytes] | None = field(
        default=None, repr=False, compare=False
    )

    def id_for(self, immutable: bool) -> str:
        return self.immutable_id if immutable else self.regular_id


@dataclass
class Tombstone:
    """A message that left a folder (moved or deleted), remembered for delta queries."""

    seq: int
    folder_id: str
    immutable_id: str
    regular_id: str


@dataclass
class MessageRule:
    """An inbox rule: its Graph JSON (messageRule, without `id`), run on delivery by
    sandbox/graph/rules.py."""

    id: str
    props: dict[str, Any]
    created: int  # creation order: the tie-breaker between rules of equal `sequence`


@dataclass
class UploadSession:
    id: str
    secret: str
    mailbox: str
    app_id: str
    message_immutable_id: str
    message_ref: str  # the message id as the session's creator saw it (immutable or regular)
    user_ref: str  # "{user id}@{tenant id}", as Outlook writes users in its URLs
    name: str
    content_type: str
    size: int
    is_inline: bool
    content_id: str | None
    expires: datetime
    received: int = 0
    buffer: bytearray | None = None  # allocated on the first chunk, at its final size
    busy: bool = False  # a chunk is being received (chunks must come one after the other)


@dataclass
class Mailbox:
    user: User
    key: bytes
    folders: dict[str, Folder] = field(default_factory=dict)
    well_known: dict[str, str] = field(default_factory=dict)  # name -> folder id
    messages: dict[str, Message] = field(default_factory=dict)  # immutable id -> message
    by_regular_id: dict[str, Message] = field(default_factory=dict)
    tombstones: list[Tombstone] = field(default_factory=list)
    # outlook/masterCategories and mailboxSettings (sandbox/graph/mailbox_settings.py).
    master_categories: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    # Bumped by `POST /_sandbox/users/{upn}/delta/expire`: older delta tokens answer 410.
    delta_epoch: int = 0
    # mailFolders/inbox/messageRules (sandbox/graph/rules.py), in creation order.
    message_rules: list[MessageRule] = field(default_factory=list)

    @property
    def upn(self) -> str:
        return self.user.upn

    def folder(self, ref: str) -> Folder | None:
        """A folder by id or (case-insensitive) well-known name."""
        folder_id = self.well_known.get(ref.lower(), ref)
        found = self.folders.get(folder_id)
        if found is None:
            found = self.folders.get(ids.normalise(ref))
        return found

    def wk(self, name: str) -> Folder:
        return self.folders[self.well_known[name]]

    def children(self, folder_id: str) -> list[Folder]:
        return [f for f in self.folders.values() if f.parent_id == folder_id]

    def is_visible(self, folder: Folder) -> bool:
        """Under msgfolderroot: what Outlook shows and `/messages` spans."""
        root_id = self.well_known[MSGFOLDERROOT]
        current: Folder | None = folder
        while current is not None:
            if current.parent_id == root_id:
                return True
            current = self.folders.get(current.parent_id) if current.parent_id else None
        return False

    def find_message(self, message_id: str) -> Message | None:
        key = ids.normalise(message_id)
        return self.messages.get(key) or self.by_regular_id.get(key)

    def messages_in(self, folder_id: str) -> Iterator[Message]:
        return (m for m in self.messages.values() if m.folder_id == folder_id)


class MailStore:
    """All mailboxes of the sandbox tenant; `reset` restores the default seed."""

    def __init__(
        self, settings: SandboxSettings, seed: Callable[[MailStore], None] = lambda store: None
    ) -> None:
        self.settings = settings
        # What `reset` fills the mailboxes with (sandbox/graph/seed.py, given by the context):
        # the seed builds on this module, so it is handed in rather than imported.
        self._seed = seed
        self.mailboxes: dict[str, Mailbox] = {}
        self.upload_sessions: dict[str, UploadSession] = {}
        self.seq = 0
        self._rng = random.Random(0)
        self.limiter = MailboxLimiter(settings, lambda: self.clock())
        # Switched to the control API's shiftable clock by the routes (sandbox.controls).
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        # Called when a message enters a folder (created, delivered, moved or copied there):
        # change notifications (sandbox/graph/subscriptions.py) hang off this one hook.
        self.arrival_listeners: list[Callable[[Mailbox, Message], None]] = []
        # Told of a message changed in place (PATCH: flag, read state, categories...).
        self.update_listeners: list[Callable[[Mailbox, Message], None]] = []
        # Graph subscriptions by id (owned by sandbox/graph/subscriptions.py).
        self.subscriptions: dict[str, Any] = {}
        # All change notifications paused (`/_sandbox/notifications/pause`): None, "hold"
        # (sent on resume) or "drop" (lost, as when Graph fails to deliver).
        self.notifications_paused: str | None = None

    # Lifecycle ---------------------------------------------------------------------------
    def reset(self, directory: Directory) -> None:
        self.mailboxes = {}
        self.upload_sessions = {}
        self.subscriptions = {}
        self.notifications_paused = None
        self.seq = 0
        self._rng = random.Random(20260101)
        self.limiter = MailboxLimiter(self.settings, lambda: self.clock())
        for user in directory.users.values():
            self.ensure_mailbox(user)
        self._seed(self)

    def ensure_mailbox(self, user: User) -> Mailbox:
        """The user's mailbox with Exchange's well-known folders, created on first use."""
        existing = self.mailboxes.get(user.upn)
        if existing is not None:
            existing.user = user
            return existing
        key = hashlib.sha256(f"mailbox:{user.id}".encode()).digest()[:8]
        mailbox = Mailbox(user=user, key=key)
        self.mailboxes[user.upn] = mailbox
        root = self._add_folder(mailbox, "Root", None, ROOT, hidden=True)
        top = self._add_folder(mailbox, "Top of Information Store", root.id, MSGFOLDERROOT)
        for name, display in VISIBLE_WELL_KNOWN:
            self._add_folder(mailbox, display, top.id, name)
        recoverable = self._add_folder(
            mailbox, "Recoverable Items", root.id, RECOVERABLE_ROOT, hidden=True
        )
        self._add_folder(mailbox, "Deletions", recoverable.id, RECOVERABLE_DELETIONS, hidden=True)
        from sandbox.graph.mailbox_settings import default_categories, default_settings

        mailbox.master_categories = default_categories(mailbox)
        mailbox.settings = default_settings(mailbox, self.clock())
        return mailbox

    def mailbox(self, upn: str) -> Mailbox | None:
        return self.mailboxes.get(upn.lower())

    def now(self) -> str:
        return format_datetime(self.clock())

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def new_key(self, length: int = 16) -> bytes:
        return self._rng.randbytes(length)

    # Folders -----------------------------------------------------------------------------
    def _add_folder(
        self,
        mailbox: Mailbox,
        display_name: str,
        parent_id: str | None,
        well_known: str | None = None,
        hidden: bool = False,
    ) -> Folder:
        if well_known is not None:
            key = hashlib.sha256(f"{mailbox.upn}:{well_known}".encode()).digest()[:16]
        else:
            key = self.new_key()
        folder = Folder(
            key=key,
            id=ids.folder_id(mailbox.key, key),
            display_name=display_name,
            parent_id=parent_id,
            well_known=well_known,
            is_hidden=hidden,
        )
        mailbox.folders[folder.id] = folder
        if well_known is not None:
            mailbox.well_known[well_known] = folder.id
        return folder

    def create_folder(
        self, mailbox: Mailbox, parent: Folder, display_name: str, hidden: bool = False
    ) -> Folder:
        return self._add_folder(mailbox, display_name, parent.id, hidden=hidden)

    def delete_folder(self, mailbox: Mailbox, folder: Folder) -> None:
        """Exchange moves a deleted folder (with its content) into Deleted Items."""
        deleted = mailbox.wk("deleteditems")
        if folder.parent_id == deleted.id or self._is_under(mailbox, folder, deleted):
            self._purge_folder(mailbox, folder)
        else:
            folder.parent_id = deleted.id

    def _is_under(self, mailbox: Mailbox, folder: Folder, ancestor: Folder) -> bool:
        current = folder
        while current.parent_id:
            if current.parent_id == ancestor.id:
                return True
            current = mailbox.folders[current.parent_id]
        return False

    def _purge_folder(self, mailbox: Mailbox, folder: Folder) -> None:
        for child in mailbox.children(folder.id):
            self._purge_folder(mailbox, child)
        for message in list(mailbox.messages_in(folder.id)):
            self.purge(mailbox, message)
        del mailbox.folders[folder.id]

    # Messages ----------------------------------------------------------------------------
    def add_message(
        self,
        mailbox: Mailbox,
        folder: Folder,
        props: dict[str, Any],
        attachments: list[Attachment] | None = None,
        key: bytes | None = None,
    ) -> Message:
        key = key or self.new_key()
        seq = self.next_seq()
        message = Message(
            key=key,
            immutable_id=ids.immutable_message_id(mailbox.key, key),
            regular_id=ids.regular_message_id(mailbox.key, folder.key, key),
            folder_id=folder.id,
            props=props,
            seq=seq,
            changed=seq,
            attachments=list(attachments or []),
            arrived=seq,
        )
        props["parentFolderId"] = folder.id
        self._refresh(message)
        mailbox.messages[message.immutable_id] = message
        mailbox.by_regular_id[message.regular_id] = message
        self._arrived(mailbox, message)
        return message

    def _arrived(self, mailbox: Mailbox, message: Message) -> None:
        for listener in self.arrival_listeners:
            listener(mailbox, message)

    def updated(self, mailbox: Mailbox, message: Message) -> None:
        """A message changed in place (Graph notifies `updated` subscriptions)."""
        for listener in self.update_listeners:
            listener(mailbox, message)

    def _refresh(self, message: Message) -> None:
        props = message.props
        props["hasAttachments"] = any(not a.is_inline for a in message.attachments)
        props["bodyPreview"] = body_preview(props.get("body"))
        props["changeKey"] = base64.b64encode(
            b"\x0f\x00\x00\x00" + message.key[:8] + message.changed.to_bytes(8, "big")
        ).decode("ascii")

    def touch(self, message: Message) -> None:
        message.changed = self.next_seq()
        message.props["lastModifiedDateTime"] = self.now()
        self._refresh(message)

    def move(self, mailbox: Mailbox, message: Message, destination: Folder) -> Message:
        """A move keeps the immutable id and changes the regular (folder-dependent) one."""
        if destination.id == message.folder_id:
            return message
        self._tombstone(mailbox, message)
        del mailbox.by_regular_id[message.regular_id]
        message.folder_id = destination.id
        message.props["parentFolderId"] = destination.id
        message.regular_id = ids.regular_message_id(mailbox.key, destination.key, message.key)
        mailbox.by_regular_id[message.regular_id] = message
        self.touch(message)
        message.arrived = message.changed
        self._arrived(mailbox, message)
        return message

    def copy(self, mailbox: Mailbox, message: Message, destination: Folder) -> Message:
        props = _deep_copy(message.props)
        now = self.now()
        props["createdDateTime"] = now
        props["lastModifiedDateTime"] = now
        attachments = [self.copy_attachment(mailbox, a) for a in message.attachments]
        return self.add_message(mailbox, destination, props, attachments)

    def soft_delete(self, mailbox: Mailbox, message: Message) -> None:
        """Graph's DELETE: the item leaves the folder tree for Recoverable Items\\Deletions."""
        deletions = mailbox.wk(RECOVERABLE_DELETIONS)
        if message.folder_id == deletions.id:
            self.purge(mailbox, message)
        else:
            self.move(mailbox, message, deletions)

    def purge(self, mailbox: Mailbox, message: Message) -> None:
        self._tombstone(mailbox, message)
        mailbox.messages.pop(message.immutable_id, None)
        mailbox.by_regular_id.pop(message.regular_id, None)
        for session_id in [
            s.id
            for s in self.upload_sessions.values()
            if s.message_immutable_id == message.immutable_id
        ]:
            del self.upload_sessions[session_id]

    def _tombstone(self, mailbox: Mailbox, message: Message) -> None:
        mailbox.tombstones.append(
            Tombstone(
                seq=self.next_seq(),
                folder_id=message.folder_id,
                immutable_id=message.immutable_id,
                regular_id=message.regular_id,
            )
        )

    # Attachments -------------------------------------------------------------------------
    def new_attachment(
        self,
        mailbox: Mailbox,
        message_key: bytes,
        name: str,
        content_type: str,
        content: bytes | bytearray,
        is_inline: bool = False,
        content_id: str | None = None,
        content_location: str | None = None,
    ) -> Attachment:
        key = self.new_key(8)
        return Attachment(
            key=key,
            id=ids.attachment_id(mailbox.key, message_key, key),
            name=name,
            content_type=content_type,
            content=content,
            last_modified=self.now(),
            is_inline=is_inline,
            content_id=content_id,
            content_location=content_location,
        )

    def copy_attachment(self, mailbox: Mailbox, attachment: Attachment) -> Attachment:
        # Content is shared, never mutated after completion: copying the reference is safe.
        return self.new_attachment(
            mailbox,
            self.new_key(),
            attachment.name,
            attachment.content_type,
            attachment.content,
            attachment.is_inline,
            attachment.content_id,
            attachment.content_location,
        )

    def add_attachment(self, message: Message, attachment: Attachment) -> None:
        message.attachments.append(attachment)
        self.touch(message)

    def remove_attachment(self, message: Message, attachment: Attachment) -> None:
        message.attachments.remove(attachment)
        self.touch(message)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def default_props(now: str, *, conversation_seed: bytes) -> dict[str, Any]:
    """A message's full Graph property set with Exchange's defaults, in Graph's order."""
    conversation = hashlib.sha256(b"conversation:" + conversation_seed).digest()
    return {
        "createdDateTime": now,
        "lastModifiedDateTime": now,
        "changeKey": "",
        "categories": [],
        "receivedDateTime": now,
        "sentDateTime": now,
        "hasAttachments": False,
        "internetMessageId": f"<{conversation_seed.hex()}@contoso.test>",
        "subject": "",
        "bodyPreview": "",
        "importance": "normal",
        "conversationId": ids.REGULAR_PREFIX
        + base64.urlsafe_b64encode(b"\x00\x10" + conversation[:16]).decode("ascii"),
        "conversationIndex": base64.b64encode(b"\x01" + conversation[:21]).decode("ascii"),
        "isDeliveryReceiptRequested": False,
        "isReadReceiptRequested": False,
        "isRead": True,
        "isDraft": False,
        "inferenceClassification": "focused",
        "body": {"contentType": "text", "content": ""},
        "sender": None,
        "from": None,
        "toRecipients": [],
        "ccRecipients": [],
        "bccRecipients": [],
        "replyTo": [],
        "flag": {"flagStatus": "notFlagged"},
        "internetMessageHeaders": [],
    }


DATETIME_PROPS = ("createdDateTime", "lastModifiedDateTime", "receivedDateTime", "sentDateTime")
# Set by Exchange, never taken from a request body.
READ_ONLY_PROPS = frozenset(
    {
        "id",
        "changeKey",
        "createdDateTime",
        "lastModifiedDateTime",
        "hasAttachments",
        "bodyPreview",
        "parentFolderId",
        "conversationId",
        "conversationIndex",
        "isDraft",
        "webLink",
        "uniqueBody",
    }
)


def apply_fields(props: dict[str, Any], fields: dict[str, Any], *, trusted: bool = False) -> None:
    """Copy validated Graph fields into `props`; read-only ones only when `trusted` (seeding)."""
    for name, value in fields.items():
        if name.startswith("@") or name == "attachments":
            continue
        if name in READ_ONLY_PROPS and not trusted:
            continue
        if name in DATETIME_PROPS and isinstance(value, str):
            value = normalise_datetime(value)
        if name == "flag":
            value = {"flagStatus": "notFlagged", **(value or {})}
        if name == "body":
            value = {"contentType": "text", "content": "", **(value or {})}
        if (value is None and name in ("categories",)) or (
            value is None and name.endswith("Recipients")
        ):
            value = []
        props[name] = _deep_copy(value)
