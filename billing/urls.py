from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # REST API v1, its OpenAPI schema and interactive docs.
    path("api/", include("billing.api.urls")),
]
