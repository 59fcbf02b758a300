"""Pydantic models shared by every HTTP adapter: the base model, the problem document, and
the `mailbox` query parameter of every mail route."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.models import ApiModel

__all__ = ["ApiModel", "MailboxQuery", "Problem", "ProblemItem", "mailbox_field"]


def mailbox_field() -> Any:
    """The optional `mailbox` query parameter, the same on every mail route."""
    return Field(
        default=None,
        max_length=256,
        description="A shared mailbox (UPN or id) the connected user may access; default: "
        "their own.",
    )


class MailboxQuery(ApiModel):
    mailbox: str | None = mailbox_field()


class ProblemItem(ApiModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every 4xx/5xx answers (extensions allowed)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the error code's documentation.")
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable error code (see docs/errors.md).")
    correlationId: str
    errors: list[ProblemItem] | None = None

    def extensions(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
