"""Graph paths built from caller input, so that no input can reach another Graph path.

Every caller-supplied value that lands in a path (message, folder and attachment ids, a
shared mailbox) is validated against the shape Graph gives it and percent-encoded as ONE
segment. Paths are relative to GRAPH_BASE_URL (`/me/messages/{id}`); the client adds the base.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from shared.errors import FieldError, ValidationFailed

MAX_ID_LENGTH = 512

# Graph's REST ids are URL-safe base64 (`AAMkAGI2…AAA=`, immutable `AAkALg…`): letters,
# digits, `-`, `_`, `=` padding; `+` occurs in ids converted from EWS. `/` is refused on
# purpose even though EWS ids carry it: some proxies and servers decode `%2F` before routing,
# and one such hop would let an id climb out of its segment.
_ID = re.compile(rf"[A-Za-z0-9\-_=+]{{1,{MAX_ID_LENGTH}}}")

# A user principal name / SMTP address (Graph `/users/{upn}`), or an object id (GUID).
_UPN = re.compile(
    r"[A-Za-z0-9.!#$&'*+=?^_`{|}~-]{1,64}"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

WELL_KNOWN_FOLDERS = frozenset(
    {
        "inbox",
        "drafts",
        "sentitems",
        "deleteditems",
        "archive",
        "junkemail",
        "outbox",
        "recoverableitemsdeletions",
        "msgfolderroot",
    }
)

# Actions on a message that take no path input besides the id (POST /messages/{id}/{action}).
MESSAGE_ACTIONS = frozenset(
    {
        "send",
        "reply",
        "replyAll",
        "forward",
        "createReply",
        "createReplyAll",
        "createForward",
        "move",
        "copy",
        "permanentDelete",
    }
)


def _invalid(field: str, message: str) -> ValidationFailed:
    # The offending value is not echoed: it may be long, binary, or personal data.
    return ValidationFailed(f"{field} is not valid", errors=[FieldError(("path", field), message)])


def graph_id(value: str, *, field: str = "id") -> str:
    """Validate a caller-supplied Graph id; return it encoded as exactly one path segment.

    Raises ValidationFailed (400) for anything that is not Graph-id-shaped: empty, longer than
    512, or containing `/`, `.`, `%`, whitespace, control characters or NUL.
    """
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise _invalid(field, "must be a Microsoft Graph id")
    # Why encode although the charset is already safe: `+` and `=` are reserved in some
    # contexts. Of the id charset, `quote(value, safe="")` changes exactly these two; spelled
    # out, it is the same string without urllib's loop over every character (a bulk request
    # encodes up to 2,000 ids). tests/unit/graph/test_paths.py holds the two to each other.
    return value.replace("=", "%3D").replace("+", "%2B")


def folder_segment(value: str, *, field: str = "folder") -> str:
    """A well-known folder name (case-insensitive, allow-listed) or a validated folder id."""
    if isinstance(value, str) and value.lower() in WELL_KNOWN_FOLDERS:
        return value.lower()
    return graph_id(value, field=field)


def mailbox_segment(value: str, *, field: str = "mailbox") -> str:
    """A shared mailbox as a `/users/{…}` segment: a UPN/SMTP address or an object id."""
    if not isinstance(value, str) or len(value) > 320:
        raise _invalid(field, "must be a user principal name, address or object id")
    if not (_UPN.fullmatch(value) or _GUID.fullmatch(value)) or ".." in value:
        raise _invalid(field, "must be a user principal name, address or object id")
    return quote(value, safe="@")


@dataclass(frozen=True)
class MailboxPath:
    """The mailbox a request targets: the signed-in user's (`/me`) or a shared one."""

    root: str

    @classmethod
    def of(cls, mailbox: str | None) -> MailboxPath:
        return cls("/me" if mailbox is None else f"/users/{mailbox_segment(mailbox)}")

    def messages(self) -> str:
        return f"{self.root}/messages"

    def folder_messages(self, folder: str) -> str:
        return f"{self.root}/mailFolders/{folder_segment(folder)}/messages"

    def folder_messages_resource(self, folder: str) -> str:
        """A folder's messages as a change-notification subscription's `resource`, in the
        form Graph documents (`me/mailFolders('{id}')/messages`). A resource is not a URL:
        Graph does not percent-decode it, so the id goes in as it is (an id percent-encoded
        for a path is another, unknown folder). Validated like a path segment first: the id
        charset has no quote, slash or parenthesis to break out of `('…')`."""
        folder_segment(folder)  # raises on anything not id- or name-shaped
        raw = folder.lower() if folder.lower() in WELL_KNOWN_FOLDERS else folder
        return f"{self.root.lstrip('/')}/mailFolders('{raw}')/messages"

    def message(self, message_id: str) -> str:
        return f"{self.root}/messages/{graph_id(message_id, field='messageId')}"

    def message_mime(self, message_id: str) -> str:
        return f"{self.message(message_id)}/$value"

    def message_action(self, message_id: str, action: str) -> str:
        if action not in MESSAGE_ACTIONS:
            raise ValueError(f"unknown message action {action!r}")  # our bug, not the caller's
        return f"{self.message(message_id)}/{action}"

    def attachments(self, message_id: str) -> str:
        return f"{self.message(message_id)}/attachments"

    def attachment(self, message_id: str, attachment_id: str) -> str:
        return f"{self.attachments(message_id)}/{graph_id(attachment_id, field='attachmentId')}"

    def attachment_upload_session(self, message_id: str) -> str:
        return f"{self.attachments(message_id)}/createUploadSession"

    def attachment_content(self, message_id: str, attachment_id: str) -> str:
        return f"{self.attachment(message_id, attachment_id)}/$value"

    def folders(self) -> str:
        return f"{self.root}/mailFolders"

    def folder(self, folder: str) -> str:
        return f"{self.root}/mailFolders/{folder_segment(folder, field='folderId')}"

    def child_folders(self, folder: str) -> str:
        return f"{self.folder(folder)}/childFolders"

    def send_mail(self) -> str:
        return f"{self.root}/sendMail"


_DOT_SEGMENT = re.compile(r"(^|/)(\.|%2e){1,2}(/|$)", re.IGNORECASE)
# Encoded `/`, `\` and NUL never come out of our builders (graph_id refuses `/`); a server that
# decodes them before routing would see extra segments.
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00)", re.IGNORECASE)


def is_relative_graph_path(path: str) -> bool:
    """A path our builders could have produced: absolute-path form; no query, fragment, dot
    segment, backslash, encoded `/` `\\` or NUL, whitespace or control character."""
    return (
        path.startswith("/")
        and not path.startswith("//")
        and not any(c in path for c in "?#\\")
        and path.isprintable()
        and " " not in path
        and not _DOT_SEGMENT.search(path)
        and not _ENCODED_SEPARATOR.search(path)
    )


def is_within_base(url: str, base_url: str) -> bool:
    """True when `url` is on GRAPH_BASE_URL: same scheme, host and port, a path under the
    base path, no user info, no fragment, no dot segments. Used for every absolute URL the
    client is asked to call (Graph's nextLinks), so a token is never sent anywhere else."""
    try:
        target, base = urlsplit(url), urlsplit(base_url)
        target_port, base_port = _port(target.scheme, target.port), _port(base.scheme, base.port)
    except ValueError:
        return False
    prefix = base.path.rstrip("/") + "/"
    return (
        target.scheme.lower() == base.scheme.lower()
        and target.hostname is not None
        and target.hostname == base.hostname
        and target_port == base_port
        and target.username is None
        and target.password is None
        and not target.fragment
        and "#" not in url
        and target.path.startswith(prefix)
        and is_relative_graph_path(target.path)
        and url.isprintable()
        and " " not in url
    )


def _port(scheme: str, port: int | None) -> int | None:
    if port is not None:
        return port
    return {"https": 443, "http": 80}.get(scheme.lower())
