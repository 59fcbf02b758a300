// Outlook Integration API: one command (`azd up`) from an empty subscription to a working app.
//
// Subscription scope, as azd templates are: this file creates the resource group and deploys
// the modules into it, in the order their inputs need:
//   network (vnetEnabled) -> resources -> private endpoints (vnetEnabled)
//   -> entra (app registrations, Microsoft Graph extension) -> app settings; alerts.
// Every Azure resource is declared in a module file checkov parses; entra.bicep holds only
// Microsoft Graph objects (tests/infra/test_checkov.py checks both). No secret anywhere: the
// app signs in to Entra ID with a federated credential of its managed identity, and its keys
// are created in Key Vault after provisioning by infra/hooks/postprovision.py.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; part of every resource name (resourceToken) and the azd-env-name tag.')
param environmentName string

// Regions with Flex Consumption, checked 2026-12-02. Source: Microsoft's Flex Consumption azd
// template (Azure-Samples/functions-quickstart-python-http-azd, infra/main.bicep at commit
// 7ed4638 of 2025-11-24); Microsoft's documentation ("Flex Consumption plan") keeps no static
// list and sends readers to `az functionapp list-flexconsumption-locations`, which that list
// follows. The canary region eastus2euap is left out. A region added later: add it here.
@minLength(1)
@description('Azure region of the resource group and every resource (Flex Consumption must be available there).')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group to create. Default: rg-{environmentName}.')
param resourceGroupName string = ''

@description('Object id of the deploying user or pipeline. When set, it may create the Key Vault secrets (Key Vault Secrets Officer on this vault only).')
param principalId string = ''

@description('Type of principalId: User for a person running azd, ServicePrincipal for a pipeline.')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('Network isolation: VNet integration for the app, private endpoints and private DNS zones for Storage and Key Vault, their public network access disabled.')
param vnetEnabled bool = false

@description('Email address that receives the alerts (reauth_required spikes, delivery failures, 5xx rate, refresh run failures).')
param alertEmailAddress string

@description('Key Vault purge protection (default on). Off only for throw-away environments: it lets `azd down --purge` free the vault name at once (docs/deploy.md).')
param keyVaultPurgeProtection bool = true

@description('Microsoft Graph base URL (national clouds use their own, e.g. https://graph.microsoft.us/v1.0).')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('NCRONTAB schedule (UTC) of the token lifecycle timer.')
param lifecycleSchedule string = '0 */5 * * * *'

@description('Maximum instances of the Flex Consumption app.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory per instance (MB).')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

var abbrs = loadJsonContent('abbreviations.json')
// One token per subscription, environment and region, as azd templates derive it: every
// resource name, the vault's included, is per environment.
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? '${abbrs.resourcesResourceGroups}${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module network 'modules/network.bicep' = if (vnetEnabled) {
  name: 'network'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
  }
}

module resources 'modules/resources.bicep' = {
  name: 'resources'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    principalId: principalId
    principalType: principalType
    vnetEnabled: vnetEnabled
    appSubnetId: vnetEnabled ? network.outputs.appSubnetId : ''
    keyVaultPurgeProtection: keyVaultPurgeProtection
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
}

module privateEndpoints 'modules/private-endpoints.bicep' = if (vnetEnabled) {
  name: 'private-endpoints'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    subnetId: vnetEnabled ? network.outputs.privateEndpointSubnetId : ''
    storageAccountId: resources.outputs.storageAccountId
    keyVaultId: resources.outputs.keyVaultId
    blobZoneId: vnetEnabled ? network.outputs.blobZoneId : ''
    queueZoneId: vnetEnabled ? network.outputs.queueZoneId : ''
    tableZoneId: vnetEnabled ? network.outputs.tableZoneId : ''
    vaultZoneId: vnetEnabled ? network.outputs.vaultZoneId : ''
  }
}

module entra 'modules/entra.bicep' = {
  name: 'entra'
  scope: rg
  params: {
    apiUniqueName: 'outlook-integration-api-${resourceToken}'
    clientUniqueName: 'outlook-integration-api-signin-${resourceToken}'
    displayName: 'Outlook Integration API (${environmentName})'
    redirectUri: 'https://${resources.outputs.functionAppHostName}/api/auth/callback'
    identityPrincipalId: resources.outputs.identityPrincipalId
  }
}

module appSettings 'modules/app-settings.bicep' = {
  name: 'app-settings'
  scope: rg
  params: {
    functionAppName: resources.outputs.functionAppName
    storageAccountName: resources.outputs.storageAccountName
    keyVaultName: resources.outputs.keyVaultName
    appInsightsName: resources.outputs.appInsightsName
    identityName: resources.outputs.identityName
    apiAppId: entra.outputs.apiAppId
    clientAppId: entra.outputs.clientAppId
    graphBaseUrl: graphBaseUrl
    lifecycleSchedule: lifecycleSchedule
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    appInsightsId: resources.outputs.appInsightsId
    alertEmailAddress: alertEmailAddress
  }
}

// ---------------------------------------------------------------------------------------
// Outputs: names, ids and endpoints only (azd stores them in .azure/<env>/.env)
// ---------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = resources.outputs.functionAppName
output AZURE_FUNCTION_APP_URL string = 'https://${resources.outputs.functionAppHostName}'
output REDIRECT_URI string = 'https://${resources.outputs.functionAppHostName}/api/auth/callback'
output AZURE_KEY_VAULT_NAME string = resources.outputs.keyVaultName
output AZURE_KEY_VAULT_URL string = resources.outputs.keyVaultUrl
output AZURE_STORAGE_ACCOUNT_NAME string = resources.outputs.storageAccountName
output APPLICATIONINSIGHTS_NAME string = resources.outputs.appInsightsName
output AZURE_APP_IDENTITY_CLIENT_ID string = resources.outputs.identityClientId
output API_APP_ID string = entra.outputs.apiAppId
output API_IDENTIFIER_URI string = entra.outputs.apiIdentifierUri
output SIGN_IN_CLIENT_ID string = entra.outputs.clientAppId
