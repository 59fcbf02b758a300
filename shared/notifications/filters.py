"""The caller's filters, as the Outlook connector's "When a new email arrives" offers them,
applied to the message after Graph has notified (Graph's own subscription cannot filter)."""

from __future__ import annotations

from collections.abc import Iterable
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import Field

from shared.models import ApiModel

# The message fields the filters and the event's `message` read (never the body).
MESSAGE_SELECT = (
    "id,subject,from,sender,toRecipients,ccRecipients,importance,hasAttachments,"
    "receivedDateTime,isRead,conversationId,parentFolderId,bodyPreview,internetMessageId"
)


class Filters(ApiModel):
    """All given filters must match. Address lists are `;`-separated, as in the connector."""

    fromAddress: str | None = Field(
        default=None,
        alias="from",
        max_length=1024,
        description="Sender address(es), `;`-separated.",
    )
    to: str | None = Field(
        default=None, max_length=1024, description="A To recipient, `;`-separated."
    )
    cc: str | None = Field(
        default=None, max_length=1024, description="A Cc recipient, `;`-separated."
    )
    importance: Literal["any", "low", "normal", "high"] = "any"
    hasAttachments: bool | None = None
    subjectContains: str | None = Field(default=None, max_length=255)
    mentionsMe: bool | None = Field(
        default=None,
        description="Only mail whose body @mentions the mailbox (Outlook's mention link).",
    )

    @property
    def reads_body(self) -> bool:
        """Whether matching needs the message body (read from Graph only then)."""
        return bool(self.mentionsMe)


def _addresses(value: str | None) -> set[str]:
    return {a.strip().lower() for a in (value or "").split(";") if a.strip()}


def _recipients(message: dict[str, Any], name: str) -> set[str]:
    out: set[str] = set()
    for r in message.get(name) or []:
        address = ((r or {}).get("emailAddress") or {}).get("address")
        if isinstance(address, str):
            out.add(address.lower())
    return out


def matches(filters: Filters, message: dict[str, Any], me: Iterable[str] = ()) -> bool:
    """Whether the message passes every given filter; `me` are the watched mailbox's
    addresses (for `mentionsMe`)."""
    wanted_from = _addresses(filters.fromAddress)
    if wanted_from:
        sender = ((message.get("from") or {}).get("emailAddress") or {}).get("address") or ""
        if str(sender).lower() not in wanted_from:
            return False
    wanted_to = _addresses(filters.to)
    if wanted_to and not wanted_to & _recipients(message, "toRecipients"):
        return False
    wanted_cc = _addresses(filters.cc)
    if wanted_cc and not wanted_cc & _recipients(message, "ccRecipients"):
        return False
    if (
        filters.importance != "any"
        and str(message.get("importance", "")).lower() != filters.importance
    ):
        return False
    if (
        filters.hasAttachments is not None
        and bool(message.get("hasAttachments")) != filters.hasAttachments
    ):
        return False
    subject = str(message.get("subject") or "").lower()
    if filters.subjectContains and filters.subjectContains.lower() not in subject:
        return False
    return not filters.mentionsMe or mentions(message.get("body"), me)


# Graph v1.0 has no `mentions` / `mentionsPreview` on message (beta only), so a mention is
# found where Outlook writes it: an anchor in the HTML body, `<a id="OWAAM…"
# href="mailto:owner@…">@Name</a>` (Outlook on the web and new Outlook: OWAAM + 32 hex
# digits or a number). The id is what tells a mention from any `mailto:` link, such as one
# in a signature; a quoted mention in a reply has its id prefixed (`x_OWAAM…`) and is not
# a new mention.
MENTION_ID_PREFIX = "owaam"
_FEED = 16 * 1024


def mentions(body: Any, me: Iterable[str]) -> bool:
    """Whether an HTML item body (Graph's itemBody) holds an Outlook @mention of one of the
    addresses `me` (compared without regard to case)."""
    if not isinstance(body, dict) or str(body.get("contentType", "")).lower() != "html":
        return False
    content = body.get("content")
    wanted = {a.strip().lower() for a in me if a and a.strip()}
    if not isinstance(content, str) or not wanted:
        return False
    if MENTION_ID_PREFIX not in content.lower():
        return False  # no mention anchor at all: skip parsing
    finder = _MentionFinder(wanted)
    # Fed in slices so that parsing stops at the first mention: a new mention sits above
    # the quoted history, which can make up most of a long thread's body.
    for start in range(0, len(content), _FEED):
        finder.feed(content[start : start + _FEED])
        if finder.found:
            return True
    finder.close()
    return finder.found


class _MentionFinder(HTMLParser):
    """Outlook mention anchors naming one of `wanted`. The standard library's tolerant
    parser: attribute order, quoting and character references as any browser reads them."""

    def __init__(self, wanted: set[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.wanted = wanted
        self.found = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.found or tag != "a":
            return
        values = {name: value or "" for name, value in attrs}  # names come lower-cased
        if not values.get("id", "").lower().startswith(MENTION_ID_PREFIX):
            return
        scheme, _, rest = values.get("href", "").strip().partition(":")
        if scheme.lower() != "mailto":
            return
        address = unquote(rest.split("?", 1)[0]).strip().lower()
        self.found = address in self.wanted
