"""Exchange-like item ids.

Graph's regular ids are folder-dependent (a move changes them); immutable ids
(`Prefer: IdType="ImmutableId"`) survive moves. Both are modelled as different
base64url strings with a recognisable header, so that a syntactically wrong id answers
`ErrorInvalidIdMalformed` and a well-formed unknown one `ErrorItemNotFound`, as Exchange does.
"""

from __future__ import annotations

import base64
import binascii
from enum import IntEnum

# Prefixes shaped like Exchange's ("AAMkA..." regular EWS ids, "AAkALg..." immutable ones).
REGULAR_PREFIX = "AAMkA"
IMMUTABLE_PREFIX = "AAkALg"


class IdKind(IntEnum):
    FOLDER = 1
    MESSAGE = 2
    IMMUTABLE_MESSAGE = 3
    ATTACHMENT = 4


_LENGTHS = {
    IdKind.FOLDER: 8 + 16,
    IdKind.MESSAGE: 8 + 16 + 16,
    IdKind.IMMUTABLE_MESSAGE: 8 + 16,
    IdKind.ATTACHMENT: 8 + 16 + 8,
}


def _encode(prefix: str, kind: IdKind, payload: bytes) -> str:
    return prefix + base64.urlsafe_b64encode(bytes([0, kind]) + payload).decode("ascii")


def folder_id(mailbox_key: bytes, folder_key: bytes) -> str:
    return _encode(REGULAR_PREFIX, IdKind.FOLDER, mailbox_key + folder_key)


def regular_message_id(mailbox_key: bytes, folder_key: bytes, item_key: bytes) -> str:
    return _encode(REGULAR_PREFIX, IdKind.MESSAGE, mailbox_key + folder_key + item_key)


def immutable_message_id(mailbox_key: bytes, item_key: bytes) -> str:
    return _encode(IMMUTABLE_PREFIX, IdKind.IMMUTABLE_MESSAGE, mailbox_key + item_key)


def attachment_id(mailbox_key: bytes, item_key: bytes, attachment_key: bytes) -> str:
    return _encode(REGULAR_PREFIX, IdKind.ATTACHMENT, mailbox_key + item_key + attachment_key)


def id_kind(value: str) -> IdKind | None:
    """The kind of a well-formed sandbox id, or None when `value` is malformed."""
    for prefix in (REGULAR_PREFIX, IMMUTABLE_PREFIX):
        if value.startswith(prefix):
            body = value[len(prefix) :]
            break
    else:
        return None
    # Clients sometimes send ids with standard base64 characters; Exchange accepts both.
    body = body.replace("+", "-").replace("/", "_")
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 2 or raw[0] != 0:
        return None
    try:
        kind = IdKind(raw[1])
    except ValueError:
        return None
    if len(raw) - 2 != _LENGTHS[kind]:
        return None
    expected_prefix = IMMUTABLE_PREFIX if kind is IdKind.IMMUTABLE_MESSAGE else REGULAR_PREFIX
    return kind if value.startswith(expected_prefix) else None


def normalise(value: str) -> str:
    """Ids may arrive with standard-base64 characters or without padding."""
    for prefix in (REGULAR_PREFIX, IMMUTABLE_PREFIX):
        if value.startswith(prefix):
            body = value[len(prefix) :].replace("+", "-").replace("/", "_").rstrip("=")
            return prefix + body + "=" * (-len(body) % 4)
    return value
