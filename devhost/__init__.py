"""Dev host: serves ``function_app.app`` locally the way the Azure Functions host would.

A development server for machines without Azure Functions Core Tools; never deployed.
Run it with ``python -m devhost``; see devhost/README.md.
"""
