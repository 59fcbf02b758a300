"""Issue #20 point 4: `azd up` installs everything in one command. Each property of the
templates that makes that true, checked on the parsed templates (tests/infra/conftest.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from tests.infra.conftest import (
    INFRA,
    MODULES,
    accessor,
    bicep_files,
    body,
    conditional,
    module,
    one,
    parsed,
    resources_of_type,
)

ROOT = INFRA.parent
# Symbolic names of the modules that deploy Azure resources (checkov reads their files).
AZURE_MODULES = {"network", "resources", "privateEndpoints", "appSettings", "alerts"}


def module_call(main: dict[str, Any], name: str) -> dict[str, Any]:
    """A module declaration's body (its name, scope and params), conditional or not."""
    return body(main["modules"][name])


# -- scope -------------------------------------------------------------------------------


def test_main_is_subscription_scoped_and_creates_the_resource_group(
    main_template: dict[str, Any],
) -> None:
    assert main_template["globals"]["scope"]["value"] == "subscription"
    (rg,) = resources_of_type(main_template, "Microsoft.Resources/resourceGroups").values()
    assert rg["location"] == "location"
    # Default name rg-{environmentName}, as azd templates name it; AZURE_RESOURCE_GROUP overrides.
    condition, default, given = conditional(rg["name"])
    assert condition == {
        "function": {"type": "empty", "parameters": {"item_to_test": "resourceGroupName"}}
    }
    assert default == "${abbrs.resourcesResourceGroups}${environmentName}"
    assert given == "resourceGroupName"
    # main.bicep declares nothing but the group; everything else is a module inside it.
    assert set(main_template["resources"]) == {"rg"}
    assert set(main_template["modules"]) == AZURE_MODULES | {"entra"}
    for name in main_template["modules"]:
        call = module_call(main_template, name)
        assert call["scope"] == "rg", name
        detail = main_template["modules"][name]["detail"]
        assert (INFRA / detail["path"]).is_file(), name
        assert parsed(INFRA / detail["path"])["globals"]["scope"]["value"] == "resourceGroup"


def test_azd_provisions_the_subscription_scoped_template() -> None:
    text = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))

    assert re.search(r"^\s+path: infra$", text, re.M)
    assert re.search(r"^\s+module: main$", text, re.M)
    values = {k: v["value"] for k, v in parameters["parameters"].items()}
    assert values["location"] == "${AZURE_LOCATION}"
    assert values["resourceGroupName"] == "${AZURE_RESOURCE_GROUP=}"
    assert values["vnetEnabled"] == "${VNET_ENABLED=false}"
    assert values["alertEmailAddress"] == "${ALERT_EMAIL_ADDRESS}"
    # No app registration id to type in: the template creates the registrations.
    assert not {"appClientId", "appTenantId", "apiAudience"} & set(values)


# -- regions and names -------------------------------------------------------------------


def test_location_is_limited_to_flex_consumption_regions(main_template: dict[str, Any]) -> None:
    decorators = main_template["parameters"]["location"]["decorators"]
    (allowed,) = [d["argument"] for d in decorators if d["type"] == "allowed"]
    text = (INFRA / "main.bicep").read_text(encoding="utf-8")

    assert {"westeurope", "northeurope", "eastus", "eastus2", "swedencentral", "uksouth"} <= set(
        allowed
    )
    assert len(allowed) == len(set(allowed)) >= 25
    assert all(re.fullmatch(r"[a-z0-9]+", region) for region in allowed)
    assert "eastus2euap" not in allowed  # a canary region, not for customers
    # The comment above the list says where it comes from and when it was checked.
    comment = text[: text.index("@allowed")]
    assert "Source:" in comment
    assert re.search(r"checked \d{4}-\d{2}-\d{2}", comment)


def test_every_name_is_per_environment(main_template: dict[str, Any]) -> None:
    token = main_template["variables"]["resourceToken"]["value"]["function"]
    unique = token["parameters"]["string_to_change"]["function"]

    assert token["type"] == "to_lower"
    assert unique["type"] == "unique_string"
    assert "environmentName" in unique["parameters"].values()
    passed = module_call(main_template, "resources")["params"]
    assert passed["resourceToken"] == "resourceToken"


def test_the_vault_name_is_per_environment(resources_template: dict[str, Any]) -> None:
    vault = one(resources_template, "Microsoft.KeyVault/vaults")

    assert vault["name"] == "${abbrs.keyVaultVaults}${resourceToken}"
    assert resources_template["parameters"]["resourceToken"]["default"] is None


# -- network isolation -------------------------------------------------------------------


def test_vnet_option_is_off_by_default_and_gates_the_network_modules(
    main_template: dict[str, Any],
) -> None:
    assert main_template["parameters"]["vnetEnabled"]["type"] == "bool"
    assert main_template["parameters"]["vnetEnabled"]["default"] is False
    for name in ("network", "privateEndpoints"):
        assert main_template["modules"][name]["config"]["condition"] == "vnetEnabled", name
    assert "condition" not in main_template["modules"]["resources"]["config"]
    passed = module_call(main_template, "resources")["params"]
    assert passed["vnetEnabled"] == "vnetEnabled"
    condition, subnet, fallback = conditional(passed["appSubnetId"])
    assert condition == "vnetEnabled"
    assert accessor(subnet) == ["network", "outputs", "appSubnetId"]
    assert fallback == ""  # the network module is not deployed: no subnet


def test_the_vnet_has_a_flex_delegated_subnet_and_one_for_private_endpoints() -> None:
    network = module("network")
    vnet = one(network, "Microsoft.Network/virtualNetworks")
    subnets = {s["name"]: s["properties"] for s in vnet["properties"]["subnets"]}

    assert set(subnets) == {"app", "private-endpoints"}
    delegations = subnets["app"]["delegations"]
    assert [d["properties"]["serviceName"] for d in delegations] == ["Microsoft.App/environments"]
    assert "delegations" not in subnets["private-endpoints"]
    # vnet.properties.subnets[0].id and [1].id: the subnets in the order declared above.
    for output, index in (("appSubnetId", 0), ("privateEndpointSubnetId", 1)):
        value = network["outputs"][output]["value"]["operator"]["operands"]
        assert value["operand_1"] == "vnet"
        inner = value["operand_2"]["operator"]["operands"]["operand_2"]["operator"]["operands"]
        assert inner["operand_1"]["operator"] == {
            "type": "index_accessor",
            "operands": {"operand_1": "subnets", "operand_2": index},
        }
        assert inner["operand_2"] == "id"
    assert [s["name"] for s in vnet["properties"]["subnets"]] == ["app", "private-endpoints"]


def test_private_dns_zones_use_the_clouds_suffixes() -> None:
    network = module("network")
    storage_zones = network["variables"]["storageZones"]["value"]

    assert storage_zones == [
        f"privatelink.{service}.${{environment().suffixes.storage}}"
        for service in ("blob", "queue", "table")
    ]
    assert network["variables"]["vaultZone"]["value"] == (
        "privatelink${environment().suffixes.keyvaultDns}"
    )
    zones = resources_of_type(network, "Microsoft.Network/privateDnsZones")
    assert {z["name"] for z in zones.values()} == {"zone", "vaultZone"}
    links = resources_of_type(network, "Microsoft.Network/privateDnsZones/virtualNetworkLinks")
    assert len(links) == 2
    for link in links.values():
        assert link["properties"]["registrationEnabled"] is False
        assert accessor(link["properties"]["virtualNetwork"]["id"]) == ["vnet", "id"]


def test_private_endpoints_cover_blob_queue_table_and_vault(main_template: dict[str, Any]) -> None:
    endpoints_module = module("private-endpoints")
    endpoints = endpoints_module["variables"]["endpoints"]["value"]

    assert {(e["name"], e["target"]) for e in endpoints} == {
        ("blob", "storageAccountId"),
        ("queue", "storageAccountId"),
        ("table", "storageAccountId"),
        ("vault", "keyVaultId"),
    }
    endpoint = one(endpoints_module, "Microsoft.Network/privateEndpoints")
    connection = endpoint["properties"]["privateLinkServiceConnections"][0]["properties"]
    assert accessor(connection["privateLinkServiceId"]) == ["endpoint", "target"]
    assert [accessor(g) for g in connection["groupIds"]] == [["endpoint", "name"]]
    assert endpoint["properties"]["subnet"]["id"] == "subnetId"
    group = one(endpoints_module, "Microsoft.Network/privateEndpoints/privateDnsZoneGroups")
    zone = group["properties"]["privateDnsZoneConfigs"][0]["properties"]["privateDnsZoneId"]
    assert accessor(zone) == ["endpoint", "zone"]
    passed = module_call(main_template, "privateEndpoints")["params"]
    assert accessor(passed["storageAccountId"]) == ["resources", "outputs", "storageAccountId"]
    assert accessor(passed["keyVaultId"]) == ["resources", "outputs", "keyVaultId"]


def test_storage_and_vault_close_their_public_endpoint_when_vnet_enabled(
    resources_template: dict[str, Any],
) -> None:
    variables = resources_template["variables"]
    assert conditional(variables["publicNetworkAccess"]["value"]) == (
        "vnetEnabled",
        "Disabled",
        "Enabled",
    )
    assert conditional(variables["networkDefaultAction"]["value"]) == (
        "vnetEnabled",
        "Deny",
        "Allow",
    )
    for type_ in ("Microsoft.Storage/storageAccounts", "Microsoft.KeyVault/vaults"):
        props = one(resources_template, type_)["properties"]
        assert props["publicNetworkAccess"] == "publicNetworkAccess", type_
        assert props["networkAcls"]["defaultAction"] == "networkDefaultAction", type_
    site = one(resources_template, "Microsoft.Web/sites")["properties"]
    assert conditional(site["virtualNetworkSubnetId"]) == ("vnetEnabled", "appSubnetId", None)


# -- diagnostics and alerts --------------------------------------------------------------


def test_diagnostic_settings_send_the_audit_logs_to_log_analytics(
    resources_template: dict[str, Any],
) -> None:
    settings = resources_of_type(resources_template, "Microsoft.Insights/diagnosticSettings")
    by_scope = {s["scope"]: s["properties"] for s in settings.values()}

    assert set(by_scope) == {"keyVault", "tableService", "queueService", "functionApp"}
    categories = {
        scope: {log["category"] for log in props["logs"] if log["enabled"] is True}
        for scope, props in by_scope.items()
    }
    assert categories == {
        "keyVault": {"AuditEvent"},
        "tableService": {"StorageRead", "StorageWrite", "StorageDelete"},
        "queueService": {"StorageRead", "StorageWrite", "StorageDelete"},
        "functionApp": {"FunctionAppLogs"},
    }
    for props in by_scope.values():
        assert accessor(props["workspaceId"]) == ["logAnalytics", "id"]


def alert_rules() -> dict[str, dict[str, Any]]:
    return resources_of_type(module("alerts"), "Microsoft.Insights/scheduledQueryRules")


def test_the_action_group_mails_the_address_given_as_a_parameter(
    main_template: dict[str, Any],
) -> None:
    group = one(module("alerts"), "Microsoft.Insights/actionGroups")
    (receiver,) = group["properties"]["emailReceivers"]

    assert receiver["emailAddress"] == "alertEmailAddress"
    assert group["properties"]["enabled"] is True
    parameter = main_template["parameters"]["alertEmailAddress"]
    assert parameter["type"] == "string" and parameter["default"] is None
    assert module_call(main_template, "alerts")["params"]["alertEmailAddress"] == (
        "alertEmailAddress"
    )
    for name, rule in alert_rules().items():
        assert [accessor(g) for g in rule["properties"]["actions"]["actionGroups"]] == [
            ["actionGroup", "id"]
        ], name


def test_four_alert_rules_watch_the_events_the_app_emits() -> None:
    rules = alert_rules()
    queries = {
        name: rule["properties"]["criteria"]["allOf"][0]["query"] for name, rule in rules.items()
    }

    assert set(rules) == {
        "reauthRequiredSpike",
        "deliveryFailures",
        "serverErrorRate",
        "refreshRunFailures",
    }
    assert '"connection.reauth_required"' in queries["reauthRequiredSpike"]
    assert '"notification.delivery"' in queries["deliveryFailures"]
    assert '"failure"' in queries["deliveryFailures"]
    assert queries["serverErrorRate"].startswith("requests")
    assert ">= 500" in queries["serverErrorRate"]
    assert '"lifecycle.run"' in queries["refreshRunFailures"]
    assert '"lifecycle.poison"' in queries["refreshRunFailures"]
    # The event names exist in the app's code (a renamed event would silence its alert).
    sources = "\n".join(p.read_text("utf-8") for p in (ROOT / "shared").rglob("*.py"))
    for event in (
        "connection.reauth_required",
        "notification.delivery",
        "lifecycle.run",
        "lifecycle.poison",
    ):
        assert re.search(rf"[\"']{re.escape(event)}[\"']", sources), event
    for name, rule in rules.items():
        props = rule["properties"]
        assert props["enabled"] is True, name
        assert props["scopes"] == ["appInsightsId"], name
        assert props["criteria"]["allOf"][0]["operator"] == "GreaterThan", name


# -- app registrations (Microsoft Graph extension) ---------------------------------------


@pytest.fixture(scope="module")
def entra() -> dict[str, Any]:
    return module("entra")


def graph(entra: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource["config"]
        for name, resource in entra["resources"].items()
        # pycep-parser 0.7.1 keeps a nested child's "@v1.0" in its type.
        if resource["type"].split("@")[0] == type_
    }


def test_the_extension_is_declared_in_bicepconfig(entra: dict[str, Any]) -> None:
    config = json.loads((INFRA / "bicepconfig.json").read_text(encoding="utf-8"))

    assert "microsoftGraphV1" in entra["extensions"]
    reference = config["extensions"]["microsoftGraphV1"]
    assert re.fullmatch(r"br/public:extensions/microsoftgraph/v1\.0:\d+\.\d+\.\d+", reference)
    # Only the Graph module uses the extension.
    for path in bicep_files():
        uses = re.search(r"^extension\s", path.read_text(encoding="utf-8"), re.M) is not None
        assert uses == (path == MODULES / "entra.bicep"), path.name


def test_the_api_registration_exposes_the_scope_and_the_app_roles(entra: dict[str, Any]) -> None:
    apps = graph(entra, "Microsoft.Graph/applications")
    api = apps["apiApp"]

    assert api["signInAudience"] == "AzureADMyOrg"
    assert api["api"]["requestedAccessTokenVersion"] == 2
    (scope,) = api["api"]["oauth2PermissionScopes"]
    assert scope["value"] == Settings.model_fields["API_SCOPE"].default == "access_as_user"
    assert scope["isEnabled"] is True
    roles = {role["value"]: role for role in api["appRoles"]}
    assert set(roles) == {"Connections.ReadWrite.All", "Connections.Read.All", "Connections.Admin"}
    for value, role in roles.items():
        assert role["allowedMemberTypes"] == ["Application"], value
        assert role["isEnabled"] is True, value
        assert role["id"]["function"]["parameters"]["extra_string_1"] == value
    services = graph(entra, "Microsoft.Graph/servicePrincipals")
    assert {accessor(s["appId"])[0] for s in services.values()} == {"apiApp", "clientApp"}


def test_the_sign_in_client_redirects_to_the_apps_callback(
    entra: dict[str, Any], main_template: dict[str, Any]
) -> None:
    client = graph(entra, "Microsoft.Graph/applications")["clientApp"]

    assert client["web"]["redirectUris"] == ["redirectUri"]
    assert client["web"]["implicitGrantSettings"] == {
        "enableAccessTokenIssuance": False,
        "enableIdTokenIssuance": False,
    }
    passed = module_call(main_template, "entra")["params"]
    assert (
        passed["redirectUri"]
        == "https://${resources.outputs.functionAppHostName}/api/auth/callback"
    )
    # The same URI the app sends (REDIRECT_URI) and main.bicep outputs.
    settings = module("app-settings")["resources"]["appSettings"]["config"]["properties"]
    assert settings["REDIRECT_URI"] == (
        "https://${functionApp.properties.defaultHostName}/api/auth/callback"
    )


def test_the_federated_credential_trusts_the_apps_managed_identity(
    entra: dict[str, Any], main_template: dict[str, Any]
) -> None:
    (credential,) = graph(
        entra, "Microsoft.Graph/applications/federatedIdentityCredentials"
    ).values()

    assert credential["issuer"] == (
        "${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0"
    )
    assert credential["subject"] == "identityPrincipalId"
    assert credential["audiences"] == ["api://AzureADTokenExchange"]
    assert credential["depends_on"] == ["clientApp"]  # nested in the sign-in client
    passed = module_call(main_template, "entra")["params"]
    assert accessor(passed["identityPrincipalId"]) == [
        "resources",
        "outputs",
        "identityPrincipalId",
    ]
    outputs = module("resources")["outputs"]
    assert accessor(outputs["identityPrincipalId"]["value"]) == [
        "appIdentity",
        "properties",
        "principalId",
    ]


def test_the_sign_in_client_requests_the_graph_permissions_the_app_uses(
    entra: dict[str, Any],
) -> None:
    client = graph(entra, "Microsoft.Graph/applications")["clientApp"]
    (access,) = client["requiredResourceAccess"]
    variables = entra["variables"]

    assert variables["graphAppId"]["value"] == "00000003-0000-0000-c000-000000000000"
    assert access["resourceAppId"] == "graphAppId"
    assert access["resourceAccess"]["function"] == {
        "type": "concat",
        "parameters": {"arg_1": "delegatedAccess", "arg_2": "applicationAccess"},
    }
    for name, items, kind in (
        ("delegatedAccess", "graphDelegated", "Scope"),
        ("applicationAccess", "graphApplication", "Role"),
    ):
        loop = variables[name]["value"]
        assert loop["loop_type"]["detail"]["array_name"]["function"] == {
            "type": "items",
            "parameters": {"arg_1": items},
        }
        assert loop["config"]["type"] == kind
        assert accessor(loop["config"]["id"]) == ["permission", "value"]
    delegated = {k.strip("'"): v for k, v in variables["graphDelegated"]["value"].items()}
    application = {k.strip("'"): v for k, v in variables["graphApplication"]["value"].items()}
    scopes = set(Settings.model_fields["GRAPH_SCOPES"].default_factory())  # type: ignore[misc]
    assert set(delegated) == scopes | {"offline_access", "openid", "profile"}
    assert set(application) == {"Mail.ReadWrite", "Mail.Send", "Mail.Read"}
    # Microsoft Graph's permission ids (delegated scopes and application roles differ).
    assert delegated["Mail.ReadWrite"] == "024d486e-b451-40bb-833d-3e66d98c5c73"
    assert delegated["Mail.Send"] == "e383f46e-2787-4529-855e-0e479a3ffac0"
    assert delegated["User.Read"] == "e1fe6dd8-ba31-4d61-89e7-88639da4683d"
    assert delegated["offline_access"] == "7427e0e9-2fba-42fe-b0c0-848c9e6a8182"
    assert application == {
        "Mail.ReadWrite": "e2a3a72e-5f79-4c64-b1b1-878b674786c9",
        "Mail.Send": "b633e1c5-b582-4048-a93e-9f11b44c7e96",
        "Mail.Read": "810c84a8-4a9e-49e6-bf7d-12d183f40d01",
    }
    for guid in [*delegated.values(), *application.values()]:
        assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", guid)


def test_the_registrations_feed_the_app_settings(main_template: dict[str, Any]) -> None:
    passed = module_call(main_template, "appSettings")["params"]

    assert accessor(passed["apiAppId"]) == ["entra", "outputs", "apiAppId"]
    assert accessor(passed["clientAppId"]) == ["entra", "outputs", "clientAppId"]
    outputs = module("entra")["outputs"]
    assert accessor(outputs["apiAppId"]["value"]) == ["apiApp", "appId"]
    assert accessor(outputs["clientAppId"]["value"]) == ["clientApp", "appId"]


# -- no secret ---------------------------------------------------------------------------


def normalized(text: str) -> str:
    return re.sub(r"[\s_\-]", "", text.lower())


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.name)
def test_no_template_declares_a_client_secret(path: Path) -> None:
    code = normalized(json.dumps(parsed(path)))  # the code, comments aside

    assert "clientsecret" not in code
    assert "passwordcredentials" not in code
    assert "keycredentials" not in code


@pytest.mark.parametrize(
    "path",
    [INFRA / "main.parameters.json", INFRA / "bicepconfig.json", ROOT / "azure.yaml"],
    ids=lambda p: p.name,
)
def test_no_install_file_passes_a_client_secret(path: Path) -> None:
    text = normalized(path.read_text(encoding="utf-8"))

    assert "clientsecret" not in text
    assert "password" not in text
    if path.suffix == ".json":
        assert "secret" not in text


def test_the_deploy_guide_never_asks_for_a_client_secret() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")

    for phrase in (
        "CLIENT_SECRET",
        "client-secret",
        "Certificates & secrets",
        "passwordCredentials",
        "az ad app credential",
        "create a client secret",
    ):
        assert phrase.lower() not in text.lower(), phrase


def test_no_registration_carries_a_password_or_key_credential(entra: dict[str, Any]) -> None:
    for name, resource in entra["resources"].items():
        config = json.dumps(resource["config"])
        assert "passwordCredentials" not in config, name
        assert "keyCredentials" not in config, name


def test_no_app_setting_is_named_like_a_secret_except_the_cursor_reference() -> None:
    settings = module("app-settings")["resources"]["appSettings"]["config"]["properties"]
    secretish = {name for name in settings if re.search(r"(SECRET|PASSWORD|KEY)$", name)}

    assert secretish == {"CURSOR_SECRET"}
    assert settings["CURSOR_SECRET"].startswith("@Microsoft.KeyVault(")


# -- the deploy guide says what the templates do -----------------------------------------


def test_the_deploy_guide_documents_the_install_the_templates_make(
    main_template: dict[str, Any],
) -> None:
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    env_names = {
        m.group(1)
        for p in parameters["parameters"].values()
        if (m := re.match(r"\$\{(\w+)", p["value"]))
    }

    assert "azd up" in text
    assert "azd down --purge" in text
    assert "Grant admin consent" in text
    # Every azd setting the guide names is one the parameters file reads, and the ones a user
    # chooses are in the guide.
    set_by_command = set(re.findall(r"azd env set (\w+)", text))
    in_table = set(re.findall(r"^\| `(\w+)` \|", text, re.M))
    named = set_by_command | in_table
    assert named <= env_names | {"AZURE_LOCATION"}
    assert {"ALERT_EMAIL_ADDRESS", "VNET_ENABLED", "KEY_VAULT_PURGE_PROTECTION"} <= named
    # The outputs the guide tells people to read exist.
    for output in set(re.findall(r"azd env get-value (\w+)", text)):
        assert output in main_template["outputs"], output
    for output in ("API_APP_ID", "SIGN_IN_CLIENT_ID", "REDIRECT_URI", "API_IDENTIFIER_URI"):
        assert output in text and output in main_template["outputs"], output
