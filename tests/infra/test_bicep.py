"""The Bicep templates parse, and hold the security properties a tenant install needs (the
Azure resources are in infra/modules/resources.bicep, the app settings in app-settings.bicep)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from lark.exceptions import LarkError
from pycep import BicepParser

from shared.config import Environment, KeyProviderKind, Settings, load_settings
from tests.infra.conftest import (
    INFRA,
    accessor,
    bicep_files,
    body,
    conditional,
    module,
    one,
    parsed,
    resources_of_type,
)

# Built-in role definitions the template may assign, and nothing else.
INTENDED_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer (deployer only)",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
# Settings the platform reads (not shared.config.Settings).
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "AZURE_CLIENT_ID",
}
# Settings the Functions host reads for %NAME% binding expressions (and the app may too).
HOST_BINDING_SETTINGS = {"LIFECYCLE_SCHEDULE", "LIFECYCLE_QUEUE", "RECONCILE_SCHEDULE"}
ROOT = INFRA.parent


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_every_bicep_file_parses(path: Path) -> None:
    template = BicepParser().parse(file_path=path)

    assert template["resources"] or template["outputs"]


def test_a_parse_error_fails_the_parse() -> None:
    with pytest.raises(LarkError):
        BicepParser().parse(text="resource broken 'Microsoft.Web/sites@2024-04-01' = {\n")


def test_the_dev_parser_cannot_read_filtered_loops_so_the_templates_have_none() -> None:
    """pycep-parser 0.7.1 (requirements-dev.txt) stops at the `{` after a loop's `if`
    (conftest.py); checkov's 0.5.1 reads it. The templates use conditional modules instead,
    so both parsers read every Azure resource. Should a newer pycep-parser read filtered
    loops, this test fails and the templates may use them again."""
    filtered = (
        "resource z 'Microsoft.Network/privateDnsZones@2020-06-01' = "
        "[for n in names: if (on) {\n  name: n\n  location: 'global'\n}]\n"
    )
    with pytest.raises(LarkError):
        BicepParser().parse(text=filtered)
    for path in bicep_files():
        assert not re.search(r"\[\s*for\b[^\]]*?:\s*if\s*\(", path.read_text("utf-8")), path.name


def test_no_bicep_file_lists_keys_or_secrets() -> None:
    for path in bicep_files():
        text = path.read_text(encoding="utf-8").lower()
        for call in ("listkeys", "listsecrets", "listconnectionstrings", "listaccountsas"):
            assert call not in text, f"{path.name} calls {call}"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_outputs_hold_no_secret(path: Path) -> None:
    for name, output in parsed(path).get("outputs", {}).items():
        assert not any("secure" in json.dumps(d) for d in output["decorators"]), name
        value = json.dumps(output["value"]).lower()
        for word in ("connectionstring", "instrumentationkey", "key(", "secret", "password"):
            assert word not in value, f"output {name} exposes {word}"


def test_only_the_intended_roles_are_assigned(resources_template: dict[str, Any]) -> None:
    roles: dict[str, str] = resources_template["variables"]["roles"]["value"]
    assignments = resources_of_type(resources_template, "Microsoft.Authorization/roleAssignments")

    assigned = set()
    for name, assignment in assignments.items():
        definition = assignment["properties"]["roleDefinitionId"]["function"]
        assert definition["type"] == "subscription_resource_id", name
        role_key = accessor(definition["parameters"]["resource_name_1"])[-1]
        assigned.add(roles[role_key])
        # Named guid(scope, principal, role), so a redeploy finds the same assignment.
        guid = assignment["name"]["function"]
        assert guid["type"] == "guid", name
        parts = guid["parameters"]
        assert accessor(parts["base_string"]) == [assignment["scope"], "id"], name
        assert accessor(parts["extra_string_2"])[-1] == role_key, name

    assert assigned == set(INTENDED_ROLES)


def test_the_app_identity_gets_data_roles_only_on_its_own_resources(
    resources_template: dict[str, Any],
) -> None:
    assignments = resources_of_type(resources_template, "Microsoft.Authorization/roleAssignments")
    scopes = {
        accessor(a["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"])[
            -1
        ]: a["scope"]
        for a in assignments.values()
    }

    assert scopes == {
        "storageBlobDataOwner": "storage",
        "storageQueueDataContributor": "storage",
        "storageTableDataContributor": "storage",
        "keyVaultSecretsUser": "keyVault",
        "keyVaultSecretsOfficer": "keyVault",
        "monitoringMetricsPublisher": "appInsights",
    }


def test_the_deployer_role_is_conditional(resources_template: dict[str, Any]) -> None:
    resource = resources_template["resources"]["deployerSecretsOfficer"]

    assert "condition" in resource["config"]
    assert body(resource)["properties"]["principalId"] == "principalId"


def test_storage_accepts_entra_tokens_only(resources_template: dict[str, Any]) -> None:
    props = one(resources_template, "Microsoft.Storage/storageAccounts")["properties"]

    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["defaultToOAuthAuthentication"] is True
    container = one(resources_template, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert container["properties"]["publicAccess"] == "None"
    assert resources_of_type(resources_template, "Microsoft.Storage/storageAccounts/queueServices")
    assert resources_of_type(resources_template, "Microsoft.Storage/storageAccounts/tableServices")


def test_key_vault_uses_rbac_soft_delete_and_purge_protection(
    main_template: dict[str, Any], resources_template: dict[str, Any]
) -> None:
    props = one(resources_template, "Microsoft.KeyVault/vaults")["properties"]

    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    # On unless a throw-away environment turns it off (ARM takes true or absent, never false).
    assert conditional(props["enablePurgeProtection"]) == ("keyVaultPurgeProtection", True, None)
    assert main_template["parameters"]["keyVaultPurgeProtection"]["default"] is True
    passed = main_template["modules"]["resources"]["config"]["params"]
    assert passed["keyVaultPurgeProtection"] == "keyVaultPurgeProtection"
    assert props["enabledForTemplateDeployment"] is False
    # No secret resources: their values are generated after provisioning (docs/deploy.md).
    assert not resources_of_type(resources_template, "Microsoft.KeyVault/vaults/secrets")


def test_telemetry_ingestion_needs_entra(resources_template: dict[str, Any]) -> None:
    insights = one(resources_template, "Microsoft.Insights/components")["properties"]
    workspace = one(resources_template, "Microsoft.OperationalInsights/workspaces")["properties"]

    assert insights["DisableLocalAuth"] is True
    assert insights["WorkspaceResourceId"] == {
        "operator": {
            "type": "property_accessor",
            "operands": {"operand_1": "logAnalytics", "operand_2": "id"},
        }
    }
    assert workspace["features"]["disableLocalAuth"] is True


def test_function_app_is_flex_consumption_python_hardened(
    resources_template: dict[str, Any],
) -> None:
    site = one(resources_template, "Microsoft.Web/sites")
    plan = one(resources_template, "Microsoft.Web/serverfarms")
    props = site["properties"]

    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["siteConfig"]["healthCheckPath"] == "/api/health"
    assert props["keyVaultReferenceIdentity"] == {
        "operator": {
            "type": "property_accessor",
            "operands": {"operand_1": "appIdentity", "operand_2": "id"},
        }
    }
    config = props["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    auth = config["deployment"]["storage"]["authentication"]
    assert auth["type"] == "UserAssignedIdentity"
    policies = resources_of_type(
        resources_template, "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    )
    assert {p["name"]: p["properties"]["allow"] for p in policies.values()} == {
        "ftp": False,
        "scm": False,
    }


def app_settings() -> dict[str, Any]:
    template = module("app-settings")
    configs = resources_of_type(template, "Microsoft.Web/sites/config")
    (settings,) = [c["properties"] for c in configs.values() if c["name"] == "appsettings"]
    site = one(module("resources"), "Microsoft.Web/sites")
    assert "appSettings" not in site["properties"]["siteConfig"]
    return dict(settings)


def test_app_settings_hold_no_keyed_connection_string_or_secret() -> None:
    settings = app_settings()

    assert "AzureWebJobsStorage" not in settings  # only the identity-based __ settings
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].endswith(";Authorization=AAD")
    for name, value in settings.items():
        text = json.dumps(value)
        for marker in ("AccountKey=", "SharedAccessSignature", "sig=", "InstrumentationKey="):
            assert marker not in text, name
        assert name != "STORAGE_CONNECTION_STRING"
        assert not name.startswith("LOCAL_"), name
        # No client secret in any form: the app's credential is a federated one.
        assert "CLIENT_SECRET" not in name, name
    # The one value that is a secret is a Key Vault reference, resolved by the platform.
    assert re.fullmatch(
        r"@Microsoft\.KeyVault\(VaultName=\$\{keyVault\.name\};SecretName=cursor-secret\)",
        settings["CURSOR_SECRET"],
    )


def test_app_settings_are_known_and_make_a_valid_production_configuration() -> None:
    settings = app_settings()
    known = set(Settings.model_fields)
    assert set(settings) <= known | PLATFORM_SETTINGS | HOST_BINDING_SETTINGS

    # What the platform would hand the worker, with stand-ins for deployment-time values.
    stand_ins = {
        "TENANT_ID": "8d4e3c2a-1b0f-4e5d-9c8b-7a6f5e4d3c2b",
        "CLIENT_ID": "3f1c8a5e-2b7d-4c9e-8a1f-6d5e4c3b2a10",
        "API_AUDIENCE": "5a2d7c1e-9b4f-4e3a-8c6d-1f0e9d8c7b6a",
        "MANAGED_IDENTITY_CLIENT_ID": "0c9b8a7f-6e5d-4c3b-2a19-08f7e6d5c4b3",
        "AUTHORITY_HOST": "https://login.microsoftonline.com/",
        "GRAPH_BASE_URL": "https://graph.microsoft.com/v1.0",
        "REDIRECT_URI": "https://func-x.azurewebsites.net/api/auth/callback",
        "STORAGE_TABLE_ENDPOINT": "https://stx.table.core.windows.net/",
        "KEY_VAULT_URL": "https://kvx.vault.azure.net/",
        "CURSOR_SECRET": base64.b64encode(bytes(32)).decode(),
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=0000;IngestionEndpoint=x",
    }
    env = {
        name: stand_ins.get(name, value if isinstance(value, str) else "x")
        for name, value in settings.items()
    }
    loaded = load_settings(env)

    assert loaded.APP_ENV is Environment.PRODUCTION
    assert loaded.KEY_PROVIDER is KeyProviderKind.KEYVAULT
    assert loaded.STORAGE_CONNECTION_STRING is None
    assert loaded.CLIENT_SECRET is None
    assert loaded.AUTH_RESPONSE_MODE == "form_post"
    assert env["APP_CREDENTIAL"] == "managed_identity_federation"


def test_storage_settings_are_the_accounts_own_endpoints() -> None:
    """Every storage setting is read from the account's `primaryEndpoints`, so it is right in
    every cloud (no host name built from the account name)."""
    settings = app_settings()
    storage = module("app-settings")["resources"]["storage"]

    assert storage["type"] == "Microsoft.Storage/storageAccounts"
    assert storage["existing"] is True
    assert "AzureWebJobsStorage__accountName" not in settings
    for name, service in (
        ("AzureWebJobsStorage__blobServiceUri", "blob"),
        ("AzureWebJobsStorage__queueServiceUri", "queue"),
        ("AzureWebJobsStorage__tableServiceUri", "table"),
        ("STORAGE_TABLE_ENDPOINT", "table"),
    ):
        assert accessor(settings[name]) == ["storage", "properties", "primaryEndpoints", service]
    # The settings shared/lifecycle/wiring.py reads for the identity-based queue endpoint.
    assert accessor(settings["AzureWebJobsStorage__clientId"]) == [
        "appIdentity",
        "properties",
        "clientId",
    ]
    # No public-cloud storage or vault host name in any template's code (comments aside).
    for path in bicep_files():
        code = json.dumps(parsed(path))
        assert "core.windows.net" not in code, path.name
        assert "vault.azure.net" not in code, path.name


def test_entra_settings_come_from_the_cloud_and_the_registrations() -> None:
    settings = app_settings()

    assert accessor(settings["AUTHORITY_HOST"]) == [
        "environment()",
        "authentication",
        "loginEndpoint",
    ]
    assert accessor(settings["TENANT_ID"]) == ["tenant()", "tenantId"]
    assert settings["CLIENT_ID"] == "clientAppId"
    assert settings["API_AUDIENCE"] == "apiAppId"
    assert accessor(settings["MANAGED_IDENTITY_CLIENT_ID"]) == [
        "appIdentity",
        "properties",
        "clientId",
    ]


def test_parameters_file_matches_the_template(main_template: dict[str, Any]) -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))

    assert set(parameters["parameters"]) <= set(main_template["parameters"])
    required = {
        name
        for name, p in main_template["parameters"].items()
        if "default" not in p or p["default"] is None
    }
    assert required <= set(parameters["parameters"])
    text = json.dumps(parameters).lower()
    assert "secret" not in text
    assert "password" not in text


def test_resource_names_use_the_abbreviations() -> None:
    abbreviations = json.loads((INFRA / "abbreviations.json").read_text(encoding="utf-8"))

    for path in bicep_files():
        for key in re.findall(r"abbrs\.(\w+)", path.read_text(encoding="utf-8")):
            assert key in abbreviations, f"{path.name}: {key}"


def test_audit_workbook_charts_every_audit_view() -> None:
    workbook = json.loads((INFRA / "app" / "audit-workbook.json").read_text(encoding="utf-8"))
    titles = {item["content"].get("title") for item in workbook["items"]}

    assert workbook["version"] == "Notebook/1.0"
    assert {
        "Connections",
        "Token refreshes",
        "Reauthentication required",
        "Mail writes",
        "Denials",
        "Failures",
    } <= titles
    for item in workbook["items"]:
        if item["type"] == 3:
            assert item["content"]["query"].startswith("customEvents")


def test_azure_yaml_deploys_the_function_app_and_runs_the_secret_hook() -> None:
    text = (INFRA.parent / "azure.yaml").read_text(encoding="utf-8")

    assert "host: function" in text
    assert "language: python" in text
    assert "infra/hooks/postprovision.py" in text
    site = one(module("resources"), "Microsoft.Web/sites")
    assert "azd-service-name" in json.dumps(site["tags"])


def test_every_binding_expression_setting_is_an_app_setting() -> None:
    """A trigger bound to `%NAME%` does not start unless the app setting NAME exists."""
    sources = [ROOT / "function_app.py", *sorted((ROOT / "shared").rglob("*.py"))]
    referenced = {
        name
        for path in sources
        for name in re.findall(r"[\"']%([A-Z][A-Z0-9_]+)%", path.read_text("utf-8"))
    }

    assert referenced <= set(app_settings())
