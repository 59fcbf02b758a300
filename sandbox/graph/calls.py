"""One Graph call against a resolved mailbox: lookups with Graph's not-found/malformed rules,
permission checks, and collection paging shared by the resource handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sandbox.graph import errors, ids
from sandbox.graph.pipeline import GraphRequest, Need, Target, authorize

if TYPE_CHECKING:
    from sandbox.context import SandboxContext
    from sandbox.graph.store import Attachment, Folder, Mailbox, MailStore, Message


@dataclass
class Call:
    ctx: SandboxContext
    request: GraphRequest
    target: Target

    @property
    def store(self) -> MailStore:
        return self.ctx.mail

    @property
    def mailbox(self) -> Mailbox:
        return self.target.mailbox

    @property
    def immutable(self) -> bool:
        return self.request.immutable_ids

    def authorize(self, need: Need) -> None:
        assert self.request.principal is not None
        authorize(self.ctx, self.request.principal, self.target.user, need)

    def message(self, ref: str) -> Message:
        found = self.mailbox.find_message(ref)
        if found is not None:
            return found
        kind = ids.id_kind(ids.normalise(ref))
        if kind in (ids.IdKind.MESSAGE, ids.IdKind.IMMUTABLE_MESSAGE):
            raise errors.item_not_found()
        raise errors.id_malformed()

    def folder(self, ref: str) -> Folder:
        found = self.mailbox.folder(ref)
        if found is not None and found.well_known != "root":
            return found
        if ids.id_kind(ids.normalise(ref)) is ids.IdKind.FOLDER:
            raise errors.item_not_found()
        raise errors.id_malformed()

    def attachment(self, message: Message, ref: str) -> Attachment:
        wanted = ids.normalise(ref)
        for attachment in message.attachments:
            if attachment.id == wanted:
                return attachment
        if ids.id_kind(wanted) is ids.IdKind.ATTACHMENT:
            raise errors.item_not_found()
        raise errors.id_malformed()

    # URLs ----------------------------------------------------------------------------------
    @property
    def graph_base(self) -> str:
        return f"{self.request.base_url}/v1.0"

    def context_url(self, suffix: str) -> str:
        user_id = quote(self.target.user.id, safe="")
        return f"{self.graph_base}/$metadata#users('{user_id}')/{suffix}"

    def self_url(self, params: list[tuple[str, str]]) -> str:
        query = "&".join(f"{quote(k, safe='$')}={quote(v, safe='')}" for k, v in params)
        return f"{self.graph_base}{self.request.path}" + (f"?{query}" if query else "")

    def next_link(self, drop: set[str], add: tuple[str, str]) -> str:
        kept = [(k, v) for k, v in self.request.params if k.lower().lstrip("$") not in drop]
        return self.self_url([*kept, add])


def page(
    call: Call,
    items: list[Any],
    render: Callable[[Any], dict[str, Any]],
    *,
    top: int | None,
    skip: int,
    default_size: int,
    count: bool,
    context: str,
    use_skiptoken: bool = False,
) -> dict[str, Any]:
    """A collection page with Graph's `@odata.count` and `@odata.nextLink`."""
    from sandbox.graph.odata import encode_skiptoken

    size = top or default_size
    chunk = items[skip : skip + size]
    body: dict[str, Any] = {"@odata.context": call.context_url(context)}
    if count:
        body["@odata.count"] = len(items)
    body["value"] = [render(item) for item in chunk]
    if skip + size < len(items):
        if use_skiptoken:
            link = call.next_link(
                {"skip", "skiptoken"}, ("$skiptoken", encode_skiptoken(skip + size))
            )
        else:
            link = call.next_link({"skip", "skiptoken"}, ("$skip", str(skip + size)))
        body["@odata.nextLink"] = link
    return body
