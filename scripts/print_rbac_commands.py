"""Print the Exchange Online PowerShell that scopes this app to a list of mailboxes (RBAC for
Applications). It cannot run them: an Exchange administrator pastes them into a session
opened with `Connect-ExchangeOnline`. docs/deploy.md explains each step.

Two ways to name the mailboxes, as Exchange allows:

- `--group` (default): a mail-enabled security group holds the mailboxes; the management
  scope follows its membership (`MemberOfGroup`), so adding a mailbox later is one
  `Add-DistributionGroupMember`.
- `--attribute N`: each mailbox gets `CustomAttributeN` = the scope's tag; the scope filters
  on it (no group to keep).

Usage:

    python scripts/print_rbac_commands.py --app-id <client id> --object-id <sp object id> \
        support@contoso.com billing@contoso.com [--attribute 7] [--send]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# An SMTP address Exchange can filter on; quotes and backticks would break out of the filter
# string in PowerShell, so they are refused rather than escaped.
_ADDRESS = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


@dataclass(frozen=True)
class ScopePlan:
    app_id: str  # the app registration's application (client) id
    object_id: str  # its service principal's object id in the tenant
    mailboxes: tuple[str, ...]
    name: str = "Outlook Integration API"
    attribute: int | None = None  # CustomAttribute1..15, or None for a mail-enabled group
    send: bool = True  # also "Application Mail.Send"

    def __post_init__(self) -> None:
        for value, what in ((self.app_id, "app id"), (self.object_id, "object id")):
            if not _GUID.match(value):
                raise ValueError(f"{what} must be a GUID")
        if not self.mailboxes:
            raise ValueError("name at least one mailbox")
        bad = [m for m in self.mailboxes if not _ADDRESS.match(m)]
        if bad:
            raise ValueError(f"not a mailbox address: {', '.join(bad)}")
        if not _NAME.match(self.name):
            raise ValueError("the scope name may hold letters, digits, spaces, '.', '_', '-'")
        if self.attribute is not None and not 1 <= self.attribute <= 15:
            raise ValueError("Exchange has CustomAttribute1 to CustomAttribute15")

    @property
    def roles(self) -> tuple[str, ...]:
        return (
            ("Application Mail.ReadWrite", "Application Mail.Send")
            if self.send
            else ("Application Mail.ReadWrite",)
        )


def _group_alias(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", name) + "Mailboxes"


def commands(plan: ScopePlan) -> list[str]:
    """The commands, in the order they must run."""
    lines = [
        "# Exchange Online PowerShell (Connect-ExchangeOnline as an Exchange administrator).",
        "# 1. Exchange's own record of the app's service principal.",
        f"New-ServicePrincipal -AppId {plan.app_id} -ObjectId {plan.object_id} "
        f'-DisplayName "{plan.name}"',
    ]
    if plan.attribute is None:
        alias = _group_alias(plan.name)
        lines += [
            "# 2. A mail-enabled security group holds the mailboxes the app may reach.",
            f'New-DistributionGroup -Name "{plan.name} mailboxes" -Alias {alias} -Type Security',
            *(
                f'Add-DistributionGroupMember -Identity {alias} -Member "{mailbox}"'
                for mailbox in plan.mailboxes
            ),
            "# 3. The management scope follows the group's membership.",
            f"$group = (Get-DistributionGroup -Identity {alias}).DistinguishedName",
            f'New-ManagementScope -Name "{plan.name}" '
            "-RecipientRestrictionFilter \"MemberOfGroup -eq '$group'\"",
        ]
    else:
        attribute = f"CustomAttribute{plan.attribute}"
        tag = _group_alias(plan.name)
        lines += [
            f"# 2. Each mailbox carries {attribute} = {tag}.",
            *(
                f'Set-Mailbox -Identity "{mailbox}" -{attribute} "{tag}"'
                for mailbox in plan.mailboxes
            ),
            f"# 3. The management scope filters on {attribute}.",
            f'New-ManagementScope -Name "{plan.name}" '
            f"-RecipientRestrictionFilter \"{attribute} -eq '{tag}'\"",
        ]
    lines.append("# 4. The app's application roles, limited to that scope.")
    lines += [
        f'New-ManagementRoleAssignment -App {plan.app_id} -Role "{role}" '
        f'-CustomResourceScope "{plan.name}"'
        for role in plan.roles
    ]
    lines += [
        "# 5. Check: InScope must be True for each mailbox (changes take up to 2 hours).",
        *(
            f'Test-ServicePrincipalAuthorization -Identity {plan.app_id} -Resource "{mailbox}"'
            for mailbox in plan.mailboxes
        ),
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("mailboxes", nargs="+", help="mailbox addresses the app may reach")
    parser.add_argument("--app-id", required=True, help="the app registration's client id")
    parser.add_argument("--object-id", required=True, help="its service principal's object id")
    parser.add_argument("--name", default="Outlook Integration API", help="scope name")
    parser.add_argument(
        "--attribute", type=int, default=None, help="scope by CustomAttributeN, not a group"
    )
    parser.add_argument(
        "--no-send", action="store_true", help="read and write only (no Application Mail.Send)"
    )
    args = parser.parse_args(argv)
    try:
        plan = ScopePlan(
            app_id=args.app_id,
            object_id=args.object_id,
            mailboxes=tuple(m.lower() for m in args.mailboxes),
            name=args.name,
            attribute=args.attribute,
            send=not args.no_send,
        )
    except ValueError as bad:
        print(f"error: {bad}", file=sys.stderr)
        return 2
    print("\n".join(commands(plan)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
