"""The identity provider adapter: MSAL against Entra ID (or any authority the settings name)."""
