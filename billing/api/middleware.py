"""Relay the outboxes after each successful API or admin write when no relay process runs."""

import logging

from django.conf import settings

from billing.operations.settle import outboxes_drain

logger = logging.getLogger(__name__)

API_PATH_PREFIX = "/api/"
# Admin actions and forms respond to a successful POST with a redirect.
ADMIN_PATH_PREFIX = "/admin/"


class OutboxDrainMiddleware:
    """After a successful POST to the API or the admin, relay every outbox once the response is sent.

    With the in-process bus, relaying also runs the consumers' handlers, so
    a bill run started through the API produces its invoices, payments and
    emails without a Celery worker. The drain runs as a response closer,
    after the response is sent, by which time every service transaction of
    the request has committed. ``API_DRAIN_OUTBOXES_AFTER_WRITE`` turns it on
    (by default when EVENT_BUS is inprocess).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            settings.API_DRAIN_OUTBOXES_AFTER_WRITE
            and request.method == "POST"
            and request.path.startswith((API_PATH_PREFIX, ADMIN_PATH_PREFIX))
            and 200 <= response.status_code < 400
            and not response.has_header("Idempotent-Replayed")
        ):
            response._resource_closers.append(_drain_outboxes)
        return response


def _drain_outboxes() -> None:
    try:
        relayed = outboxes_drain()
    except Exception:
        # The rows stay pending, so the next drain or a relay publishes them.
        logger.exception("Outbox drain after an API write failed")
        return
    logger.debug("Relayed %s event(s) after an API write", relayed)
