// Alerts on what the app reports (docs/audit-queries.md, docs/operations.md): log search
// rules over Application Insights (customEvents carry the audit events, requests the HTTP
// results), sent to one action group that mails the operator.
targetScope = 'resourceGroup'

param location string
param tags object
param resourceToken string

@description('Application Insights component the rules query.')
param appInsightsId string

@description('Where alerts are mailed.')
param alertEmailAddress string

@description('connection.reauth_required events in an hour above which the spike alert fires.')
param reauthRequiredThreshold int = 10

@description('Failed trigger deliveries (notification.delivery, failure) in 15 minutes above which the alert fires.')
param deliveryFailureThreshold int = 0

@description('Share of HTTP requests answered 5xx (percent, over 15 minutes, with at least 20 requests) above which the alert fires.')
param serverErrorPercentThreshold int = 5

var abbrs = loadJsonContent('../abbreviations.json')

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${abbrs.insightsActionGroups}${resourceToken}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'oia-alerts'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmailAddress
        useCommonAlertSchema: true
      }
    ]
  }
}

// Owners must sign in again: a spike means the identity provider revoked grants in bulk
// (a password reset wave, a Conditional Access change, a consent withdrawn).
resource reauthRequiredSpike 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${abbrs.insightsScheduledQueryRules}reauth-required-${resourceToken}'
  location: location
  tags: tags
  properties: {
    displayName: 'Outlook Integration API: reauth_required spike'
    description: 'More connections than usual need their owner to sign in again (connection.reauth_required).'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: 'customEvents | where name == "connection.reauth_required"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: reauthRequiredThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// A caller's webhook was given up after its retries (docs/triggers.md).
resource deliveryFailures 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${abbrs.insightsScheduledQueryRules}delivery-failures-${resourceToken}'
  location: location
  tags: tags
  properties: {
    displayName: 'Outlook Integration API: trigger delivery failures'
    description: 'Change notifications could not be delivered to a caller\'s webhook (notification.delivery, outcome failure).'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'customEvents | where name == "notification.delivery" and tostring(customDimensions.outcome) == "failure"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: deliveryFailureThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource serverErrorRate 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${abbrs.insightsScheduledQueryRules}server-errors-${resourceToken}'
  location: location
  tags: tags
  properties: {
    displayName: 'Outlook Integration API: 5xx rate'
    description: 'The share of requests answered with a 5xx status is above the threshold.'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'requests | summarize total = count(), failed = countif(toint(resultCode) >= 500) | extend failedPercent = iff(total < 20, 0.0, 100.0 * failed / total)'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'failedPercent'
          operator: 'GreaterThan'
          threshold: serverErrorPercentThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

// The token lifecycle: a run that ended in failure, or a batch that landed in the poison
// queue (docs/operations.md, "Watching it").
resource refreshRunFailures 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${abbrs.insightsScheduledQueryRules}refresh-runs-${resourceToken}'
  location: location
  tags: tags
  properties: {
    displayName: 'Outlook Integration API: refresh run failures'
    description: 'A token lifecycle run failed (lifecycle.run, outcome failure) or a batch was poisoned (lifecycle.poison).'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'customEvents | where name in ("lifecycle.run", "lifecycle.poison") and tostring(customDimensions.outcome) == "failure"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}
