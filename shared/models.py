"""The base of every model that crosses the API's edge (request and response bodies, query
parameters, webhook events): camelCase on the wire, unknown fields refused, immutable.

It sits at the bottom of the layers so that services can declare the bodies they take
without importing the HTTP layer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    """Base of request and response bodies: camelCase on the wire, unknown fields refused."""

    # defer_build: a model's validator is built when first used, not at import (cold start:
    # a worker pays for the models its requests use, not for every model of the API).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, defer_build=True)
