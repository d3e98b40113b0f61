"""The URL list of API version 1, and the OpenAPI schema and docs."""

from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from billing.api import (
    events,
    schema,  # noqa: F401  (registers the API key security scheme)
)
from billing.api.errors import error_body

event_urlpatterns = [
    path("<slug:module>/outbox", events.OutboxEventListView.as_view(), name="outbox-event-list"),
    path("<slug:module>/dead-letters", events.DeadLetterListView.as_view(), name="dead-letter-list"),
    path(
        "<slug:module>/dead-letters/<int:dead_letter_id>",
        events.DeadLetterDetailView.as_view(),
        name="dead-letter-detail",
    ),
    path(
        "<slug:module>/dead-letters/<int:dead_letter_id>/replay",
        events.DeadLetterReplayView.as_view(),
        name="dead-letter-replay",
    ),
    path(
        "<slug:module>/dead-letters/<int:dead_letter_id>/discard",
        events.DeadLetterDiscardView.as_view(),
        name="dead-letter-discard",
    ),
]

v1_urlpatterns = [
    path("", include("ar.api.urls")),
    path("", include("payments.api.urls")),
    path("", include("subscriptions.api.urls")),
    path("events/", include(event_urlpatterns)),
]



# Exempt, because Django's CSRF check would reject a POST with an HTML 403
# first; the API authenticates with keys, never with cookies.
@csrf_exempt
def not_found(request, path=""):
    """Return a 404 for an unknown API path in the API's error shape instead of Django's HTML page."""
    return JsonResponse(error_body("not_found", f"no API endpoint at {request.path}"), status=404)


urlpatterns = [
    path("v1/", include(v1_urlpatterns)),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]), name="schema"),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[], authentication_classes=[]),
        name="api-docs",
    ),
    re_path(r"^(?P<path>.*)$", not_found),
]
