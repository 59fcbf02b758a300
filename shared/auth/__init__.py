"""Callers of the API: who they are (Caller) and how a bearer token becomes one."""
