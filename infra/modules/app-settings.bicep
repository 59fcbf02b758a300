// The Function App's settings (README.md "Settings"): identities, endpoints and Key Vault
// references only, no secret. A module of its own because it needs both the Azure resources
// (resources.bicep) and the app registrations (entra.bicep), and the registrations need the
// app's host name first.
targetScope = 'resourceGroup'

param functionAppName string
param storageAccountName string
param keyVaultName string
param appInsightsName string
param identityName string

@description('Application id of the API registration: the audience of callers\' v2 tokens.')
param apiAppId string

@description('Application id of the sign-in client registration (CLIENT_ID).')
param clientAppId string

@description('Microsoft Graph base URL (national clouds use their own).')
param graphBaseUrl string

@description('NCRONTAB schedule (UTC) of the token lifecycle timer.')
param lifecycleSchedule string

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: identityName
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads every Microsoft.Web/sites/config resource as the site's 'web' config; these
  // are the site checks that do not apply to an appsettings resource or to Flex Consumption.
  // checkov:skip=CKV_AZURE_13: Entra ID is enforced in code, not by Easy Auth (see CKV_AZURE_16 on functionApp in resources.bicep).
  // checkov:skip=CKV_AZURE_222: public network access is set (and justified) on functionApp in resources.bicep.
  // checkov:skip=CKV_AZURE_63: App Service HTTP logs are not available on Flex Consumption; requests are logged by Application Insights.
  // checkov:skip=CKV_AZURE_65: detailed error pages are an App Service (IIS) feature not on Flex Consumption; errors are problem+json with a correlation id.
  // checkov:skip=CKV_AZURE_66: failed request tracing is an App Service (IIS) feature not on Flex Consumption; failures are in Application Insights.
  // checkov:skip=CKV_AZURE_80: a Python app: no .NET Framework.
  // checkov:skip=CKV_AZURE_88: Flex Consumption has no Azure Files content share (it would need shared keys); the package is in the deployment blob container.
  parent: functionApp
  name: 'appsettings'
  properties: {
    // Functions host storage through the managed identity, each service by the endpoint the
    // account reports (right in every cloud; no connection string, no built host name).
    AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
    AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
    AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: appIdentity.properties.clientId
    // The connection string names the component (its instrumentation key is not a credential
    // once local auth is disabled); ingestion authenticates with the managed identity.
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${appIdentity.properties.clientId};Authorization=AAD'
    // DefaultAzureCredential picks the user-assigned identity by this id.
    AZURE_CLIENT_ID: appIdentity.properties.clientId
    APP_ENV: 'production'
    TENANT_ID: tenant().tenantId
    CLIENT_ID: clientAppId
    API_AUDIENCE: apiAppId
    // The sign-in client's credential: a token of this identity for api://AzureADTokenExchange,
    // trusted by the registration's federated credential (entra.bicep). No client secret.
    APP_CREDENTIAL: 'managed_identity_federation'
    MANAGED_IDENTITY_CLIENT_ID: appIdentity.properties.clientId
    AUTHORITY_HOST: environment().authentication.loginEndpoint
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
    // Archiving: the export page jobs' queue (bound as %EXPORTS_QUEUE%).
    EXPORTS_QUEUE: 'oia-exports'
    // The reconciliation timer's schedule (bound as %RECONCILE_SCHEDULE%): every 15 minutes.
    RECONCILE_SCHEDULE: '0 */15 * * * *'
    // The poll timer's schedule (bound as %POLL_SCHEDULE%): poll-mode triggers' due reads.
    POLL_SCHEDULE: '*/15 * * * * *'
    PUBLIC_BASE_URL: 'https://${functionApp.properties.defaultHostName}'
    // The paging cursors' HMAC key: a reference, resolved by the platform with the managed
    // identity; the value lives only in Key Vault (infra/hooks/postprovision.py creates it).
    CURSOR_SECRET: '@Microsoft.KeyVault(VaultName=${keyVault.name};SecretName=cursor-secret)'
  }
}
