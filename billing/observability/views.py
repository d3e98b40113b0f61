"""Health, readiness and metrics endpoints; none needs a login."""

from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from billing.observability.collectors import OutboxCollector, PaymentCollector
from billing.observability.health import readiness_checks
from eventbus.metrics import process_registry

# The database gauges live in a registry of their own: in multiprocess mode
# the process registry contains only the summed value files.
_database_registry = CollectorRegistry()
_database_registry.register(OutboxCollector())
_database_registry.register(PaymentCollector())


@require_GET
def healthz(request):
    """Return 200 while the process serves requests; touch no database or bus."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    """Return 200 when every database alias and the bus respond, else 503 naming what failed."""
    checks = readiness_checks()
    failed = [check.name for check in checks if not check.ok]
    document = {
        "status": "unavailable" if failed else "ready",
        "failed": failed,
        "checks": [check.as_dict() for check in checks],
    }
    return JsonResponse(document, status=503 if failed else 200)


@require_GET
def metrics(request):
    """Return the Prometheus text exposition: process counters, then database gauges."""
    body = generate_latest(process_registry()) + generate_latest(_database_registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
