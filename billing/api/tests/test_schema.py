import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from billing.api.tests.support import api_client

pytestmark = pytest.mark.django_db(databases="__all__")


class TestSchema:
    def test_spectacular_validates_without_warnings(self, tmp_path):
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))

        assert "/api/v1/invoices/{invoice_id}/payments:" in (tmp_path / "schema.yaml").read_text()

    def test_schema_and_docs_need_no_key(self):
        schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
        docs = APIClient().get("/api/docs/")

        assert schema.status_code == 200
        assert "/api/v1/customers" in schema.json()["paths"]
        assert docs.status_code == 200

    def test_error_response_matches_schema(self):
        schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
        error_schema = schema["components"]["schemas"]["ErrorDetail"]

        response = api_client().post("/api/v1/plans", {"code": "pro"}, format="json")

        assert set(response.json()["error"]) == set(error_schema["properties"])
        assert set(response.json()["error"]) == set(error_schema["required"])

    def test_docs_use_local_swagger_ui(self):
        docs = APIClient().get("/api/docs/")

        assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in docs.content
        assert b"cdn.jsdelivr.net" not in docs.content

    def test_staff_endpoints_document_403(self):
        schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
        paths = schema["paths"]

        assert "403" in paths["/api/v1/events/{module}/dead-letters/{dead_letter_id}/replay"]["post"]["responses"]
        assert "403" not in paths["/api/v1/customers"]["post"]["responses"]
