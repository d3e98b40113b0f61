from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # REST API v1, its OpenAPI schema and interactive docs.
    path("api/", include("billing.api.urls")),
    # /healthz, /readyz and /metrics for probes and Prometheus.
    path("", include("billing.observability.urls")),
]
