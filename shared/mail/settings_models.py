"""Outlook settings as callers see and send them, in Graph's names (v1.0 CSDL): the category
list (`outlookCategory`), automatic replies (`automaticRepliesSetting`) and mail tips
(`mailTips`, asked for with `getMailTips`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from shared.mail.models import DateTimeTimeZone, EmailAddress, GraphModel, Recipient
from shared.mail.recipients import split_addresses
from shared.models import ApiModel

AutomaticRepliesStatus = Literal["disabled", "alwaysEnabled", "scheduled"]
ExternalAudience = Literal["none", "contactsOnly", "all"]
MailTipsType = Literal[
    "automaticReplies",
    "mailboxFullStatus",
    "customMailTip",
    "externalMemberCount",
    "totalMemberCount",
    "maxMessageSize",
    "deliveryRestriction",
    "moderationStatus",
    "recipientScope",
    "recipientSuggestions",
]
# A caller's list of addresses per getMailTips call (this API's limit, not Graph's).
MAX_MAIL_TIPS_ADDRESSES = 100


# --- answers ------------------------------------------------------------------------------
class OutlookCategory(GraphModel):
    id: str
    displayName: str | None = None
    color: str | None = Field(
        default=None, description="Outlook's preset color: none, or preset0 to preset24."
    )


class CategoryList(GraphModel):
    value: list[OutlookCategory]


class AutomaticRepliesSetting(GraphModel):
    status: AutomaticRepliesStatus | None = None
    externalAudience: ExternalAudience | None = None
    internalReplyMessage: str | None = None
    externalReplyMessage: str | None = None
    scheduledStartDateTime: DateTimeTimeZone | None = None
    scheduledEndDateTime: DateTimeTimeZone | None = None


class LocaleInfo(GraphModel):
    locale: str | None = None
    displayName: str | None = None


class AutomaticRepliesMailTips(GraphModel):
    message: str | None = None
    messageLanguage: LocaleInfo | None = None
    scheduledStartTime: DateTimeTimeZone | None = None
    scheduledEndTime: DateTimeTimeZone | None = None


class MailTipsError(GraphModel):
    code: str | None = None
    message: str | None = None


class MailTips(GraphModel):
    """One recipient's tips; only those asked for are present."""

    emailAddress: EmailAddress | None = None
    automaticReplies: AutomaticRepliesMailTips | None = None
    mailboxFull: bool | None = None
    customMailTip: str | None = None
    externalMemberCount: int | None = None
    totalMemberCount: int | None = None
    maxMessageSize: int | None = None
    deliveryRestricted: bool | None = None
    isModerated: bool | None = None
    recipientScope: str | None = Field(
        default=None, description="internal, external, externalPartner or externalNonPartner."
    )
    recipientSuggestions: list[Recipient] | None = None
    error: MailTipsError | None = None


class MailTipsList(GraphModel):
    value: list[MailTips]


# --- requests -----------------------------------------------------------------------------
class DateTimeTimeZoneIn(ApiModel):
    dateTime: datetime = Field(
        description="Local time in timeZone, e.g. 2026-03-02T08:00:00 (no offset)."
    )
    timeZone: str = Field(default="UTC", min_length=1, max_length=128)

    @field_validator("dateTime")
    @classmethod
    def _local(cls, value: datetime) -> datetime:
        # Graph reads dateTime in timeZone; an offset as well would say it twice, differently.
        if value.tzinfo is not None:
            raise ValueError("must not carry an offset: the time zone goes in timeZone")
        return value

    def graph(self) -> dict[str, str]:
        return {"dateTime": self.dateTime.isoformat(), "timeZone": self.timeZone}


class AutomaticRepliesUpdate(ApiModel):
    """Only the fields sent change."""

    status: AutomaticRepliesStatus | None = None
    externalAudience: ExternalAudience | None = None
    internalReplyMessage: str | None = Field(default=None, max_length=65536)
    externalReplyMessage: str | None = Field(default=None, max_length=65536)
    scheduledStartDateTime: DateTimeTimeZoneIn | None = None
    scheduledEndDateTime: DateTimeTimeZoneIn | None = None

    @model_validator(mode="after")
    def _window(self) -> AutomaticRepliesUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        start, end = self.scheduledStartDateTime, self.scheduledEndDateTime
        if start and end and start.timeZone == end.timeZone and end.dateTime <= start.dateTime:
            raise ValueError("scheduledEndDateTime must be after scheduledStartDateTime")
        return self

    def graph(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in sorted(self.model_fields_set):
            value = getattr(self, name)
            out[name] = value.graph() if isinstance(value, DateTimeTimeZoneIn) else value
        return out


def _default_tips() -> list[MailTipsType]:
    return ["automaticReplies", "mailboxFullStatus"]


class MailTipsRequest(ApiModel):
    emailAddresses: list[str] = Field(
        min_length=1,
        max_length=MAX_MAIL_TIPS_ADDRESSES,
        description="The recipients to check: a list, or addresses separated by semicolons.",
    )
    mailTipsOptions: list[MailTipsType] = Field(
        default_factory=_default_tips,
        min_length=1,
        description="Which tips to get; default: automaticReplies and mailboxFullStatus.",
    )

    @field_validator("emailAddresses", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [r["emailAddress"]["address"] for r in split_addresses(value)]
        return value

    @field_validator("emailAddresses")
    @classmethod
    def _one_address_each(cls, value: list[str]) -> list[str]:
        for position, address in enumerate(value, start=1):
            try:
                parsed = split_addresses(address)
            except ValueError:
                parsed = []
            if len(parsed) != 1 or parsed[0]["emailAddress"].get("name"):
                raise ValueError(f"entry {position} is not an email address (name@domain)")
        return value

    def graph(self) -> dict[str, Any]:
        # Graph's MailTipsOptions is a flags enum: its members joined by commas.
        options = ", ".join(dict.fromkeys(self.mailTipsOptions))
        return {"EmailAddresses": self.emailAddresses, "MailTipsOptions": options}
