"""Requests generated from the OpenAPI schema: no 5xx status, and every response as documented."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from rest_framework.throttling import SimpleRateThrottle
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from billing.api.tests.support import NOW
from billing.tenancy.services import api_key_create, tenant_ensure
from billing.wsgi import application

# Examples per operation, which keeps the whole run near half a minute on two cores.
MAX_EXAMPLES = 5


@pytest.fixture
def api_schema(django_db_blocker, django_db_setup, settings_overrides):
    with django_db_blocker.unblock():
        tenant_ensure(tenant_id="acme", now=NOW)
        _, secret = api_key_create(tenant_id="acme", is_staff=True, now=NOW)
    return schemathesis.from_wsgi(
        "/api/schema/", application, headers={"Authorization": f"Bearer {secret}"}
    )


@pytest.fixture
def settings_overrides(settings, monkeypatch):
    # Without the drain each example stays fast; the rate limit would stop the run.
    settings.API_DRAIN_OUTBOXES_AFTER_WRITE = False
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"api_key": "100000/minute"})


schema = schemathesis.from_pytest_fixture("api_schema")


@pytest.mark.django_db(databases="__all__", transaction=True)
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_responses_match_schema(case):
    response = case.call_wsgi()

    case.validate_response(
        response, checks=(not_a_server_error, response_schema_conformance, status_code_conformance)
    )
