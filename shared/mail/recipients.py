"""Recipients as callers write them: Graph recipient objects, or one `;`-separated string
(`"a@x.test; Bob <b@y.test>"`), the way the Office 365 Outlook connector takes them and flow
makers type them. Either becomes the same list of Graph recipients at the edge.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from shared.models import ApiModel

# The object form's rule, unchanged since v1; inside a `;` list `<`, `>`, `;` and `,` also
# end an address (they are how lists and display names are written).
ADDRESS_PATTERN = r"^[^@\s]+@[^@\s]+$"
_ADDRESS = re.compile(r"^[^@\s<>;,]+@[^@\s<>;,]+$")
# `Display Name <address>`: what Outlook shows and users paste.
_NAMED = re.compile(r"^\s*\"?(?P<name>[^\"<>]*?)\"?\s*<(?P<address>[^<>]*)>\s*$")
MAX_LIST_TEXT = 32 * 1024


class EmailAddressIn(ApiModel):
    address: str = Field(min_length=3, max_length=320, pattern=ADDRESS_PATTERN)
    name: str | None = Field(default=None, max_length=256)


class RecipientIn(ApiModel):
    emailAddress: EmailAddressIn


def split_addresses(text: str) -> list[dict[str, Any]]:
    """`"a@x; Name <b@y>"` → Graph recipients. An entry that is no address is refused with
    its position only: the rejected text may be personal data and is never echoed."""
    if len(text) > MAX_LIST_TEXT:
        raise ValueError(f"the list is longer than {MAX_LIST_TEXT} characters")
    recipients: list[dict[str, Any]] = []
    entries = [e.strip() for e in text.split(";")]
    for position, entry in enumerate(entries, start=1):
        if not entry:
            continue  # "a@x;" and "a@x;;b@y" are what people type
        named = _NAMED.match(entry)
        name, address = (named["name"].strip(), named["address"].strip()) if named else ("", entry)
        if not _ADDRESS.match(address):
            raise ValueError(
                f"entry {position} is not an email address (write name@domain, separated by ';')"
            )
        email: dict[str, Any] = {"address": address}
        if name:
            email["name"] = name
        recipients.append({"emailAddress": email})
    return recipients


def _either(value: Any) -> Any:
    return split_addresses(value) if isinstance(value, str) else value


def _document_both(schema: dict[str, Any]) -> None:
    """OpenAPI shows both accepted shapes (validation happens on the list either way)."""
    array = dict(schema)
    schema.clear()
    schema["anyOf"] = [
        array,
        {
            "type": "string",
            "maxLength": MAX_LIST_TEXT,
            "description": "Email addresses separated by semicolons, e.g. "
            "`a@contoso.com; Bob <b@contoso.com>`.",
        },
    ]


Recipients = Annotated[
    list[RecipientIn],
    BeforeValidator(_either),
    Field(json_schema_extra=_document_both),
]
