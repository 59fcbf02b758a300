// Private endpoints (vnetEnabled) for the storage account's blob, queue and table services and
// for Key Vault, each registered in its private DNS zone (network.bicep). Both resources have
// public network access disabled when these exist (resources.bicep).
targetScope = 'resourceGroup'

param location string
param tags object
param resourceToken string
param subnetId string
param storageAccountId string
param keyVaultId string
param blobZoneId string
param queueZoneId string
param tableZoneId string
param vaultZoneId string

var abbrs = loadJsonContent('../abbreviations.json')
var endpoints = [
  {
    name: 'blob'
    target: storageAccountId
    zone: blobZoneId
  }
  {
    name: 'queue'
    target: storageAccountId
    zone: queueZoneId
  }
  {
    name: 'table'
    target: storageAccountId
    zone: tableZoneId
  }
  {
    name: 'vault'
    target: keyVaultId
    zone: vaultZoneId
  }
]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [
  for endpoint in endpoints: {
    name: '${abbrs.networkPrivateEndpoints}${endpoint.name}-${resourceToken}'
    location: location
    tags: tags
    properties: {
      subnet: {
        id: subnetId
      }
      privateLinkServiceConnections: [
        {
          name: endpoint.name
          properties: {
            privateLinkServiceId: endpoint.target
            groupIds: [
              endpoint.name
            ]
          }
        }
      ]
    }
  }
]

resource dnsZoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [
  for (endpoint, i) in endpoints: {
    parent: privateEndpoints[i]
    name: 'default'
    properties: {
      privateDnsZoneConfigs: [
        {
          name: endpoint.name
          properties: {
            privateDnsZoneId: endpoint.zone
          }
        }
      ]
    }
  }
]
