"""The HTTP shapes of Send email with options and its trigger (pydantic only: the HTTP
adapter imports these without pulling in the service's dependencies)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from shared.mail.compose import RecipientIn
from shared.models import ApiModel


class SendWithOptionsBody(ApiModel):
    toRecipients: list[RecipientIn] = Field(min_length=1, max_length=50)
    subject: str = Field(max_length=255)
    body: str | None = Field(default=None, max_length=32 * 1024, description="Plain text.")
    options: list[str] = Field(min_length=1, max_length=10)
    callbackUrl: str | None = Field(
        default=None,
        max_length=2048,
        description="Where the choice is POSTed. Without it, the choice goes to the "
        "connection's 'When an option is chosen' triggers.",
    )
    expiresInHours: int = Field(default=168, ge=1, le=720)


class OptionsSent(ApiModel):
    requestId: str
    signingSecret: str = Field(description="Verifies the callback's X-Signature; shown once.")
    expiresAt: datetime


class OptionChosenEvent(ApiModel):
    """What a callback (or a "When an option is chosen" trigger) receives, signed."""

    requestId: str
    connectionId: str
    selectedOption: str
    chosenAt: datetime
    subscriptionId: str | None = None


class OptionSubscriptionCreate(ApiModel):
    notificationUrl: str = Field(
        max_length=2048, description="Where choices are POSTed (https). Power Automate fills it."
    )


class OptionSubscriptionCreated(ApiModel):
    id: str
    connectionId: str
    signingSecret: str = Field(description="HMAC-SHA256 key of `X-Signature`. Shown once.")
