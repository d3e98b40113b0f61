"""Idempotency keys, body limits, throttling and the error shape, through the customers endpoint."""

import json

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from ar.models import Customer
from billing.api.tests.support import api_client
from billing.tenancy.models import IdempotencyRecord

pytestmark = pytest.mark.django_db(databases="__all__")

CUSTOMER = {"external_id": "cus-1", "name": "Ada", "email": "ada@example.com", "currency": "USD"}


def customer_count() -> int:
    return Customer.objects.using("ar").count()


class TestIdempotencyKey:
    def test_same_body_replays_first_response(self):
        client = api_client()

        first = client.post("/api/v1/customers", CUSTOMER, format="json", HTTP_IDEMPOTENCY_KEY="k1")
        second = client.post("/api/v1/customers", CUSTOMER, format="json", HTTP_IDEMPOTENCY_KEY="k1")

        assert first.status_code == 201
        assert second.status_code == 201
        assert second.json() == first.json()
        assert second["Idempotent-Replayed"] == "true"
        assert customer_count() == 1

    def test_different_body_gets_422(self):
        client = api_client()
        client.post("/api/v1/customers", CUSTOMER, format="json", HTTP_IDEMPOTENCY_KEY="k1")

        response = client.post(
            "/api/v1/customers", {**CUSTOMER, "name": "Eve"}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
        )

        assert response.status_code == 422
        assert response.json()["error"] == {
            "code": "idempotency_key_reused",
            "message": "this Idempotency-Key was used with a different request; send a new key for a new request",
            "fields": {},
        }
        assert Customer.objects.using("ar").get().name == "Ada"

    def test_keys_are_per_tenant(self):
        acme = api_client("acme").post("/api/v1/customers", CUSTOMER, format="json", HTTP_IDEMPOTENCY_KEY="k1")
        globex = api_client("globex").post(
            "/api/v1/customers", CUSTOMER, format="json", HTTP_IDEMPOTENCY_KEY="k1"
        )

        assert acme.status_code == 201
        assert globex.status_code == 201
        assert globex.json()["id"] != acme.json()["id"]

    def test_failed_request_releases_key(self):
        client = api_client()
        bad = client.post(
            "/api/v1/customers", {**CUSTOMER, "currency": "US"}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
        )

        fixed = client.post("/api/v1/customers", CUSTOMER, format="json", HTTP_IDEMPOTENCY_KEY="k1")

        assert bad.status_code == 400
        assert fixed.status_code == 201
        assert IdempotencyRecord.objects.get().response_status == 201

    @pytest.mark.parametrize("key", ["", " ", "k" * 256, "k\x00", "schlüssel"])
    def test_invalid_key_rejected(self, key):
        response = api_client().post("/api/v1/customers", CUSTOMER, format="json", HTTP_IDEMPOTENCY_KEY=key)

        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {
            "Idempotency-Key": ["must be 1 to 255 printable ASCII characters, such as a UUID"]
        }
        assert customer_count() == 0
        assert IdempotencyRecord.objects.count() == 0

    def test_post_without_key_runs_each_time(self):
        client = api_client()

        client.post("/api/v1/customers", CUSTOMER, format="json")
        client.post("/api/v1/customers", {**CUSTOMER, "external_id": "cus-2"}, format="json")

        assert customer_count() == 2
        assert IdempotencyRecord.objects.count() == 0


class TestBodyLimits:
    def test_oversized_body_gets_413(self, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
        body = json.dumps({**CUSTOMER, "name": "x" * 2000})

        response = api_client().post("/api/v1/customers", body, content_type="application/json")

        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert customer_count() == 0

    def test_oversized_body_with_key_gets_413(self, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
        body = json.dumps({**CUSTOMER, "name": "x" * 2000})

        response = api_client().post(
            "/api/v1/customers", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1"
        )

        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert customer_count() == 0

    def test_json_list_body_rejected(self):
        response = api_client().post("/api/v1/customers", [CUSTOMER], format="json")

        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {
            "non_field_errors": ["Invalid data. Expected a dictionary, but got list."]
        }
        assert customer_count() == 0


class TestThrottling:
    def test_rate_limit_gets_429(self, monkeypatch):
        cache.clear()
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {**api_settings.DEFAULT_THROTTLE_RATES, "api_key": "2/minute"})
        client = api_client()

        statuses = [client.get("/api/v1/customers").status_code for _ in range(3)]
        response = client.get("/api/v1/customers")

        assert statuses == [200, 200, 429]
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response["Retry-After"]) > 0
        cache.clear()


class TestNotFound:
    def test_unknown_id_gets_error_shape(self):
        response = api_client().get("/api/v1/customers/7f1e4c2a-52a3-4c8f-9d39-0c6f4a0d3b11")

        assert response.status_code == 404
        assert response.json() == {
            "error": {
                "code": "not_found",
                "message": "customer 7f1e4c2a-52a3-4c8f-9d39-0c6f4a0d3b11 does not exist",
                "fields": {},
            }
        }


class TestIdempotencyKeyInUse:
    def test_unfinished_claim_gets_409(self):
        client = api_client()
        first = client.post("/api/v1/customers", CUSTOMER, format="json", HTTP_IDEMPOTENCY_KEY="k1")
        # As if the first request were still running.
        IdempotencyRecord.objects.update(response_status=None, created_at=timezone.now())

        response = client.post("/api/v1/customers", CUSTOMER, format="json", HTTP_IDEMPOTENCY_KEY="k1")

        assert first.status_code == 201
        assert response.status_code == 409
        assert response.json()["error"] == {
            "code": "idempotency_key_in_use",
            "message": "a request with Idempotency-Key 'k1' is still running; retry when it has finished",
            "fields": {},
        }


class TestUnknownPath:
    def test_gets_error_shape(self):
        response = api_client().get("/api/v1/refunds")

        assert response.status_code == 404
        assert response.json() == {
            "error": {"code": "not_found", "message": "no API endpoint at /api/v1/refunds", "fields": {}}
        }

    def test_nul_in_path_gets_404(self):
        plan = api_client().get("/api/v1/plans/pro%00")
        module = api_client().get("/api/v1/events/a%00r/outbox")

        assert plan.status_code == 404
        assert module.status_code == 404

    def test_post_to_unknown_path_gets_404(self):
        response = api_client().post("/api/v1/customers/cus-1/payment-methods", {}, format="json")

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


class TestServerError:
    def test_releases_idempotency_key(self, monkeypatch):
        import ar.api.views

        def fail(**kwargs):
            raise RuntimeError("database went away")

        monkeypatch.setattr(ar.api.views, "customer_upsert", fail)
        client = api_client()
        client.raise_request_exception = True

        with pytest.raises(RuntimeError, match="database went away"):
            client.post("/api/v1/customers", CUSTOMER, format="json", HTTP_IDEMPOTENCY_KEY="k1")

        assert IdempotencyRecord.objects.count() == 0
