"""scripts/print_rbac_commands.py: the Exchange commands for a list of mailboxes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_ID = "3f1c8a5e-2b7d-4c9e-8a1f-6d5e4c3b2a10"
SP_ID = "9bba0356-20fc-51bc-bd06-b1d0e2bca837"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "print_rbac_commands", ROOT / "scripts" / "print_rbac_commands.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


rbac = _load()


def test_a_group_scope_adds_each_mailbox_then_assigns_both_roles_to_the_scope() -> None:
    plan = rbac.ScopePlan(APP_ID, SP_ID, ("support@contoso.com", "billing@contoso.com"))

    lines = rbac.commands(plan)

    assert f"New-ServicePrincipal -AppId {APP_ID} -ObjectId {SP_ID}" in lines[2]
    members = [line for line in lines if line.startswith("Add-DistributionGroupMember")]
    assert len(members) == 2 and '"billing@contoso.com"' in members[1]
    assert any("MemberOfGroup -eq '$group'" in line for line in lines)
    assigned = [line for line in lines if line.startswith("New-ManagementRoleAssignment")]
    assert assigned == [
        f'New-ManagementRoleAssignment -App {APP_ID} -Role "Application Mail.ReadWrite" '
        '-CustomResourceScope "Outlook Integration API"',
        f'New-ManagementRoleAssignment -App {APP_ID} -Role "Application Mail.Send" '
        '-CustomResourceScope "Outlook Integration API"',
    ]
    # The scope exists before the assignments that name it.
    scope_at = next(i for i, line in enumerate(lines) if line.startswith("New-ManagementScope"))
    assert scope_at < lines.index(assigned[0])


def test_an_attribute_scope_tags_each_mailbox_instead_of_a_group() -> None:
    plan = rbac.ScopePlan(APP_ID, SP_ID, ("support@contoso.com",), attribute=7, send=False)

    lines = rbac.commands(plan)

    assert 'Set-Mailbox -Identity "support@contoso.com" -CustomAttribute7 ' in lines[4]
    assert any("CustomAttribute7 -eq 'OutlookIntegrationAPIMailboxes'" in line for line in lines)
    assert not any("DistributionGroup" in line for line in lines)
    assert not any("Application Mail.Send" in line for line in lines)


@pytest.mark.parametrize(
    "overrides",
    [
        {"mailboxes": ("x@y.z'; Remove-Mailbox -Identity *",)},
        {"mailboxes": ()},
        {"app_id": "not-a-guid"},
        {"attribute": 16},
        {"name": 'bad"name'},
    ],
)
def test_input_that_could_break_out_of_a_command_is_refused(overrides: dict[str, object]) -> None:
    values: dict[str, object] = {
        "app_id": APP_ID,
        "object_id": SP_ID,
        "mailboxes": ("support@contoso.com",),
        **overrides,
    }

    with pytest.raises(ValueError):
        rbac.ScopePlan(**values)


def test_the_command_line_prints_the_commands_or_refuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ok = rbac.main(["--app-id", APP_ID, "--object-id", SP_ID, "Support@Contoso.com"])
    printed = capsys.readouterr().out
    bad = rbac.main(["--app-id", "nope", "--object-id", SP_ID, "support@contoso.com"])

    assert ok == 0 and "Test-ServicePrincipalAuthorization -Identity" in printed
    assert '"support@contoso.com"' in printed
    assert bad == 2
