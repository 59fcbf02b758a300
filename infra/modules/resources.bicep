// The Azure resources of one environment, in its resource group: identity, monitoring,
// Storage, Key Vault, the Flex Consumption app, role assignments and diagnostic settings.
//
// Every security-relevant Azure resource is a native `resource` declaration in a file that
// checkov parses (this one and its siblings, never the Graph extension module entra.bicep;
// tests/infra/test_checkov.py checks that). Nothing here holds a secret: the app reaches
// Storage, Key Vault and Application Insights with its user-assigned managed identity, signs
// in to Entra ID with a federated credential of that identity (entra.bicep), and the keys it
// needs are created in Key Vault after provisioning by infra/hooks/postprovision.py.
targetScope = 'resourceGroup'

@description('Azure region of every resource.')
param location string

@description('Tags of every resource (azd-env-name).')
param tags object

@description('Per-environment suffix of every resource name (uniqueString of subscription, environment, location).')
param resourceToken string

@description('Object id of the deploying user or pipeline; empty: no deployer role.')
param principalId string

@description('Type of principalId.')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string

@description('Network isolation: VNet integration for the app, private endpoints for Storage and Key Vault, public network access disabled on both.')
param vnetEnabled bool

@description('Subnet the app integrates with (delegated to Microsoft.App/environments); used when vnetEnabled.')
param appSubnetId string

@description('Key Vault purge protection. Keep it on for production (the vault holds the keys that open every stored grant); off lets `azd down --purge` free the vault name at once.')
param keyVaultPurgeProtection bool

@description('Maximum instances of the Flex Consumption app.')
param maximumInstanceCount int

@description('Memory per instance (MB).')
param instanceMemoryMB int

var abbrs = loadJsonContent('../abbreviations.json')
var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var publicNetworkAccess = vnetEnabled ? 'Disabled' : 'Enabled'
var networkDefaultAction = vnetEnabled ? 'Deny' : 'Allow'

// Built-in role definitions, the only ones this template assigns (tests/infra checks the set).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// ---------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
  location: location
  tags: tags
}

// ---------------------------------------------------------------------------------------
// Monitoring: Log Analytics + workspace-based Application Insights, Entra-only ingestion
// ---------------------------------------------------------------------------------------

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 90
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${abbrs.insightsComponents}${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    // Telemetry is accepted only with an Entra ID token (the app's managed identity holds
    // Monitoring Metrics Publisher): the instrumentation key in the connection string alone
    // cannot write.
    DisableLocalAuth: true
  }
}

resource auditWorkbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsights.id, 'audit-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Outlook Integration API: audit'
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: loadTextContent('../app/audit-workbook.json')
  }
}

// ---------------------------------------------------------------------------------------
// Storage: Functions host (blobs, queues), deployment package container, the app's tables
// ---------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: the default action is Deny when vnetEnabled (private endpoints); without it Flex Consumption reaches Storage over its public endpoint, Entra-only (allowSharedKeyAccess false) and RBAC-scoped to the app identity.
  // checkov:skip=CKV_AZURE_59: public network access is Disabled when vnetEnabled; without VNet integration the app needs the public endpoint, and no key or SAS can be used (shared keys are disabled).
  // checkov:skip=CKV_AZURE_206: Standard_LRS is deliberate: the tables hold encrypted grants that users can re-create by reconnecting; choose ZRS/GRS by editing the sku where the tenant's policy requires it.
  // checkov:skip=CKV_AZURE_43: the name is 'st' + uniqueString(...) (15 lowercase letters and digits), within the naming rules; checkov cannot evaluate the expression.
  name: '${abbrs.storageStorageAccounts}${resourceToken}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: networkDefaultAction
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// ---------------------------------------------------------------------------------------
// Key Vault: the credential keys and the cursor key (created post-deploy)
// ---------------------------------------------------------------------------------------

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: the firewall denies by default when vnetEnabled (private endpoint); without it the app and the post-provision hook reach the public endpoint, and every data-plane call needs an Entra token and an RBAC role on this vault.
  // checkov:skip=CKV_AZURE_189: public network access is Disabled when vnetEnabled; without VNet integration the app needs the public endpoint.
  // checkov:skip=CKV_AZURE_110: purge protection is the keyVaultPurgeProtection parameter, true by default (tests/infra checks the default); checkov cannot evaluate a parameter.
  // checkov:skip=CKV_AZURE_42: the vault is recoverable: soft delete is always on (90 days) and purge protection is on unless keyVaultPurgeProtection is set false for a throw-away environment.
  // The name is per environment (resourceToken), so a second azd environment never meets a
  // soft-deleted vault of the first; docs/deploy.md says how `azd down --purge` and purge
  // protection meet.
  name: '${abbrs.keyVaultVaults}${resourceToken}'
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // ARM refuses `false` here: purge protection is either on or absent.
    enablePurgeProtection: keyVaultPurgeProtection ? true : null
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: networkDefaultAction
    }
  }
}

// ---------------------------------------------------------------------------------------
// The Function App on Flex Consumption
// ---------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy exists only in some regions and fails deployment elsewhere; set zoneRedundant where your region supports it.
  name: '${abbrs.webServerFarms}${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_16: App Service Authentication (Easy Auth) is not used: the app validates Entra ID bearer tokens itself (audience, issuer, tenant, roles) and serves the browser sign-in routes anonymously by design.
  // checkov:skip=CKV_AZURE_17: client certificates are not how callers authenticate: they send Entra ID bearer tokens.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales per request (instances are not pinned); a failed instance is replaced by the platform.
  // checkov:skip=CKV_AZURE_222: the API is public by purpose (Power Automate, Logic Apps, ITSM tools call it over the internet); every API route needs an Entra ID token.
  name: functionAppName
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${appIdentity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    // Outbound traffic (Storage, Key Vault) through the VNet and its private endpoints.
    virtualNetworkSubnetId: vnetEnabled ? appSubnetId : null
    // Key Vault references in app settings resolve with the user-assigned identity.
    keyVaultReferenceIdentity: appIdentity.id
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // Issue #9 asks for it; Flex Consumption may not act on the platform health check
      // (instances are managed per request), so docs/deploy.md also suggests an availability
      // test against the same path.
      healthCheckPath: '/api/health'
      cors: {
        allowedOrigins: []
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: appIdentity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
  dependsOn: [
    deploymentContainer
  ]
}

resource basicPublishingFtp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource basicPublishingScm 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// ---------------------------------------------------------------------------------------
// Diagnostic settings: the audit trail of the data stores and the app, to Log Analytics
// ---------------------------------------------------------------------------------------

// Who read which key secret, and who was refused: Key Vault's own audit log.
resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: keyVault
  properties: {
    workspaceId: logAnalytics.id
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

// The tables hold the encrypted grants; the queues carry the lifecycle and delivery work.
resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: tableService
  properties: {
    workspaceId: logAnalytics.id
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: queueService
  properties: {
    workspaceId: logAnalytics.id
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

resource functionAppDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: functionApp
  properties: {
    workspaceId: logAnalytics.id
    logs: [
      {
        category: 'FunctionAppLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

// ---------------------------------------------------------------------------------------
// Role assignments: least privilege, each named guid(scope, principal, role)
// ---------------------------------------------------------------------------------------

// The Functions host keeps its locks and keys in blobs and reads the deployment package.
resource storageBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentity.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource storageQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentity.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource storageTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentity.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Read-only on secrets: the app loads key versions, it never writes them.
resource vaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, appIdentity.id, roles.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource insightsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appIdentity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The deployer creates the secrets after provisioning (infra/hooks/postprovision.py) and
// adds key versions when rotating; remove this assignment afterwards if your policy wants it.
resource deployerSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(keyVault.id, principalId, roles.keyVaultSecretsOfficer)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: principalId
    principalType: principalType
  }
}

// Names and endpoints only: the modules after this one look the resources up by name.
output functionAppName string = functionApp.name
output functionAppHostName string = functionApp.properties.defaultHostName
output storageAccountName string = storage.name
output keyVaultName string = keyVault.name
output keyVaultUrl string = keyVault.properties.vaultUri
output appInsightsName string = appInsights.name
output appInsightsId string = appInsights.id
output identityName string = appIdentity.name
output identityClientId string = appIdentity.properties.clientId
output identityPrincipalId string = appIdentity.properties.principalId
output storageAccountId string = storage.id
output keyVaultId string = keyVault.id
