"""The Bicep templates parse, and hold the security properties a tenant install needs."""

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
from tests.infra.conftest import INFRA, bicep_files, body, one, parsed, resources_of_type

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
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "AZURE_CLIENT_ID",
}
# Settings the Functions host reads for %NAME% binding expressions (and the app may too).
HOST_BINDING_SETTINGS = {"LIFECYCLE_SCHEDULE", "LIFECYCLE_QUEUE"}
ROOT = INFRA.parent


def accessor(node: Any) -> list[str]:
    """`a.b.c` as pycep nests it → ["a", "b", "c"] (a plain string is a bare identifier)."""
    if isinstance(node, str):
        return [node]
    operands = node["operator"]["operands"]
    return [operands["operand_1"], *accessor(operands["operand_2"])]


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_every_bicep_file_parses(path: Path) -> None:
    template = BicepParser().parse(file_path=path)

    assert template["resources"] or template["outputs"]


def test_a_parse_error_fails_the_parse() -> None:
    with pytest.raises(LarkError):
        BicepParser().parse(text="resource broken 'Microsoft.Web/sites@2024-04-01' = {\n")


def test_no_bicep_file_lists_keys_or_secrets() -> None:
    for path in bicep_files():
        text = path.read_text(encoding="utf-8").lower()
        for call in ("listkeys", "listsecrets", "listconnectionstrings", "listaccountsas"):
            assert call not in text, f"{path.name} calls {call}"


def test_outputs_hold_no_secret(main_template: dict[str, Any]) -> None:
    for name, output in main_template["outputs"].items():
        assert not any("secure" in json.dumps(d) for d in output["decorators"]), name
        value = json.dumps(output["value"]).lower()
        for word in ("connectionstring", "instrumentationkey", "key(", "secret", "password"):
            assert word not in value, f"output {name} exposes {word}"


def test_only_the_intended_roles_are_assigned(main_template: dict[str, Any]) -> None:
    roles: dict[str, str] = main_template["variables"]["roles"]["value"]
    assignments = resources_of_type(main_template, "Microsoft.Authorization/roleAssignments")

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
    main_template: dict[str, Any],
) -> None:
    assignments = resources_of_type(main_template, "Microsoft.Authorization/roleAssignments")
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


def test_the_deployer_role_is_conditional(main_template: dict[str, Any]) -> None:
    resource = main_template["resources"]["deployerSecretsOfficer"]

    assert "condition" in resource["config"]
    assert body(resource)["properties"]["principalId"] == "principalId"


def test_storage_accepts_entra_tokens_only(main_template: dict[str, Any]) -> None:
    props = one(main_template, "Microsoft.Storage/storageAccounts")["properties"]

    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["defaultToOAuthAuthentication"] is True
    container = one(main_template, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert container["properties"]["publicAccess"] == "None"
    assert resources_of_type(main_template, "Microsoft.Storage/storageAccounts/queueServices")
    assert resources_of_type(main_template, "Microsoft.Storage/storageAccounts/tableServices")


def test_key_vault_uses_rbac_soft_delete_and_purge_protection(
    main_template: dict[str, Any],
) -> None:
    props = one(main_template, "Microsoft.KeyVault/vaults")["properties"]

    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert props["enabledForTemplateDeployment"] is False
    # No secret resources: their values are generated after provisioning (docs/deploy.md).
    assert not resources_of_type(main_template, "Microsoft.KeyVault/vaults/secrets")


def test_telemetry_ingestion_needs_entra(main_template: dict[str, Any]) -> None:
    insights = one(main_template, "Microsoft.Insights/components")["properties"]
    workspace = one(main_template, "Microsoft.OperationalInsights/workspaces")["properties"]

    assert insights["DisableLocalAuth"] is True
    assert insights["WorkspaceResourceId"] == {
        "operator": {
            "type": "property_accessor",
            "operands": {"operand_1": "logAnalytics", "operand_2": "id"},
        }
    }
    assert workspace["features"]["disableLocalAuth"] is True


def test_function_app_is_flex_consumption_python_hardened(main_template: dict[str, Any]) -> None:
    site = one(main_template, "Microsoft.Web/sites")
    plan = one(main_template, "Microsoft.Web/serverfarms")
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
        main_template, "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    )
    assert {p["name"]: p["properties"]["allow"] for p in policies.values()} == {
        "ftp": False,
        "scm": False,
    }


def app_settings(template: dict[str, Any]) -> dict[str, Any]:
    configs = resources_of_type(template, "Microsoft.Web/sites/config")
    (settings,) = [c["properties"] for c in configs.values() if c["name"] == "appsettings"]
    assert "appSettings" not in one(template, "Microsoft.Web/sites")["properties"]["siteConfig"]
    return dict(settings)


def test_app_settings_hold_no_keyed_connection_string_or_secret(
    main_template: dict[str, Any],
) -> None:
    settings = app_settings(main_template)

    assert "AzureWebJobsStorage" not in settings  # only the identity-based __ settings
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].endswith(";Authorization=AAD")
    for name, value in settings.items():
        text = json.dumps(value)
        for marker in ("AccountKey=", "SharedAccessSignature", "sig=", "InstrumentationKey="):
            assert marker not in text, name
        assert name != "STORAGE_CONNECTION_STRING"
        assert not name.startswith("LOCAL_"), name
    # The two values that are secrets are Key Vault references, resolved by the platform.
    for name in ("CLIENT_SECRET", "CURSOR_SECRET"):
        assert re.fullmatch(
            r"@Microsoft\.KeyVault\(VaultName=\$\{keyVault\.name\};SecretName=[a-z-]+\)",
            settings[name],
        ), name


def test_app_settings_are_known_and_make_a_valid_production_configuration(
    main_template: dict[str, Any],
) -> None:
    settings = app_settings(main_template)
    assert set(settings) <= set(Settings.model_fields) | PLATFORM_SETTINGS | HOST_BINDING_SETTINGS

    # What the platform would hand the worker, with stand-ins for deployment-time values.
    stand_ins = {
        "TENANT_ID": "8d4e3c2a-1b0f-4e5d-9c8b-7a6f5e4d3c2b",
        "CLIENT_ID": "3f1c8a5e-2b7d-4c9e-8a1f-6d5e4c3b2a10",
        "API_AUDIENCE": "api://3f1c8a5e-2b7d-4c9e-8a1f-6d5e4c3b2a10",
        "AUTHORITY_HOST": "https://login.microsoftonline.com",
        "GRAPH_BASE_URL": "https://graph.microsoft.com/v1.0",
        "REDIRECT_URI": "https://func-x.azurewebsites.net/api/auth/callback",
        "STORAGE_TABLE_ENDPOINT": "https://stx.table.core.windows.net/",
        "KEY_VAULT_URL": "https://kvx.vault.azure.net/",
        "CLIENT_SECRET": "resolved-from-key-vault",
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
    assert loaded.AUTH_RESPONSE_MODE == "form_post"


def test_parameters_file_matches_the_template(main_template: dict[str, Any]) -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))

    assert set(parameters["parameters"]) <= set(main_template["parameters"])
    required = {
        name
        for name, p in main_template["parameters"].items()
        if "default" not in p or p["default"] is None
    }
    assert required <= set(parameters["parameters"])


def test_resource_names_use_the_abbreviations(main_template: dict[str, Any]) -> None:
    abbreviations = json.loads((INFRA / "abbreviations.json").read_text(encoding="utf-8"))
    text = (INFRA / "main.bicep").read_text(encoding="utf-8")

    for key in re.findall(r"abbrs\.(\w+)", text):
        assert key in abbreviations


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
    template = parsed(INFRA / "main.bicep")
    site = one(template, "Microsoft.Web/sites")
    assert "azd-service-name" in json.dumps(site["tags"])


def test_every_binding_expression_setting_is_an_app_setting(main_template: dict[str, Any]) -> None:
    """A trigger bound to `%NAME%` does not start unless the app setting NAME exists."""
    sources = [ROOT / "function_app.py", *sorted((ROOT / "shared").rglob("*.py"))]
    referenced = {
        name
        for path in sources
        for name in re.findall(r"[\"']%([A-Z][A-Z0-9_]+)%", path.read_text("utf-8"))
    }

    assert referenced <= set(app_settings(main_template))
