"""OData query options for listing messages, built from the API's typed filters.

Callers never send raw `$filter`: each api.md filter becomes one clause with its value
escaped, `$select` is allow-listed, and `$search` is never combined with `$filter`/`$orderby`
(Graph refuses that combination). `ListQuery.params()` is what the client sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from shared.errors import FieldError, ValidationFailed

Importance = Literal["low", "normal", "high"]
OrderBy = Literal["receivedDateTime desc", "receivedDateTime asc"]

MAX_TOP = 1000
MAX_FILTER_VALUE_LENGTH = 256
MAX_SEARCH_LENGTH = 1024

# Message properties a caller may `select` (Graph v1.0 message, minus extended data such as
# internetMessageHeaders, which is returned only on request and may be large).
SELECTABLE_MESSAGE_FIELDS = frozenset(
    {
        "id",
        "subject",
        "bodyPreview",
        "body",
        "uniqueBody",
        "from",
        "sender",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "receivedDateTime",
        "sentDateTime",
        "createdDateTime",
        "lastModifiedDateTime",
        "hasAttachments",
        "importance",
        "isRead",
        "isDraft",
        "flag",
        "categories",
        "conversationId",
        "conversationIndex",
        "internetMessageId",
        "parentFolderId",
        "webLink",
        "inferenceClassification",
        "isReadReceiptRequested",
        "isDeliveryReceiptRequested",
        "changeKey",
    }
)

# Microsoft's documented work-around for "InefficientFilter": when $orderby names
# receivedDateTime, the filter must start with it, so a filter that has no date bound gets
# one that matches everything.
_ALWAYS_TRUE_DATE = "receivedDateTime ge 1900-01-01T00:00:00Z"


def _invalid(field_name: str, message: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field_name} is not valid", errors=[FieldError(("query", field_name), message)]
    )


def odata_string(value: str, *, field_name: str = "value") -> str:
    """An OData string literal: single-quoted, inner single quotes doubled (`O''Brien`)."""
    if len(value) > MAX_FILTER_VALUE_LENGTH:
        raise _invalid(field_name, f"must be at most {MAX_FILTER_VALUE_LENGTH} characters")
    if not value.isprintable():
        raise _invalid(field_name, "must not contain control characters")
    return "'" + value.replace("'", "''") + "'"


def odata_datetime(value: datetime, *, field_name: str = "value") -> str:
    """A DateTimeOffset literal, unquoted, in UTC with `Z` (`2026-02-01T08:00:00Z`)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise _invalid(field_name, "must include a time zone (e.g. 2026-02-01T08:00:00Z)")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kql_search(value: str) -> str:
    """`$search` value: the caller's KQL in double quotes, inner double quotes escaped (`\\"`)
    as Graph requires. Backslashes are refused: they would alter that escaping."""
    if not value.strip():
        raise _invalid("search", "must not be empty")
    if len(value) > MAX_SEARCH_LENGTH:
        raise _invalid("search", f"must be at most {MAX_SEARCH_LENGTH} characters")
    if not value.isprintable() or "\\" in value:
        raise _invalid("search", "must not contain control characters or backslashes")
    return '"' + value.replace('"', '\\"') + '"'


@dataclass(frozen=True)
class MessageFilters:
    """api.md's message filters; None = not filtered on."""

    unread: bool | None = None
    flagged: bool | None = None
    from_address: str | None = None
    to_address: str | None = None
    subject_contains: str | None = None
    has_attachments: bool | None = None
    importance: Importance | None = None
    received_after: datetime | None = None
    received_before: datetime | None = None

    @property
    def any(self) -> bool:
        return any(getattr(self, name) is not None for name in self.__dataclass_fields__)

    def clauses(self) -> list[str]:
        """The `$filter` clauses, date bounds first (see `ListQuery` on InefficientFilter)."""
        out: list[str] = []
        if self.received_after is not None:
            after = odata_datetime(self.received_after, field_name="receivedAfter")
            out.append(f"receivedDateTime gt {after}")
        if self.received_before is not None:
            before = odata_datetime(self.received_before, field_name="receivedBefore")
            out.append(f"receivedDateTime lt {before}")
        if self.unread is not None:
            out.append(f"isRead eq {'false' if self.unread else 'true'}")
        if self.flagged is not None:
            out.append(f"flag/flagStatus {'eq' if self.flagged else 'ne'} 'flagged'")
        if self.from_address is not None:
            out.append(
                f"from/emailAddress/address eq {odata_string(self.from_address, field_name='from')}"
            )
        if self.to_address is not None:
            literal = odata_string(self.to_address, field_name="to")
            out.append(f"toRecipients/any(r:r/emailAddress/address eq {literal})")
        if self.subject_contains is not None:
            literal = odata_string(self.subject_contains, field_name="subjectContains")
            out.append(f"contains(subject,{literal})")
        if self.has_attachments is not None:
            out.append(f"hasAttachments eq {'true' if self.has_attachments else 'false'}")
        if self.importance is not None:
            if self.importance not in ("low", "normal", "high"):
                raise _invalid("importance", "must be low, normal or high")
            out.append(f"importance eq '{self.importance}'")
        return out


@dataclass(frozen=True)
class ListQuery:
    """One page request for a message list: filters or search, select, order, page size."""

    top: int = 25
    filters: MessageFilters = field(default_factory=MessageFilters)
    search: str | None = None
    select: Sequence[str] | None = None
    order_by: OrderBy | None = None

    def params(self) -> dict[str, str]:
        """The OData query options, validated; raises ValidationFailed on caller errors."""
        if not 1 <= self.top <= MAX_TOP:
            raise _invalid("top", f"must be between 1 and {MAX_TOP}")
        params: dict[str, str] = {"$top": str(self.top)}
        if self.select is not None:
            params["$select"] = _select(self.select)
        if self.search is not None:
            # Graph answers 400 to $search with $filter or $orderby; refuse it ourselves with a
            # message that names the caller's parameters.
            if self.filters.any or self.order_by is not None:
                raise _invalid("search", "cannot be combined with filters or orderBy")
            params["$search"] = kql_search(self.search)
            return params
        clauses = self.filters.clauses()
        order_by = self.order_by
        if order_by is not None and self.order_by not in (
            "receivedDateTime desc",
            "receivedDateTime asc",
        ):
            raise _invalid("orderBy", "must be 'receivedDateTime desc' or 'receivedDateTime asc'")
        if clauses and order_by is not None:
            if self.filters.flagged is not None:
                # Exchange refuses any $orderby next to a flag restriction (InefficientFilter,
                # even with receivedDateTime leading). Its default order is receivedDateTime
                # desc, so "desc" is kept by dropping $orderby; "asc" cannot be served.
                if order_by == "receivedDateTime asc":
                    raise _invalid(
                        "orderBy", "'receivedDateTime asc' cannot be combined with flagged"
                    )
                order_by = None
            elif not clauses[0].startswith("receivedDateTime "):
                clauses.insert(0, _ALWAYS_TRUE_DATE)
        if clauses:
            params["$filter"] = " and ".join(clauses)
        if order_by is not None:
            params["$orderby"] = order_by
        return params


def _select(fields: Sequence[str]) -> str:
    if isinstance(fields, str):
        fields = [f for f in fields.split(",")]
    chosen = [f.strip() for f in fields if f.strip()]
    unknown = sorted({f for f in chosen if f not in SELECTABLE_MESSAGE_FIELDS})
    if unknown or not chosen:
        raise _invalid("select", "allowed fields: " + ", ".join(sorted(SELECTABLE_MESSAGE_FIELDS)))
    # `id` always comes back: every item the API returns carries it.
    ordered = ["id", *dict.fromkeys(f for f in chosen if f != "id")]
    return ",".join(ordered)
