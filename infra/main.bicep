// Outlook Integration API: one resource group with everything the Function App needs.
//
// Every security-relevant resource is a native `resource` declaration in this file (no
// modules): checkov reads resources, not module calls. Nothing here holds a secret: the app
// reaches Storage, Key Vault and Application Insights with its user-assigned managed identity,
// and the three secrets it needs (the two credential keys and the cursor HMAC key, plus the
// registration's client secret while the app has no certificate/FIC support) are created in
// Key Vault after provisioning by infra/hooks/postprovision.py (see docs/deploy.md).
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('azd environment name; part of every resource name (resourceToken) and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Azure region of every resource (Flex Consumption must be available there).')
param location string = resourceGroup().location

@description('Object id of the deploying user or pipeline. When set, it may create the Key Vault secrets (Key Vault Secrets Officer on this vault only).')
param principalId string = ''

@description('Type of principalId: User for a person running azd, ServicePrincipal for a pipeline.')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('Application (client) id of this API\'s Entra ID app registration (docs/deploy.md).')
param appClientId string

@description('Tenant whose users connect mailboxes and whose apps call the API. Default: this subscription\'s tenant.')
param appTenantId string = ''

@description('Audience callers\' tokens must carry. Default: api://{appClientId}.')
param apiAudience string = ''

@description('Entra ID authority host (national clouds use their own).')
param authorityHost string = 'https://login.microsoftonline.com'

@description('Microsoft Graph base URL (national clouds use their own).')
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
var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var tenantIdValue = empty(appTenantId) ? tenant().tenantId : appTenantId
var audienceValue = empty(apiAudience) ? 'api://${appClientId}' : apiAudience

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
    serializedData: loadTextContent('app/audit-workbook.json')
  }
}

// ---------------------------------------------------------------------------------------
// Storage: Functions host (blobs, queues), deployment package container, the app's tables
// ---------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches Storage over its public endpoint; access is Entra-only (allowSharedKeyAccess false) and RBAC-scoped to the app identity.
  // checkov:skip=CKV_AZURE_59: as CKV_AZURE_35: public network access is needed without VNet integration; no key or SAS can be used (shared keys are disabled).
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
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
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
// Key Vault: the credential keys, the cursor key, the client secret (created post-deploy)
// ---------------------------------------------------------------------------------------

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: a default-deny firewall would lock out Flex Consumption without VNet integration and the post-provision hook; every data-plane call needs an Entra token and an RBAC role on this vault.
  // checkov:skip=CKV_AZURE_189: as CKV_AZURE_109: public network access is needed without VNet integration.
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
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
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

// App settings: identities, endpoints and Key Vault references only (README.md "Settings").
// A separate resource so REDIRECT_URI can use the app's default host name (Flex apps may get
// a hashed, regional one).
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads every Microsoft.Web/sites/config resource as the site's 'web' config; these
  // are the site checks that do not apply to an appsettings resource or to Flex Consumption.
  // checkov:skip=CKV_AZURE_13: Entra ID is enforced in code, not by Easy Auth (see CKV_AZURE_16 on functionApp).
  // checkov:skip=CKV_AZURE_222: public network access is set (and justified) on functionApp.
  // checkov:skip=CKV_AZURE_63: App Service HTTP logs are not available on Flex Consumption; requests are logged by Application Insights.
  // checkov:skip=CKV_AZURE_65: detailed error pages are an App Service (IIS) feature not on Flex Consumption; errors are problem+json with a correlation id.
  // checkov:skip=CKV_AZURE_66: failed request tracing is an App Service (IIS) feature not on Flex Consumption; failures are in Application Insights.
  // checkov:skip=CKV_AZURE_80: a Python app: no .NET Framework.
  // checkov:skip=CKV_AZURE_88: Flex Consumption has no Azure Files content share (it would need shared keys); the package is in the deployment blob container.
  parent: functionApp
  name: 'appsettings'
  properties: {
    // Functions host storage through the managed identity (no connection string).
    AzureWebJobsStorage__accountName: storage.name
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: appIdentity.properties.clientId
    // The connection string names the component (its instrumentation key is not a credential
    // once local auth is disabled); ingestion authenticates with the managed identity.
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${appIdentity.properties.clientId};Authorization=AAD'
    // DefaultAzureCredential picks the user-assigned identity by this id.
    AZURE_CLIENT_ID: appIdentity.properties.clientId
    APP_ENV: 'production'
    TENANT_ID: tenantIdValue
    CLIENT_ID: appClientId
    API_AUDIENCE: audienceValue
    AUTHORITY_HOST: authorityHost
    GRAPH_BASE_URL: graphBaseUrl
    REDIRECT_URI: 'https://${functionApp.properties.defaultHostName}/api/auth/callback'
    AUTH_RESPONSE_MODE: 'form_post'
    STORAGE_TABLE_ENDPOINT: storage.properties.primaryEndpoints.table
    KEY_PROVIDER: 'keyvault'
    KEY_VAULT_URL: keyVault.properties.vaultUri
    KEY_VAULT_AES_SECRET_NAME: 'credential-aes-key'
    KEY_VAULT_FERNET_SECRET_NAME: 'credential-fernet-keys'
    // The host resolves %LIFECYCLE_SCHEDULE% / %LIFECYCLE_QUEUE% in trigger bindings from app
    // settings (a Settings default does not reach it): they must exist here.
    LIFECYCLE_SCHEDULE: lifecycleSchedule
    LIFECYCLE_QUEUE: 'oia-lifecycle'
    // Change notifications: the delivery queue (bound as %NOTIFICATIONS_QUEUE%) and the
    // public URL Graph posts notifications to.
    NOTIFICATIONS_QUEUE: 'oia-notifications'
    PUBLIC_BASE_URL: 'https://${functionApp.properties.defaultHostName}'
    // Interim until the app authenticates to Entra ID with a certificate or a federated
    // credential: references, resolved by the platform with the managed identity; the values
    // live only in Key Vault.
    CLIENT_SECRET: '@Microsoft.KeyVault(VaultName=${keyVault.name};SecretName=client-secret)'
    CURSOR_SECRET: '@Microsoft.KeyVault(VaultName=${keyVault.name};SecretName=cursor-secret)'
  }
  dependsOn: [
    storageBlobOwner
    storageQueueContributor
    storageTableContributor
    vaultSecretsUser
    insightsPublisher
  ]
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

// ---------------------------------------------------------------------------------------
// Outputs: names and endpoints only (azd stores them in .azure/<env>/.env)
// ---------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_FUNCTION_APP_NAME string = functionApp.name
output AZURE_FUNCTION_APP_URL string = 'https://${functionApp.properties.defaultHostName}'
output REDIRECT_URI string = 'https://${functionApp.properties.defaultHostName}/api/auth/callback'
output AZURE_KEY_VAULT_NAME string = keyVault.name
output AZURE_KEY_VAULT_URL string = keyVault.properties.vaultUri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.name
output APPLICATIONINSIGHTS_NAME string = appInsights.name
output AZURE_APP_IDENTITY_CLIENT_ID string = appIdentity.properties.clientId
