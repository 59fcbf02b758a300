"""Composition root: the FunctionApp and its blueprints. No business logic lives here.

Settings are validated at import (start-up), so a bad setting stops the worker with a
message naming it; the object graph is built on first use (shared/container.py). What the
blueprints need is handed to them here: the container's resolver and the request limits.
"""

from __future__ import annotations

import azure.functions as func

from shared.config import load_settings
from shared.container import get_container
from shared.functions import exports as export_jobs
from shared.functions import lifecycle, notifications
from shared.http import (
    auth,
    connections,
    docs,
    exports,
    mail,
    mail_actions,
    mail_write,
    mailbox_settings,
    me,
    options,
    portal,
    system,
)
from shared.http import notifications as notification_routes
from shared.http import subscriptions as subscription_routes
from shared.http.api import ApiBlueprint, RequestLimits
from shared.log_levels import quiet_transport_loggers

settings = load_settings()

# httpx and the Azure SDK log every request's full URL at INFO; ours carry secrets.
quiet_transport_loggers()

AREAS: list[ApiBlueprint] = [
    system.api,
    me.api,
    auth.api,
    connections.api,
    mail.api,
    mail_write.api,
    mail_actions.api,
    mailbox_settings.api,
    subscription_routes.api,
    notification_routes.api,
    docs.api,
    portal.api,
    options.api,
    exports.api,
]
# Every HTTP operation, the API's own description (/openapi.json) included.
API_BLUEPRINTS: list[ApiBlueprint] = [*AREAS, system.described(AREAS)]

REQUEST_LIMITS = RequestLimits(
    max_body_bytes=settings.MAX_REQUEST_BODY_BYTES,
    problem_type_base=str(settings.PROBLEM_TYPE_BASE_URL),
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
for area in API_BLUEPRINTS:
    app.register_functions(
        area.build(get_container, REQUEST_LIMITS, function_keys_on_api=settings.API_FUNCTION_KEYS)
    )

# Non-HTTP triggers: the token lifecycle timer and its queue workers.
app.register_functions(lifecycle.blueprint(get_container))
# Change notifications: the delivery worker behind /api/notifications/graph.
app.register_functions(notifications.blueprint(get_container))
# Archiving: the export page worker behind /api/connections/{id}/exports.
app.register_functions(export_jobs.blueprint(get_container))
