// The Entra ID app registrations, through the Microsoft Graph Bicep extension (declared in
// infra/bicepconfig.json). Only Microsoft.Graph objects live here: checkov's Bicep parser
// cannot read `extension`, so no Azure resource may sit in this file (tests/infra checks it).
//
// - The API (`apiApp`): what callers get tokens for. Delegated scope access_as_user, app roles
//   for daemon callers, v2 access tokens (audience = its application id, API_AUDIENCE).
// - The sign-in client (`clientApp`): the confidential client the Function App uses to
//   connect mailboxes (CLIENT_ID): its redirect URI is the app's /api/auth/callback, it
//   requests the Microsoft Graph permissions, and it has no secret: its only credential is a
//   federated identity credential that trusts the app's user-assigned managed identity
//   (APP_CREDENTIAL=managed_identity_federation). An administrator still grants consent.
extension microsoftGraphV1

@description('uniqueName of the API registration (stable per environment).')
param apiUniqueName string

@description('uniqueName of the sign-in client registration (stable per environment).')
param clientUniqueName string

@description('Display name prefix of both registrations.')
param displayName string

@description('The app\'s OAuth redirect URI: https://<host>/api/auth/callback.')
param redirectUri string

@description('Principal (object) id of the app\'s user-assigned managed identity: the subject of the federated credential.')
param identityPrincipalId string

// Callers ask for '{apiIdentifierUri}/access_as_user' (or '/.default'). The tenant-scoped form
// is one Entra accepts under its default identifier URI policy and needs no self-reference.
var apiIdentifierUri = 'api://${tenant().tenantId}/${apiUniqueName}'
var graphAppId = '00000003-0000-0000-c000-000000000000'
// Microsoft Graph permission ids (stable, from Graph's service principal). Delegated: what
// the app requests when a person connects a mailbox (shared/config.py GRAPH_SCOPES, plus the
// OpenID Connect scopes MSAL always adds).
var graphDelegated = {
  'Mail.ReadWrite': '024d486e-b451-40bb-833d-3e66d98c5c73'
  'Mail.Send': 'e383f46e-2787-4529-855e-0e479a3ffac0'
  'Mail.ReadWrite.Shared': '5df07973-7d5d-46ed-9847-1271055cbd51'
  'Mail.Send.Shared': 'a367ab51-6b49-43bf-a716-a1fb06d2a174'
  'MailboxSettings.ReadWrite': '818c620a-27a9-40bd-a6a5-d96f7d610b4b'
  'User.Read': 'e1fe6dd8-ba31-4d61-89e7-88639da4683d'
  offline_access: '7427e0e9-2fba-42fe-b0c0-848c9e6a8182'
  openid: '37f7f235-527c-4136-accd-4a02d197296e'
  profile: '14dad69e-099b-42c9-810b-d002981feec1'
}
// Application permissions, listed as required resource access only: nothing grants them
// until an administrator consents (docs/deploy.md).
var graphApplication = {
  'Mail.ReadWrite': 'e2a3a72e-5f79-4c64-b1b1-878b674786c9'
  'Mail.Send': 'b633e1c5-b582-4048-a93e-9f11b44c7e96'
  'Mail.Read': '810c84a8-4a9e-49e6-bf7d-12d183f40d01'
}
var delegatedAccess = [
  for permission in items(graphDelegated): {
    id: permission.value
    type: 'Scope'
  }
]
var applicationAccess = [
  for permission in items(graphApplication): {
    id: permission.value
    type: 'Role'
  }
]

resource apiApp 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: apiUniqueName
  displayName: displayName
  signInAudience: 'AzureADMyOrg'
  identifierUris: [
    apiIdentifierUri
  ]
  api: {
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: [
      {
        id: guid(apiUniqueName, 'access_as_user')
        value: 'access_as_user'
        type: 'User'
        isEnabled: true
        adminConsentDisplayName: 'Use connected mailboxes'
        adminConsentDescription: 'Lets the calling app use the Outlook mailboxes the signed-in user has connected.'
        userConsentDisplayName: 'Use connected mailboxes as you'
        userConsentDescription: 'Lets the app use the Outlook mailboxes you have connected, as you.'
      }
    ]
  }
  appRoles: [
    {
      id: guid(apiUniqueName, 'Connections.ReadWrite.All')
      value: 'Connections.ReadWrite.All'
      allowedMemberTypes: [
        'Application'
      ]
      isEnabled: true
      displayName: 'Read and write all connections'
      description: 'Daemon callers: read and write mail through every connected mailbox.'
    }
    {
      id: guid(apiUniqueName, 'Connections.Read.All')
      value: 'Connections.Read.All'
      allowedMemberTypes: [
        'Application'
      ]
      isEnabled: true
      displayName: 'Read all connections'
      description: 'Daemon callers: read mail through every connected mailbox.'
    }
    {
      id: guid(apiUniqueName, 'Connections.Admin')
      value: 'Connections.Admin'
      allowedMemberTypes: [
        'Application'
      ]
      isEnabled: true
      displayName: 'Administer connections'
      description: 'Admin callers: connect shared mailboxes for the app itself (application connections) and choose who may use them.'
    }
  ]
}

resource apiServicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: apiApp.appId
}

resource clientApp 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: clientUniqueName
  displayName: '${displayName} (sign-in)'
  signInAudience: 'AzureADMyOrg'
  web: {
    redirectUris: [
      redirectUri
    ]
    implicitGrantSettings: {
      enableAccessTokenIssuance: false
      enableIdTokenIssuance: false
    }
  }
  requiredResourceAccess: [
    {
      resourceAppId: graphAppId
      resourceAccess: concat(delegatedAccess, applicationAccess)
    }
  ]

  // The app's only credential: a token of its user-assigned managed identity, exchanged for
  // the app's own token (no secret, no certificate to rotate).
  resource managedIdentityCredential 'federatedIdentityCredentials@v1.0' = {
    name: '${clientUniqueName}/app-managed-identity'
    description: 'The Function App\'s user-assigned managed identity'
    issuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
    subject: identityPrincipalId
    audiences: [
      'api://AzureADTokenExchange'
    ]
  }
}

resource clientServicePrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: clientApp.appId
}

output apiAppId string = apiApp.appId
output apiIdentifierUri string = apiIdentifierUri
output clientAppId string = clientApp.appId
