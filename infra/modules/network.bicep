// Network isolation (vnetEnabled): a VNet with the Flex Consumption integration subnet and a
// subnet for private endpoints, and the private DNS zones of Storage (blob, queue, table) and
// Key Vault linked to it. The private endpoints themselves are in private-endpoints.bicep,
// deployed after the resources they point at.
targetScope = 'resourceGroup'

param location string
param tags object
param resourceToken string

@description('Address space of the VNet.')
param addressPrefix string = '10.60.0.0/16'

@description('The app\'s integration subnet (Flex Consumption: /27 or larger).')
param appSubnetPrefix string = '10.60.0.0/24'

@description('The private endpoints\' subnet.')
param privateEndpointSubnetPrefix string = '10.60.1.0/24'

var abbrs = loadJsonContent('../abbreviations.json')

// Private DNS zone names from the cloud's own suffixes (environment()), so national clouds
// resolve their private endpoints too: core.windows.net / vault.azure.net in the public cloud.
var storageZones = [
  'privatelink.blob.${environment().suffixes.storage}'
  'privatelink.queue.${environment().suffixes.storage}'
  'privatelink.table.${environment().suffixes.storage}'
]
// keyvaultDns starts with a dot ('.vault.azure.net').
var vaultZone = 'privatelink${environment().suffixes.keyvaultDns}'

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: '${abbrs.networkVirtualNetworks}${resourceToken}'
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        // Flex Consumption VNet integration: a subnet delegated to Microsoft.App/environments.
        name: 'app'
        properties: {
          addressPrefix: appSubnetPrefix
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
          privateEndpointNetworkPolicies: 'Disabled'
          privateLinkServiceNetworkPolicies: 'Enabled'
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
          privateLinkServiceNetworkPolicies: 'Enabled'
        }
      }
    ]
  }
}

resource storageDnsZones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for zone in storageZones: {
    name: zone
    location: 'global'
    tags: tags
  }
]

resource storageDnsLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for (zone, i) in storageZones: {
    parent: storageDnsZones[i]
    name: 'link-${vnet.name}'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

resource vaultDnsZone 'Microsoft.Network/privateDnsZones@2020-06-01' = {
  name: vaultZone
  location: 'global'
  tags: tags
}

resource vaultDnsLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = {
  parent: vaultDnsZone
  name: 'link-${vnet.name}'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}

output appSubnetId string = vnet.properties.subnets[0].id
output privateEndpointSubnetId string = vnet.properties.subnets[1].id
output blobZoneId string = storageDnsZones[0].id
output queueZoneId string = storageDnsZones[1].id
output tableZoneId string = storageDnsZones[2].id
output vaultZoneId string = vaultDnsZone.id
